"""Every registered deep method on real crowd data, under three model-selection protocols side by side.

Methods: every method in the registry (``crowdlearn.nn.available_methods()``, so methods added
later are picked up) or ``--methods a,b,c``, plus one reference, ``truth``: the same network
trained with ``method="ce"`` on the true labels of the training items (one label per item; an
upper bound). Nothing else is added here: two-stage baselines are registered methods.

Datasets (``--datasets``):
- ``music-am``: Music under the protocol of the Annot-Mix paper (Herde et al., ECAI 2024): an
  MLP with hidden layers [256, 128] (``MLP(D, K, hidden=(256, 128), dropout=0.5,
  batch_norm=True, input_norm=True, affine=False)``: the style of the built-in MLP, i.e.
  ``BN(D) -> 256 -> ReLU -> Dropout 0.5 -> BN -> 128 -> ReLU -> Dropout 0.5 -> BN -> K``, no
  affine BN); training on all 700 items; per seed, 100 of the 300 test items (random,
  ``default_rng(4000 + seed)``) are the validation items, the other 200 the test items. The
  published numbers (10 seeds, "last epoch / clean-validation best") are shown beside ours.
- ``music``: the 560 / 140 protocol of benchmarks/music.py (``load(..., "truth")``: per seed 20%
  of the 700 training items are the validation items, their crowd labels unused; 300 test items);
  the built-in MLP of Ibrahim et al. (hidden 128).
- ``labelme``: LabelMe with the 512-d VGG16 average-pooled features: 1,000 training items, the
  500-item valid split for validation, 1,188 test items; the built-in MLP (hidden 128).
- ``music-crowd``: Music with no truth anywhere: all 700 training items, no validation items (the
  clean protocol has nothing to select on), the 300 test items; the built-in MLP.
- ``sim-control``, ``sim-fssc``, ``sim-wssc``: the matrix-level designs of
  ``crowdlearn.simulate.simulate_design`` (those of benchmarks/identifiability.py) with item
  features from ``item_features`` (20-d, class centres of norm 3, unit noise): 30 annotators,
  5 classes, each label observed with probability 0.1; 1,500 training items (crowd labels), 500
  validation and 1,000 test items (true labels), per seed ``default_rng(6000 + seed)``; the
  built-in MLP.
Not given, ``--datasets`` is ``music-am,music,labelme``.
Within a dataset, every protocol trains on the same items and is scored on the same test items.

Training: ``CrowdClassifier`` defaults (Adam, lr 1e-3, weight decay 1e-4 on the backbone, batch
128, identity init with scale 1) and the method spec's parameter defaults (``lam`` 0.01, ...),
``--epochs`` (100) epochs, ``random_state=seed`` (seeds 0..``--seeds``-1, default 10), one torch
thread per process, CPU. A grid point overrides only what it names.

Grid (``--grid``): ``none``: the default point only (lr 1e-3, init identity); ``small``: lr in
{1e-3, 1e-2} x init in {identity, ds} -- the init dimension only for methods whose
``spec.inits`` has "ds" and whose head depends on the init (a probe builds the head from both
inits; ``ce``'s identity head ignores it, CrowdLayer accepts only "identity"); ``recipe``: the
default point and the training recipe of the Annot-Mix/MaDL code (lr 1e-2, cosine schedule, batch
64, no weight decay, DS init where it applies; run with ``--epochs 50`` as they do); ``defaults``:
the candidate default recipes of ``RECIPES`` (issue #12): ``base`` (the base training values),
``fast-ds-mixup`` (lr 1e-2, DS init, input mixup 0.2: the best Music row of benchmarks/music.py),
``cosine`` (the Annot-Mix/MaDL code's recipe with DS init, 50 epochs), ``slow-ds-clr`` (lr 1e-3, confusion
lr 1e-2, DS init, input mixup 0.2, 100 epochs, the base batch 128 and weight decay 1e-4: the best
LabelMe rows of benchmarks/music.py); for a method that declares ``lam``, each of them also with
every value of ``LAMS`` (0.2; ``--lams``), the recipe alone keeping the method's own default. DS
init only where the head depends on it, input mixup only for methods without their own batch
transform. A point may set
its own ``epochs`` (it replaces ``--epochs``). Grid points name every training value they change;
the others are the base values of ``crowdlearn.nn.registry.BASE_TRAINING`` (so the tables do not
move when a method's recipe changes).

Runs: every (dataset, method, grid point, seed) is trained twice. A ``full`` run trains on all
crowd labels of the training items (``validation="none"``); a callback records the accuracy on the
validation items and on the test items after every epoch, so epoch selection needs no refit. A
``holdout`` run (``validation="holdout"``) holds out 10% of each annotator's labels (rounded
down, seeded) and records the held-out negative log-likelihood and the test accuracy after every
epoch. For a method that trains in rounds (``spec.targets``), the records are those of its last
round (the model it keeps). A run that diverges (``TrainingDivergedError``) keeps its completed
epochs; the table marks such cells with a dagger.

Selection protocols (test accuracy %, mean ± std over the seeds):
1. ``last``: the full runs of the default grid point, last epoch.
2. ``clean``: within each full run the epoch with the best validation accuracy (ties: the earliest
   epoch); the grid point with the best mean of those accuracies over the seeds (ties: the first
   point in grid order, the default point first).
3. ``crowd``: within each holdout run the epoch with the lowest held-out NLL (ties: earliest); the
   grid point with the lowest mean of those NLLs over the seeds (ties: first in grid order). No
   true label is used (except by the ``truth`` reference, whose held-out labels are true labels).
A grid point is eligible only once all its seeds are finished (and each has at least one epoch).
With ``--grid defaults`` a last table gives, per method and recipe, the crowd protocol's test
accuracy on each dataset and the mean over the datasets (the best mean in bold): the experiment
that picks each method's default recipe. ``--kinds holdout`` trains only the runs of the crowd
protocol.

``--dense-heads`` builds every head with ``sparse=False`` (``crowdlearn.nn.confusion.SPARSE_BY_DEFAULT
= False`` in each run: dense gradients and Adam over all annotators' parameters at every step), to
measure the sparse heads' effect on results; those runs are cached apart from the default ones.

Cache: every finished run is appended as one JSON line to ``--out DIR/runs.jsonl`` (key: dataset,
method, grid point, seed, run kind, epochs; runs with ``--dense-heads`` are read only by invocations
with it); a rerun skips the runs already there, so an
interrupted benchmark continues where it stopped. Failures other than divergence are reported
and not cached (they run again next time). ``--table-only`` renders the tables from the cache
without training. The tables, the command, the machine and the times are printed and written
atomically to ``DIR/tables.md``.

Run:  PYTHONPATH=src python benchmarks/real.py --out DIR [--datasets music-am,music,labelme]
      [--methods a,b,c] [--grid none|small|recipe|defaults] [--recipes a,b] [--lams 0.2] [--seeds 10] [--epochs 100]
      [--kinds full,holdout] [--jobs 2] [--table-only]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import functools
import itertools
import json
import math
import multiprocessing
import os
import platform
import signal
import statistics
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from crowdlearn.estimators import CrowdClassifier
from crowdlearn.io import atomic_write
from crowdlearn.nn import MLP, available_methods, confusion, get_method
from crowdlearn.nn.registry import BASE_TRAINING, HeadContext, MethodSpec
from crowdlearn.simulate import item_features, simulate_design
from crowdlearn.train import Callback, TrainingDivergedError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from music import Split, load, single_label_annotations  # the same splits as benchmarks/music.py

DATASETS = ("music-am", "music", "labelme", "music-crowd", "sim-control", "sim-fssc", "sim-wssc")
DEFAULT_DATASETS = ("music-am", "music", "labelme")
SIM_DATASETS = {"sim-control": "control", "sim-fssc": "f-ssc", "sim-wssc": "w-ssc"}
#: simulated designs (crowdlearn.simulate.simulate_design + item_features): items, annotators,
#: classes, observation probability, feature dimension, class-centre norm
SIM_ITEMS = (1500, 500, 1000)  # training (crowd labels), validation, test items
SIM_M, SIM_K, SIM_P, SIM_D, SIM_SEPARATION = 30, 5, 0.1, 20, 3.0
PROTOCOLS = ("last", "clean", "crowd")
KINDS = ("full", "holdout")
TRUTH = "truth"  # the reference: method="ce" on the true labels
LRS = (1e-3, 1e-2)
INITS = ("identity", "ds")
DEFAULT_POINT: dict[str, Any] = {"lr": 1e-3, "init": "identity"}  # = the base training values (checked)
#: grid ``recipe``: the defaults and the training recipe of the Annot-Mix/MaDL code (Adam at 1e-2 with a
#: cosine schedule, batch 64, no weight decay; run it with ``--epochs 50`` as they do)
RECIPE_POINT: dict[str, Any] = {"lr": 1e-2, "schedule": "cosine", "batch_size": 64, "weight_decay": 0.0}
#: grid ``defaults``: candidate default recipes (issue #12), each applied to every method where it
#: applies (DS init only where the head depends on its init; input mixup only for methods without
#: their own batch transform). A point's ``epochs`` replaces ``--epochs``.
RECIPES: dict[str, dict[str, Any]] = {
    "base": {},  # CrowdClassifier's defaults (lr 1e-3, identity init, batch 128, wd 1e-4, 100 epochs)
    "fast-ds-mixup": {"lr": 1e-2, "init": "ds", "mixup": 0.2},  # the best Music row of benchmarks/music.py
    "cosine": {**RECIPE_POINT, "init": "ds", "epochs": 50},  # the Annot-Mix/MaDL code's recipe
    #: the GeoCrowdNet code's slow backbone with a 10x faster confusion step (benchmarks/music.py's
    #: best LabelMe rows), with input mixup 0.2 and DS init; batch, weight decay, schedule: the base ones
    "slow-ds-clr": {"lr": 1e-3, "confusion_lr": 1e-2, "init": "ds", "mixup": 0.2, "epochs": 100},
}
#: grid ``defaults``, the lambda dimension: for a method that declares ``lam``, every recipe also with
#: each of these values (the recipe alone keeps the method's own default; a ``--lams`` subset may be given)
LAMS: list[float] = [0.2]
AM_HIDDEN = (256, 128)
AM_N_VAL = 100
HOLDOUT_FRACTION = 0.1

#: Annot-Mix paper (Herde et al., ECAI 2024), Music, 10 seeds: (last epoch, clean-validation best).
#: The paper names no CrowdLayer or Union-Net variant: its number is shown beside each variant.
PUBLISHED: dict[str, tuple[float, float]] = {
    "annot-mix": (73.8, 73.8),
    "madl": (72.0, 72.4),
    "geocrowdnet-f": (70.2, 70.4),
    "crowdlayer-mw": (69.8, 69.0),
    "crowdlayer-vw": (69.8, 69.0),
    "crowdlayer-vb": (69.8, 69.0),
    "conal": (69.0, 69.2),
    "union-net-a": (68.6, 68.5),
    "union-net-b": (68.6, 68.5),
    "tracereg": (66.4, 67.8),
    "mv-train": (66.1, 66.8),
    TRUTH: (79.6, 79.6),
}
VARIANT_NOTE = {"crowdlayer-mw", "crowdlayer-vw", "crowdlayer-vb", "union-net-a", "union-net-b"}


# ------------------------------------------------------------------ grid
def _check_default_point() -> None:
    for key, value in DEFAULT_POINT.items():
        if BASE_TRAINING[key] != value:
            raise RuntimeError(f"the base training value {key}={BASE_TRAINING[key]!r} is not DEFAULT_POINT's {value!r}")


def run_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The CrowdClassifier training values of a grid point: the point's, else the base values
    (never a method's recipe, so that a table does not move when a recipe changes). An unset
    confusion learning rate is the point's ``lr`` (what ``confusion_lr=None`` means)."""
    out = {**BASE_TRAINING, **params}
    if out["confusion_lr"] is None:
        out["confusion_lr"] = out["lr"]
    del out["epochs"]  # the task's (``point_epochs``)
    return out


