"""Deep ensembles (``crowdlearn.model_selection.CrowdEnsemble``) against single models, on the
protocols of benchmarks/real.py.

For every (dataset, method, grid point, seed) the script trains ``--members`` R models that differ
only in ``random_state``: member r uses ``seed + 100 r`` (``fit_seed_ensemble``'s scheme), so member 0 is exactly the single run of
benchmarks/real.py (same split, same network, same seed). The ensemble's class probabilities are
the members' mean (what ``CrowdEnsemble.predict_proba`` computes).

Datasets, networks and splits are those of benchmarks/real.py (``music-am``: Music under the
Annot-Mix protocol, MLP [256, 128], 100 of the 300 test items for validation per seed; ``labelme``:
the 512-d VGG16 features, the 500-item valid split, 1,188 test items; ...). Grid points name the
training values they change; the others are the base values (``BASE_TRAINING``), as in real.py.

Selection (test accuracy %, mean +- std over the seeds):
- ``last``: every member at its last epoch.
- ``clean``: every member at the epoch of its best clean-validation accuracy (ties: the earliest);
  the grid point with the best mean (over the seeds) validation accuracy -- of member 0 for the
  single model, of the ensemble for the ensemble (ties: the first point).
Nothing but the validation items' true labels is used for selection; the test items are scored
once per protocol.

Cache: one ``.npz`` per finished member run under ``--out DIR/runs/`` (the validation and test
probabilities at the last and at the best-validation epoch); a rerun skips what is there.
``--table-only`` renders from the cache. The table and the command go to ``DIR/tables.md``.

Run:  PYTHONPATH=src python benchmarks/ensemble.py --out DIR --datasets labelme --methods geocrowdnet-f
      --grid labelme --seeds 10 --members 5 --jobs 2
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import hashlib
import json
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from crowdlearn.estimators import CrowdClassifier
from crowdlearn.io import atomic_write
from crowdlearn.model_selection import SEED_STRIDE
from crowdlearn.train import Callback, TrainingDivergedError

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real  # the splits, networks and training values of benchmarks/real.py

#: Named grids: point name -> the training values it changes (and its epochs).
GRIDS: dict[str, dict[str, dict[str, Any]]] = {
    # the best GeoCrowdNet(F) row of benchmarks/music.py on LabelMe (10 seeds: 89.6 +- 0.8), and the
    # method's registered default recipe (cosine, lr 1e-2, batch 64, no weight decay, DS init)
    "labelme": {
        "music-py-best": {"lr": 1e-3, "confusion_lr": 1e-2, "lam": 0.2, "mixup": 0.2, "init": "ds", "epochs": 100},
        "cosine-ds": {
            "lr": 1e-2,
            "schedule": "cosine",
            "batch_size": 64,
            "weight_decay": 0.0,
            "init": "ds",
            "epochs": 50,
        },
    },
    # the training recipe of the Annot-Mix/MaDL code (benchmarks/real.py --grid recipe)
    "recipe": {"recipe": {**real.RECIPE_POINT, "init": "identity", "epochs": 50}},
    "recipe-ds": {"recipe-ds": {**real.RECIPE_POINT, "init": "ds", "epochs": 50}},
}
#: the seed scheme of ``crowdlearn.model_selection.fit_seed_ensemble`` (the members run here in
#: parallel processes, one fit each, hence not through that function)
MEMBER_STRIDE = SEED_STRIDE


@dataclass(frozen=True)
class Member:
    dataset: str
    method: str
    point: str
    params: tuple[tuple[str, Any], ...]
    seed: int
    member: int

    @property
    def random_state(self) -> int:
        return self.seed + MEMBER_STRIDE * self.member

    def file(self, out: Path) -> Path:
        key = json.dumps([self.dataset, self.method, self.point, dict(self.params), self.seed, self.member])
        return out / "runs" / f"{hashlib.sha1(key.encode()).hexdigest()[:16]}.npz"


class ProbaRecorder(Callback):
    """Validation accuracy after every epoch; the validation and test probabilities at the best
    validation epoch (ties: the earliest) and at the last epoch."""

    def __init__(self, x_val: np.ndarray, y_val: np.ndarray, x_test: np.ndarray) -> None:
        self.n_val = len(y_val)
        self.x = np.concatenate([x_val, x_test])
        self.y_val = y_val

    def on_train_begin(self, trainer: Any) -> None:
        self.val_acc_: list[float] = []
        self.best_: np.ndarray | None = None
        self.last_: np.ndarray | None = None

    def on_epoch_end(self, trainer: Any, epoch: int) -> None:
        proba = torch.softmax(trainer.predict_logits(self.x).float(), dim=1).numpy()
        acc = float((proba[: self.n_val].argmax(1) == self.y_val).mean())
        if not self.val_acc_ or acc > max(self.val_acc_):
            self.best_ = proba
        self.val_acc_.append(acc)
        self.last_ = proba


def run_member(m: Member, root: str, out: Path) -> str:
    torch.set_num_threads(1)
    start = time.perf_counter()
    split = real.get_split(m.dataset, m.seed, root)
    assert split.x_val is not None and split.y_val is not None, f"{m.dataset} has no validation items"
    params = dict(m.params)
    epochs = int(params.pop("epochs"))
    rec = ProbaRecorder(split.x_val, split.y_val, split.x_test)
    clf = CrowdClassifier(
        method=m.method,
        backbone=real.make_backbone(m.dataset, split.x_train.shape[1], split.ann.n_classes, m.random_state),
        epochs=epochs,
        validation="none",
        callbacks=[rec],
        random_state=m.random_state,
        **real.run_params(params),
    )
    diverged = -1
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.fit(split.x_train, split.ann)
    except TrainingDivergedError as err:
        diverged = int(err.epoch)
    if rec.best_ is None or rec.last_ is None:
        return f"{m}: no completed epoch"
    path = m.file(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}.npz")
    np.savez_compressed(
        tmp,
        best=rec.best_.astype(np.float32),
        last=rec.last_.astype(np.float32),
        val_acc=np.asarray(rec.val_acc_),
        n_val=rec.n_val,
        diverged=diverged,
        seconds=time.perf_counter() - start,
    )
    os.replace(tmp, path)
    return ""


def members(datasets: Sequence[str], methods: Sequence[str], grid: str, seeds: int, n_members: int) -> list[Member]:
    out = []
    for dataset in datasets:
        for method in methods:
            for point, params in GRIDS[grid].items():
                for seed in range(seeds):
                    for r in range(n_members):
                        out.append(Member(dataset, method, point, tuple(sorted(params.items())), seed, r))
    return out


def _mean_std(values: Sequence[float]) -> str:
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.mean(values):.1f} ± {100 * sd:.1f}"


def table(out: Path, root: str, datasets: Sequence[str], methods: Sequence[str], grid: str, seeds: int, R: int) -> str:
    lines = []
    for dataset in datasets:
        lines += [
            f"#### {dataset}: test accuracy %, mean ± std over {seeds} seeds; ensembles of {R} members",
            "",
            "| method | grid point | single, last | single, clean | ensemble, last | ensemble, clean | "
            "single val acc | ensemble val acc | seconds per member |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for method in methods:
            best: dict[str, tuple[float, str, list[float]]] = {}
            for point, params in GRIDS[grid].items():
                acc: dict[str, list[float]] = {k: [] for k in ("s_last", "s_clean", "e_last", "e_clean")}
                val_s, val_e, secs = [], [], []
                complete = True
                for seed in range(seeds):
                    split = real.get_split(dataset, seed, root)
                    y_val, y_test = split.y_val, split.y_test
                    files = [
                        Member(dataset, method, point, tuple(sorted(params.items())), seed, r).file(out)
                        for r in range(R)
                    ]
                    if not all(f.exists() for f in files):
                        complete = False
                        break
                    runs = [np.load(f) for f in files]
                    n_val = int(runs[0]["n_val"])
                    secs += [float(z["seconds"]) for z in runs]
                    for kind in ("last", "best"):
                        single = runs[0][kind]
                        ens = np.mean([z[kind] for z in runs], axis=0)
                        tag = "last" if kind == "last" else "clean"
                        acc[f"s_{tag}"].append(float((single[n_val:].argmax(1) == y_test).mean()))
                        acc[f"e_{tag}"].append(float((ens[n_val:].argmax(1) == y_test).mean()))
                        if kind == "best":
                            val_s.append(float((single[:n_val].argmax(1) == y_val).mean()))
                            val_e.append(float((ens[:n_val].argmax(1) == y_val).mean()))
                if not complete:
                    lines.append(f"| {method} | {point} | pending | | | | | | |")
                    continue
                lines.append(
                    f"| {method} | {point} | {_mean_std(acc['s_last'])} | {_mean_std(acc['s_clean'])} | "
                    f"{_mean_std(acc['e_last'])} | {_mean_std(acc['e_clean'])} | {statistics.mean(val_s):.4f} | "
                    f"{statistics.mean(val_e):.4f} | {statistics.mean(secs):.1f} |"
                )
                for tag, val, key in (("single", val_s, "s_clean"), ("ensemble", val_e, "e_clean")):
                    score = statistics.mean(val)
                    if tag not in best or score > best[tag][0]:
                        best[tag] = (score, point, acc[key])
            for tag in ("single", "ensemble"):
                if tag in best:
                    score, point, values = best[tag]
                    lines.append(
                        f"| {method}, {tag}, clean-validation selected | {point} (val {score:.4f}) | | "
                        f"{'**' + _mean_std(values) + '**' if tag == 'ensemble' else _mean_std(values)} | | | | | |"
                    )
        lines.append("")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--datasets", default="labelme")
    ap.add_argument("--methods", default="geocrowdnet-f")
    ap.add_argument("--grid", default="labelme", choices=sorted(GRIDS))
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--members", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument(
        "--root",
        default=os.environ.get("CROWDLEARN_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data")),
    )
    ap.add_argument("--table-only", action="store_true")
    args = ap.parse_args(argv)
    datasets, methods = args.datasets.split(","), args.methods.split(",")
    start = time.perf_counter()
    if not args.table_only:
        todo = [
            m for m in members(datasets, methods, args.grid, args.seeds, args.members) if not m.file(args.out).exists()
        ]
        print(f"{len(todo)} member runs to train", file=sys.stderr)
        errors = []
        with cf.ProcessPoolExecutor(args.jobs) as pool:
            futures = [pool.submit(run_member, m, args.root, args.out) for m in todo]
            for i, fut in enumerate(cf.as_completed(futures), 1):
                err = fut.result()
                if err:
                    errors.append(err)
                if i % 10 == 0:
                    print(f"{i}/{len(todo)} done, {time.perf_counter() - start:.0f} s", file=sys.stderr)
        for err in errors:
            print(err, file=sys.stderr)
    text = table(args.out, args.root, datasets, methods, args.grid, args.seeds, args.members)
    command = "PYTHONPATH=src python benchmarks/ensemble.py " + " ".join(a for a in sys.argv[1:] if a != "--table-only")
    footer = (
        f"\n{command}\n{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load {os.getloadavg()[0]:.1f}; {time.perf_counter() - start:.0f} s\n"
    )
    print(text + footer)
    with atomic_write(args.out / "tables.md") as fh:
        fh.write(text + footer)


if __name__ == "__main__":
    main()
