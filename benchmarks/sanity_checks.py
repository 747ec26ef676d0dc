"""The post-fit checks (collapse, latent-class flip) on every registered method at its defaults.

Fits ``CrowdClassifier(method=m)`` at its defaults (held-out crowd labels pick the epoch;
``--epochs`` overrides the 100 epochs) on every item of each dataset, reads ``findings_``
(:func:`crowdlearn.sanity.check_model`; ``--validation none`` trains on every label and keeps the
last epoch) and prints one row per method and dataset: the accuracy
on the training items against the truth, the predicted share of the most predicted class and the
crowd's majority-vote share of it, the agreement with the majority vote over chance and its kappa, the share
of the labels from annotators with their confusion diagonal below the off-diagonal, and the
finding. Two rows at the end fit deliberately broken runs on the text crowd (the issue's
cases), which the checks must catch.

Datasets: ``music`` (700 items, 10 classes) and ``labelme`` (1,000 items, 8 classes) from
``CROWDLEARN_DATA``; ``f-ssc`` (``simulate_design("f-ssc")``, 1,000 items, 30 annotators, 5
classes, p = 0.1, 10 Gaussian features); ``text`` (a binary crowd on synthetic documents:
600 items, 100 annotators with accuracies uniform in [0.65, 0.95], 3 labels per item, TF-IDF
features of scikit-learn's ``TfidfVectorizer``; needs scikit-learn). Two crowds of many
annotators, where a minibatch holds about one label per annotator or fewer: ``sparse`` (the crowd
of ``benchmarks/sparse_effect.py``: 3,000 items, 300 annotators with diagonally dominant
confusions, 3 labels per item, K = 5, 16-d Gaussian features with class means ``2 e_y``) and
``zipf`` (2,000 items, 1,000 such annotators whose loads follow Zipf's law: annotator ``r``
observes each item with probability ``0.4 / r``, so the first labels about 800 items and most
fewer than 3, about 3 labels per item; the same features).

Usage::

    python benchmarks/sanity_checks.py                       # every method, every dataset
    python benchmarks/sanity_checks.py --datasets text --methods tracereg,ccem --epochs 20
    python benchmarks/sanity_checks.py --datasets "" --epochs 30     # only the two broken runs
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from typing import Any

import numpy as np
import torch

from crowdlearn import Annotations
from crowdlearn.estimators import CrowdClassifier, UntrustedModelWarning
from crowdlearn.nn import available_methods
from crowdlearn.simulate import (
    diagonally_dominant_confusions,
    hard_truth,
    item_features,
    simulate_crowd,
    simulate_design,
)

DATASETS = ("music", "labelme", "f-ssc", "text", "sparse", "zipf")
#: TraceReg's weight in the deliberately broken run: 100 times its default (0.01)
BROKEN_LAM = 1.0


def text_documents(truth: np.ndarray, rng: np.random.Generator, *, vocabulary: int = 2000, length: int = 40) -> Any:
    """TF-IDF rows of one synthetic document per item: 30% of the words from 50 class words."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    docs = []
    for c in truth:
        n_class = rng.binomial(length, 0.3)
        words = np.r_[rng.integers(50 * c, 50 * c + 50, n_class), rng.integers(100, vocabulary, length - n_class)]
        docs.append(" ".join(f"w{w}" for w in words))
    return TfidfVectorizer().fit_transform(docs).toarray().astype(np.float32)


