"""The truth-free search (crowdlearn.model_selection.CrowdSearchCV) against clean-validation tuning.

Datasets (the splits of benchmarks/music.py, ``load(name, seed, root, "truth")``):
- ``music``: the 560 / 140 protocol: per seed 20% of the 700 training items are validation items
  with their true labels (their crowd labels unused), 300 test items; the built-in MLP (hidden 128).
- ``labelme``: the 512-d VGG16 average-pooled features, 1,000 training items, the 500-item valid
  split as validation items, 1,188 test items; the built-in MLP.

Methods and grids (4 points each; every other parameter at CrowdClassifier's defaults, ``epochs``
from ``--epochs``):
- ``geocrowdnet-f``: lr in {1e-3, 1e-2} x init in {identity, ds};
- ``annot-mix`` (instance-dependent; accepts only the identity init): lr in {1e-3, 1e-2} x
  schedule in {None, cosine}.

Per (dataset, method, seed), with ``random_state=seed`` for every fit and for the search's splits:
- ``full`` runs: each grid point trained on all crowd labels of the training items
  (``validation="none"``); a callback records the validation accuracy and the test class
  probabilities after every epoch.
- ``default, last epoch``: the first grid point's full run (lr 1e-3, identity / no schedule), last epoch.
- ``clean-validation tuning``: the (point, epoch) of the full runs with the best validation accuracy
  (ties: the first point in grid order, then the earliest epoch); its test accuracy.
- ``holdout search`` and ``kfold search``: ``CrowdSearchCV(criterion="holdout")`` (10% of each
  annotator's labels held out) and ``CrowdSearchCV(criterion="kfold", cv=--cv)``, no truth used;
  ``holdout-items`` and ``kfold-items``: the same over whole items (10% of the items, or ``--cv``
  folds of items, with all their labels held out).
  Their refit (the picked point on all labels, stopped after ``refit_epochs_`` epochs, schedules
  over ``epochs``) is the picked point's full run up to that epoch: the same seeded computation
  (tests/test_model_selection.py pins refit == a plain fit), so the test accuracy is read from the
  full run instead of training it again (``refit=False``).
- ``kfold top-2 ensemble``: the mean of the test probabilities of the two best k-fold points at
  their refit epochs (``CrowdSearchCV(ensemble=2)``).
Test accuracy in %, mean ± sample std over the seeds. One torch thread, one process, CPU.

Cache: each finished (dataset, method, seed) is one JSON line in ``--out DIR/runs.jsonl``; a rerun
skips those; ``--table-only`` renders the tables from it. The tables, the command, the load and
the date are printed and written atomically to ``DIR/tables.md``.

Run:  PYTHONPATH=src python benchmarks/search.py --out DIR [--datasets music,labelme]
      [--methods geocrowdnet-f,annot-mix] [--seeds 3] [--epochs 40] [--cv 3] [--table-only]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from crowdlearn.estimators import CrowdClassifier
from crowdlearn.io import atomic_write
from crowdlearn.model_selection import CrowdSearchCV, expand_param_grid
from crowdlearn.train import Callback

sys.path.insert(0, str(Path(__file__).resolve().parent))
from music import load  # the same splits as benchmarks/music.py and benchmarks/real.py

GRIDS: dict[str, dict[str, list[Any]]] = {
    "geocrowdnet-f": {"lr": [1e-3, 1e-2], "init": ["identity", "ds"]},
    "annot-mix": {"lr": [1e-3, 1e-2], "schedule": [None, "cosine"]},
}
CRITERIA = ("holdout", "kfold", "holdout-items", "kfold-items")
COLUMNS = ("default_last", "clean", *CRITERIA, "kfold_ensemble")
HEADERS = {
    "default_last": "default, last epoch",
    "clean": "clean-validation tuning",
    "holdout": "holdout search",
    "kfold": "kfold search",
    "holdout-items": "holdout-items search",
    "kfold-items": "kfold-items search",
    "kfold_ensemble": "kfold top-2 ensemble",
}


class Recorder(Callback):
    """After every epoch: validation accuracy and the test class probabilities (one eval pass)."""

    def __init__(self, x_val: np.ndarray, y_val: np.ndarray, x_test: np.ndarray) -> None:
        self.x = np.concatenate([x_val, x_test])
        self.n_val = len(y_val)
        self.y_val = y_val

    def on_train_begin(self, trainer: Any) -> None:
        self.val_acc_: list[float] = []
        self.test_proba_: list[np.ndarray] = []

    def on_epoch_end(self, trainer: Any, epoch: int) -> None:
        proba = trainer.predict_logits(self.x).softmax(dim=1).double().numpy()
        self.val_acc_.append(float((proba[: self.n_val].argmax(1) == self.y_val).mean()))
        self.test_proba_.append(proba[self.n_val :])


def label(point: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in point.items())


def run_one(dataset: str, method: str, seed: int, epochs: int, cv: int, root: str | None) -> dict[str, Any]:
    start = time.process_time()
    split = load(dataset, seed, root, "truth")
    base = CrowdClassifier(method=method, epochs=epochs, random_state=seed, device="cpu")
    grid = GRIDS[method]
    points = expand_param_grid(base, grid)
    val_acc, test_proba = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for point in points:
            rec = Recorder(split.x_val, split.y_val, split.x_test)
            clf = CrowdClassifier(**{**base.get_params(deep=False), **point, "validation": "none", "callbacks": [rec]})
            clf.fit(split.x_train, split.ann)
            val_acc.append(rec.val_acc_)
            test_proba.append(rec.test_proba_)

        def acc(i: int, epoch: int) -> float:
            return float((test_proba[i][epoch].argmax(1) == split.y_test).mean())

        best = max(((v, -i, -e) for i, curve in enumerate(val_acc) for e, v in enumerate(curve)))
        ci, ce = -best[1], -best[2]
        out: dict[str, Any] = {"dataset": dataset, "method": method, "seed": seed, "epochs": epochs, "cv": cv}
        out["default_last"] = acc(0, len(test_proba[0]) - 1)
        out["clean"] = acc(ci, ce)
        out["clean_pick"] = f"{label(points[ci])} @ {ce + 1}"
        for crit in CRITERIA:
            ens = 2 if crit == "kfold" else None
            search = CrowdSearchCV(base, grid, criterion=crit, cv=cv, refit=False, random_state=seed)
            search.fit(split.x_train, split.ann)
            res = search.cv_results_
            b, e = search.best_index_, search.refit_epochs_
            out[crit] = acc(b, e - 1)
            out[f"{crit}_pick"] = f"{label(points[b])} @ {e}"
            out[f"{crit}_scores"] = [float(s) for s in res["mean_test_score"]]
            if ens:
                order = sorted(range(len(points)), key=lambda j: (int(res["rank_test_score"][j]), j))[:ens]
                mean = sum(test_proba[j][int(res["refit_epochs"][j]) - 1] for j in order) / ens
                out["kfold_ensemble"] = float((mean.argmax(1) == split.y_test).mean())
    out["cpu_seconds"] = round(time.process_time() - start, 1)
    return out


def read_cache(path: Path) -> dict[tuple[Any, ...], dict[str, Any]]:
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                out[(rec["dataset"], rec["method"], rec["seed"], rec["epochs"], rec["cv"])] = rec
    return out


def cell(values: list[float]) -> str:
    if not values:
        return "-"
    m = 100 * statistics.mean(values)
    s = 100 * statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{m:.1f} ± {s:.1f}"


def render(records: list[dict[str, Any]], datasets: list[str], methods: list[str], seeds: int) -> str:
    lines = [
        "| dataset | method | seeds | "
        + " | ".join(HEADERS[c] for c in COLUMNS)
        + "".join(f" | {c} − clean" for c in CRITERIA)
        + " |",
        "|---|---|---:|" + "---:|" * (len(COLUMNS) + len(CRITERIA)),
    ]
    picks = []
    for d in datasets:
        for m in methods:
            recs = sorted((r for r in records if r["dataset"] == d and r["method"] == m), key=lambda r: r["seed"])
            if not recs:
                continue
            diffs = []
            for c in CRITERIA:
                delta = [r[c] - r["clean"] for r in recs]
                diffs.append(f"{100 * statistics.mean(delta):+.1f}")
            lines.append(
                f"| {d} | {m} | {len(recs)} | "
                + " | ".join(cell([r[c] for r in recs]) for c in COLUMNS)
                + "".join(f" | {d}" for d in diffs)
                + " |"
            )
            for r in recs:
                picks.append(
                    f"- {d}, {m}, seed {r['seed']}: clean {r['clean_pick']}; "
                    + "; ".join(f"{c} {r[f'{c}_pick']}" for c in CRITERIA)
                    + f" ({r['cpu_seconds']} CPU s)"
                )
    return "\n".join(lines) + "\n\nPicks (grid point @ epochs):\n" + "\n".join(picks) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--datasets", default="music,labelme")
    parser.add_argument("--methods", default="geocrowdnet-f,annot-mix")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--cv", type=int, default=3)
    parser.add_argument("--root", default=None, help="data folder (default: CROWDLEARN_DATA)")
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args(argv)
    datasets, methods = args.datasets.split(","), args.methods.split(",")
    for m in methods:
        if m not in GRIDS:
            parser.error(f"--methods: no grid for {m!r} (known: {', '.join(GRIDS)})")
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    cache_path = args.out / "runs.jsonl"
    cache = read_cache(cache_path)
    wall = time.perf_counter()
    if not args.table_only:
        for d in datasets:
            for m in methods:
                for seed in range(args.seeds):
                    key = (d, m, seed, args.epochs, args.cv)
                    if key in cache:
                        continue
                    rec = run_one(d, m, seed, args.epochs, args.cv, args.root)
                    cache[key] = rec
                    with cache_path.open("a") as fh:
                        fh.write(json.dumps(rec) + "\n")
                    print(f"{d} {m} seed {seed}: " + ", ".join(f"{c} {100 * rec[c]:.1f}" for c in COLUMNS), flush=True)
    records = [r for k, r in cache.items() if k[3] == args.epochs and k[4] == args.cv and k[2] < args.seeds]
    cmd = "PYTHONPATH=src python benchmarks/" + " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
    load1, load5, _ = os.getloadavg()
    cpu = sum(r["cpu_seconds"] for r in records)
    text = (
        render(records, datasets, methods, args.seeds)
        + f"\nCommand: `{cmd}`\n"
        + f"Machine: {platform.machine()}, {os.cpu_count()} cores, one torch thread; load average {load1:.1f} / "
        f"{load5:.1f} (1 / 5 min) at the end; {cpu:.0f} CPU s of training in the table; this run's wall time "
        f"{time.perf_counter() - wall:.0f} s; {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC.\n"
    )
    print(text)
    with atomic_write(args.out / "tables.md", overwrite=True) as fh:
        fh.write(text)


if __name__ == "__main__":
    main()
