"""How much do the crowd labels add beyond the features? (Music and LabelMe, truth used for analysis only.)

The end-to-end models train the classifier on the posterior of each item's class,
``q_n ∝ f(x_n) ⊙ prod_{(n, m, y)} A_m[y, :]`` (the gradient of the coupled cross-entropy with
respect to the logits is ``f - q``). This script measures how accurate that posterior can be on
the training items, with a classifier prior that has NOT seen the item's labels:

1. 5-fold cross-fitting: the best validation-selected GeoCrowdNet(F) row of the dataset (DS init,
   see docs/benchmarks.md) is trained on 4 folds and predicts the 5th, giving every training item a
   prior ``f(x_n)`` from a model that never saw its labels;
2. that prior is combined with the item's crowd labels through three sets of confusions: the
   end-to-end estimate (the same model trained on all training items), Dawid-Skene's, and an
   *oracle*: each annotator's empirical confusion from the true labels (add-one smoothed);
3. the annotators' raw label accuracy is split by whether the cross-fitted classifier gets the
   item right: class-conditional noise (the model's assumption) predicts equal accuracies.

4. ``--heads M1,M2,...``: for each of these methods (trained on all training items at their
   defaults, DS init where the method accepts it, the base row's learning rate), the annotator
   accuracy its annotator model predicts for every training label, ``A(x_n, m)[y_n, y_n]`` from
   ``predict_confusions`` with the true class ``y_n`` (analysis only), averaged over the labels of
   the items the cross-fitted classifier gets right and wrong: an instance-dependent model
   (CoNAL, MaDL) can follow the measured gap, a class-conditional one cannot; and the AUC of that
   predicted accuracy for telling right labels from wrong ones.

Music: the 560 training items of the truth protocol (20% of the 700 moved to validation, per
seed, as in benchmarks/music.py); LabelMe: the 1,000 training items, 500 validation items.

Run:  PYTHONPATH=src python benchmarks/crowd_signal.py [--dataset music|labelme|both] [--seeds 5]
      [--heads geocrowdnet-f,conal,madl]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from crowdlearn import Annotations
from crowdlearn.aggregate import DawidSkene, MajorityVote
from crowdlearn.estimators import CrowdClassifier, item_posteriors

sys.path.insert(0, str(Path(__file__).resolve().parent))
from music import LEVER_BASE, load  # the same splits and base rows

FOLDS = 5


def predicted(prior: np.ndarray, ann: Annotations, conf: np.ndarray) -> np.ndarray:
    """Most probable class of each item under ``q_n ∝ prior_n ⊙ prod A_m[y, :]``."""
    return np.asarray(item_posteriors(prior, ann, conf).argmax(axis=1))


def auc(score: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve of ``score`` for ``positive`` (ties count half)."""
    from scipy.stats import rankdata

    ranks = rankdata(score)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def head_rows(
    method: str, dataset: str, seed: int, split: Any, wrong: np.ndarray, label_ok: np.ndarray
) -> dict[str, float]:
    """What ``method``'s annotator model predicts about the training labels' accuracy."""
    from crowdlearn.nn import get_method

    x, ann, truth = split.x_train, split.ann, split.truth
    base = LEVER_BASE[dataset]
    params: dict[str, Any] = {"lr": base["lr"], "epochs": 100, "random_state": seed}
    if get_method(method).accepts_init("ds"):
        params["init"] = "ds"
    clf = CrowdClassifier(method=method, validation="truth", **params).fit(x, ann, split.x_val, split.y_val)
    conf = clf.predict_confusions(x[ann.items], clf.annotator_ids_[ann.annotators])
    y = truth[ann.items]
    p_right = conf[np.arange(len(y)), y, y]
    on_wrong = wrong[ann.items]
    return {
        f"{method}: predicted label acc, items right": float(p_right[~on_wrong].mean()),
        f"{method}: predicted label acc, items wrong": float(p_right[on_wrong].mean()),
        f"{method}: AUC of predicted acc for right labels": auc(p_right, label_ok),
        f"{method}: test accuracy": clf.score(split.x_test, split.y_test),
    }


