"""The small crowd the trainer tests share (also imported by the spawned DDP workers)."""

from __future__ import annotations

import numpy as np

from crowdlearn.annotations import Annotations


def toy(seed: int = 0, n: int = 120, m: int = 4, k: int = 3) -> tuple[np.ndarray, np.ndarray, Annotations]:
    """Items with 5 features, 2 labels each by ``m`` annotators (70% correct)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    x = rng.normal(size=(n, 5)) + 2.0 * np.eye(k, 5)[y]
    items, anns, labels = [], [], []
    for i in range(n):
        for a in rng.choice(m, size=2, replace=False):
            items.append(i)
            anns.append(a)
            labels.append(y[i] if rng.random() < 0.7 else rng.integers(0, k))
    return x, y, Annotations(items, anns, labels, n_items=n, n_annotators=m, n_classes=k)
