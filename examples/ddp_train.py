"""Data-parallel training of a CrowdClassifier with torch.distributed.

Launch (CPU, gloo; two processes on this machine)::

    torchrun --standalone --nproc_per_node=2 examples/ddp_train.py

Every process runs this same script on the same simulated data (same seed); the classifier
trains data-parallel (``distributed=True``), each rank on every 2nd batch, and rank 0 prints the
accuracy of the fitted classifier against the simulated truth. Run it without torchrun and it
trains in one process (``distributed`` is then False).
"""

from __future__ import annotations

import argparse
import os
from contextlib import nullcontext

import numpy as np
import torch

from crowdlearn.estimators import CrowdClassifier
from crowdlearn.simulate import diagonally_dominant_confusions, simulate_crowd
from crowdlearn.train import distributed as dist_utils


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=4000)
    parser.add_argument("--annotators", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64, help="per process; effective = this x world size")
    args = parser.parse_args()
    torch.set_num_threads(1)

    launched = "RANK" in os.environ  # set by torchrun
    rng = np.random.default_rng(0)  # the same data on every rank
    conf = diagonally_dominant_confusions(args.annotators, 4, random_state=rng)
    crowd = simulate_crowd(conf, n_items=args.items, p=0.1, random_state=rng)
    y = crowd.true_labels
    X = (rng.normal(size=(args.items, 16)) + 1.5 * np.eye(4, 16)[y]).astype(np.float32)

    with dist_utils.process_group() if launched else nullcontext():
        clf = CrowdClassifier(
            method="geocrowdnet-f",
            epochs=args.epochs,
            batch_size=args.batch_size,
            device="cpu",
            random_state=0,
            distributed=launched,
        )
        clf.fit(X, crowd.annotations)
        acc = clf.score(X, y)
        if dist_utils.is_main_process():
            print(
                f"world size {dist_utils.world_size()}: accuracy {acc:.4f} on {args.items} items "
                f"(best epoch {clf.best_epoch_}, effective batch {args.batch_size * dist_utils.world_size()})"
            )


if __name__ == "__main__":
    main()