def one_seed(dataset: str, seed: int, root: str | None, heads: tuple[str, ...] = ()) -> dict[str, float]:
    split = load(dataset, seed, root, "truth")
    x, ann, truth = split.x_train, split.ann, split.truth
    params: dict[str, Any] = {**LEVER_BASE[dataset], "epochs": 100, "batch_size": 128, "weight_decay": 1e-4}

    def fit(idx: np.ndarray) -> CrowdClassifier:
        return CrowdClassifier(validation="truth", random_state=seed, **params).fit(
            x[idx], ann.subset_items(idx), split.x_val, split.y_val
        )

    parts = np.array_split(np.random.default_rng(3000 + seed).permutation(ann.n_items), FOLDS)
    prior = np.zeros((ann.n_items, ann.n_classes))
    for f in range(FOLDS):
        rest = np.sort(np.concatenate([parts[g] for g in range(FOLDS) if g != f]))
        prior[parts[f]] = fit(rest).predict_proba(x[parts[f]])
    full = fit(np.arange(ann.n_items))
    counts = np.zeros((ann.n_annotators, ann.n_classes, ann.n_classes))  # [m, said, true]
    np.add.at(counts, (ann.annotators, ann.labels, truth[ann.items]), 1.0)
    oracle = (counts + 1.0) / (counts + 1.0).sum(axis=1, keepdims=True)
    ds = DawidSkene(smoothing=0.01).fit(ann)
    wrong = prior.argmax(axis=1) != truth
    label_ok = ann.labels == truth[ann.items]
    out = {
        "majority vote": float(np.mean(MajorityVote().fit(ann).labels_ == truth)),
        "Dawid-Skene": float(np.mean(ds.labels_ == truth)),
        "cross-fitted classifier alone": float(np.mean(~wrong)),
        "classifier x end-to-end confusions": float(np.mean(predicted(prior, ann, full.confusions_) == truth)),
        "classifier x Dawid-Skene confusions": float(np.mean(predicted(prior, ann, ds.confusions_) == truth)),
        "classifier x oracle confusions": float(np.mean(predicted(prior, ann, oracle) == truth)),
        "test accuracy of the full model": full.score(split.x_test, split.y_test),
        "label acc, items the classifier gets right": float(label_ok[~wrong[ann.items]].mean()),
        "label acc, items the classifier gets wrong": float(label_ok[wrong[ann.items]].mean()),
        "share of items the classifier gets wrong": float(wrong.mean()),
    }
    for method in heads:
        out.update(head_rows(method, dataset, seed, split, wrong, label_ok))
    return out


def run(dataset: str, seeds: int, root: str | None, heads: tuple[str, ...] = ()) -> str:
    rows = [one_seed(dataset, s, root, heads) for s in range(seeds)]
    desc = ", ".join(f"{k}={v}" for k, v in LEVER_BASE[dataset].items())
    lines = [
        f"### {dataset}: accuracy of the class posterior on the training items ({seeds} seeds; {desc})",
        "",
        "| quantity | mean | std |",
        "|---|---:|---:|",
    ]
    for key in rows[0]:
        v = np.array([r[key] for r in rows])
        if "AUC" in key:
            lines.append(f"| {key} | {v.mean():.3f} | {v.std():.3f} |")
        else:
            lines.append(f"| {key} | {100 * v.mean():.1f} % | {100 * v.std():.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=["music", "labelme", "both"], default="both")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--heads", default="", help="comma-separated methods whose annotator model is examined")
    default_root = os.environ.get("CROWDLEARN_DATA") or str(Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument(
        "--root", default=default_root, help="data folder (default: $CROWDLEARN_DATA or ../shared/data)"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.time()
    datasets = ["music", "labelme"] if args.dataset == "both" else [args.dataset]
    heads = tuple(h for h in args.heads.split(",") if h)
    print("\n\n".join(run(d, args.seeds, args.root, heads) for d in datasets))
    print(f"\nCommand: PYTHONPATH=src python {' '.join(sys.argv)}  ({time.time() - start:.0f} s)")


if __name__ == "__main__":
    main()
