"""Data and annotator quality measures computed from the labels alone (no model, no truth).

All work on the observed (item, annotator, label) triples of an
:class:`~crowdlearn.annotations.Annotations` object, in O(n_labels * n_classes) time and memory
(never items x annotators):

* :func:`accuracy_on_aggregates`: share of labels equal to an aggregated (or gold) label.
* :func:`consistency`: posterior of the aggregated label under a one-coin annotator model.
* :func:`uncertainty`: entropy of the skill-weighted label distribution of each item / annotator.
* :func:`alpha_krippendorff`: Krippendorff's alpha inter-annotator agreement.

These are the data/worker metrics of crowd-kit (``crowdkit.metrics``); the crowd-kit layout of
them is :mod:`crowdlearn.compat.crowdkit.metrics`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy.stats import entropy

from crowdlearn.annotations import Annotations

__all__ = ["accuracy_on_aggregates", "alpha_krippendorff", "consistency", "one_coin_label_probabilities", "uncertainty"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def _accepted(
    aggregates: npt.ArrayLike, ann: Annotations, name: str
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """(hit, scored) per label from class indices (n_items,) or an accepted-classes mask (n_items, K)."""
    a = np.asarray(aggregates)
    if a.ndim == 2:
        if a.shape != (ann.n_items, ann.n_classes) or a.dtype != bool:
            raise ValueError(
                f"{name} as a mask must be bool of shape ({ann.n_items}, {ann.n_classes}), "
                f"got dtype {a.dtype} and shape {a.shape}"
            )
        mask = np.asarray(a, dtype=bool)
        scored: npt.NDArray[np.bool_] = np.asarray(mask.any(axis=1), dtype=bool)[ann.items]
        hit: npt.NDArray[np.bool_] = mask[ann.items, ann.labels]
        return hit, scored
    agg = _item_classes(a, ann, name)
    known = agg[ann.items]
    scored = known >= 0
    return (ann.labels == known) & scored, scored


def _item_classes(aggregates: npt.ArrayLike, ann: Annotations, name: str) -> IntArray:
    a = np.asarray(aggregates)
    if a.shape != (ann.n_items,) or a.dtype.kind not in "iu":
        raise ValueError(
            f"{name} must be an int array of shape ({ann.n_items},) (class index per item, -1 for none); "
            f"got dtype {a.dtype} and shape {a.shape}"
        )
    bad = (a < -1) | (a >= ann.n_classes)
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name}[{pos}] = {int(a[pos])} is not a class index in [0, {ann.n_classes}) or -1")
    return a.astype(np.int64)


def _skills(skills: npt.ArrayLike, ann: Annotations) -> FloatArray:
    s = np.asarray(skills, dtype=np.float64)
    if s.shape != (ann.n_annotators,):
        raise ValueError(f"skills must have shape ({ann.n_annotators},) (one per annotator), got {s.shape}")
    return s


def accuracy_on_aggregates(
    annotations: Annotations, aggregates: npt.ArrayLike, *, by: Literal["annotator", "item"] | None = None
) -> float | FloatArray:
    """Share of labels that equal the item's aggregated (or gold) class.

    Parameters
    ----------
    annotations : Annotations
    aggregates : array-like of int of shape (n_items,), or bool of shape (n_items, n_classes)
        Class index of each item, ``-1`` where there is none (those items' labels are not
        scored); or a mask of the accepted classes of each item (several gold answers: a label
        is right when its class is accepted; items with no accepted class are not scored).
    by : {None, "annotator", "item"}, default=None
        ``None``: one share over all scored labels. ``"annotator"``: per annotator, shape
        (n_annotators,). ``"item"``: per item, shape (n_items,).

    Returns
    -------
    float or ndarray
        The share; ``nan`` where nothing is scored (no label on an item with an aggregate).

    Examples
    --------
    >>> ann = Annotations([0, 0, 1], [0, 1, 0], [1, 0, 0])
    >>> accuracy_on_aggregates(ann, [1, 0], by="annotator").tolist()
    [1.0, 0.0]
    """
    hit, scored = _accepted(aggregates, annotations, "aggregates")
    if by is None:
        n = int(scored.sum())
        return float(hit.sum() / n) if n else float("nan")
    if by not in ("annotator", "item"):
        raise ValueError(f"by must be None, 'annotator' or 'item', got {by!r}")
    keys, size = (
        (annotations.annotators, annotations.n_annotators)
        if by == "annotator"
        else (annotations.items, annotations.n_items)
    )
    hits = np.bincount(keys, weights=hit.astype(np.float64), minlength=size)
    tot = np.bincount(keys, weights=scored.astype(np.float64), minlength=size)
    out: FloatArray = np.divide(hits, tot, out=np.full(size, np.nan), where=tot > 0)
    return out


def one_coin_label_probabilities(annotations: Annotations, skills: npt.ArrayLike) -> FloatArray:
    """``P(label | true class k)`` of every label under the one-coin model, shape (n_labels, K).

    Annotator ``m`` is right with probability ``skills[m]`` and otherwise picks one of the other
    ``K - 1`` classes uniformly: the row of label ``(n, m, y)`` is ``skills[m]`` at ``y`` and
    ``(1 - skills[m]) / (K - 1)`` elsewhere.
    """
    s = _skills(skills, annotations)[annotations.annotators]
    K = annotations.n_classes
    p = np.repeat(((1.0 - s) / max(K - 1, 1))[:, None], K, axis=1)
    p[np.arange(annotations.n_labels), annotations.labels] = s
    return p


def _grouped(
    values: FloatArray, keys: IntArray, n_groups: int, reduce: Any
) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """Row-wise ``reduce`` (np.multiply / np.add) of ``values`` within each key, in input order."""
    order = np.argsort(keys, kind="stable")
    k = keys[order]
    present = np.zeros(n_groups, dtype=bool)
    out = np.zeros((n_groups, values.shape[1]))
    if k.size:
        starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
        out[k[starts]] = reduce.reduceat(values[order], starts, axis=0)
        present[k[starts]] = True
    return out, present


def consistency(
    annotations: Annotations, skills: npt.ArrayLike, aggregates: npt.ArrayLike, *, by_item: bool = False
) -> float | FloatArray:
    r"""Posterior probability of each item's aggregated class under the one-coin model.

    With :math:`p_{lk}` from :func:`one_coin_label_probabilities`,
    :math:`L_{nk} = \prod_{l \in n} p_{lk}` (uniform class prior) and the consistency of item
    :math:`n` is :math:`L_{n, a_n} / \sum_k L_{nk}` (0 where the sum is 0), :math:`a_n` its
    aggregated class. This is crowd-kit's ``consistency`` (products in label order, as it does).

    Parameters
    ----------
    annotations : Annotations
    skills : array-like of shape (n_annotators,)
        Probability that each annotator is right.
    aggregates : array-like of int of shape (n_items,)
        Aggregated class index of each item (``-1``: not scored).
    by_item : bool, default=False
        Return the per-item values (shape (n_items,), ``nan`` for items without labels or
        aggregate) instead of their mean over the scored items.
    """
    agg = _item_classes(aggregates, annotations, "aggregates")
    p = one_coin_label_probabilities(annotations, skills)
    L, present = _grouped(p, annotations.items, annotations.n_items, np.multiply)
    scored = present & (agg >= 0)
    denom = L.sum(axis=1)
    picked = L[np.arange(annotations.n_items), np.maximum(agg, 0)]
    per_item = np.divide(picked, denom, out=np.zeros(annotations.n_items), where=denom != 0)
    per_item[~scored] = np.nan
    if by_item:
        out: FloatArray = per_item
        return out
    return float(np.mean(per_item[scored])) if scored.any() else float("nan")


def uncertainty(
    annotations: Annotations,
    skills: npt.ArrayLike | None = None,
    *,
    by: Literal["item", "annotator"] = "item",
    aggregate: bool = True,
) -> float | FloatArray:
    r"""Entropy of the skill-weighted label distribution of each item (or annotator).

    The one-coin label probabilities (:func:`one_coin_label_probabilities`; every skill 1 when
    ``skills`` is None, i.e. plain vote shares) are summed over each item's (annotator's)
    labels, normalised, and their entropy :math:`-\sum_k q_k \log q_k` (natural log) taken.
    0 means full agreement; ``log K`` a uniform split.

    Parameters
    ----------
    annotations : Annotations
    skills : array-like of shape (n_annotators,), optional
        Probability that each annotator is right (default: 1 for all).
    by : {"item", "annotator"}, default="item"
    aggregate : bool, default=True
        Return the mean over the groups with labels, or the per-group entropies (shape
        (n_items,) or (n_annotators,), ``nan`` for groups without labels).
    """
    if by not in ("item", "annotator"):
        raise ValueError(f"by must be 'item' or 'annotator', got {by!r}")
    s = np.ones(annotations.n_annotators) if skills is None else _skills(skills, annotations)
    p = one_coin_label_probabilities(annotations, s)
    keys, size = (
        (annotations.items, annotations.n_items) if by == "item" else (annotations.annotators, annotations.n_annotators)
    )
    S, present = _grouped(p, keys, size, np.add)
    ent = np.full(size, np.nan)
    if present.any():
        rows = S[present]
        # crowd-kit's normalisation (sum + 1e-6) before scipy's own: kept for identical values
        ent[present] = entropy(rows / (rows.sum(axis=1, keepdims=True) + 1e-6), axis=1)
    if not aggregate:
        return ent
    return float(np.mean(ent[present])) if present.any() else float("nan")


def alpha_krippendorff(
    annotations: Annotations, distance: Callable[[Hashable, Hashable], float] | npt.ArrayLike | None = None
) -> float:
    r"""Krippendorff's alpha: :math:`1 - D_o / D_e`.

    With :math:`f_{nk}` the number of labels ``k`` on item ``n``, :math:`n_n = \sum_k f_{nk}`
    and :math:`\delta` the distance between classes, items with at least two labels give the
    observed disagreement
    :math:`D_o = \sum_n \frac{f_n^\top \delta f_n}{n_n - 1} / \sum_n n_n`
    and the expected one :math:`D_e = \frac{F^\top \delta F}{N (N - 1)}` with
    :math:`F = \sum_n f_n`, :math:`N = \sum_n n_n` (the same sums as NLTK's ``AnnotationTask``).

    Reference: K. Krippendorff, "Content Analysis: An Introduction to Its Methodology", 1980.

    Parameters
    ----------
    annotations : Annotations
    distance : callable, array-like of shape (n_classes, n_classes) or None
        ``distance(class_a, class_b)`` on class ids, or the matrix by class index. Default:
        nominal, 0 for equal classes and 1 otherwise.

    Returns
    -------
    float
        1 for perfect agreement; 1 as well when only one class occurs on the scored items.
    """
    K = annotations.n_classes
    if K == 0:
        raise ValueError("Krippendorff's alpha needs labels; the annotations have none")
    if distance is None:
        D = 1.0 - np.eye(K)
    elif callable(distance):
        cl = annotations.classes.tolist()
        D = np.array([[float(distance(a, b)) for b in cl] for a in cl])
    else:
        D = np.asarray(distance, dtype=np.float64)
        if D.shape != (K, K):
            raise ValueError(f"distance must have shape ({K}, {K}), got {D.shape}")
    if K == 1:
        return 1.0
    f = annotations.vote_counts()
    n = f.sum(axis=1)
    valid = n >= 2
    fv, nv = f[valid], n[valid]
    F = fv.sum(axis=0)
    if np.count_nonzero(F) <= 1:
        return 1.0
    total = float(nv.sum())
    do = float(((np.einsum("nk,kl,nl->n", fv, D, fv) / (nv * (nv - 1))) * nv).sum()) / total
    de = float(F @ D @ F) / (total * (total - 1))
    return 1.0 - do / de
