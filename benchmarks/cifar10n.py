"""CIFAR-10N end to end on images: deep crowd methods on the real MTurk labels, three protocols.

Data: the CIFAR-10N labels (``crowdlearn.datasets.load_cifar10n``) on the CIFAR-10 training
images of the JPEG copy (decoded once and cached), test accuracy on the CIFAR-10 test images.

Protocols (each seeded, the same items and test images for every method and seed):
- ``a``: the three labels per image with their MTurk worker ids (747 workers, from the side
  information; ``annotators="workers"``, assuming ``Worker{j}-id`` gave ``random_label{j}``);
- ``b``: the worst label only, one per image (``worse_label``, 40.2% noise), given to the worker
  who gave it (``labels="worse"``);
- ``c``: the aggregate label (``aggre_label``, the majority vote, 9.0% noise), one pseudo-annotator.
The reference row ``truth`` trains ``method="ce"`` on the clean labels (once per backbone and
seed, shown in the table of every protocol with that backbone).

Methods: ``--methods core`` (default) = mv-train, ds-train, crowdlayer-mw, ccem, geocrowdnet-f,
geocrowdnet-w; ``--methods all`` = every registered method; or a comma-separated list, where
``NAME:key=value[,key=value]`` is a variant with those ``method_params`` (``ccem:pool=1``: CCEM
with partially pooled confusions). ``truth`` is always added.

Profiles:
- CPU (default): ``SmallResNet(width=8, blocks=1)`` behind ``ImageBackbone`` (CIFAR
  normalisation), ``--n-train 3000`` training images (a fixed random subset,
  ``default_rng(14)``) and ``--n-test 1000`` test images (``default_rng(15)``), ``--epochs 3``,
  batch 128, Adam lr 1e-3, weight decay 1e-4, constant schedule, identity init, crop + flip
  augmentation (``augment="crop-flip"``), seeds 0..2, one torch thread per worker process.
  ``--recipe``: lr 1e-2, cosine schedule, batch 64, no weight decay (``CPU_RECIPE``, the training
  values of the default recipe of CCEM, GeoCrowdNet, CrowdLayer MW and mv-train) for every
  method; ``--init recipe``: each method's recipe init (DS for CCEM and GeoCrowdNet), else identity.
  ``--width`` (SmallResNet width), ``--augment none`` (train on the raw images; part of the cache
  key). The memorisation profile of docs/benchmarks.md ("CPU profile in the memorisation regime"):
  ``--recipe --init recipe --augment none --width 8 --n-train 1000 --epochs 40``.
- ``--device cuda --full``: all 50,000 training and 10,000 test images; protocol ``b`` with the
  CIFAR ResNet-18 (as the Annot-Mix paper) and protocol ``a`` with the CIFAR ResNet-34 (as the
  CCC paper); batch 256, Adam lr 2e-3 with a cosine schedule, weight decay 5e-4, crop + flip,
  bfloat16 autocast (the crowd losses and log-determinants in float32), channels-last; epochs
  ``GPU_EPOCHS``; seeds ``--seeds`` (default 1). Sized by an estimate (see ``gpu_estimate``), not
  a measurement.
Runs are ordered seed-major (every method of seed 0 first), so a partial table has whole rows.
Every run reports the test accuracy after its last epoch ("last"; no model selection) and its
wall time; ``--eval-last`` evaluates after the last epoch only (not after every epoch);
``--train-acc`` also records the accuracy on the training images (eval mode, no augmentation)
against the labels the run fits (the majority vote of its crowd labels; the clean labels for
``truth``) and against the clean labels, shown as a last column of the tables. Neither changes
the training, so neither is part of the cache key.

Cache and output: as benchmarks/real.py (it reuses its Task, cache and worker pool): every
finished run is one JSON line of ``--out DIR/runs.jsonl``; a rerun skips the runs there;
``--table-only`` renders without training; the tables go to ``DIR/tables.md`` (atomically).

Other modes:
- ``--pipeline``: images/s of the input pipeline (batch assembly from the uint8 image tensor,
  transfer, crop + flip on the device) against the training step, for the profile's backbone.
- ``--prepare-carry DIR``: copy the CIFAR-10 JPEG archive and the CIFAR-10N label files into
  ``DIR`` (a data root: ``DIR/CIFAR-10-jpeg``, ``DIR/CIFAR-10N``) so that a checkout carried to a
  GPU machine holds them (``data-carry/`` is git-ignored); then pass ``--root DIR``.

Run:  PYTHONPATH=src python benchmarks/cifar10n.py --out DIR [--methods core|all|a,b]
      [--protocols a,b,c] [--seeds 3] [--epochs 3] [--n-train 3000] [--n-test 1000] [--jobs 2]
      [--recipe] [--init identity|ds|recipe] [--width 8] [--augment crop-flip|none]
      [--train-acc] [--eval-last]
      [--device cuda --full] [--pipeline] [--prepare-carry DIR] [--table-only]
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import platform
import shutil
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from crowdlearn.annotations import Annotations
from crowdlearn.datasets import load_cifar10n
from crowdlearn.estimators import CrowdClassifier
from crowdlearn.io import atomic_write
from crowdlearn.nn import ImageBackbone, SmallResNet, available_methods, get_method, resnet18, resnet34

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real import EpochRecorder, Task, execute, fit_record, read_cache, run_params  # the structure of benchmarks/real.py

PROTOCOLS = ("a", "b", "c")
PROTOCOL_LABELS = {"a": "all", "b": "worse", "c": "aggre"}
PROTOCOL_TITLES = {
    "a": "(a) three labels per image, 747 worker ids",
    "b": "(b) the worst label only, one per image",
    "c": "(c) the aggregate (majority-vote) label",
}
TRUTH = "truth"
CORE = ("mv-train", "ds-train", "crowdlayer-mw", "ccem", "geocrowdnet-f", "geocrowdnet-w")
TRAIN_SEED, TEST_SEED = 14, 15
N_TRAIN, N_TEST = 50000, 10000

#: the CPU profile (see the module docstring)
CPU = {"backbone": "small-resnet", "width": 8, "n_train": 3000, "n_test": 1000, "epochs": 3, "batch_size": 128}
CPU_TRAINING = {"lr": 1e-3, "batch_size": 128, "weight_decay": 1e-4, "schedule": "constant"}
#: ``--recipe``: the training values of the default recipe that CCEM, GeoCrowdNet(F)/(W), CrowdLayer MW
#: and mv-train share (crowdlearn.nn.methods._recipes.COSINE_RECIPE, without its 50 epochs), for every method
CPU_RECIPE = {"lr": 1e-2, "batch_size": 64, "weight_decay": 0.0, "schedule": "cosine"}
#: the GPU profile: protocol -> backbone, and the epochs each gets (from the estimate of gpu_estimate)
GPU_BACKBONES = {"b": "resnet18", "a": "resnet34"}
GPU_EPOCHS = {"b": 15, "a": 8}
GPU_TRAINING = {"lr": 2e-3, "batch_size": 256, "weight_decay": 5e-4, "schedule": "cosine"}
#: forward multiply-accumulates per 32x32 image, counted with forward hooks over the conv and linear
#: layers of crowdlearn.nn.resnet18 / resnet34 (0.555 G / 1.159 G; SmallResNet width 8: 3.2 M)
FORWARD_MACS = {"resnet18": 0.555e9, "resnet34": 1.159e9}
#: assumed sustained bf16 training throughput of ResNet-18 on 32x32 images on one H200 (images/s)
ASSUMED_R18_IMAGES_PER_S = 25000.0

#: Annot-Mix paper (Herde et al., ECAI 2024), protocol (b), ResNet-18 from scratch, 10 seeds:
#: (last epoch, clean-validation best); their CrowdLayer and Union-Net variants are not named.
ANCHORS_B: dict[str, tuple[float, float]] = {
    "annot-mix": (82.4, 83.2),
    "union-net-a": (81.4, 82.0),
    "union-net-b": (81.4, 82.0),
    "geocrowdnet-f": (80.5, 81.9),
    "geocrowdnet-w": (79.8, 81.5),
    "conal": (77.9, 79.9),
    "crowdlayer-mw": (77.9, 81.9),
    "crowdlayer-vw": (77.9, 81.9),
    "crowdlayer-vb": (77.9, 81.9),
    "mv-train": (63.8, 79.1),
    TRUTH: (94.0, 94.0),
}
#: CCC paper, protocol (a), ResNet-34, "last"
ANCHORS_A: dict[str, float] = {
    "max-mig": 83.1,
    "union-net-a": 82.3,
    "union-net-b": 82.3,
    "conal": 80.9,
    "mv-train": 80.9,
    "crowdlayer-mw": 80.1,
    "crowdlayer-vw": 80.1,
    "crowdlayer-vb": 80.1,
}


# ------------------------------------------------------------------ data
def image_tensor(images: np.ndarray) -> torch.Tensor:
    """(n, H, W, 3) uint8 pixels -> one uint8 tensor (n, 3, H, W)."""
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))


def subset(n_total: int, n: int, seed: int) -> np.ndarray:
    """A fixed random subset of ``n`` of ``n_total`` indices (all of them when ``n >= n_total``), sorted."""
    if n >= n_total:
        return np.arange(n_total, dtype=np.int64)
    return np.sort(np.random.default_rng(seed).choice(n_total, n, replace=False)).astype(np.int64)


@functools.cache
def get_data(
    protocol: str, n_train: int, n_test: int, root: str
) -> tuple[torch.Tensor, Annotations, np.ndarray, torch.Tensor, np.ndarray]:
    """Training images (n, 3, 32, 32) uint8, their crowd labels under ``protocol``, their clean
    labels, the test images and test labels; the same subsets for every protocol and seed."""
    ds = load_cifar10n(root, images=True, annotators="workers", labels=PROTOCOL_LABELS[protocol])  # type: ignore[arg-type]
    tr = subset(N_TRAIN, n_train, TRAIN_SEED)
    te = subset(N_TEST, n_test, TEST_SEED)
    x_train = image_tensor(ds.features["train"][tr])
    x_test = image_tensor(ds.features["test"][te])
    return x_train, ds.annotations.subset_items(tr), ds.truth[tr], x_test, ds.targets["test"][te]


def clean_annotations(truth: np.ndarray, n_classes: int) -> Annotations:
    """One pseudo-annotator giving the clean label of every training image."""
    n = len(truth)
    return Annotations(np.arange(n), np.zeros(n, dtype=np.int64), truth, n_items=n, n_annotators=1, n_classes=n_classes)


def make_body(name: str, width: int, n_classes: int) -> torch.nn.Module:
    if name == "small-resnet":
        return SmallResNet(n_classes, width=width)
    if name == "resnet18":
        return resnet18(n_classes)
    if name == "resnet34":
        return resnet34(n_classes)
    raise ValueError(f"unknown backbone {name!r}; expected small-resnet, resnet18 or resnet34")


# ------------------------------------------------------------------ one run
class FitRecorder(EpochRecorder):
    """:class:`EpochRecorder` (test accuracy after every epoch) with two options.

    ``train=(x_train, y_clean, y_fit)`` (``--train-acc``): also the accuracy on the training
    images (eval mode, no augmentation) against their clean labels (``train_acc_clean_``) and
    against the labels the run fits (``train_acc_fit_``: the majority vote of the crowd labels,
    as mv-train's targets; the clean labels for ``truth``). ``last_only=True`` (``--eval-last``):
    evaluate after the last epoch only (``epoch == trainer.epochs - 1``), so each list holds one
    value. Either way the training itself is unchanged (eval-mode passes only).
    """

    def __init__(
        self,
        x_test: Any,
        y_test: np.ndarray,
        train: tuple[Any, np.ndarray, np.ndarray] | None = None,
        last_only: bool = False,
    ):
        super().__init__(None, None, x_test, y_test)
        if train is not None and not len(train[0]) == len(train[1]) == len(train[2]):
            raise ValueError(
                f"x_train, y_clean and y_fit differ in length: {len(train[0])}, {len(train[1])}, {len(train[2])}"
            )
        self.train, self.last_only = train, last_only

    def on_train_begin(self, trainer: Any) -> None:
        super().on_train_begin(trainer)
        self.train_acc_clean_: list[float] = []
        self.train_acc_fit_: list[float] = []

    def on_epoch_end(self, trainer: Any, epoch: int) -> None:
        if self.last_only and epoch != trainer.epochs - 1:
            return
        super().on_epoch_end(trainer, epoch)
        if self.train is not None:
            x_train, y_clean, y_fit = self.train
            pred = trainer.predict_logits(x_train).argmax(1).numpy()
            self.train_acc_clean_.append(float((pred == np.asarray(y_clean)).mean()))
            self.train_acc_fit_.append(float((pred == np.asarray(y_fit)).mean()))


def vote_labels(ann: Annotations, seed: int) -> np.ndarray:
    """The majority vote of ``ann`` (ties broken as mv-train breaks them, ``random_state=seed``), (n_items,)."""
    from crowdlearn.aggregate import MajorityVote

    return np.asarray(MajorityVote(random_state=seed).fit(ann).labels_, dtype=np.int64)


def split_variant(name: str) -> tuple[str, dict[str, float]]:
    """``"ccem:pool=3"`` -> ``("ccem", {"pool": 3.0})``: a registered method with some of its
    ``method_params`` (comma-separated ``key=value`` after a colon); a plain name has none."""
    method, _, rest = name.partition(":")
    params: dict[str, float] = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"method variant {name!r}: expected NAME:key=value[,key=value]")
        params[key] = float(value)
    return method, params


def run_task(task: Task, root: str, device: str = "cpu") -> dict[str, Any]:
    """Train one run; returns its record (``{"error": ...}`` on a failure other than divergence)."""
    p = task.params
    if device == "cpu":
        torch.set_num_threads(int(p.get("threads", 1)))
    start = time.perf_counter()
    protocol = task.dataset.removeprefix("cifar10n-")
    x_train, ann, truth, x_test, y_test = get_data(
        "c" if protocol == "clean" else protocol, int(p["n_train"]), int(p["n_test"]), root
    )
    if task.method == TRUTH:
        ann = clean_annotations(truth, ann.n_classes)
    train = None
    if p.get("train_acc"):
        train = (x_train, truth, truth if task.method == TRUTH else vote_labels(ann, task.seed))
    rec = FitRecorder(x_test, y_test, train, last_only=bool(p.get("eval_last")))
    torch.manual_seed(task.seed)
    backbone = ImageBackbone(make_body(p["backbone"], int(p.get("width", 16)), ann.n_classes))
    cuda = device.startswith("cuda")
    method, method_params = split_variant("ce" if task.method == TRUTH else task.method)
    training = dict(p["training"])
    if training.get("init") == "recipe":  # each method's own recipe init (DS for CCEM, GeoCrowdNet), else identity
        training["init"] = get_method(method).recipe.get("init", "identity")
    clf = CrowdClassifier(
        method=method,
        method_params=method_params or None,
        backbone=backbone,
        augment=None if p.get("augment") == "none" else p.get("augment", "crop-flip"),
        epochs=task.epochs,
        validation="none",
        callbacks=[rec],
        random_state=task.seed,
        device=device,
        amp="bfloat16" if cuda else False,
        channels_last=cuda,
        **run_params(training),
    )
    return fit_record(
        task,
        clf,
        x_train,
        ann,
        start,
        lambda: (
            {
                "params": {k: v for k, v in p.items() if k != "training"} | {"training": dict(p["training"])},
                "val_acc": None,
                "valid_loss": None,
                "test_acc": rec.test_acc_,
            }
            | (
                {"train_acc_clean": rec.train_acc_clean_, "train_acc_fit": rec.train_acc_fit_}
                if train is not None
                else {}
            )
        ),
    )


# ------------------------------------------------------------------ tasks and tables
def profile_point(params: Mapping[str, Any]) -> str:
    """The cache key of a profile: backbone, width, items, test items, batch, lr, schedule."""
    t = params["training"]
    width = f"-w{params['width']}" if params["backbone"] == "small-resnet" else ""
    augment = params.get("augment", "crop-flip")
    return (
        f"{params['backbone']}{width} n={params['n_train']}/{params['n_test']} bs={t['batch_size']} "
        f"lr={t['lr']:g} {t['schedule']}"
        + (f" wd={t['weight_decay']:g}" if t["weight_decay"] != CPU_TRAINING["weight_decay"] else "")
        + (f" init={t['init']}" if "init" in t else "")
        + (f" augment={augment}" if augment != "crop-flip" else "")
    )


def build_tasks(
    protocols: Sequence[str], methods: Sequence[str], seeds: Sequence[int], profile: Mapping[str, dict[str, Any]]
) -> list[Task]:
    """Seed-major: every (protocol, method) of seed 0, then of seed 1, ...; ``truth`` once per seed."""
    tasks: list[Task] = []
    for seed in seeds:
        for protocol in protocols:
            params = profile[protocol]
            for method in methods:
                tasks.append(
                    Task(f"cifar10n-{protocol}", method, profile_point(params), params, seed, "full", params["epochs"])
                )
        seen: set[str] = set()
        for protocol in sorted(protocols, key=lambda p: p != "b"):  # one truth run per distinct profile
            params = profile[protocol]
            point = profile_point(params)
            if point not in seen:
                seen.add(point)
                tasks.append(Task("cifar10n-clean", TRUTH, point, params, seed, "full", params["epochs"]))
    return tasks


def _cell(values: Sequence[float]) -> str:
    if not values:
        return "-"
    mean = 100 * statistics.fmean(values)
    sd = 100 * statistics.stdev(values) if len(values) > 1 else float("nan")
    return f"{mean:.1f}" if math.isnan(sd) else f"{mean:.1f} ± {sd:.1f}"


def render_table(protocol: str, methods: Sequence[str], tasks: Sequence[Task], cache: Mapping[Any, Any]) -> str:
    mine = [t for t in tasks if t.dataset == f"cifar10n-{protocol}"]
    if not mine:
        return ""
    point, epochs = mine[0].point, mine[0].epochs
    truth = [t for t in tasks if t.method == TRUTH and t.point == point and t.epochs == epochs]
    seeds = sorted({t.seed for t in mine})
    fitted = any(cache[t.key].get("train_acc_fit") for t in (*mine, *truth) if t.key in cache)
    extra = " training acc. % on its fit labels / clean labels (last epoch, mean) |" if fitted else ""
    lines = [
        f"#### CIFAR-10N {PROTOCOL_TITLES[protocol]}: {point}, {epochs} epochs",
        "",
        f"| method | test acc. % (last epoch), mean ± sd | seeds done | s per run (mean) | anchor | per seed |{extra}",
        "|---|---:|---:|---:|---|---|" + ("---:|" if fitted else ""),
    ]
    for method in (*methods, TRUTH):
        runs = [cache[t.key] for t in (truth if method == TRUTH else mine) if t.method == method and t.key in cache]
        acc = [r["test_acc"][-1] for r in runs if r["test_acc"]]
        secs = [r["seconds"] for r in runs]
        per_seed = ", ".join(f"{100 * a:.1f}" for a in acc) or "-"
        if fitted:
            fit = [r["train_acc_fit"][-1] for r in runs if r.get("train_acc_fit")]
            clean = [r["train_acc_clean"][-1] for r in runs if r.get("train_acc_clean")]
            per_seed += (
                f" | {100 * statistics.fmean(fit):.1f} / {100 * statistics.fmean(clean):.1f} |" if fit else " | - |"
            )
        else:
            per_seed += " |"
        dagger = " †" if any(r["diverged"] is not None for r in runs) else ""
        anchor = "-"
        if protocol == "b" and method in ANCHORS_B:
            anchor = "{} / {} (Annot-Mix, R18)".format(*ANCHORS_B[method])
        elif protocol == "a" and method in ANCHORS_A:
            anchor = f"{ANCHORS_A[method]} (CCC, R34)"
        shown = f"{method} (clean labels)" if method == TRUTH else method
        lines.append(
            f"| {shown} | {_cell(acc)}{dagger} | {len(runs)}/{len(seeds)} | {statistics.fmean(secs):.0f} | {anchor} | "
            + per_seed
            if secs
            else f"| {shown} | - | 0/{len(seeds)} | - | {anchor} | " + per_seed
        )
    return "\n".join(lines)


# ------------------------------------------------------------------ GPU sizing
def gpu_estimate(epochs: Mapping[str, int], n_methods: int, n_seeds: int, n_train: int = N_TRAIN) -> str:
    """A FLOP-based estimate of the GPU table's time (not a measurement).

    Training costs about 3 forward passes per image (forward + backward); ResNet-34 costs
    ``FORWARD_MACS["resnet34"] / FORWARD_MACS["resnet18"]`` (2.09) times ResNet-18; the ResNet-18
    rate is the assumption ``ASSUMED_R18_IMAGES_PER_S``. Evaluation (10,000 test images per
    epoch, forward only) adds a third of a training epoch's cost per 50,000 images.
    """
    total = 0.0
    parts = []
    for protocol, backbone in GPU_BACKBONES.items():
        ratio = FORWARD_MACS[backbone] / FORWARD_MACS["resnet18"]
        rate = ASSUMED_R18_IMAGES_PER_S / ratio
        per_epoch = n_train / rate + (N_TEST / 3) / rate
        run = per_epoch * epochs[protocol]
        n_runs = (n_methods + 1) * n_seeds  # + the truth run of this backbone
        total += run * n_runs
        parts.append(f"({protocol}) {backbone}: {epochs[protocol]} epochs, ~{run:.0f} s per run x {n_runs} runs")
    return (
        "; ".join(parts)
        + f"; total ~{total / 60:.1f} min at an assumed {ASSUMED_R18_IMAGES_PER_S:,.0f} ResNet-18 training images/s "
        "(an estimate from FLOPs, not a measurement)"
    )


# ------------------------------------------------------------------ pipeline throughput
def pipeline(args: argparse.Namespace, profile: Mapping[str, Any]) -> str:
    """Images/s of the input pipeline against the training step (median of ``--repeats`` timings)."""
    from crowdlearn.nn import ConfusionMatrices, CrowdLoss, CrowdModel
    from crowdlearn.train import Trainer
    from crowdlearn.train.batching import Inputs, item_batches, make_batch
    from crowdlearn.train.transforms import random_crop_flip

    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    x_train, ann, _, _, _ = get_data("a", int(profile["n_train"]), 10, args.root)
    inputs = Inputs(x_train)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    bs = int(profile["training"]["batch_size"])
    gen = torch.Generator().manual_seed(0)
    batches = item_batches(np.arange(len(inputs), dtype=np.int64), bs, generator=gen)[: max(4, args.steps)]

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    def timed(fn: Any) -> float:
        best = []
        for _ in range(args.repeats):
            sync()
            t0 = time.perf_counter()
            n = fn()
            sync()
            best.append(n / (time.perf_counter() - t0))
        return statistics.median(best)

    def assemble() -> int:
        n = 0
        for idx in batches:
            make_batch(inputs, ann, idx).to(device)
            n += len(idx)
        return n

    def augmented() -> int:
        n = 0
        for idx in batches:
            b = make_batch(inputs, ann, idx).to(device)
            random_crop_flip(b.x, gen)
            n += len(idx)
        return n

    rows = [("batch assembly + transfer", timed(assemble)), ("... + crop/flip on the device", timed(augmented))]
    for compiled in (False, True) if args.compile else (False,):
        torch.manual_seed(0)
        body = make_body(profile["backbone"], int(profile.get("width", 16)), ann.n_classes)
        if compiled:
            body = torch.compile(body)  # type: ignore[assignment]
        model = CrowdModel(ImageBackbone(body), ConfusionMatrices(ann.n_annotators, ann.n_classes))
        trainer = Trainer(
            model,
            CrowdLoss(),
            batch_size=bs,
            device=device,
            amp="bfloat16" if cuda else False,
            channels_last=cuda,
            sink=lambda s: None,
        )
        from crowdlearn.train.transforms import RandomCropFlip

        trainer.transform = RandomCropFlip(4)
        ready = [make_batch(inputs, ann, idx).to(device) for idx in batches]
        model.train()
        for b in ready[:2]:  # warm-up (and compilation)
            trainer.train_step(b, 0, 0)

        def steps(trainer: Trainer = trainer, ready: list[Any] = ready) -> int:
            for i, b in enumerate(ready):
                trainer.train_step(b, 0, i)
            return sum(len(b.items) for b in ready)

        def full(trainer: Trainer = trainer) -> int:
            n = 0
            for i, idx in enumerate(batches):
                trainer.train_step(make_batch(inputs, ann, idx).to(device), 0, i)
                n += len(idx)
            return n

        tag = " (torch.compile)" if compiled else ""
        rows.append((f"training step (crop/flip + forward + backward + Adam){tag}", timed(steps)))
        rows.append((f"whole loop: assembly + transfer + training step{tag}", timed(full)))
    lines = [
        f"#### Input pipeline vs training step: {profile_point(profile)}, device {args.device}, "
        f"{len(batches)} batches of {bs}, protocol (a) labels"
        + (f", {args.threads} torch thread(s)" if args.device == "cpu" else ""),
        "",
        f"| stage | images/s (median of {args.repeats}) |",
        "|---|---:|",
    ]
    lines += [f"| {name} | {rate:,.0f} |" for name, rate in rows]
    return "\n".join(lines)


# ------------------------------------------------------------------ carry
CARRY_FILES = (
    ("CIFAR-10-jpeg", "cifar10_jpg.zip"),
    ("CIFAR-10N", "cifar10n_labels.npz"),
    ("CIFAR-10N", "side_info_cifar10N.csv"),
)


def prepare_carry(root: str, dest: str) -> list[Path]:
    """Copy the files the GPU run reads (CIFAR-10 JPEG archive, CIFAR-10N labels and side
    information: 62.5 MB) into the data root ``dest``; each copied through a temporary name, so
    an interrupted copy leaves no partial file under the final name."""
    out = []
    for folder, name in CARRY_FILES:
        src = Path(root) / folder / name
        if not src.is_file():
            raise SystemExit(f"--prepare-carry: {src} not found; --root must be the data root holding {folder}/")
        target = Path(dest) / folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".part")
        shutil.copyfile(src, tmp)
        os.replace(tmp, target)
        out.append(target)
    return out


# ------------------------------------------------------------------ main
def make_profile(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Protocol -> the run parameters of the chosen profile (CPU or ``--full``), with the
    command line's overrides (``--width``, ``--epochs``, ``--n-train``, ``--n-test``, ``--init``,
    ``--recipe``, ``--train-acc``)."""
    profile: dict[str, dict[str, Any]] = {}
    for protocol in PROTOCOLS:
        if args.full:
            params: dict[str, Any] = {
                "backbone": GPU_BACKBONES.get(protocol, "resnet18"),
                "n_train": N_TRAIN,
                "n_test": N_TEST,
                "epochs": GPU_EPOCHS.get(protocol, GPU_EPOCHS["b"]),
                "training": dict(GPU_TRAINING),
                "gpu": True,
            }
        else:
            params = {
                "backbone": CPU["backbone"],
                "width": CPU["width"],
                "n_train": CPU["n_train"],
                "n_test": CPU["n_test"],
                "epochs": CPU["epochs"],
                "training": dict(CPU_RECIPE if args.recipe else CPU_TRAINING),
            }
        if args.width is not None and not args.full:
            params["width"] = int(args.width)
        for key, value in (("epochs", args.epochs), ("n_train", args.n_train), ("n_test", args.n_test)):
            if value is not None:
                params[key] = int(value)
        if args.init is not None:
            params["training"]["init"] = args.init
        if args.augment is not None:
            params["augment"] = args.augment
        if args.train_acc:  # recorded only: not part of the cache key, the training is the same
            params["train_acc"] = True
        if args.eval_last:  # likewise
            params["eval_last"] = True
        profile[protocol] = params
    return profile


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="benchmarks/cifar10n.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", help="folder of the run cache runs.jsonl and of tables.md")
    parser.add_argument("--methods", default="core", help="core, all, or a comma-separated list of methods")
    parser.add_argument("--protocols", default=None, help="comma-separated of a, b, c (default: a,b,c; --full: a,b)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 (default 3; --full: 1)")
    parser.add_argument("--epochs", type=int, default=None, help="override the profile's epochs")
    parser.add_argument("--n-train", type=int, default=None, help="training images (default 3000; --full: 50000)")
    parser.add_argument("--width", type=int, default=None, help="CPU profile: SmallResNet width (default 8)")
    parser.add_argument("--n-test", type=int, default=None, help="test images (default 1000; --full: 10000)")
    parser.add_argument(
        "--init",
        choices=["identity", "ds", "recipe"],
        default=None,
        help="initial confusions (default: identity, the base; recipe: each method's recipe init, else identity)",
    )
    parser.add_argument(
        "--recipe",
        action="store_true",
        help="CPU profile: lr 1e-2, cosine, batch 64, no weight decay (CPU_RECIPE) for every method",
    )
    parser.add_argument(
        "--train-acc",
        action="store_true",
        help="also record the accuracy on the training images per epoch (against the fit and the clean labels)",
    )
    parser.add_argument(
        "--augment",
        choices=["crop-flip", "none"],
        default=None,
        help="training augmentation (default crop-flip; none: the raw images, part of the cache key)",
    )
    parser.add_argument(
        "--eval-last",
        action="store_true",
        help="evaluate after the last epoch only (the table's value), not after every epoch",
    )
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (CPU: one torch thread each)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--full", action="store_true", help="the GPU profile (ResNet-18 on b, ResNet-34 on a)")
    parser.add_argument("--pipeline", action="store_true", help="measure the input pipeline against the step")
    parser.add_argument("--compile", action="store_true", help="with --pipeline: also time a torch.compile'd body")
    parser.add_argument("--steps", type=int, default=8, help="--pipeline: batches per timing")
    parser.add_argument("--repeats", type=int, default=3, help="--pipeline: timings (median reported)")
    parser.add_argument("--threads", type=int, default=1, help="--pipeline on the CPU: torch threads")
    parser.add_argument("--prepare-carry", metavar="DIR", help="copy the data files into DIR and exit")
    parser.add_argument("--table-only", action="store_true", help="render the tables from the cache, train nothing")
    default_root = os.environ.get("CROWDLEARN_DATA") or str(Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument(
        "--root", default=default_root, help="data folder (default: $CROWDLEARN_DATA or ../shared/data)"
    )
    args = parser.parse_args(argv)

    if args.prepare_carry:
        for path in prepare_carry(args.root, args.prepare_carry):
            print(f"  {path} ({path.stat().st_size:,} bytes)")
        return

    protocols = [p for p in (args.protocols or ("a,b" if args.full else "a,b,c")).split(",") if p]
    if not protocols or any(p not in PROTOCOLS for p in protocols):
        parser.error(f"--protocols takes a comma-separated subset of a, b, c, got {args.protocols!r}")
    known = available_methods()
    if args.methods == "core":
        methods = list(CORE)
    elif args.methods == "all":
        methods = list(known)
    else:
        methods = [m for m in args.methods.split(",") if m]
    unknown = [m for m in methods if split_variant(m)[0] not in known]
    if not methods or unknown:
        parser.error(f"unknown method(s) {', '.join(unknown) or '(none given)'}; known: core, all, {', '.join(known)}")
    n_seeds = args.seeds or (1 if args.full else 3)

    profile = make_profile(args)

    if args.pipeline:
        print(pipeline(args, profile["a"]))
        return
    if not args.out:
        parser.error("--out is required (except with --prepare-carry or --pipeline)")

    start = time.time()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cache_path = out / "runs.jsonl"
    tasks = build_tasks(protocols, methods, list(range(n_seeds)), profile)
    cache = read_cache(cache_path)
    todo = [t for t in tasks if t.key not in cache]
    failed = 0
    if not args.table_only:
        print(f"  {len(tasks)} runs, {len(tasks) - len(todo)} cached, {len(todo)} to train", file=sys.stderr)
        if args.full:
            print("  " + gpu_estimate({p: profile[p]["epochs"] for p in GPU_BACKBONES}, len(methods), n_seeds))
        _, failed = execute(todo, cache_path, args.root, args.jobs, args.device, run=run_task)
        cache = read_cache(cache_path)
    tables = [render_table(p, methods, tasks, cache) for p in protocols]
    compute = sum(cache[t.key]["seconds"] for t in tasks if t.key in cache)
    done = sum(t.key in cache for t in tasks)
    argv_shown = " ".join(sys.argv[1:] if argv is None else argv)
    device = args.device
    if device.startswith("cuda") and torch.cuda.is_available():
        device += f" ({torch.cuda.get_device_name()})"
    footer = [
        "```",
        f"PYTHONPATH=src python benchmarks/cifar10n.py {argv_shown}",
        "```",
        "",
        f"Machine: {os.cpu_count()} cores ({platform.machine()}, {platform.system()}), {args.jobs} worker "
        f"process(es), device {device}; Python {platform.python_version()}, torch {torch.__version__}; "
        f"load average at the end {os.getloadavg()[0]:.2f}.",
        f"Wall time of this invocation: {time.time() - start:.0f} s; {done}/{len(tasks)} runs in the cache, "
        f"compute (sum of per-run times) {compute:.0f} s"
        + (f"; {failed} run(s) failed (stderr)" if failed else "")
        + ".",
    ]
    text = "\n\n".join(t for t in tables if t) + "\n\n" + "\n".join(footer) + "\n"
    with atomic_write(out / "tables.md") as fh:
        fh.write(text)
    print(text)


if __name__ == "__main__":
    main()