def point_label(params: Mapping[str, Any]) -> str:
    """``"lr=0.001, init=identity"``: the grid point's key in the cache and the tables."""
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items() if k != "epochs")


def point_epochs(params: Mapping[str, Any], epochs: int) -> int:
    """The point's own ``epochs``, else ``--epochs``."""
    return int(params.get("epochs", epochs))


def point_keys(method: str, grid: str, epochs: int) -> list[tuple[str, int]]:
    """(label, epochs) of every grid point of ``method``, in grid order."""
    return [(point_label(p), point_epochs(p, epochs)) for p in grid_points(method, grid)]


@functools.cache
def head_uses_init(name: str) -> bool:
    """Whether the head of ``name`` depends on its init (built from identity and from DS-like
    confusions under the same seed: different parameters). A probe that fails counts as True."""
    spec: MethodSpec = get_method(name)
    k, m = 3, 2
    conf = np.full((m, k, k), 0.1)
    conf[:, np.arange(k), np.arange(k)] = 0.8  # column-stochastic, not the identity init
    try:
        params = spec.resolve_params(None, {}, "benchmarks/real.py")
        states = []
        for init in ("identity", conf):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                states.append(spec.make_head(HeadContext(m, k, init, 1.0, params)).state_dict())
    except Exception:
        return True
    a, b = states
    return a.keys() != b.keys() or any(not torch.equal(a[key], b[key]) for key in a)


