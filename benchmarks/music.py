"""Learning from crowds on real data: Music and LabelMe (end-to-end vs two-stage).

For each dataset, method and seed, trains the paper's MLP with crowdlearn's CrowdClassifier and
reports test accuracy (mean ± std over seeds) and the confusion estimates' mean absolute error
against each annotator's empirical confusion from the truth (annotators with >= 20 labels).

Methods: CCEM, GeoCrowdNet(F), GeoCrowdNet(W), TraceReg (end to end); MV -> MLP and DS -> MLP
(aggregate the crowd labels, then train with cross-entropy); MLP on the true labels (upper bound).

Selection rules (``--protocol``):
- ``truth`` (as in the reference runs): within a run the epoch with the best validation accuracy
  is kept; for every method the (lr, lambda) grid point with the best mean validation accuracy
  over the seeds is reported (its test accuracy mean ± std). Validation items with true labels:
  LabelMe's 500-item valid split; Music has none, so 20% of its 700 training items (random, per
  seed) are moved out of training (their crowd labels are unused) and serve as validation.
- ``crowd`` (no truth anywhere): all training items; 10% of each annotator's labels are held out
  inside ``fit``; the epoch and the grid point with the lowest held-out negative log-likelihood win.
- ``cv`` (truth, no items wasted): 5-fold cross-validation on the training items' true labels
  (held-out fold's crowd labels unused) picks, per method, the (config, number of epochs) with the
  best mean fold accuracy over a small grid (GeoCrowdNet F/W, DS init); that config is retrained on
  all training items for that many epochs with each seed and scored on the test set.
``--grid wide`` (truth/crowd protocols) runs only GeoCrowdNet(F), DS init, confusion lr 1e-2 over
lambda in {0.1, 0.2, 0.3, 0.5} x weight decay in {1e-4, 1e-3}.
``--baselines`` (truth/crowd protocols) runs only the deep baselines CrowdLayer MW, VW and VB
(Rodrigues & Pereira, AAAI 2018; ``CrowdClassifier(method="crowdlayer-*")``, no regularizer) over
lr in {1e-3, 1e-2}; the confusion MAE is that of the implied confusions (one-hot inputs).
``--grid levers`` (truth protocol) starts from the best validation-selected GeoCrowdNet(F) row of
the dataset (DS init) and changes one thing at a time -- cosine learning rate, batch size, a
wider MLP, mixup, square-root features (LabelMe's non-negative VGG activations), fixed DS
confusions -- and reports every row (no selection among them).
``--grid final`` (truth/crowd protocols) runs only GeoCrowdNet(F), DS init, over lr {1e-3, 1e-2} x
confusion lr {same, 1e-2} x lambda {1e-2, 0.1, 0.2} x mixup {0, 0.2}, and selects as usual; use it
with ``--seeds 10``.
Grid: lr in {1e-3, 1e-2} and lambda in {1e-3, 1e-2, 1e-1, 0.2}; Adam, weight decay 1e-4,
100 epochs, batch 128, the paper's MLP (BN -> 128 -> ReLU -> Dropout 0.5 -> BN -> K).
Confusion MAE: mean absolute entry error against each annotator's empirical confusion computed
from the truth of the training items, over annotators with >= 20 labels, no class permutation
(averaged over seeds); "after EM refit" re-estimates the confusions with 10 EM iterations using
the trained classifier's predictions as item priors (``CrowdClassifier(refine_confusions=10)``).

Run:  PYTHONPATH=src python benchmarks/music.py [--dataset music|labelme|both] [--protocol truth|crowd|cv]
      [--seeds 5] [--variants] [--grid default|wide|levers|final] [--folds 5] [--baselines]
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from crowdlearn import Annotations
from crowdlearn.aggregate import DawidSkene, MajorityVote
from crowdlearn.datasets import load_labelme, load_music
from crowdlearn.estimators import CrowdClassifier, posterior_confusions
from crowdlearn.metrics import empirical_confusions
from crowdlearn.nn import MLP

METHODS = {
    "CCEM": "ccem",
    "GeoCrowdNet(F)": "geocrowdnet-f",
    "GeoCrowdNet(W)": "geocrowdnet-w",
    "TraceReg": "tracereg",
}
BASELINES = {
    "CrowdLayer-MW": "crowdlayer-mw",
    "CrowdLayer-VW": "crowdlayer-vw",
    "CrowdLayer-VB": "crowdlayer-vb",
}
LRS = (1e-3, 1e-2)
LAMS = (1e-3, 1e-2, 1e-1, 0.2)
MIN_LABELS = 20


@dataclass
class Split:
    x_train: np.ndarray
    ann: Annotations
    truth: np.ndarray  # (n_train,) true class of the training items
    x_val: np.ndarray | None
    y_val: np.ndarray | None
    x_test: np.ndarray
    y_test: np.ndarray


@dataclass
class Result:
    val: list[float] = field(default_factory=list)
    test: list[float] = field(default_factory=list)
    mae: list[float] = field(default_factory=list)
    mae_refit: list[float] = field(default_factory=list)


def load(name: str, seed: int, root: str | None, protocol: str) -> Split:
    """Training items, validation (truth protocol) and test split of one seed."""
    d = load_music(root) if name == "music" else load_labelme(root)
    x = d.features["train"]
    if protocol == "crowd":  # all training items; validation from held-out crowd labels inside fit
        return Split(x, d.annotations, d.truth, None, None, d.features["test"], d.targets["test"])
    if name == "labelme":
        return Split(
            x, d.annotations, d.truth, d.features["valid"], d.targets["valid"], d.features["test"], d.targets["test"]
        )
    rng = np.random.default_rng(1000 + seed)  # Music has no validation split: 20% of the items, per seed
    perm = rng.permutation(d.annotations.n_items)
    n_val = d.annotations.n_items // 5
    val, tr = np.sort(perm[:n_val]), np.sort(perm[n_val:])
    return Split(
        x[tr], d.annotations.subset_items(tr), d.truth[tr], x[val], d.truth[val], d.features["test"], d.targets["test"]
    )


def confusion_mae(estimated: np.ndarray, split: Split) -> float:
    """Mean |A_hat - A_emp| over entries of annotators with >= MIN_LABELS labels (no class permutation)."""
    emp = empirical_confusions(split.ann, split.truth)
    keep = split.ann.annotator_counts >= MIN_LABELS
    return float(np.abs(estimated[keep] - emp[keep]).mean())


def single_label_annotations(labels: np.ndarray, ann: Annotations) -> Annotations:
    """One pseudo-annotator giving ``labels`` (aggregated or true) for every training item."""
    n = len(labels)
    return Annotations(
        np.arange(n), np.zeros(n, dtype=np.int64), labels, n_items=n, n_annotators=1, n_classes=ann.n_classes
    )


def fit_score(split: Split, ann: Annotations, **params: Any) -> tuple[float, float, CrowdClassifier]:
    """Fit; returns (selection score: valid accuracy, or minus held-out NLL), test accuracy, model."""
    if split.x_val is not None:
        clf = CrowdClassifier(validation="truth", **params).fit(split.x_train, ann, split.x_val, split.y_val)
        key, sign = "valid_acc", 1.0
    else:
        clf = CrowdClassifier(validation="holdout", **params).fit(split.x_train, ann)
        key, sign = "valid_loss", -1.0
    assert clf.best_epoch_ is not None
    return sign * float(clf.history_[clf.best_epoch_][key]), clf.score(split.x_test, split.y_test), clf


def grid(method: str, lrs: tuple[float, ...], lams: tuple[float, ...], suffix: str = "", **extra: Any):
    lams = (0.0,) if method == "ccem" else lams
    return [
        (
            f"lr={lr:g}" + (f", lam={lam:g}" if method != "ccem" else "") + suffix,
            {"method": method, "lr": lr, "lam": lam, **extra},
        )
        for lr, lam in itertools.product(lrs, lams)
    ]


def run(
    dataset: str,
    protocol: str,
    seeds: int,
    epochs: int,
    batch_size: int,
    root: str | None,
    variants: bool,
    wd_only: bool,
    wide: bool = False,
    final: bool = False,
    baselines: bool = False,
) -> str:
    splits = [load(dataset, s, root, protocol) for s in range(seeds)]
    base = {"epochs": epochs, "batch_size": batch_size, "weight_decay": 1e-4}
    cands: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for label, method in METHODS.items():
        cands[label] = grid(method, LRS, LAMS)
    if variants:
        for label, method in list(METHODS.items())[:3]:  # CCEM, GeoCrowdNet(F), GeoCrowdNet(W)
            cands[f"{label}, DS init"] = grid(method, LRS, LAMS, init="ds")
        cands["GeoCrowdNet(F), DS init, confusion lr 1e-2"] = grid(
            "geocrowdnet-f", (1e-3,), LAMS, ", confusion_lr=1e-2", init="ds", confusion_lr=1e-2
        )
        cands["GeoCrowdNet(F), DS init, lam decay"] = grid(
            "geocrowdnet-f", LRS, (0.1, 0.2), ", decay", init="ds", lam_schedule="decay"
        )
    for label in ("MV -> MLP", "DS -> MLP", "MLP on true labels"):
        cands[label] = [(f"lr={lr:g}", {"method": "ce", "lr": lr}) for lr in LRS]
    if wd_only:  # one extra family only: a stronger weight decay of the backbone
        cands = {
            "GeoCrowdNet(F), DS init, weight decay 1e-3": grid(
                "geocrowdnet-f", LRS, LAMS, ", wd=1e-3", init="ds", weight_decay=1e-3
            )
        }

    if final:  # GeoCrowdNet(F), DS init: lr x confusion lr x lambda x mixup, selected as usual
        cands = {
            "GeoCrowdNet(F), DS init, final grid": [
                (
                    f"lr={lr:g}, confusion_lr={clr or lr:g}, lam={lam:g}, mixup={mix:g}",
                    {"method": "geocrowdnet-f", "init": "ds", "lr": lr, "confusion_lr": clr, "lam": lam, "mixup": mix},
                )
                for lr, clr, lam, mix in itertools.product((1e-3, 1e-2), (None, 1e-2), (1e-2, 0.1, 0.2), (0.0, 0.2))
                if not (clr is not None and clr == lr)  # confusion lr 1e-2 with lr 1e-2 repeats "same"
            ]
        }

    if wide:  # a wider grid around the best LabelMe row: lambda x weight decay, confusion lr 1e-2
        cands = {
            "GeoCrowdNet(F), DS init, confusion lr 1e-2, wide grid": [
                (
                    f"lr=0.001, lam={lam:g}, confusion_lr=1e-2, wd={wd:g}",
                    {
                        "method": "geocrowdnet-f",
                        "lr": 1e-3,
                        "lam": lam,
                        "init": "ds",
                        "confusion_lr": 1e-2,
                        "weight_decay": wd,
                    },
                )
                for wd, lam in itertools.product((1e-4, 1e-3), (0.1, 0.2, 0.3, 0.5))
            ]
        }

    if baselines:  # only the deep baselines (no regularizer: lr grid only)
        cands = {
            label: [(f"lr={lr:g}", {"method": method, "lr": lr}) for lr in LRS] for label, method in BASELINES.items()
        }

    results: dict[str, dict[str, Result]] = {}
    ds_mae: list[float] = []
    agg_labels: dict[str, list[np.ndarray]] = {"MV -> MLP": [], "DS -> MLP": [], "MLP on true labels": []}
    for split in splits:
        ds = DawidSkene(smoothing=0.01).fit(split.ann)  # the same smoothed DS as CrowdClassifier(init="ds")
        ds_mae.append(confusion_mae(ds.confusions_, split))
        agg_labels["MV -> MLP"].append(MajorityVote().fit(split.ann).labels_)
        agg_labels["DS -> MLP"].append(ds.labels_)
        agg_labels["MLP on true labels"].append(split.truth)
    for name, configs in cands.items():
        results[name] = {}
        for cfg, params in configs:
            r = Result()
            for seed, split in enumerate(splits):
                ann = single_label_annotations(agg_labels[name][seed], split.ann) if name in agg_labels else split.ann
                val, test, clf = fit_score(split, ann, random_state=seed, **{**base, **params})
                r.val.append(val)
                r.test.append(test)
                if name not in agg_labels:
                    r.mae.append(confusion_mae(clf.confusions_, split))
                    prior = clf.predict_proba(split.x_train)
                    r.mae_refit.append(
                        confusion_mae(posterior_confusions(prior, split.ann, clf.confusions_, 10), split)
                    )
            results[name][cfg] = r
            print(
                f"  {dataset}/{protocol} {name:45s} {cfg:40s} sel {np.mean(r.val):.4f} test {np.mean(r.test):.4f}",
                file=sys.stderr,
            )

    sel = "valid acc" if protocol == "truth" else "held-out NLL"
    lines = [
        f"### {dataset}, selection by {'validation items with true labels' if protocol == 'truth' else 'held-out crowd labels (no truth)'}"
        f" ({seeds} seeds, {epochs} epochs, batch {batch_size})",
        "",
        f"| method | selected config | {sel} | test acc % (mean ± std) | confusion MAE | MAE after EM refit |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, by_cfg in results.items():
        cfg, r = max(by_cfg.items(), key=lambda kv: np.mean(kv[1].val))
        mae = f"{np.mean(r.mae):.4f}" if r.mae else "-"
        mae_r = f"{np.mean(r.mae_refit):.4f}" if r.mae_refit else "-"
        shown = np.mean(r.val) if protocol == "truth" else -np.mean(r.val)
        lines.append(
            f"| {name} | {cfg} | {shown:.4f} | {100 * np.mean(r.test):.1f} ± {100 * np.std(r.test):.1f} | {mae} | {mae_r} |"
        )
    lines.append(f"| Dawid-Skene (no features) | - | - | - | {np.mean(ds_mae):.4f} | - |")
    return "\n".join(lines)


#: best validation-selected GeoCrowdNet(F) row per dataset (tables above): the levers' starting point
LEVER_BASE = {
    "music": {"method": "geocrowdnet-f", "lr": 1e-2, "lam": 0.01, "init": "ds"},
    "labelme": {"method": "geocrowdnet-f", "lr": 1e-3, "lam": 0.2, "init": "ds", "confusion_lr": 1e-2},
}


def sqrt_split(split: Split) -> Split:
    """Square-root ("power") normalisation of non-negative features (pooled CNN activations)."""
    for part in (split.x_train, split.x_val, split.x_test):
        if part is not None and part.min() < 0:
            raise ValueError("square-root features need non-negative inputs")
    xv = None if split.x_val is None else np.sqrt(split.x_val)
    return Split(np.sqrt(split.x_train), split.ann, split.truth, xv, split.y_val, np.sqrt(split.x_test), split.y_test)


def run_levers(dataset: str, seeds: int, epochs: int, batch_size: int, root: str | None) -> str:
    """One change at a time from the dataset's best GeoCrowdNet(F) row; every row reported."""
    splits = [load(dataset, s, root, "truth") for s in range(seeds)]
    base = {"epochs": epochs, "batch_size": batch_size, "weight_decay": 1e-4, **LEVER_BASE[dataset]}
    n_features, k = splits[0].x_train.shape[1], splits[0].ann.n_classes

    def wide(seed: int) -> MLP:  # a module is copied as given at fit: seed its initial weights here
        torch.manual_seed(seed)
        return MLP(n_features, k, hidden=(512,), dropout=0.5, batch_norm=True, input_norm=True, affine=False)

    levers: list[tuple[str, dict[str, Any], bool]] = [
        ("base row", {}, False),
        ("cosine learning rate", {"schedule": "cosine"}, False),
        ("cosine, 200 epochs", {"schedule": "cosine", "epochs": 2 * epochs}, False),
        ("batch 32", {"batch_size": 32}, False),
        ("batch 64", {"batch_size": 64}, False),
        ("MLP with 512 hidden units", {"backbone": wide}, False),  # called per seed below
        ("backbone weight decay 1e-3", {"weight_decay": 1e-3}, False),
        ("mixup 0.2", {"mixup": 0.2}, False),
        ("mixup 1.0", {"mixup": 1.0}, False),
        ("confusions fixed at DS (confusion lr 1e-6)", {"confusion_lr": 1e-6}, False),
        ("MLP with 512 hidden units, mixup 0.2", {"backbone": wide, "mixup": 0.2}, False),
    ]
    if dataset == "labelme":
        levers += [
            ("square-root features", {}, True),
            ("square-root features, mixup 1.0", {"mixup": 1.0}, True),
            ("square-root features, MLP with 512 hidden units, mixup 0.2", {"backbone": wide, "mixup": 0.2}, True),
        ]
    desc = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in LEVER_BASE[dataset].items())
    lines = [
        f"### {dataset}: one change at a time from GeoCrowdNet(F) ({desc}), selection on validation truth"
        f" ({seeds} seeds, {epochs} epochs, batch {batch_size})",
        "",
        "| change | valid acc (mean) | test acc % (mean ± std) | min / max test % | confusion MAE |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, params, sqrt in levers:
        r = Result()
        for seed, split in enumerate(splits):
            sp = sqrt_split(split) if sqrt else split
            run_params = {key: v(seed) if callable(v) else v for key, v in params.items()}
            val, test, clf = fit_score(sp, sp.ann, random_state=seed, **{**base, **run_params})
            r.val.append(val)
            r.test.append(test)
            r.mae.append(confusion_mae(clf.confusions_, sp))
        print(f"  levers {dataset} {label:45s} val {np.mean(r.val):.4f} test {np.mean(r.test):.4f}", file=sys.stderr)
        t = 100 * np.asarray(r.test)
        lines.append(
            f"| {label} | {np.mean(r.val):.4f} | {t.mean():.1f} ± {t.std():.1f} | {t.min():.1f} / {t.max():.1f}"
            f" | {np.mean(r.mae):.4f} |"
        )
    return "\n".join(lines)


def cv_grid() -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """Small grid of the cross-validation protocol: GeoCrowdNet (F) and (W), DS init."""
    out: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for label, method in (("GeoCrowdNet(F), DS init", "geocrowdnet-f"), ("GeoCrowdNet(W), DS init", "geocrowdnet-w")):
        out[label] = grid(method, LRS, LAMS[:3], init="ds") + grid(
            method, (1e-3,), LAMS[:3], ", confusion_lr=1e-2", init="ds", confusion_lr=1e-2
        )
    return out


def run_cv(dataset: str, seeds: int, folds: int, epochs: int, batch_size: int, root: str | None) -> str:
    """K-fold CV on the training items' TRUE labels picks (config, epochs); retrain on all items per seed.

    Fold ``f`` trains on the other folds' items (their crowd labels) with seed ``f`` and scores every
    epoch on the held-out fold's true labels (its crowd labels unused). The (config, epoch) with the
    best accuracy averaged over the folds wins; it is retrained on all training items for that many
    epochs (no validation, last epoch kept) with seeds 0..seeds-1 and scored on the test set.
    """
    d = load_music(root) if dataset == "music" else load_labelme(root)
    x, ann, truth = d.features["train"], d.annotations, d.truth
    perm = np.random.default_rng(2000).permutation(ann.n_items)
    parts = [np.sort(p) for p in np.array_split(perm, folds)]
    full = Split(x, ann, truth, None, None, d.features["test"], d.targets["test"])
    base = {"batch_size": batch_size, "weight_decay": 1e-4}
    lines = [
        f"### {dataset}, {folds}-fold cross-validation on the true labels of the training items, "
        f"then retrained on all {ann.n_items} items ({seeds} seeds, batch {batch_size})",
        "",
        "| method | selected config | epochs | CV acc | test acc % (mean ± std) | confusion MAE | MAE after EM refit |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, configs in cv_grid().items():
        best: tuple[float, int, str, dict[str, Any]] | None = None
        for cfg, params in configs:
            curves = []
            for f in range(folds):
                val = parts[f]
                tr = np.sort(np.concatenate([parts[g] for g in range(folds) if g != f]))
                clf = CrowdClassifier(validation="truth", random_state=f, epochs=epochs, **{**base, **params}).fit(
                    x[tr], ann.subset_items(tr), x[val], truth[val]
                )
                curves.append([h["valid_acc"] for h in clf.history_])
            mean = np.mean(np.array(curves, dtype=float), axis=0)
            e = int(np.argmax(mean))
            print(f"  cv {name:30s} {cfg:40s} epochs {e + 1:3d} cv acc {mean[e]:.4f}", file=sys.stderr)
            if best is None or mean[e] > best[0]:
                best = (float(mean[e]), e + 1, cfg, params)
        assert best is not None
        acc, n_ep, cfg, params = best
        r = Result()
        for seed in range(seeds):
            clf = CrowdClassifier(validation="none", random_state=seed, epochs=n_ep, **{**base, **params}).fit(x, ann)
            r.test.append(clf.score(full.x_test, full.y_test))
            r.mae.append(confusion_mae(clf.confusions_, full))
            prior = clf.predict_proba(x)
            r.mae_refit.append(confusion_mae(posterior_confusions(prior, ann, clf.confusions_, 10), full))
        lines.append(
            f"| {name} | {cfg} | {n_ep} | {acc:.4f} | {100 * np.mean(r.test):.1f} ± {100 * np.std(r.test):.1f}"
            f" | {np.mean(r.mae):.4f} | {np.mean(r.mae_refit):.4f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=["music", "labelme", "both"], default="both")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--protocol", choices=["truth", "crowd", "cv"], default="truth", help="model selection rule")
    parser.add_argument("--folds", type=int, default=5, help="folds of --protocol cv")
    parser.add_argument(
        "--grid",
        choices=["default", "wide", "levers", "final"],
        default="default",
        help="wide: only GeoCrowdNet(F), DS init, confusion lr 1e-2, lambda in {0.1..0.5} x weight decay; "
        "levers: one change at a time from the best GeoCrowdNet(F) row (truth protocol); "
        "final: GeoCrowdNet(F), DS init, lr x confusion lr x lambda x mixup",
    )
    parser.add_argument("--variants", action="store_true", help="also DS init, a separate confusion lr, lam decay")
    parser.add_argument(
        "--weight-decay-only", action="store_true", help="only GeoCrowdNet(F), DS init, weight decay 1e-3"
    )
    default_root = os.environ.get("CROWDLEARN_DATA") or str(Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument(
        "--root", default=default_root, help="data folder (default: $CROWDLEARN_DATA or ../shared/data)"
    )
    parser.add_argument(
        "--baselines", action="store_true", help="only the deep baselines CrowdLayer MW/VW/VB over lr in {1e-3, 1e-2}"
    )
    args = parser.parse_args()
    if args.baselines and (args.protocol == "cv" or args.grid != "default"):
        parser.error("--baselines runs with --protocol truth|crowd and the default grid")
    if args.grid == "levers" and args.protocol != "truth":
        parser.error("--grid levers runs with --protocol truth")
    torch.set_num_threads(1)
    start = time.time()
    datasets = ["music", "labelme"] if args.dataset == "both" else [args.dataset]
    tables = [
        run_cv(d, args.seeds, args.folds, args.epochs, args.batch_size, args.root)
        if args.protocol == "cv"
        else run_levers(d, args.seeds, args.epochs, args.batch_size, args.root)
        if args.grid == "levers"
        else run(
            d,
            args.protocol,
            args.seeds,
            args.epochs,
            args.batch_size,
            args.root,
            args.variants,
            args.weight_decay_only,
            args.grid == "wide",
            args.grid == "final",
            args.baselines,
        )
        for d in datasets
    ]
    print("\n\n".join(tables))
    print(f"\nCommand: PYTHONPATH=src python {' '.join(sys.argv)}  ({time.time() - start:.0f} s)")


if __name__ == "__main__":
    main()
