"""Per-epoch cost of the instance-dependent and other registered heads against the number of annotators.

The data layout of ``benchmarks/training_cost.py`` (``make_data``: ``N`` items with 128-d
Gaussian features, ``K = 10``, 3 labels per item from distinct annotators drawn uniformly among
``M``), each method trained through ``CrowdClassifier`` with the MLP of that script
(``MLP(128, 10, hidden=(128,))``), batch 128, lr 1e-3, constant schedule, identity init, no input
mixup (a method's own batch transform, Annot-Mix's record mixup, stays), ``validation="none"``,
one torch thread, CPU. Only the epochs are timed (``training_cost.EpochTimer``: CPU seconds of
the process, ``time.process_time``), best of ``--repeats``; each cell is the method's time
divided by ``method="ce"``'s on the same items, labels and batches.

Each measurement is appended as one JSON line to ``--out`` with ``--label`` (e.g. ``before``
for a run with ``PYTHONPATH`` on the code before the sparse heads, ``after`` for this code), so
two runs make one table: ``--table FILE`` prints ``after / before`` per cell.

Usage::

    PYTHONPATH=src python benchmarks/heads_cost.py --label after --out /tmp/heads.jsonl
    PYTHONPATH=/path/to/old/src python benchmarks/heads_cost.py --label before --out /tmp/heads.jsonl
    python benchmarks/heads_cost.py --table /tmp/heads.jsonl
    python benchmarks/heads_cost.py --compare-real AFTER/runs.jsonl BEFORE/runs.jsonl  # benchmarks/real.py caches
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from crowdlearn import Annotations
from crowdlearn.estimators import CrowdClassifier
from crowdlearn.nn.backbones import MLP
from training_cost import BATCH, PER_ITEM, D, EpochTimer, K, make_data

METHODS = ("conal", "union-net-a", "union-net-b", "madl", "annot-mix", "crowdar", "max-mig")


def fit_seconds(method: str, X: np.ndarray, ann: Annotations, epochs: int) -> float:
    """CPU seconds of the epochs of one fit."""
    torch.manual_seed(0)
    timer = EpochTimer()
    clf = CrowdClassifier(
        method=method, backbone=MLP(D, K, hidden=(128,)), epochs=epochs, batch_size=BATCH, lr=1e-3,
        weight_decay=1e-4, schedule="constant", init="identity", mixup=0.0, validation="none",
        device="cpu", random_state=0, callbacks=[timer],
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the post-fit checks' warnings on random labels
        clf.fit(X, ann)
    return sum(timer.times)


def measure(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    out = Path(args.out)
    for m in args.ms:
        X, ann = make_data(args.items, m, PER_ITEM)
        ce = min(fit_seconds("ce", X, ann, args.epochs) for _ in range(args.repeats))
        for method in args.methods:
            t = min(fit_seconds(method, X, ann, args.epochs) for _ in range(args.repeats))
            row = {
                "label": args.label, "method": method, "M": m, "items": args.items, "epochs": args.epochs,
                "seconds": t, "ce_seconds": ce, "ratio": t / ce, "load": os.getloadavg()[0],
            }  # fmt: skip
            print(json.dumps(row), flush=True)
            with out.open("a") as fh:
                fh.write(json.dumps(row) + "\n")


def table(path: str) -> None:
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    cells: dict[tuple[str, int], dict[str, dict[str, float]]] = {}
    for r in rows:
        cells.setdefault((r["method"], r["M"]), {})[r["label"]] = r
    ms = sorted({r["M"] for r in rows})
    methods = [m for m in METHODS if any(k[0] == m for k in cells)]
    print("| method | " + " | ".join(f"M = {m:,}" for m in ms) + " |")
    print("|---|" + "---:|" * len(ms))
    ce_cells = []
    for m in ms:
        parts = []
        for label in ("after", "before"):
            ce = [r["ce_seconds"] for r in rows if r["M"] == m and r["label"] == label and r["items"] == 20_000]
            parts.append(f"{min(ce):.2f}" if ce else "-")
        ce_cells.append(" / ".join(parts))
    print("| ce (CPU s, after / before) | " + " | ".join(ce_cells) + " |")
    for method in methods:
        line = []
        for m in ms:
            got = cells.get((method, m), {})
            line.append(" / ".join(f"{got[lb]['ratio']:.2f}" if lb in got else "-" for lb in ("after", "before")))
        print(f"| {method} | " + " | ".join(line) + " |")
    print("\nCPU seconds of the method's epochs (after / before; items per run when not 20,000):\n")
    print("| method | " + " | ".join(f"M = {m:,}" for m in ms) + " |")
    print("|---|" + "---:|" * len(ms))
    for method in methods:
        line = []
        for m in ms:
            got = cells.get((method, m), {})
            parts = []
            for lb in ("after", "before"):
                r = got.get(lb)
                parts.append(
                    "-" if r is None else f"{r['seconds']:.2f}" + ("" if r["items"] == 20_000 else f" ({r['items']:,})")
                )
            line.append(" / ".join(parts))
        print(f"| {method} | " + " | ".join(line) + " |")


def compare_real(after_path: str, before_path: str) -> None:
    """Before/after table of two ``benchmarks/real.py --kinds full`` caches (``runs.jsonl``): test
    accuracy (%) at the last epoch and at the best validation epoch, mean ± std over the seeds,
    and the largest per-seed difference of the last-epoch accuracy."""

    def load(path: str) -> dict[tuple[str, str, int], dict[str, Any]]:
        runs = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
        return {(r["dataset"], r["method"], r["seed"]): r for r in runs if r["kind"] == "full"}

    after, before = load(after_path), load(before_path)

    def fmt(values: list[float]) -> str:
        return f"{100 * np.mean(values):.1f} ± {100 * np.std(values):.1f}" if values else "-"

    for dataset in sorted({k[0] for k in after}, key=["music", "labelme"].index):
        print(f"\n| {dataset} | last, after | last, before | clean, after | clean, before | max per-seed diff (last) |")
        print("|---|---:|---:|---:|---:|---:|")
        for method in [m for m in METHODS if any(k[:2] == (dataset, m) for k in after)]:
            cols: dict[str, tuple[list[float], list[float]]] = {}
            for label, runs in (("after", after), ("before", before)):
                seeds = sorted(k[2] for k in runs if k[:2] == (dataset, method))
                last = [float(runs[(dataset, method, s)]["test_acc"][-1]) for s in seeds]
                clean = []
                for s in seeds:
                    r = runs[(dataset, method, s)]
                    clean.append(float(r["test_acc"][int(np.argmax(r["val_acc"]))]))
                cols[label] = (last, clean)
            diff = max((abs(a - b) for a, b in zip(cols["after"][0], cols["before"][0])), default=float("nan"))
            print(
                f"| {method} | {fmt(cols['after'][0])} | {fmt(cols['before'][0])} | {fmt(cols['after'][1])} | "
                f"{fmt(cols['before'][1])} | {100 * diff:.1f} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ms", type=int, nargs="+", default=[10, 1_000, 10_000])
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--label", default="after")
    parser.add_argument("--out", default="heads_cost.jsonl")
    parser.add_argument("--table", metavar="FILE", help="print the table of a results file and exit")
    parser.add_argument(
        "--compare-real", nargs=2, metavar=("AFTER", "BEFORE"), help="before/after table of two real.py runs.jsonl"
    )
    args = parser.parse_args()
    if args.table:
        table(args.table)
        return
    if args.compare_real:
        compare_real(*args.compare_real)
        return
    print("command: python benchmarks/heads_cost.py " + " ".join(sys.argv[1:]))
    print(f"torch {torch.__version__}, 1 thread, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    measure(args)
    print(f"load average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