RECIPE_OF: dict[tuple[str, str], str] = {}  # (method, point label) -> recipe name, filled by grid_points


def grid_points(method: str, grid: str) -> list[dict[str, Any]]:
    """The grid points of ``method`` in order (the default point first)."""
    if grid == "none":
        return [dict(DEFAULT_POINT)]
    name = "ce" if method == TRUTH else method
    inits = INITS if "ds" in get_method(name).inits and head_uses_init(name) else INITS[:1]
    if grid == "recipe":
        return [dict(DEFAULT_POINT), {**RECIPE_POINT, "init": inits[-1]}]
    if grid == "defaults":
        own_transform = get_method(name).make_transform is not None
        lams = LAMS if "lam" in get_method(name).param_names else ()
        points = []
        for recipe_name, recipe in RECIPES.items():
            point = dict(recipe)
            if point.get("init") == "ds" and inits[-1] != "ds":
                point["init"] = "identity"
            if own_transform:
                point.pop("mixup", None)
            point = point if point else dict(DEFAULT_POINT)
            for lam in (None, *lams):  # None: the method's own lam
                lam_point = point if lam is None else {**point, "lam": lam}
                RECIPE_OF[(method, point_label(lam_point))] = recipe_name + ("" if lam is None else f" lam={lam:g}")
                points.append(lam_point)
        return points
    return [{"lr": lr, "init": init} for lr, init in itertools.product(LRS, inits)]


