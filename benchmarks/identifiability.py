"""Identifiability benchmark: CCEM vs GeoCrowdNet(F)/(W), TraceReg and Dawid-Skene.

Part 1 (matrix level): the synthetic designs of docs/model.md (after Ibrahim, Nguyen & Fu, ICLR
2023, arXiv:2306.03288) where the truth is known.

- ``control``: every class has exact class-specialist annotators, items are anchors (hard);
- ``f-ssc``: diagonally dominant, all-positive confusions (no near-specialist) and items
  ambiguous between 2-3 classes (no anchor; F sufficiently scattered);
- ``w-ssc``: confusion rows with one or two zeros each, no near-specialist, soft items (no
  anchor; W sufficiently scattered, F not).

The classifier is a *free* table: items come in ``N / 20`` types (20 items per type share one
true posterior) and the backbone is one learnable logit vector per type (an ``nn.Embedding``),
so ``f`` is learned per type without any function-class assumption. (One vector per *item*
overfits the 1-10 labels of each item -- the joint maximum likelihood over per-item parameters is
inconsistent -- and biases every method's confusions towards sparsity; types keep the estimate
consistent while leaving ``f`` unconstrained.) Training is full batch.

Part 2: machine annotators (15 scikit-learn classifiers trained on subsets of a held-out pool,
each prediction observed with probability 0.1) on MNIST and Fashion-MNIST with a LeNet backbone.
Truth for the estimation error = each machine's empirical confusion on the training items.

Every deep method trains with the library's base training values
(``crowdlearn.nn.registry.BASE_TRAINING``: constant schedule, no mixup, ...) and the values set
here, not with its default recipe (docs/training.md, "Default recipes"), so that every method takes
the same steps and the tables do not move when a recipe changes.

``--dense-heads`` builds every head with ``sparse=False`` (dense gradients and Adam over all
annotators' parameters at every step) instead of the sparse default, to measure their difference.

Run ``python benchmarks/identifiability.py --help``; the script prints markdown tables and the
exact command that produced them.
"""

from __future__ import annotations

import argparse
import gzip
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from crowdlearn import Annotations
from crowdlearn.aggregate import DawidSkene, MajorityVote
from crowdlearn.estimators import CrowdClassifier
from crowdlearn.metrics import accuracy, align_classes, confusion_estimation_error
from crowdlearn.nn import LeNet, confusion
from crowdlearn.nn.registry import BASE_TRAINING
from crowdlearn.simulate import (
    SimulatedCrowd,
    ambiguous_posteriors,
    class_specialist_confusions,
    diagonally_dominant_confusions,
    hard_truth,
    simulate_crowd,
    simulate_machine_annotators,
    soft_posteriors,
    wssc_confusions,
)

REPO = Path(__file__).resolve().parents[1]
K_SYNTH = 5
ITEMS_PER_TYPE = 20
# regularization weights: chosen once from {0.001, 0.01, 0.1} on pilot runs (seeds 0-1, N=2000,
# M=30, p=0.1, identity init) of the matching design -- an oracle choice, see docs/benchmarks.md
LAMBDAS = {"ccem": 0.0, "geocrowdnet-f": 0.01, "geocrowdnet-w": 0.1, "tracereg": 0.01}
# part 2 uses the estimator's default weight for every regularizer (the paper's range)
LAMBDAS2 = {"ccem": 0.0, "geocrowdnet-f": 0.01, "geocrowdnet-w": 0.01, "tracereg": 0.01}
SHORT = {"ccem": "CCEM", "geocrowdnet-f": "GeoCrowdNet(F)", "geocrowdnet-w": "GeoCrowdNet(W)", "tracereg": "TraceReg"}


