"""Partial pooling of the confusions (``method_params={"pool": tau}``) on Music and LabelMe.

Each method at its default recipe (``CrowdClassifier`` training values left at None), crowd-only
selection (``validation="holdout"``: the held-out crowd-label NLL picks the epoch, the fraction
of benchmarks/real.py), on the datasets of the defaults experiment with real labels: Music
without truth (``music-crowd``: all 700 training items, the 300 test items) and LabelMe (the
splits of benchmarks/real.py); without pooling and with ``pool=tau``, seeds 0..N-1. Test accuracy
of the selected epoch. One JSON line per run in ``--out`` (a rerun skips the runs there).

Run:  PYTHONPATH=src python benchmarks/pool_real.py --out FILE [--methods ccem,geocrowdnet-w]
      [--pool 1] [--seeds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from collections import defaultdict
from pathlib import Path

import torch

from crowdlearn.estimators import CrowdClassifier

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real import HOLDOUT_FRACTION, get_split, make_backbone  # the splits of benchmarks/real.py

DATASETS = ("music-crowd", "labelme")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="the run cache (JSON lines)")
    parser.add_argument("--methods", default="ccem,geocrowdnet-w")
    parser.add_argument("--pool", type=float, default=1.0)
    parser.add_argument("--seeds", type=int, default=3)
    default_root = os.environ.get("CROWDLEARN_DATA") or str(Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument(
        "--root", default=default_root, help="data folder (default: $CROWDLEARN_DATA or ../shared/data)"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    done = (
        {(r["dataset"], r["method"], r["pool"], r["seed"]) for r in map(json.loads, out.open())}
        if out.exists()
        else set()
    )
    for seed in range(args.seeds):
        for dataset in DATASETS:
            for method in args.methods.split(","):
                for pool in (0.0, args.pool):
                    if (dataset, method, pool, seed) in done:
                        continue
                    s = get_split(dataset, seed, args.root)
                    start = time.perf_counter()
                    clf = CrowdClassifier(
                        method=method,
                        method_params={"pool": pool} if pool else None,
                        backbone=make_backbone(dataset, s.x_train.shape[1], s.ann.n_classes, seed),
                        validation="holdout",
                        holdout_fraction=HOLDOUT_FRACTION,
                        random_state=seed,
                        device="cpu",
                        verbose=0,
                    )
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        clf.fit(s.x_train, s.ann)
                    acc = float((clf.predict_proba(s.x_test).argmax(1) == s.y_test).mean())
                    rec = {"dataset": dataset, "method": method, "pool": pool, "seed": seed, "acc": acc}
                    rec |= {"best_epoch": clf.best_epoch_, "s": round(time.perf_counter() - start, 1)}
                    print(json.dumps(rec), flush=True)
                    with out.open("a") as fh:
                        fh.write(json.dumps(rec) + "\n")
    cells: dict[tuple[str, str, float], list[float]] = defaultdict(list)
    for rec in map(json.loads, out.open()):
        cells[(rec["dataset"], rec["method"], rec["pool"])].append(100 * rec["acc"])
    print("| dataset | method | pool | test acc. %, mean ± sd | seeds |\n|---|---|---:|---:|---:|")
    for (dataset, method, pool), acc in sorted(cells.items()):
        sd = f" ± {statistics.stdev(acc):.1f}" if len(acc) > 1 else ""
        print(f"| {dataset} | {method} | {pool:g} | {statistics.fmean(acc):.1f}{sd} | {len(acc)} |")


if __name__ == "__main__":
    main()