# ------------------------------------------------------------------ data
@dataclass(frozen=True)
class Task:
    dataset: str
    method: str
    point: str
    params: dict[str, Any]
    seed: int
    kind: str
    epochs: int
    heads: str = "sparse"  # "dense": every head built with sparse=False (``--dense-heads``)

    @property
    def key(self) -> tuple[Any, ...]:
        return (self.dataset, self.method, self.point, self.seed, self.kind, self.epochs)


def record_key(rec: Mapping[str, Any]) -> tuple[Any, ...]:
    return (rec["dataset"], rec["method"], rec["point"], rec["seed"], rec["kind"], rec["epochs"])


@functools.cache
def get_split(dataset: str, seed: int, root: str) -> Split:
    """Training items (crowd labels and truth), validation items and test items of one seed."""
    if dataset == "music":
        return load("music", seed, root, "truth")
    if dataset == "labelme":
        return load("labelme", seed, root, "truth")
    if dataset == "music-crowd":  # all 700 training items, no validation items, the 300 test items
        return load("music", seed, root, "crowd")
    if dataset in SIM_DATASETS:
        return sim_split(SIM_DATASETS[dataset], seed)
    if dataset != "music-am":
        raise ValueError(f"unknown dataset {dataset!r}")
    s = load("music", seed, root, "crowd")  # all 700 training items, the 300 test items
    perm = np.random.default_rng(4000 + seed).permutation(len(s.y_test))
    val, test = np.sort(perm[:AM_N_VAL]), np.sort(perm[AM_N_VAL:])
    return Split(s.x_train, s.ann, s.truth, s.x_test[val], s.y_test[val], s.x_test[test], s.y_test[test])


def sim_split(design: str, seed: int) -> Split:
    """A simulated design with item features: the crowd labels of the first ``SIM_ITEMS[0]`` items,
    the true labels of the next two blocks for validation and test (seeded by ``6000 + seed``)."""
    n_train, n_val, n_test = SIM_ITEMS
    g = np.random.default_rng(6000 + seed)
    crowd = simulate_design(
        design, n_items=n_train + n_val + n_test, n_annotators=SIM_M, n_classes=SIM_K, p=SIM_P, random_state=g
    )
    x = item_features(crowd.true_posteriors, SIM_D, separation=SIM_SEPARATION, random_state=g).astype(np.float32)
    y = crowd.true_labels
    tr, va, te = np.arange(n_train), np.arange(n_train, n_train + n_val), np.arange(n_train + n_val, len(y))
    ann = crowd.annotations.subset_items(tr)
    return Split(x[tr], ann, y[tr], x[va], y[va], x[te], y[te])


def make_backbone(dataset: str, n_features: int, n_classes: int, seed: int) -> torch.nn.Module | None:
    """The Annot-Mix protocol's [256, 128] MLP (seeded here: a module is copied as given at fit),
    or None (the built-in MLP) for the other datasets."""
    if dataset != "music-am":
        return None
    torch.manual_seed(seed)
    return MLP(n_features, n_classes, hidden=AM_HIDDEN, dropout=0.5, batch_norm=True, input_norm=True, affine=False)


# ------------------------------------------------------------------ one run
class EpochRecorder(Callback):
    """After every epoch: accuracy on the validation and test items (one eval-mode pass over both),
    and the trainer's ``valid_loss`` when it has one (held-out crowd NLL). Reset at every training
    run (a method that trains in rounds keeps its last round's records)."""

    def __init__(self, x_val: np.ndarray | None, y_val: np.ndarray | None, x_test: np.ndarray, y_test: np.ndarray):
        self.n_val = 0 if x_val is None or y_val is None else len(y_val)
        self.x = x_test if self.n_val == 0 else np.concatenate([x_val, x_test])
        self.y = y_test if self.n_val == 0 else np.concatenate([y_val, y_test])

    def on_train_begin(self, trainer: Any) -> None:
        self.val_acc_: list[float] = []
        self.test_acc_: list[float] = []
        self.valid_loss_: list[float] = []

    def on_epoch_end(self, trainer: Any, epoch: int) -> None:
        right = trainer.predict_logits(self.x).argmax(1).numpy() == self.y
        if self.n_val:
            self.val_acc_.append(float(right[: self.n_val].mean()))
        self.test_acc_.append(float(right[self.n_val :].mean()))
        loss = trainer.history[-1].get("valid_loss")
        if loss is not None:
            self.valid_loss_.append(float(loss))