class TypeTable(nn.Module):
    """Free classifier: one learnable logit vector per item type; input = type index (B,)."""

    def __init__(self, n_types: int, n_classes: int) -> None:
        super().__init__()
        self.table = nn.Embedding(n_types, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.table(x.long().view(-1))  # type: ignore[no-any-return]


def matrix_design(design: str, n_items: int, n_annotators: int, p: float, seed: int) -> tuple[SimulatedCrowd, Any]:
    """Simulate one matrix-level design; returns the crowd and the item-type index (n_items,)."""
    g = np.random.default_rng(seed)
    M, K = n_annotators, K_SYNTH
    n_types = max(n_items // ITEMS_PER_TYPE, K)
    if design == "control":
        A = class_specialist_confusions(M, K, random_state=g)
        _, F = hard_truth(n_types, K, random_state=g)
    elif design == "f-ssc":
        A = diagonally_dominant_confusions(M, K, max_closeness=0.75, random_state=g)
        _, F = ambiguous_posteriors(n_types, K, random_state=g)
    elif design == "w-ssc":
        A = wssc_confusions(M, K, random_state=g)
        _, F = soft_posteriors(n_types, K, random_state=g)
    else:
        raise ValueError(design)
    types = np.concatenate([np.arange(n_types), g.integers(n_types, size=n_items - n_types)])
    crowd = simulate_crowd(A, n_items=n_items, p=p, truth=F[types], random_state=g)
    return crowd, types


def random_init(n_annotators: int, seed: int) -> np.ndarray[Any, Any]:
    """Random column-stochastic initial confusions (every column ~ Dirichlet(1))."""
    draws = np.random.default_rng(10_000 + seed).dirichlet(np.ones(K_SYNTH), size=(n_annotators, K_SYNTH))
    return np.ascontiguousarray(draws.transpose(0, 2, 1))


def run_part1(args: argparse.Namespace, emit: Callable[[str], None]) -> None:
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes]
    results: dict[tuple[Any, ...], list[tuple[float, float]]] = defaultdict(list)
    t0 = time.time()
    for design in args.designs:
        for n_items, n_annotators in sizes:
            for p in args.p:
                for seed in range(args.seeds):
                    crowd, types = matrix_design(design, n_items, n_annotators, p, seed)
                    truth_y = crowd.true_labels
                    X = torch.from_numpy(types.astype(np.int64))
                    n_types = int(types.max()) + 1
                    inits: list[str] = ["identity"]
                    if (n_items, n_annotators) == sizes[0] or args.random_init_all:
                        inits.append("random")
                    for init in inits:
                        for method in args.methods:
                            torch.manual_seed(seed)
                            clf = CrowdClassifier(
                                method=method,  # type: ignore[arg-type]
                                backbone=TypeTable(n_types, K_SYNTH),
                                lam=LAMBDAS[method],
                                **{
                                    **BASE_TRAINING,  # not the methods' recipes: the same steps for every method
                                    "epochs": args.epochs,
                                    "lr": args.lr,
                                    "batch_size": n_items,
                                    "weight_decay": 0.0,
                                    "init": "identity" if init == "identity" else random_init(n_annotators, seed),
                                },
                                validation="none",
                                device="cpu",
                                random_state=seed,
                            ).fit(X, crowd.annotations)
                            A_hat = clf.confusions_
                            perm = align_classes(A_hat, crowd.confusions)
                            err = confusion_estimation_error(A_hat, crowd.confusions)
                            acc = accuracy(truth_y, clf.predict_proba(X)[:, perm])
                            results[(design, n_items, n_annotators, p, init, method)].append((err, acc))
                    ds = DawidSkene().fit(crowd.annotations)
                    perm = align_classes(ds.confusions_, crowd.confusions)
                    err = confusion_estimation_error(ds.confusions_, crowd.confusions)
                    acc = accuracy(truth_y, ds.probas_[:, perm])
                    results[(design, n_items, n_annotators, p, "-", "ds")].append((err, acc))
                print(f"[part 1] {design} done at {time.time() - t0:.0f}s", file=sys.stderr, flush=True)

    def cell(key: tuple[Any, ...]) -> tuple[str, str]:
        vals = np.array(results[key])
        e, a = vals[:, 0], vals[:, 1]
        return f"{e.mean():.3f} ± {e.std():.3f}", f"{a.mean():.3f} ± {a.std():.3f}"

    cols = [(init, m) for init in ("identity", "random") for m in args.methods] + [("-", "ds")]
    for metric, idx in (("Confusion estimation error (relative Frobenius, mean ± std)", 0), ("Accuracy", 1)):
        emit(f"\n**Part 1 — {metric}, {args.seeds} seeds, K = {K_SYNTH}**\n")
        head = ["design", "N", "M", "p"] + [
            ("DS" if m == "ds" else f"{SHORT[m]} {'id' if i == 'identity' else 'rand'}") for i, m in cols
        ]
        emit("| " + " | ".join(head) + " |")
        emit("|" + "---|" * 4 + "---:|" * len(cols))
        for design in args.designs:
            for n_items, n_annotators in sizes:
                for p in args.p:
                    row = [design, str(n_items), str(n_annotators), f"{p:g}"]
                    for init, m in cols:
                        key = (design, n_items, n_annotators, p, init, m)
                        row.append(cell(key)[idx] if key in results else "")
                    emit("| " + " | ".join(row) + " |")
    emit(f"\n(part 1 wall time {time.time() - t0:.0f} s)")


# ---------------------------------------------------------------------------- part 2
def read_idx(path: Path) -> np.ndarray[Any, Any]:
    """An IDX file (gzip) as a uint8 array."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_idx_dataset(root: Path) -> tuple[np.ndarray[Any, Any], ...]:
    Xtr = read_idx(root / "train-images-idx3-ubyte.gz")
    ytr = read_idx(root / "train-labels-idx1-ubyte.gz").astype(np.int64)
    Xte = read_idx(root / "t10k-images-idx3-ubyte.gz")
    yte = read_idx(root / "t10k-labels-idx1-ubyte.gz").astype(np.int64)
    return Xtr, ytr, Xte, yte


def run_part2(args: argparse.Namespace, emit: Callable[[str], None]) -> None:
    roots = {
        k: v for k, v in {"MNIST": Path(args.mnist), "Fashion-MNIST": Path(args.fashion)}.items() if k in args.datasets
    }
    methods = args.methods2
    names = {**SHORT, "mv": "MV -> train", "ds": "DS -> train"}
    results: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    t0 = time.time()
    machine_acc: dict[str, list[float]] = defaultdict(list)
    for dname, root in roots.items():
        if not (root / "train-images-idx3-ubyte.gz").exists():
            emit(f"\n{dname}: files not found under {root}; skipped")
            continue
        Xtr, ytr, Xte, yte = load_idx_dataset(root)
        for seed in range(args.seeds2):
            g = np.random.default_rng(seed)
            perm = g.permutation(len(Xtr))
            pool, train = perm[: args.pool], perm[args.pool : args.pool + args.n_train]
            test = g.permutation(len(Xte))[: args.n_test]
            flat = Xtr.reshape(len(Xtr), -1).astype(np.float32) / 255.0
            crowd = simulate_machine_annotators(
                flat[train], ytr[train], flat[pool], ytr[pool], n_machines=15, p=0.1, random_state=seed
            )
            machine_acc[dname].extend(np.diagonal(crowd.confusions, axis1=1, axis2=2).mean(axis=1).tolist())
            ann = crowd.annotations
            Ximg = ((Xtr[train].astype(np.float32) / 255.0 - 0.5) / 0.5)[:, None]
            Xtest = ((Xte[test].astype(np.float32) / 255.0 - 0.5) / 0.5)[:, None]
            ytest = yte[test]
            for method in methods:
                torch.manual_seed(seed)
                common: dict[str, Any] = dict(
                    BASE_TRAINING,  # not the methods' recipes: the same steps for every method
                    backbone=LeNet(10, in_channels=1),
                    epochs=args.epochs2,
                    lr=1e-3,
                    confusion_lr=args.confusion_lr2,
                    batch_size=128,
                    validation="none",
                    device="cpu",
                    random_state=seed,
                )
                err = float("nan")
                if method in ("mv", "ds"):
                    agg = (MajorityVote() if method == "mv" else DawidSkene()).fit(ann)
                    labelled = np.flatnonzero(ann.item_counts > 0)
                    single = Annotations(
                        np.arange(labelled.size),
                        np.zeros(labelled.size, dtype=np.int64),
                        np.asarray(agg.labels_)[labelled],
                        n_items=labelled.size,
                        n_annotators=1,
                        n_classes=10,
                    )
                    clf = CrowdClassifier(method="ce", **common).fit(Ximg[labelled], single)
                    if method == "ds":
                        err = confusion_estimation_error(agg.confusions_, crowd.confusions)
                else:
                    clf = CrowdClassifier(method=method, lam=LAMBDAS2[method], **common).fit(Ximg, ann)  # type: ignore[arg-type]
                    err = confusion_estimation_error(clf.confusions_, crowd.confusions)
                acc = accuracy(ytest, clf.predict(Xtest))
                results[(dname, method)].append((err, acc))
                print(
                    f"[part 2] {dname} seed {seed} {method}: err {err:.3f} acc {acc:.4f} at {time.time() - t0:.0f}s",
                    file=sys.stderr,
                    flush=True,
                )
    emit(
        f"\n**Part 2 — machine annotators (15 machines, p = 0.1, LeNet, {args.epochs2} epochs), "
        f"{args.n_train} training items, {args.pool} pool images, {args.n_test} test images, {args.seeds2} seed(s)**\n"
    )
    emit("| dataset | method | test accuracy | confusion estimation error |")
    emit("|---|---|---:|---:|")
    for dname in roots:
        for method in methods:
            vals = np.array(results.get((dname, method), []))
            if vals.size == 0:
                continue
            e, a = vals[:, 0], vals[:, 1]
            es = "n/a" if np.isnan(e).all() else f"{e.mean():.3f} ± {e.std():.3f}"
            emit(f"| {dname} | {names[method]} | {a.mean():.4f} ± {a.std():.4f} | {es} |")
    for dname, accs in machine_acc.items():
        emit(
            f"\n{dname} machines' accuracy on the training items (mean of diagonal): "
            f"min {min(accs):.3f}, median {np.median(accs):.3f}, max {max(accs):.3f}"
        )
    emit(f"\n(part 2 wall time {time.time() - t0:.0f} s)")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--part", choices=["1", "2", "all"], default="all")
    ap.add_argument("--designs", nargs="+", default=["control", "f-ssc", "w-ssc"])
    ap.add_argument(
        "--sizes", nargs="+", default=["1000x20", "3000x20", "1000x50"], help="NxM; random init on the first"
    )
    ap.add_argument("--p", nargs="+", type=float, default=[0.05, 0.1, 0.3])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--methods", nargs="*", default=list(LAMBDAS), help="deep methods (none: DS only)")
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--random-init-all", action="store_true", help="random init on every size, not only the first")
    ap.add_argument("--mnist", default=str(REPO.parent / "shared" / "data" / "MNIST"))
    ap.add_argument("--fashion", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--n-train", type=int, default=10_000)
    ap.add_argument("--pool", type=int, default=10_000)
    ap.add_argument("--n-test", type=int, default=10_000)
    ap.add_argument("--epochs2", type=int, default=20)
    ap.add_argument("--seeds2", type=int, default=2)
    ap.add_argument("--confusion-lr2", type=float, default=1e-2)
    ap.add_argument("--datasets", nargs="+", default=["MNIST", "Fashion-MNIST"])
    ap.add_argument("--methods2", nargs="+", default=["ccem", "geocrowdnet-f", "geocrowdnet-w", "tracereg", "mv", "ds"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--dense-heads",
        action="store_true",
        help="build every head with sparse=False (dense gradients and Adam), to compare with the sparse default",
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    confusion.SPARSE_BY_DEFAULT = not args.dense_heads  # read when each head is built
    lines: list[str] = []

    def emit(s: str) -> None:
        print(s, flush=True)
        lines.append(s)

    emit("Command: `python benchmarks/identifiability.py " + " ".join(sys.argv[1:] if argv is None else argv) + "`")
    if args.part in ("1", "all"):
        run_part1(args, emit)
    if args.part in ("2", "all"):
        run_part2(args, emit)


if __name__ == "__main__":
    main()
