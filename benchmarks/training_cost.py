"""Training cost against the number of annotators: per-epoch time relative to CE, and a 1M-item epoch.

Same items, labels and batches for every method: ``N`` items with 128-d Gaussian features,
``K = 10`` classes, 3 labels per item from distinct annotators drawn uniformly among ``M``, an
MLP (128 hidden units), batch 128, 3 epochs, one torch thread, best of ``--repeats``; only the
epochs are timed (a callback around each epoch), not the set-up. Columns:

- ``sparse``: the library's default (the batch's annotators gathered, sparse gradients,
  the row-wise LazyAdam for the head, GeoCrowdNet(W)'s Gram and TraceReg's trace from the head's cache);
- ``dense``: the same heads with ``sparse=False`` (dense gradients, dense Adam over all ``M``
  annotators' parameters at every step, the regularizers over all ``M``);
- ``BxMxK``: a small reference of the formulation of the original code (every step softmaxes
  all ``M`` matrices, forms the ``B x M x K`` predictions and masks the missing labels), inside
  this script only, timed over one epoch, once (its ratio is per epoch like the others).

Times are CPU seconds of the process (``time.process_time``; one torch thread, so about the
wall time on an idle machine): the machine these numbers come from is shared, and CPU time is
less disturbed by the other jobs than wall time (not immune: they share caches and memory
bandwidth).

``--registry`` adds every registered method through ``CrowdClassifier`` (its recipe's defaults
but ``batch_size=128`` and ``mixup=0`` for all, so every method takes the same steps on the same
batches, and ``validation="none"``), each relative to ``method="ce"`` timed the same way.
``--interleaved R`` is for a loaded (shared) machine: per ``M`` it builds one trainer per core
method (sparse heads) and CE once, then runs ``R`` rounds, each one epoch of every method in
turn (CE first), so CE and each method are timed minutes, not a whole table, apart; it prints, per
method, the median over the rounds of the round's ratio (method / that round's CE) and the ratio
of the best epochs (min over rounds). The first round warms up and is not counted.
``--big`` runs one CCEM epoch at 1M items, 10,000 annotators and 5M labels in a fresh process
and prints its time and peak resident memory (``resource.getrusage(RUSAGE_SELF).ru_maxrss`` of
that process: data, model and training together).

Usage::

    python benchmarks/training_cost.py                          # the core methods, M = 10 ... 10,000
    python benchmarks/training_cost.py --registry --ms 10 10000 # every registered method
    python benchmarks/training_cost.py --big                    # the 1M-item epoch
    python benchmarks/training_cost.py --interleaved 7 --ms 10 10000  # ratios on a loaded machine
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
import warnings
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from crowdlearn import Annotations
from crowdlearn.nn.backbones import MLP
from crowdlearn.nn.confusion import ConfusionMatrices, IdentityHead
from crowdlearn.nn.crowdlayer import CrowdLayer
from crowdlearn.nn.losses import CrowdLoss, LogDetVolumeF, LogDetVolumeW, Regularizer, TraceRegularizer
from crowdlearn.nn.model import CrowdModel
from crowdlearn.train import Callback, Trainer

K, D, PER_ITEM, BATCH, LAM = 10, 128, 3, 128, 0.01
CORE: dict[str, tuple[str, Callable[[], list[Regularizer]]]] = {
    "ccem": ("conf", list),
    "geocrowdnet-f": ("conf", lambda: [LogDetVolumeF(LAM)]),
    "geocrowdnet-w": ("conf", lambda: [LogDetVolumeW(LAM)]),
    "tracereg": ("conf", lambda: [TraceRegularizer(LAM)]),
    "crowdlayer-mw": ("mw", list),
}


class EpochTimer(Callback):
    """Wall time of each epoch (perf_counter)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._t0 = 0.0

    def on_epoch_begin(self, trainer: Trainer, epoch: int) -> None:
        self._t0 = time.process_time()

    def on_epoch_end(self, trainer: Trainer, epoch: int) -> None:
        self.times.append(time.process_time() - self._t0)


def make_data(n: int, m: int, per_item: int, seed: int = 0) -> tuple[np.ndarray, Annotations]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, D)).astype(np.float32)
    y = rng.integers(0, K, n)
    # distinct annotators per item: a random start plus distinct random offsets modulo M
    if m >= per_item:
        offsets = np.stack([rng.permutation(np.arange(1, m))[: per_item - 1] for _ in range(64)])
        base = rng.integers(0, m, size=(n, 1))
        an = (base + np.concatenate([np.zeros((64, 1), np.int64), offsets], 1)[rng.integers(0, 64, n)]) % m
    else:
        raise ValueError("need M >= labels per item")
    items = np.repeat(np.arange(n), per_item)
    truth = y[items]
    labels = np.where(rng.random(items.size) < 0.7, truth, rng.integers(0, K, items.size))
    return X, Annotations(items, an.ravel(), labels, n_items=n, n_annotators=m, n_classes=K)


