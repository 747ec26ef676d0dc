"""Diagnosis of the end-to-end methods on CIFAR-10N's CPU profile (issue 14): one seed, a few configurations.

Each configuration trains on the CPU profile's 3,000 training images (protocol ``a`` or ``b`` of
benchmarks/cifar10n.py, SmallResNet width 8, crop + flip) and reports the test accuracy of the last
epoch and, for a method with learned confusions, how they compare with the crowd's true pooled
confusion (the clean labels of the training images against the crowd labels, all workers pooled),
by bucket of workers' label counts: the mean total-variation distance per column from the pooled
confusion, the mean diagonal, and the mean log-likelihood of each observed label given its
image's true class under the learned confusions (``ll_learned``) and under the pooled one
(``ll_pooled``).

Configurations (``CONFIGS``): the base values (lr 1e-3, batch 128, weight decay 1e-4, constant)
or the recipe values (lr 1e-2, cosine, batch 64, no weight decay); identity or DS init; the
confusion learning rate; all the labels given to one pseudo-annotator (``one``: full pooling);
``method_params`` (``pool``).

Run:  PYTHONPATH=src python benchmarks/cifar10n_diagnose.py --out FILE --configs "ccem ds base,..."
      [--protocols b,a] [--epochs 10] [--seed 0] [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from crowdlearn.annotations import Annotations
from crowdlearn.estimators import CrowdClassifier
from crowdlearn.nn import ImageBackbone

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cifar10n import get_data, make_body  # the CPU profile's data and backbone

BASE = {"lr": 1e-3, "batch_size": 128, "weight_decay": 1e-4, "schedule": "constant", "mixup": 0.0}
RECIPE = {"lr": 1e-2, "batch_size": 64, "weight_decay": 0.0, "schedule": "cosine", "mixup": 0.0}
#: name -> (method, training values, extra: {"one": True} or {"pool": tau})
CONFIGS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "mv-train base": ("mv-train", BASE, {}),
    "ccem id base": ("ccem", {**BASE, "init": "identity"}, {}),
    "ccem ds base": ("ccem", {**BASE, "init": "ds"}, {}),
    "ccem ds clr1e-2": ("ccem", {**BASE, "init": "ds", "confusion_lr": 1e-2}, {}),
    "ccem ds clr1e-4": ("ccem", {**BASE, "init": "ds", "confusion_lr": 1e-4}, {}),
    "ccem ds pooled1": ("ccem", {**BASE, "init": "ds"}, {"one": True}),
    "ccem recipe": ("ccem", {**RECIPE, "init": "ds"}, {}),
    "mv-train recipe": ("mv-train", RECIPE, {}),
    "geow recipe": ("geocrowdnet-w", {**RECIPE, "init": "ds"}, {}),
    "ccem recipe pool1": ("ccem", {**RECIPE, "init": "ds"}, {"pool": 1.0}),
}
BUCKETS = ((1, 3), (4, 9), (10, 29), (30, 10**9))


def run(args: tuple[str, str, int, int, str]) -> dict[str, Any]:
    name, protocol, seed, epochs, root = args
    torch.set_num_threads(1)
    method, training, extra = CONFIGS[name]
    x, ann, truth, x_test, y_test = get_data(protocol, 3000, 1000, root)
    if extra.get("one"):
        ann = Annotations(
            ann.items,
            np.zeros_like(ann.annotators),
            ann.labels,
            n_items=ann.n_items,
            n_annotators=1,
            n_classes=ann.n_classes,
        )
    torch.manual_seed(seed)
    start = time.perf_counter()
    clf = CrowdClassifier(
        method=method,
        method_params={"pool": extra["pool"]} if "pool" in extra else None,
        backbone=ImageBackbone(make_body("small-resnet", 8, ann.n_classes)),
        augment="crop-flip",
        epochs=epochs,
        validation="none",
        random_state=seed,
        device="cpu",
        verbose=0,
        **training,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(x, ann)
    acc = float((clf.predict_proba(x_test).argmax(1) == y_test).mean())
    out: dict[str, Any] = {"name": name, "protocol": protocol, "seed": seed, "epochs": epochs, "acc": acc}
    out["s"] = round(time.perf_counter() - start, 1)
    if method == "mv-train" or extra.get("one"):
        return out
    k = ann.n_classes
    counts = np.zeros((ann.n_annotators, k, k))
    np.add.at(counts, (ann.annotators, ann.labels, truth[ann.items]), 1.0)
    n_m = counts.sum(axis=(1, 2))
    pooled = counts.sum(axis=0)
    pooled /= pooled.sum(axis=0, keepdims=True)
    learned = clf.confusions_
    ll = np.log(learned[ann.annotators, ann.labels, truth[ann.items]])
    ll_pooled = np.log(pooled[ann.labels, truth[ann.items]])
    tv = np.abs(learned - pooled).sum(axis=1).mean(axis=1) / 2
    out["pooled_diag"] = float(np.trace(pooled) / k)
    out["buckets"] = {}
    for lo, hi in BUCKETS:
        sel = (n_m >= lo) & (n_m <= hi)
        lab = sel[ann.annotators]
        if sel.any():
            out["buckets"][f"{lo}-{hi}"] = {
                "workers": int(sel.sum()),
                "tv_to_pooled": float(tv[sel].mean()),
                "diag": float(np.mean([np.trace(learned[m]) / k for m in np.flatnonzero(sel)])),
                "ll_learned": float(ll[lab].mean()),
                "ll_pooled": float(ll_pooled[lab].mean()),
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="results, one JSON line per run (appended)")
    parser.add_argument("--configs", required=True, help=f"comma-separated of: {', '.join(CONFIGS)}")
    parser.add_argument("--protocols", default="b,a")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2)
    default_root = os.environ.get("CROWDLEARN_DATA") or str(Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--root", default=default_root)
    args = parser.parse_args()
    names = [n for n in args.configs.split(",") if n]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        parser.error(f"unknown configuration(s) {unknown}; known: {', '.join(CONFIGS)}")
    tasks = [(n, p, args.seed, args.epochs, args.root) for p in args.protocols.split(",") for n in names]
    with ProcessPoolExecutor(args.jobs) as pool:
        for rec in pool.map(run, tasks):
            print(json.dumps(rec), flush=True)
            with Path(args.out).open("a") as fh:
                fh.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
