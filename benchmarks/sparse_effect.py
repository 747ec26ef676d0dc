"""Sparse heads (row-wise LazyAdam, cached sums) against the dense formulation (Adam), on results.

A simulated crowd where a minibatch touches a few of many annotators (the case where the two
differ; in a full-batch or few-annotator run every annotator is in every step and they differ
only by rounding: LazyAdam's step is Adam's there): ``--items`` items with 16-d Gaussian features
(class mean ``2 e_y``), ``--annotators`` annotators with diagonally dominant confusions
(``crowdlearn.simulate.diagonally_dominant_confusions``), ``--per-item`` labels per item, K = 5.
``CrowdClassifier(method, epochs, validation="none", device="cpu", random_state=seed)`` with the
library's base training values fixed for every method (batch 128, Adam lr 1e-3, weight decay
1e-4, identity init, no mixup, constant schedule: not the methods' recipes), once with
``crowdlearn.nn.confusion.SPARSE_BY_DEFAULT = True`` (the default) and once with False.
Prints, per method, the accuracy on 2,000 fresh test items and the mean relative Frobenius error
of the confusions (``crowdlearn.metrics.confusion_estimation_error``), mean ± std over seeds.

``--sweep``: instead, each method at its defaults (its recipe; ``--lams`` overrides ``lam``) on the
same crowd design for every ``M`` of ``--annotators`` (comma-separated) at a fixed number of
labels per annotator (``--labels-per-annotator``; items = M x that / ``--per-item``), sparse
heads only: test accuracy, the mean diagonal of ``confusions_`` (the truth's beside it) and the
number of seeds whose fit ``CrowdClassifier`` found flipped or collapsed (``findings_``).

Usage::

    python benchmarks/sparse_effect.py --seeds 3 --epochs 30
    python benchmarks/sparse_effect.py --sweep --methods tracereg --annotators 30,100,300,1000 --epochs 20
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from typing import Any

import numpy as np
import torch

from crowdlearn.estimators import CrowdClassifier
from crowdlearn.metrics import accuracy, confusion_estimation_error
from crowdlearn.nn import confusion
from crowdlearn.simulate import diagonally_dominant_confusions, simulate_crowd

K, D = 5, 16
#: the base training values of every method here (the recipes differ per method)
BASE = {"batch_size": 128, "lr": 1e-3, "weight_decay": 1e-4, "init": "identity", "mixup": 0.0, "schedule": "constant"}


def crowd_of(m: int, n: int, per_item: int, seed: int) -> tuple[Any, ...]:
    """The design above: confusions (M, K, K), the crowd, training and test features, test labels."""
    rng = np.random.default_rng(seed)
    conf = diagonally_dominant_confusions(m, K, random_state=rng)
    crowd = simulate_crowd(conf, n_items=n, per_item=per_item, random_state=rng)
    X = (rng.normal(size=(n, D)) + 2.0 * np.eye(K, D)[crowd.true_labels]).astype(np.float32)
    y_test = rng.integers(0, K, 2000)
    X_test = (rng.normal(size=(2000, D)) + 2.0 * np.eye(K, D)[y_test]).astype(np.float32)
    return conf, crowd, X, X_test, y_test


def sweep(args: argparse.Namespace) -> None:
    """``--sweep``: each method at its defaults against the number of annotators."""
    print(
        "| M | items | method | lam | test accuracy | mean diagonal (truth) | flipped / collapsed seeds | CPU s per fit |"
    )
    print("|---:|---:|---|---:|---:|---:|---:|---:|")
    for m in (int(v) for v in args.annotators.split(",")):
        n = m * args.labels_per_annotator // args.per_item
        crowds = [crowd_of(m, n, args.per_item, seed) for seed in range(args.seeds)]
        for method in args.methods.split(","):
            lams: list[float | None] = [None] if args.lams is None else [float(v) for v in args.lams.split(",")]
            for lam in lams:
                accs, diags, truths, bad, cpu = [], [], [], 0, []
                for seed, (conf, crowd, X, X_test, y_test) in enumerate(crowds):
                    extra = {} if lam is None else {"lam": lam}
                    clf = CrowdClassifier(
                        method=method, epochs=args.epochs, validation="none", device="cpu", random_state=seed, **extra
                    )
                    t = time.process_time()
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        clf.fit(X, crowd.annotations)
                    cpu.append(time.process_time() - t)
                    accs.append(accuracy(y_test, clf.predict(X_test)))
                    diags.append(float(np.diagonal(clf.confusions_, axis1=1, axis2=2).mean()))
                    truths.append(float(np.diagonal(conf, axis1=1, axis2=2).mean()))
                    f = clf.findings_
                    bad += bool(f is not None and (f.flipped or f.collapsed))
                shown = "default" if lam is None else f"{lam:g}"
                print(
                    f"| {m} | {n} | {method} | {shown} | {np.mean(accs):.3f} ± {np.std(accs):.3f} | "
                    f"{np.mean(diags):.3f} ({np.mean(truths):.3f}) | {bad} / {len(crowds)} | {np.mean(cpu):.1f} |",
                    flush=True,
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=3000)
    parser.add_argument("--annotators", default="300", help="M (with --sweep: comma-separated)")
    parser.add_argument("--per-item", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--methods", default="ccem,geocrowdnet-w,tracereg,crowdlayer-mw")
    parser.add_argument("--sweep", action="store_true", help="methods at their defaults against M (see above)")
    parser.add_argument("--labels-per-annotator", type=int, default=30, help="with --sweep")
    parser.add_argument("--lams", default=None, help="with --sweep: comma-separated lam values (default: the method's)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    t0 = time.time()
    print("command: python benchmarks/sparse_effect.py " + " ".join(sys.argv[1:]))
    if args.sweep:
        sweep(args)
        print(f"({time.time() - t0:.0f} s wall, {time.process_time():.0f} s CPU)")
        return
    results: dict[tuple[str, bool], list[tuple[float, float]]] = {}
    for seed in range(args.seeds):
        conf, crowd, X, X_test, y_test = crowd_of(int(args.annotators), args.items, args.per_item, seed)
        for method in args.methods.split(","):
            for sparse in (True, False):
                confusion.SPARSE_BY_DEFAULT = sparse
                clf = CrowdClassifier(
                    method=method, epochs=args.epochs, validation="none", device="cpu", random_state=seed,
                    **BASE,
                )  # fmt: skip
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    clf.fit(X, crowd.annotations)
                acc = accuracy(y_test, clf.predict(X_test))
                err = confusion_estimation_error(clf.confusions_, conf)
                results.setdefault((method, sparse), []).append((acc, err))
    confusion.SPARSE_BY_DEFAULT = True

    def show(values: list[float]) -> str:
        return f"{np.mean(values):.3f} ± {np.std(values):.3f}"

    print("| method | accuracy sparse | accuracy dense | confusion error sparse | confusion error dense |")
    print("|---|---:|---:|---:|---:|")
    for method in args.methods.split(","):
        sp, de = results[(method, True)], results[(method, False)]
        print(
            f"| {method} | {show([a for a, _ in sp])} | {show([a for a, _ in de])} | "
            f"{show([e for _, e in sp])} | {show([e for _, e in de])} |"
        )
    print(f"({time.time() - t0:.0f} s wall)")


if __name__ == "__main__":
    main()