def run_trainer(head: nn.Module, regs: list[Regularizer], X: np.ndarray, ann: Annotations, epochs: int) -> float:
    torch.manual_seed(0)
    timer = EpochTimer()
    model = CrowdModel(MLP(D, K, hidden=(128,)), head)
    trainer = Trainer(
        model, CrowdLoss(regularizers=regs), epochs=epochs, batch_size=BATCH, device="cpu",
        callbacks=[timer], sink=lambda s: None,
    )  # fmt: skip
    trainer.fit(X, ann)
    return sum(timer.times)


def make_head(kind: str, m: int, sparse: bool) -> nn.Module:
    if kind == "ce":
        return IdentityHead(m, K)
    if kind == "mw":
        return CrowdLayer(m, K, kind="mw", sparse=sparse)
    return ConfusionMatrices(m, K, sparse=sparse)


def dense_reference(method: str, X: np.ndarray, ann: Annotations, epochs: int) -> float:
    """The B x M x K formulation: all M matrices softmaxed, predictions for every annotator, masked."""
    torch.manual_seed(0)
    m = ann.n_annotators
    body = MLP(D, K, hidden=(128,))
    logits_p = nn.Parameter(torch.eye(K).expand(m, K, K).clone())
    opt = torch.optim.Adam([{"params": body.parameters(), "weight_decay": 1e-4}, {"params": [logits_p]}], lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    Xt = torch.from_numpy(X)
    t0 = time.process_time()
    for _ in range(epochs):
        order = torch.randperm(ann.n_items, generator=gen).numpy()
        for s in range(0, ann.n_items, BATCH):
            idx = order[s : s + BATCH]
            rows, annotators, labels = ann.labels_of(idx)
            dense = torch.full((idx.size, m), -1, dtype=torch.int64)  # (B, M), -1: no label
            dense[torch.from_numpy(rows), torch.from_numpy(annotators)] = torch.from_numpy(labels)
            opt.zero_grad()
            f = body(Xt[idx]).softmax(1)  # (B, K)
            a = torch.softmax(logits_p, dim=1)  # (M, K, K)
            pred = torch.einsum("mij,bj->bmi", a, f).clamp_min(1e-12).log()  # (B, M, K)
            mask = dense >= 0
            nll = -(pred.gather(2, dense.clamp_min(0).unsqueeze(2)).squeeze(2) * mask).sum() / mask.sum()
            loss = nll
            if method == "geocrowdnet-f":
                loss = loss - LAM * torch.logdet(f.t() @ f + 1e-6 * torch.eye(K))
            elif method == "geocrowdnet-w":
                w = a.reshape(m * K, K)
                loss = loss - LAM * torch.logdet(w.t() @ w + 1e-6 * torch.eye(K))
            elif method == "tracereg":
                loss = loss + LAM * torch.diagonal(a, dim1=1, dim2=2).sum()
            loss.backward()
            opt.step()
    return time.process_time() - t0


def best(fn: Callable[[], float], repeats: int) -> float:
    return min(fn() for _ in range(repeats))


def core_table(ms: list[int], epochs: int, repeats: int, reference: bool) -> None:
    ref = " / BxMxK"
    cols = [f" {name} sparse / dense{ref if reference and CORE[name][0] == 'conf' else ''} |" for name in CORE]
    print(f"| M | CE (s, {epochs} epochs) |" + "".join(cols))
    print("|---:|---:|" + "---:|" * len(CORE))
    for m in ms:
        X, ann = make_data(2_000 if SMALL else 20_000, m, PER_ITEM)
        ce = best(lambda m=m, X=X, ann=ann: run_trainer(IdentityHead(m, K), [], X, ann, epochs), repeats)
        cells = []
        for name, (kind, regs) in CORE.items():
            times = [
                best(lambda s=s, kind=kind, regs=regs, m=m, X=X, ann=ann: run_trainer(
                    make_head(kind, m, s), regs(), X, ann, epochs), repeats)
                for s in (True, False)
            ]  # fmt: skip
            cell = f"{times[0] / ce:.2f} / {times[1] / ce:.2f}"
            if reference and kind == "conf":
                one = dense_reference(name, X, ann, 1)  # one run: it is slow enough to be stable
                cell += f" / {one / (ce / epochs):.2f}"
            cells.append(cell)
        print(f"| {m:,} | {ce:.2f} | " + " | ".join(cells) + " |", flush=True)


def interleaved_table(ms: list[int], rounds: int) -> None:
    """Median per-round ratio and best-epoch ratio to CE, every method's epochs interleaved with CE's."""
    names = [n for n, (kind, _) in CORE.items() if kind == "conf"]
    print("| M | CE (s, best epoch) | " + " | ".join(f"{n} median / best" for n in names) + " |")
    print("|---:|---:|" + "---:|" * len(names))
    for m in ms:
        X, ann = make_data(2_000 if SMALL else 20_000, m, PER_ITEM)
        timers: dict[str, EpochTimer] = {}
        trainers: dict[str, Trainer] = {}
        for name in ["ce", *names]:
            torch.manual_seed(0)
            head = IdentityHead(m, K) if name == "ce" else make_head("conf", m, True)
            regs = [] if name == "ce" else CORE[name][1]()
            timers[name] = EpochTimer()
            model = CrowdModel(MLP(D, K, hidden=(128,)), head)
            trainers[name] = Trainer(
                model, CrowdLoss(regularizers=regs), epochs=1, batch_size=BATCH, device="cpu",
                callbacks=[timers[name]], sink=lambda s: None,
            )  # fmt: skip
        for _ in range(rounds + 1):  # the first round warms up
            for trainer in trainers.values():
                trainer.fit(X, ann)
        times = {name: np.array(t.times[1:]) for name, t in timers.items()}
        ce = times["ce"]
        cells = [f"{np.median(times[n] / ce):.2f} / {times[n].min() / ce.min():.2f}" for n in names]
        print(f"| {m:,} | {ce.min():.3f} | " + " | ".join(cells) + " |", flush=True)


def registry_table(ms: list[int], epochs: int, repeats: int) -> None:
    from crowdlearn.estimators import CrowdClassifier
    from crowdlearn.nn.registry import available_methods

    methods = [m for m in available_methods() if m != "ce"]

    def fit(method: str, X: np.ndarray, ann: Annotations) -> float:
        timer = EpochTimer()
        clf = CrowdClassifier(
            method=method, epochs=epochs, batch_size=BATCH, mixup=0.0, validation="none", device="cpu",
            random_state=0, callbacks=[timer],
        )  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.fit(X, ann)
        return sum(timer.times)

    print("| method | " + " | ".join(f"M = {m:,}" for m in ms) + " |")
    print("|---|" + "---:|" * len(ms))
    data = {m: make_data(20_000 if not SMALL else 2_000, m, PER_ITEM) for m in ms}
    ce = {m: best(lambda m=m: fit("ce", *data[m]), repeats) for m in ms}
    print("| ce (s) | " + " | ".join(f"{ce[m]:.2f}" for m in ms) + " |", flush=True)
    for method in methods:
        cells = []
        for m in ms:
            try:
                t = best(lambda method=method, m=m: fit(method, *data[m]), repeats)
                cells.append(f"{t / ce[m]:.2f}")
            except Exception as exc:  # a method that cannot run this design: say why
                cells.append(f"error: {type(exc).__name__}")
        print(f"| {method} | " + " | ".join(cells) + " |", flush=True)


def big_epoch() -> None:
    n, m, per_item = 1_000_000, 10_000, 5
    t0 = time.process_time()
    X, ann = make_data(n, m, per_item)
    t_data = time.process_time() - t0
    rss_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    t = run_trainer(ConfusionMatrices(m, K), [], X, ann, 1)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(
        f"| {n:,} | {m:,} | {ann.n_labels:,} | {t:.1f} | {rss:.2f} | {rss_data:.2f} | {t_data:.1f} |",
        flush=True,
    )


SMALL = False


def main() -> None:
    global SMALL
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ms", type=int, nargs="+", default=[10, 100, 1_000, 10_000])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-reference", action="store_true", help="skip the B x M x K reference")
    parser.add_argument("--registry", action="store_true", help="every registered method via CrowdClassifier")
    parser.add_argument("--big", action="store_true", help="one epoch at 1M items (in a fresh process)")
    parser.add_argument("--small", action="store_true", help="2,000 items instead of 20,000 (a smoke run)")
    parser.add_argument(
        "--interleaved",
        type=int,
        default=0,
        metavar="R",
        help="R rounds of one epoch per core method, interleaved with CE (loaded machines)",
    )
    parser.add_argument("--_big-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    SMALL = args.small
    if args._big_child:
        big_epoch()
        return
    print("command: python benchmarks/training_cost.py " + " ".join(sys.argv[1:]))
    print(
        f"commit {_commit()}, torch {torch.__version__}, 1 thread, load average {' '.join(f'{x:.2f}' for x in _load())}"
    )
    if args.big:
        print("| items | annotators | labels | epoch (s) | peak RSS (GiB) | RSS after data (GiB) | data (s) |")
        print("|---:|---:|---:|---:|---:|---:|---:|")
        subprocess.run([sys.executable, __file__, "--_big-child"], check=True)
    elif args.registry:
        registry_table(args.ms, args.epochs, args.repeats)
    elif args.interleaved:
        interleaved_table(args.ms, args.interleaved)
    else:
        core_table(args.ms, args.epochs, args.repeats, not args.no_reference)
    print(f"load average at the end {' '.join(f'{x:.2f}' for x in _load())}")


def _commit() -> str:
    """The checkout's commit (short hash, ``+`` when the tree has changes), or ``?``."""
    import os

    here = os.path.dirname(os.path.abspath(__file__))
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True, text=True
        )
    except OSError:
        return "?"
    return head.stdout.strip() + ("+" if dirty.stdout.strip() else "") if head.returncode == 0 else "?"


def _load() -> tuple[float, float, float]:
    import os

    return os.getloadavg()


if __name__ == "__main__":
    main()