def load(name: str) -> tuple[np.ndarray, Annotations, np.ndarray]:
    """Features, labels and truth of the items of one dataset."""
    if name in ("music", "labelme"):
        from crowdlearn.datasets import load_labelme, load_music

        d = load_music() if name == "music" else load_labelme()
        return np.asarray(d.features["train"], dtype=np.float32), d.annotations, np.asarray(d.truth)
    rng = np.random.default_rng(0)
    if name == "f-ssc":
        crowd = simulate_design("f-ssc", n_items=1000, n_annotators=30, n_classes=5, p=0.1, random_state=rng)
        X = item_features(crowd.true_posteriors, 10, random_state=rng).astype(np.float32)
        return X, crowd.annotations, crowd.true_labels
    if name == "text":
        acc = rng.uniform(0.65, 0.95, 100)
        A = np.stack([[[a, 1 - a], [1 - a, a]] for a in acc])
        y, F = hard_truth(600, 2, random_state=rng)
        crowd = simulate_crowd(A, n_items=600, per_item=3, truth=F, random_state=rng)
        return text_documents(y, rng), crowd.annotations, y
    if name in ("sparse", "zipf"):
        k, n, m = 5, (3000, 2000)[name == "zipf"], (300, 1000)[name == "zipf"]
        conf = diagonally_dominant_confusions(m, k, random_state=rng)
        if name == "sparse":
            crowd = simulate_crowd(conf, n_items=n, per_item=3, random_state=rng)
        else:
            crowd = simulate_crowd(conf, n_items=n, p=0.4 / np.arange(1, m + 1), random_state=rng)
        X = (rng.normal(size=(n, 16)) + 2.0 * np.eye(k, 16)[crowd.true_labels]).astype(np.float32)
        return X, crowd.annotations, crowd.true_labels
    raise ValueError(f"unknown dataset {name!r}; expected one of {DATASETS}")


def row(method: str, dataset: str, data: tuple[np.ndarray, Annotations, np.ndarray], **params: Any) -> str:
    X, ann, y = data
    t = time.time()
    clf = CrowdClassifier(method=method, device="cpu", **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UntrustedModelWarning)
        clf.fit(X, ann)
    f = clf.findings_
    assert f is not None
    acc = float(np.mean(clf.predict(X) == ann.classes[y]))
    finding = "; ".join(
        [f"collapsed ({', '.join(f.collapse_signs)})"] * f.collapsed
        + [f"flipped ({', '.join(f.flip_signs)})"] * f.flipped
    )
    finding = finding or "-"
    below = "-" if f.below_diagonal_share is None else f"{f.below_diagonal_share:.2f}"
    diag = "-" if f.mean_diagonal is None else f"{f.mean_diagonal:.2f}"
    shown = method + "".join(f" {k}={v:g}" for k, v in params.items() if k not in ("epochs", "validation"))
    ratio = f.agreement / f.chance_agreement if f.chance_agreement > 0 else float("nan")
    print(
        f"| {shown} | {dataset} | {acc:.3f} | {f.top_share:.2f} ({f.crowd_top_share:.2f}) | {ratio:.2f} | {f.kappa:.2f} | "
        f"{below} | {diag} | {finding} |",
        flush=True,
    )
    print(f"  {method} {dataset}: {time.time() - t:.1f} s", file=sys.stderr)
    return finding


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--methods", default=None, help="comma-separated (default: every registered method)")
    parser.add_argument("--epochs", type=int, default=None, help="default: each method's default (100)")
    parser.add_argument("--no-broken", action="store_true", help="skip the two deliberately broken runs")
    parser.add_argument(
        "--validation", default=None, help='e.g. "none": train on every label, the last epoch (default: the default)'
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    methods = args.methods.split(",") if args.methods else list(available_methods(entry_points=False))
    extra: dict[str, Any] = {} if args.epochs is None else {"epochs": args.epochs}
    if args.validation is not None:
        extra["validation"] = args.validation
    print(f"command: python {' '.join(sys.argv)}")
    print(
        "| method | dataset | accuracy (train items) | top predicted share (crowd's) | agreement / chance | kappa "
        "| labels below diagonal | mean diagonal | finding |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    found = 0
    for dataset in filter(None, args.datasets.split(",")):  # --datasets "": only the broken runs
        data = load(dataset)
        for method in methods:
            found += row(method, dataset, data, **extra) != "-"
    if not args.no_broken:
        data = load("text")
        row("tracereg", "text", data, lam=BROKEN_LAM, confusion_lr=0.1, **extra)
        row("geocrowdnet-f", "text", data, lr=1e6, confusion_lr=1e-3, **extra)
    print(f"default runs with a finding: {found}")


if __name__ == "__main__":
    main()
