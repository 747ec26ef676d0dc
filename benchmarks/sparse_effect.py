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

Usage::

    python benchmarks/sparse_effect.py --seeds 3 --epochs 30
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np
import torch

from crowdlearn.estimators import CrowdClassifier
from crowdlearn.metrics import accuracy, confusion_estimation_error
from crowdlearn.nn import confusion
from crowdlearn.simulate import diagonally_dominant_confusions, simulate_crowd

K, D = 5, 16
#: the base training values of every method here (the recipes differ per method)
BASE = {"batch_size": 128, "lr": 1e-3, "weight_decay": 1e-4, "init": "identity", "mixup": 0.0, "schedule": "constant"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=3000)
    parser.add_argument("--annotators", type=int, default=300)
    parser.add_argument("--per-item", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--methods", default="ccem,geocrowdnet-w,tracereg,crowdlayer-mw")
    args = parser.parse_args()
    torch.set_num_threads(1)
    t0 = time.time()
    print("command: python benchmarks/sparse_effect.py " + " ".join(sys.argv[1:]))
    results: dict[tuple[str, bool], list[tuple[float, float]]] = {}
    for seed in range(args.seeds):
        rng = np.random.default_rng(seed)
        conf = diagonally_dominant_confusions(args.annotators, K, random_state=rng)
        crowd = simulate_crowd(conf, n_items=args.items, per_item=args.per_item, random_state=rng)
        X = (rng.normal(size=(args.items, D)) + 2.0 * np.eye(K, D)[crowd.true_labels]).astype(np.float32)
        y_test = rng.integers(0, K, 2000)
        X_test = (rng.normal(size=(2000, D)) + 2.0 * np.eye(K, D)[y_test]).astype(np.float32)
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
