"""Private simulation helper of the aggregation tests (Dawid-Skene generative model)."""

from __future__ import annotations

import numpy as np

from crowdlearn.annotations import Annotations


def random_confusions(rng: np.random.Generator, n_annotators: int, n_classes: int, diag: float = 0.7) -> np.ndarray:
    """(M, K, K) column-stochastic: ``diag`` on the diagonal plus Dirichlet noise."""
    noise = rng.dirichlet(np.ones(n_classes), size=(n_annotators, n_classes)).transpose(0, 2, 1)
    return (1 - diag) * noise + diag * np.eye(n_classes)[None]


def simulate(
    n_items: int,
    confusions: np.ndarray,
    labels_per_item: int,
    seed: int = 0,
    priors: np.ndarray | None = None,
) -> tuple[Annotations, np.ndarray]:
    """Each item labelled by ``labels_per_item`` distinct random annotators; returns (annotations, truth)."""
    rng = np.random.default_rng(seed)
    M, K, _ = confusions.shape
    truth = rng.choice(K, size=n_items, p=priors)
    # distinct annotators per item: ranks of random keys, O(n_items * M) only in this small helper
    keys = rng.random((n_items, M))
    annotators = np.argsort(keys, axis=1)[:, :labels_per_item].reshape(-1)
    items = np.repeat(np.arange(n_items), labels_per_item)
    cum = confusions[annotators, :, truth[items]].cumsum(axis=1)
    labels = np.minimum((rng.random(len(items))[:, None] > cum).sum(axis=1), K - 1)
    ann = Annotations(items, annotators, labels, n_items=n_items, n_annotators=M, n_classes=K)
    return ann, truth


def empirical_confusions(ann: Annotations, truth: np.ndarray) -> np.ndarray:
    """(M, K, K) column-stochastic confusion counts against the truth (uniform empty columns)."""
    M, K = ann.n_annotators, ann.n_classes
    counts = np.zeros((M, K, K))
    np.add.at(counts, (ann.annotators, ann.labels, truth[ann.items]), 1.0)
    tot = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, tot, out=np.full_like(counts, 1.0 / K), where=tot > 0)