def run_task(task: Task, root: str, device: str = "cpu") -> dict[str, Any]:
    """Train one run; returns its record (``{"error": ...}`` on a failure other than divergence)."""
    torch.set_num_threads(1)
    confusion.SPARSE_BY_DEFAULT = task.heads == "sparse"  # read when each head is built
    start = time.perf_counter()
    split = get_split(task.dataset, task.seed, root)
    ann = split.ann if task.method != TRUTH else single_label_annotations(split.truth, split.ann)
    full = task.kind == "full"
    rec = EpochRecorder(split.x_val if full else None, split.y_val if full else None, split.x_test, split.y_test)
    clf = CrowdClassifier(
        method="ce" if task.method == TRUTH else task.method,
        backbone=make_backbone(task.dataset, split.x_train.shape[1], ann.n_classes, task.seed),
        epochs=task.epochs,
        validation="none" if full else "holdout",
        holdout_fraction=HOLDOUT_FRACTION,
        callbacks=[rec],
        random_state=task.seed,
        device=device,
        **run_params(task.params),
    )
    return fit_record(
        task,
        clf,
        split.x_train,
        ann,
        start,
        lambda: {
            "params": task.params,
            "val_acc": rec.val_acc_ if full else None,
            "valid_loss": None if full else rec.valid_loss_,
            "test_acc": rec.test_acc_,
        },
    )


def fit_record(
    task: Task,
    clf: CrowdClassifier,
    x: Any,
    ann: Any,
    start: float,
    fields: Callable[[], dict[str, Any]],
) -> dict[str, Any]:
    """Fit ``clf`` on ``(x, ann)`` (warnings silenced) and return the run's record: the task's key,
    ``fields()`` (read after the fit, e.g. a recorder's lists), the divergence epoch or None, whether
    the post-fit checks found a collapse, and the seconds since ``start``; ``{"error": ...}`` on a
    failure other than divergence (a diverged run keeps its completed epochs)."""
    diverged: int | None = None
    collapsed = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.fit(x, ann)
        collapsed = bool(clf.collapsed_)
    except TrainingDivergedError as err:
        diverged = int(err.epoch)
    except Exception:
        return {**task_key(task), "error": traceback.format_exc(limit=6)}
    return {
        **task_key(task),
        **fields(),
        "diverged": diverged,
        "collapsed": collapsed,
        "seconds": round(time.perf_counter() - start, 3),
    }


def task_key(task: Task) -> dict[str, Any]:
    """The fields of a run's cache key (``record_key``)."""
    return {
        "dataset": task.dataset,
        "method": task.method,
        "point": task.point,
        "seed": task.seed,
        "kind": task.kind,
        "epochs": task.epochs,
        "heads": task.heads,
    }


