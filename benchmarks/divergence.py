"""How far the held-out loss goes, by learning rate: the measurement behind DIVERGENCE_FACTOR.

Trains every built-in method of ``CrowdClassifier`` on one simulated crowd (600 items, 10
annotators, 3 classes, 3 labels per item, 8 Gaussian features; held-out crowd labels for
validation) at each learning rate, with the held-out divergence rule switched off, and prints
the largest and the last ``valid_loss`` over the epochs as a multiple of ``log K`` (the loss of
the uniform prediction). A non-finite training loss still stops a run (shown as "stopped").

Usage::

    python benchmarks/divergence.py                 # 40 epochs, every method and learning rate
    python benchmarks/divergence.py --epochs 10     # a quick check
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings

import numpy as np
import torch

import crowdlearn.train.trainer as trainer_module
from crowdlearn.estimators import METHODS, CollapsedModelWarning, CrowdClassifier
from crowdlearn.simulate import diagonally_dominant_confusions, simulate_crowd
from crowdlearn.train import TrainingDivergedError

LRS = (1e-3, 1e-2, 1e-1, 1.0, 100.0, 1e6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    k = 3
    crowd = simulate_crowd(
        diagonally_dominant_confusions(10, k, random_state=rng), n_items=600, per_item=3, random_state=rng
    )
    y = crowd.true_labels
    X = (rng.normal(size=(600, 8)) + 2.0 * np.eye(k, 8)[y]).astype(np.float32)
    trainer_module.DIVERGENCE_FACTOR = math.inf  # measure, do not stop
    log_k = math.log(k)
    print(f"| method | {' | '.join(f'lr={lr:g}' for lr in LRS)} |")
    print("|---|" + "---:|" * len(LRS))
    for method in METHODS:
        cells = []
        for lr in LRS:
            clf = CrowdClassifier(method=method, epochs=args.epochs, lr=lr, random_state=0, device="cpu")
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", CollapsedModelWarning)
                    clf.fit(X, crowd.annotations)
            except TrainingDivergedError as exc:
                cells.append(f"stopped at epoch {exc.epoch}")
                continue
            losses = [h["valid_loss"] for h in clf.history_]
            cells.append(f"{max(losses) / log_k:.3g} / {losses[-1] / log_k:.3g}")
        print(f"| {method} | {' | '.join(cells)} |", flush=True)
    print("\ncells: largest / last held-out NLL over the epochs, in units of log K")
    print("command: python " + " ".join(sys.argv))


if __name__ == "__main__":
    main()
