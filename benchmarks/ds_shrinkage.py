"""Dawid-Skene's pseudo-counts on sparse crowds: uniform against pooled shrinkage.

``DawidSkene(smoothing=s, shrinkage=...)`` on real crowds whose annotators give few labels each:
the share of the items given the most frequent class (a collapse shows as a share near 1), the
accuracy against the true labels (the truth is read only for this table, never by the fit), and
the EM iterations run. Datasets: CIFAR-10N with its 747 MTurk worker ids (``labels="worse"``:
one label per image; ``labels="all"``: three), on the fixed random image subsets of
benchmarks/cifar10n.py (``default_rng(14)``) and on all 50,000 images; Music and LabelMe (all
their training items); and a simulated crowd: 3,000 items, one label each from 750 annotators,
60% correct (``default_rng(0)``).

Usage::

    python benchmarks/ds_shrinkage.py [--root DATA] [--smoothing 1e-6 0.01 0.1]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from crowdlearn import Annotations
from crowdlearn.aggregate import DawidSkene
from crowdlearn.datasets import load_cifar10n, load_labelme, load_music


def crowds(root: str) -> Iterator[tuple[str, Annotations, np.ndarray]]:
    rng = np.random.default_rng(0)
    n, k, m = 3000, 10, 750
    truth = rng.integers(0, k, n)
    lab = np.where(rng.random(n) < 0.6, truth, rng.integers(0, k, n))
    yield (
        "simulated, 1 label/item, 750 annotators",
        Annotations(np.arange(n), rng.integers(0, m, n), lab, n_classes=k),
        truth,
    )
    for labels, sizes in (("worse", (3000, 10000, 50000)), ("all", (3000, 50000))):
        ds = load_cifar10n(root, annotators="workers", labels=labels)  # type: ignore[arg-type]
        assert ds.truth is not None
        for size in sizes:
            items = np.sort(np.random.default_rng(14).choice(50000, size, replace=False))
            yield f"CIFAR-10N ({labels}), {size:,} images", ds.annotations.subset_items(items), ds.truth[items]
    for name, load in (("Music", load_music), ("LabelMe", load_labelme)):
        d = load(root)
        assert d.truth is not None
        yield name, d.annotations, d.truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_root = os.environ.get("CROWDLEARN_DATA") or str(Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--root", default=default_root)
    parser.add_argument("--smoothing", type=float, nargs="+", default=[1e-6, 0.01, 0.1])
    args = parser.parse_args()
    t0 = time.time()
    head = "| crowd | labels / annotator | smoothing | " + " | ".join(
        f"{sh}: top share / acc. / iters" for sh in ("uniform", "pooled")
    )
    print(head + " |")
    print("|---|---:|---:|---:|---:|")
    for name, ann, truth in crowds(args.root):
        known = truth >= 0
        per = ann.n_labels / max(int((ann.annotator_counts > 0).sum()), 1)
        for s in args.smoothing:
            cells = []
            for shrinkage in ("uniform", "pooled"):
                fit = DawidSkene(smoothing=s, shrinkage=shrinkage).fit(ann)
                top = np.bincount(fit.labels_, minlength=ann.n_classes).max() / ann.n_items
                acc = float((fit.labels_ == truth)[known].mean())
                cells.append(f"{top:.2f} / {acc:.4f} / {fit.n_iter_}")
            print(f"| {name} | {per:.1f} | {s:g} | " + " | ".join(cells) + " |")
    print(
        f"\nCommand: python benchmarks/ds_shrinkage.py --smoothing {' '.join(f'{s:g}' for s in args.smoothing)}"
        f" ({time.time() - t0:.0f} s)"
    )


if __name__ == "__main__":
    main()