def _init_worker(parent: int) -> None:
    """One torch thread; exit when the parent process is gone (killed), not train on as an orphan."""
    import threading

    torch.set_num_threads(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


# ------------------------------------------------------------------ cache
def read_cache(path: Path, heads: str = "sparse") -> dict[tuple[Any, ...], dict[str, Any]]:
    """Records by key (the first of duplicates) of the runs with these ``heads`` (records written
    before that field existed count as "sparse", the default); an unreadable line (an
    interrupted write) is skipped."""
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    if not path.exists():
        return out
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                if rec.get("heads", "sparse") == heads:
                    out.setdefault(record_key(rec), rec)
            except (json.JSONDecodeError, KeyError, TypeError):
                print(f"  {path}:{n}: unreadable line skipped", file=sys.stderr)
    return out


def append_record(path: Path, rec: Mapping[str, Any]) -> None:
    """One JSON line, flushed to disk (a later crash loses at most the run in progress)."""
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(rec, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


# ------------------------------------------------------------------ selection
@dataclass
class Selected:
    """The result of one protocol for one (dataset, method)."""

    point: str
    score: float  # mean selection metric over seeds (nan for "last")
    test: list[float]  # test accuracy of each seed at its selected epoch
    epochs: list[int]  # selected epoch of each seed, 1-based
    diverged: int = 0  # seeds whose run diverged


@dataclass
class Pending:
    """Not all runs needed by the protocol are in the cache."""

    done: int
    needed: int


@dataclass
class Row:
    method: str
    cells: dict[str, Selected | Pending | None] = field(default_factory=dict)


def best_epoch(values: Sequence[float] | None, mode: str) -> int | None:
    """Index of the best finite value (``mode`` "max" or "min"; ties: the earliest), or None."""
    best: int | None = None
    best_value = 0.0
    for i, v in enumerate(values or ()):
        if v is None or not math.isfinite(v):
            continue
        if best is None or (v > best_value if mode == "max" else v < best_value):
            best, best_value = i, v
    return best


def select(
    records: Mapping[tuple[str, int], Mapping[str, Any]],
    points: Sequence[str],
    seeds: Sequence[int],
    protocol: str,
) -> Selected | Pending | None:
    """One protocol's pick among the runs of one (dataset, method).

    ``records`` maps (point, seed) to the run record of the protocol's run kind (``full`` for
    "last" and "clean", ``holdout`` for "crowd"); ``points`` is the grid in order (the default
    point first). Returns the selection, Pending when runs are missing, or None when no grid point
    has a usable run for every seed (e.g. every one diverged before its first epoch).
    """
    if protocol == "last":
        points = points[:1]
    needed = len(points) * len(seeds)
    done = sum((p, s) in records for p in points for s in seeds)
    if done < needed:
        return Pending(done, needed)
    best: Selected | None = None
    for p in points:
        scores, tests, epochs, diverged = [], [], [], 0
        for s in seeds:
            r = records[(p, s)]
            test = r["test_acc"]
            if protocol == "last":
                e = len(test) - 1 if test else None
                value = float("nan")
            else:
                key, mode = ("val_acc", "max") if protocol == "clean" else ("valid_loss", "min")
                e = best_epoch(r[key], mode)
                value = float("nan") if e is None else float(r[key][e])
            if e is None:
                break
            scores.append(value)
            tests.append(float(test[e]))
            epochs.append(e + 1)
            diverged += r.get("diverged") is not None
        else:
            score = float(np.mean(scores))
            cand = Selected(p, score, tests, epochs, diverged)
            if protocol == "last":
                return cand
            if best is None or (score > best.score if protocol == "clean" else score < best.score):
                best = cand
    return best


def table_rows(
    cache: Mapping[tuple[Any, ...], Mapping[str, Any]],
    dataset: str,
    methods: Sequence[str],
    points: Mapping[str, Sequence[tuple[str, int]]],
    seeds: Sequence[int],
) -> list[Row]:
    """One Row per method, each protocol selected from the cached runs (``points``: each method's
    grid points as (label, epochs), in grid order)."""
    rows = []
    for m in methods:
        by_kind: dict[str, dict[tuple[str, int], Mapping[str, Any]]] = {k: {} for k in KINDS}
        for p, epochs in points[m]:
            for s in seeds:
                for kind in KINDS:
                    r = cache.get((dataset, m, p, s, kind, epochs))
                    if r is not None:
                        by_kind[kind][(p, s)] = r
        row = Row(m)
        labels = [p for p, _ in points[m]]
        for proto in PROTOCOLS:
            row.cells[proto] = select(by_kind["holdout" if proto == "crowd" else "full"], labels, seeds, proto)
        rows.append(row)
    return rows


# ------------------------------------------------------------------ rendering
def _acc_cell(cell: Selected | Pending | None) -> str:
    if cell is None:
        return "no usable run"
    if isinstance(cell, Pending):
        return f"pending ({cell.done}/{cell.needed} runs)"
    t = 100 * np.asarray(cell.test)
    mark = f" †{cell.diverged}" if cell.diverged else ""
    return f"{t.mean():.1f} ± {t.std():.1f}{mark}"


def _pick_cell(cell: Selected | Pending | None) -> str:
    if not isinstance(cell, Selected):
        return "-"
    return f"{cell.point}; epoch {statistics.median(cell.epochs):g}"


DATASET_TITLES = {
    "music-am": "Music, Annot-Mix protocol (MLP [256, 128]; all 700 training items; 100 of the 300 test items "
    "for validation, 200 for test, per seed)",
    "music": "Music, 560 / 140 protocol of benchmarks/music.py (MLP [128]; 560 training items, 140 validation "
    "items, 300 test items)",
    "labelme": "LabelMe, VGG16 average-pooled features (MLP [128]; 1,000 training items, 500 validation items, "
    "1,188 test items)",
}


def render_table(dataset: str, rows: Sequence[Row], n_seeds: int, epochs: int, grid: str) -> str:
    """The markdown table of one dataset (published numbers beside ours for music-am)."""
    published = dataset == "music-am"
    head = ["method", "last epoch, defaults", "clean-validation best", "crowd-validation best"]
    head += ["clean pick (median epoch)", "crowd pick (median epoch)"]
    if published:
        head.append("published last / clean")
    lines = [
        f"### {DATASET_TITLES.get(dataset, dataset)}",
        "",
        f"Test accuracy %, mean ± std over {n_seeds} seeds; {epochs} epochs; grid `{grid}`.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" + "---:|" * 3 + "---|" * 2 + ("---:|" if published else ""),
    ]
    notes = False
    for row in rows:
        cells = [row.method] + [_acc_cell(row.cells.get(p)) for p in PROTOCOLS]
        cells += [_pick_cell(row.cells.get("clean")), _pick_cell(row.cells.get("crowd"))]
        if published:
            pub = PUBLISHED.get(row.method)
            if pub is None:
                cells.append("-")
            elif row.method == TRUTH:
                cells.append(f"{pub[0]:.1f}")
            else:
                star = " *" if row.method in VARIANT_NOTE else ""
                notes |= bool(star)
                cells.append(f"{pub[0]:.1f} / {pub[1]:.1f}{star}")
        lines.append("| " + " | ".join(cells) + " |")
    if any(isinstance(c, Selected) and c.diverged for r in rows for c in r.cells.values()):
        lines += ["", "† n: n seeds of the selected runs diverged (their last completed epoch counts)."]
    if notes:
        lines += ["", "\\* the paper gives one number for the method, no variant; shown beside each variant."]
    return "\n".join(lines)


# ------------------------------------------------------------------ main
def recipe_table(
    cache: Mapping[tuple[Any, ...], Mapping[str, Any]],
    datasets: Sequence[str],
    methods: Sequence[str],
    points: Mapping[str, Sequence[tuple[str, int]]],
    seeds: Sequence[int],
) -> str:
    """Grid ``defaults``: every method x recipe, the crowd-only protocol's test accuracy per dataset
    (held-out-NLL epoch of each holdout run, mean over the seeds) and its mean over the datasets;
    the recipe with the best mean is marked (ties: the first in RECIPES order)."""
    head = ["method", "recipe", *datasets, "mean"]
    lines = [
        "### Candidate default recipes, crowd-only selection (held-out crowd-label NLL picks the epoch)",
        "",
        f"Test accuracy %, mean over {len(seeds)} seeds per dataset; **bold**: the best mean over the datasets.",
        "",
        "| " + " | ".join(head) + " |",
        "|---|---|" + "---:|" * (len(datasets) + 1),
    ]
    for m in methods:
        rows: list[tuple[str, list[float | None], float | None]] = []
        for label, epochs in points[m]:
            accs: list[float | None] = []
            for d in datasets:
                vals = []
                for s in seeds:
                    r = cache.get((d, m, label, s, "holdout", epochs))
                    e = None if r is None else best_epoch(r["valid_loss"], "min")
                    if r is None or e is None:
                        break
                    vals.append(float(r["test_acc"][e]))
                else:
                    accs.append(100 * float(np.mean(vals)))
                    continue
                accs.append(None)
            mean = None if any(a is None for a in accs) else float(np.mean([a for a in accs if a is not None]))
            rows.append((RECIPE_OF.get((m, label), label), accs, mean))
        means = [r[2] for r in rows if r[2] is not None]
        best = max(means) if means else None
        for name, accs, mean in rows:
            cells = [m, name] + ["pending" if a is None else f"{a:.1f}" for a in accs]
            mean_cell = "pending" if mean is None else f"{mean:.1f}"
            cells.append(f"**{mean_cell}**" if mean is not None and mean == best else mean_cell)
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def build_tasks(
    datasets: Sequence[str],
    methods: Sequence[str],
    grid: str,
    seeds: Sequence[int],
    epochs: int,
    kinds: Sequence[str] = KINDS,
    heads: str = "sparse",
) -> list[Task]:
    tasks = []
    for m, d in itertools.product(methods, datasets):  # method-major: an interrupted run leaves whole methods
        for params in grid_points(m, grid):
            for s, kind in itertools.product(seeds, kinds):
                run_params = {k: v for k, v in params.items() if k != "epochs"}
                tasks.append(Task(d, m, point_label(params), run_params, s, kind, point_epochs(params, epochs), heads))
    return tasks


def execute(
    tasks: Iterable[Task],
    cache_path: Path,
    root: str,
    jobs: int,
    device: str,
    run: Callable[[Task, str, str], dict[str, Any]] | None = None,
) -> tuple[int, int]:
    """Run the tasks (``jobs`` spawned worker processes, or in-process for 1); each finished run
    is appended to the cache. Returns (finished, failed). ``run(task, root, device)`` trains one
    task (default :func:`run_task`; benchmarks/cifar10n.py passes its own)."""
    run = run_task if run is None else run
    tasks = list(tasks)
    done = failed = 0

    def finish(task: Task, rec: dict[str, Any]) -> None:
        nonlocal done, failed
        if "error" in rec:
            failed += 1
            print(f"  FAILED {task.key}:\n{rec['error']}", file=sys.stderr)
            return
        append_record(cache_path, rec)
        done += 1
        last = rec["test_acc"][-1] if rec["test_acc"] else float("nan")
        flag = f" diverged at epoch {rec['diverged']}" if rec["diverged"] is not None else ""
        print(
            f"  [{done + failed}/{len(tasks)}] {task.dataset} {task.method} {task.point} seed {task.seed} "
            f"{task.kind}: last test {last:.3f} ({rec['seconds']:.1f} s){flag}",
            file=sys.stderr,
        )

    if jobs <= 1:
        for task in tasks:
            finish(task, run(task, root, device))
        return done, failed
    ctx = multiprocessing.get_context("spawn")
    pool = cf.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_worker, initargs=(os.getpid(),))
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)  # SIGTERM stops like Ctrl-C
    try:
        futures = {pool.submit(run, t, root, device): t for t in tasks}
        for fut in cf.as_completed(futures):
            finish(futures[fut], fut.result())
    except BaseException:
        # interrupted: drop the queued runs and end the workers (their runs in progress are lost;
        # every finished run is already in the cache)
        procs = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in procs:
            proc.terminate()
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    pool.shutdown()
    return done, failed


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="benchmarks/real.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", required=True, help="folder of the run cache runs.jsonl and of tables.md")
    parser.add_argument(
        "--datasets", default=",".join(DEFAULT_DATASETS), help=f"comma-separated, of {', '.join(DATASETS)}"
    )
    parser.add_argument(
        "--methods", default=None, help=f"comma-separated registered methods and/or {TRUTH!r} (default: all + truth)"
    )
    parser.add_argument("--grid", choices=["none", "small", "recipe", "defaults"], default="small")
    parser.add_argument(
        "--recipes",
        default=None,
        help=f"with --grid defaults: a comma-separated subset of the candidates ({', '.join(RECIPES)}); default all",
    )
    parser.add_argument(
        "--lams",
        default=None,
        help=f"with --grid defaults: the extra lam values of the methods that declare lam "
        f"(comma-separated; default {','.join(f'{v:g}' for v in LAMS)}; 'none': only their own default)",
    )
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1")
    parser.add_argument(
        "--kinds", default=",".join(KINDS), help="run kinds: full (last/clean protocols), holdout (crowd protocol)"
    )
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (one torch thread each)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--table-only", action="store_true", help="render the tables from the cache, train nothing")
    parser.add_argument(
        "--dense-heads",
        action="store_true",
        help="build every head with sparse=False (dense gradients and Adam over all annotators); cached apart",
    )
    default_root = os.environ.get("CROWDLEARN_DATA") or str(Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument(
        "--root", default=default_root, help="data folder (default: $CROWDLEARN_DATA or ../shared/data)"
    )
    args = parser.parse_args(argv)

    datasets = [d for d in args.datasets.split(",") if d]
    if not datasets or any(d not in DATASETS for d in datasets):
        parser.error(f"--datasets takes a comma-separated subset of {', '.join(DATASETS)}, got {args.datasets!r}")
    known = (*available_methods(), TRUTH)
    methods = list(known) if args.methods is None else [m for m in args.methods.split(",") if m]
    unknown = [m for m in methods if m not in known]
    if not methods or unknown:
        parser.error(f"unknown method(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(known)}")
    if args.seeds < 1 or args.epochs < 1 or args.jobs < 1:
        parser.error("--seeds, --epochs and --jobs must be >= 1")
    if args.recipes is not None:
        chosen = [r for r in args.recipes.split(",") if r]
        if args.grid != "defaults" or not chosen or any(r not in RECIPES for r in chosen):
            parser.error(
                f"--recipes takes, with --grid defaults, a subset of {', '.join(RECIPES)}, got {args.recipes!r}"
            )
        for name in [r for r in RECIPES if r not in chosen]:
            del RECIPES[name]  # grid_points and the recipe table read RECIPES
    if args.lams is not None:
        if args.grid != "defaults":
            parser.error("--lams applies only with --grid defaults")
        try:
            lams = () if args.lams == "none" else tuple(float(v) for v in args.lams.split(",") if v)
        except ValueError:
            parser.error(f"--lams takes comma-separated numbers or 'none', got {args.lams!r}")
        if (args.lams != "none" and not lams) or any(not (math.isfinite(v) and v >= 0) for v in lams):
            parser.error(f"--lams takes comma-separated finite numbers >= 0 or 'none', got {args.lams!r}")
        LAMS[:] = lams  # grid_points reads LAMS
    _check_default_point()
    torch.set_num_threads(1)

    start = time.time()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cache_path = out / "runs.jsonl"
    seeds = list(range(args.seeds))
    kinds = [k for k in args.kinds.split(",") if k]
    if not kinds or any(k not in KINDS for k in kinds):
        parser.error(f"--kinds takes a comma-separated subset of {', '.join(KINDS)}, got {args.kinds!r}")
    heads = "dense" if args.dense_heads else "sparse"
    tasks = build_tasks(datasets, methods, args.grid, seeds, args.epochs, kinds, heads)
    cache = read_cache(cache_path, heads)
    todo = [t for t in tasks if t.key not in cache]
    failed = 0
    if not args.table_only:
        print(f"  {len(tasks)} runs, {len(tasks) - len(todo)} cached, {len(todo)} to train", file=sys.stderr)
        _, failed = execute(todo, cache_path, args.root, args.jobs, args.device)
        cache = read_cache(cache_path, heads)

    points = {m: point_keys(m, args.grid, args.epochs) for m in methods}
    tables = [
        render_table(d, table_rows(cache, d, methods, points, seeds), args.seeds, args.epochs, args.grid)
        for d in datasets
    ]
    if args.grid == "defaults":
        tables.append(recipe_table(cache, datasets, methods, points, seeds))
    compute = sum(cache[t.key]["seconds"] for t in tasks if t.key in cache)
    argv_shown = " ".join(sys.argv[1:] if argv is None else argv)
    footer = [
        "```",
        f"PYTHONPATH=src python benchmarks/real.py {argv_shown}",
        "```",
        "",
        f"Machine: {os.cpu_count()} cores ({platform.machine()}, {platform.system()}), "
        f"{args.jobs} worker process(es) x 1 torch thread, device {args.device}; "
        f"Python {platform.python_version()}, torch {torch.__version__}.",
        f"Wall time of this invocation: {time.time() - start:.0f} s; compute of the {sum(t.key in cache for t in tasks)}"
        f" cached runs of these tables (sum of per-run times): {compute:.0f} s"
        + (f"; {failed} run(s) failed (stderr)" if failed else "")
        + ".",
    ]
    text = "\n\n".join(tables) + "\n\n" + "\n".join(footer) + "\n"
    with atomic_write(out / "tables.md") as fh:
        fh.write(text)
    print(text)


if __name__ == "__main__":
    main()
