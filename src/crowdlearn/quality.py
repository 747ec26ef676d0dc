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

Agreement beyond alpha (all on the observed labels; a pair of labels is two labels of one item
by two annotators):

* :func:`fleiss_kappa`: Fleiss' kappa, generalised to items with unequal numbers of labels.
* :func:`cohen_kappa_pairs`: Cohen's kappa of every pair of annotators that share items.
* :func:`percent_agreement`: share of agreeing label pairs (overall, per item or per annotator).
* :func:`agreement_summary`: all of them at once (what ``crowdlearn quality`` prints).

Items and annotators with a model or an aggregator (:mod:`crowdlearn.quality` continues in
:func:`item_scores`, :func:`crowdlab`, :func:`waum`, :func:`relabel_ranking`,
:func:`filter_ambiguous` and :func:`annotator_scores`). See docs/quality.md.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.stats import entropy

from crowdlearn.annotations import Annotations

__all__ = [
    "AgreementSummary",
    "accuracy_on_aggregates",
    "agreement_summary",
    "alpha_krippendorff",
    "cohen_kappa_pairs",
    "consistency",
    "fleiss_kappa",
    "label_pairs",
    "one_coin_label_probabilities",
    "percent_agreement",
    "uncertainty",
]

Level = Literal["nominal", "ordinal", "interval", "ratio"]

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


def _class_values(annotations: Annotations, values: npt.ArrayLike | None, level: str) -> FloatArray:
    """Numeric value of every class (interval and ratio levels): ``values`` or the class ids."""
    K = annotations.n_classes
    if values is not None:
        v = np.asarray(values, dtype=np.float64)
        if v.shape != (K,):
            raise ValueError(f"values must have shape ({K},) (one number per class), got {v.shape}")
        if not np.isfinite(v).all():
            pos = int(np.flatnonzero(~np.isfinite(v))[0])
            raise ValueError(f"values[{pos}] = {v[pos]} is not a finite number")
        return v
    try:
        return np.asarray([float(c) for c in annotations.classes.tolist()], dtype=np.float64)
    except (TypeError, ValueError):
        bad = next(c for c in annotations.classes.tolist() if not _is_number(c))
        raise ValueError(
            f"level={level!r} needs numeric classes, but class {bad!r} is not a number; "
            "pass values=[one number per class] (in class-index order)"
        ) from None


def _is_number(c: Any) -> bool:
    try:
        float(c)
    except (TypeError, ValueError):
        return False
    return True


def _coincidences(annotations: Annotations) -> FloatArray:
    r"""Krippendorff's coincidence matrix ``o`` (K, K) of the items with at least two labels.

    :math:`o_{ck} = \sum_u \frac{f_{uc} f_{uk} - [c = k] f_{uc}}{n_u - 1}`: every ordered pair of
    labels of one item counted once, weighted by ``1 / (n_u - 1)``. Costs O(n_labels + n_items K
    + n_items K^2 / chunk) through the (n_items, K) vote counts, never items x annotators.
    """
    f = annotations.vote_counts()
    n = f.sum(axis=1)
    valid = n >= 2
    fv, nv = f[valid], n[valid]
    w = fv / (nv - 1.0)[:, None]
    o: FloatArray = w.T @ fv - np.diag(w.sum(axis=0))
    return o


def alpha_krippendorff(
    annotations: Annotations,
    distance: Callable[[Hashable, Hashable], float] | npt.ArrayLike | None = None,
    *,
    level: Level = "nominal",
    values: npt.ArrayLike | None = None,
) -> float:
    r"""Krippendorff's alpha: :math:`1 - D_o / D_e`.

    With the coincidence matrix :math:`o_{ck} = \sum_u (f_{uc} f_{uk} - [c=k] f_{uc}) / (n_u - 1)`
    over the items :math:`u` with :math:`n_u \ge 2` labels (:math:`f_{uc}` labels ``c`` on item
    ``u``), :math:`n_c = \sum_k o_{ck}`, :math:`n = \sum_c n_c` and the difference function
    :math:`\delta^2_{ck}`,
    :math:`\alpha = 1 - (n - 1) \frac{\sum_{ck} o_{ck} \delta^2_{ck}}{\sum_{ck} n_c n_k \delta^2_{ck}}`
    (Krippendorff, "Computing Krippendorff's Alpha-Reliability", 2011; the same sums as NLTK's
    ``AnnotationTask`` for the nominal level). Items with one label are not pairable and do not
    count.

    Levels (the difference functions of the 2011 paper):

    * ``"nominal"``: :math:`\delta^2_{ck} = [c \ne k]`.
    * ``"ordinal"``: classes ranked in class-index order,
      :math:`\delta^2_{ck} = (\sum_{g=c}^{k} n_g - (n_c + n_k) / 2)^2`.
    * ``"interval"``: :math:`(v_c - v_k)^2` with :math:`v` the class values.
    * ``"ratio"``: :math:`((v_c - v_k) / (v_c + v_k))^2`.

    Parameters
    ----------
    annotations : Annotations
    distance : callable, array-like of shape (n_classes, n_classes) or None
        ``distance(class_a, class_b)`` on class ids, or the matrix by class index; overrides
        ``level``. Default: the difference function of ``level``.
    level : {"nominal", "ordinal", "interval", "ratio"}, default="nominal"
    values : array-like of shape (n_classes,), optional
        Numeric value of each class (interval / ratio); default: the class ids as numbers (an
        error when a class id is not a number).

    Returns
    -------
    float
        1 for perfect agreement; 1 as well when only one class occurs on the scored items.

    Examples
    --------
    >>> ann = Annotations([0, 0, 1, 1, 2, 2], [0, 1, 0, 1, 0, 1], [0, 0, 1, 1, 1, 0])
    >>> round(alpha_krippendorff(ann), 3)
    0.444
    """
    K = annotations.n_classes
    if K == 0:
        raise ValueError("Krippendorff's alpha needs labels; the annotations have none")
    if level not in ("nominal", "ordinal", "interval", "ratio"):
        raise ValueError(f"level must be 'nominal', 'ordinal', 'interval' or 'ratio', got {level!r}")
    if K == 1:
        return 1.0
    o = _coincidences(annotations)
    nc = o.sum(axis=1)
    if np.count_nonzero(nc) <= 1:
        return 1.0
    if distance is not None:
        if callable(distance):
            cl = annotations.classes.tolist()
            D = np.array([[float(distance(a, b)) for b in cl] for a in cl])
        else:
            D = np.asarray(distance, dtype=np.float64)
            if D.shape != (K, K):
                raise ValueError(f"distance must have shape ({K}, {K}), got {D.shape}")
    elif level == "nominal":
        D = 1.0 - np.eye(K)
    elif level == "ordinal":
        cum = np.concatenate([[0.0], np.cumsum(nc)])
        lo = np.minimum.outer(np.arange(K), np.arange(K))
        hi = np.maximum.outer(np.arange(K), np.arange(K))
        D = (cum[hi + 1] - cum[lo] - (nc[:, None] + nc[None, :]) / 2.0) ** 2
    else:
        v = _class_values(annotations, values, level)
        diff = v[:, None] - v[None, :]
        if level == "interval":
            D = diff**2
        else:
            s = v[:, None] + v[None, :]
            D = np.divide(diff, s, out=np.zeros((K, K)), where=s != 0) ** 2
    n = float(nc.sum())
    de = float(nc @ D @ nc)
    if de == 0.0:
        return 1.0
    return 1.0 - (n - 1.0) * float((o * D).sum()) / de


def label_pairs(annotations: Annotations) -> tuple[IntArray, IntArray]:
    """Positions ``(first, second)`` of every unordered pair of labels on the same item.

    Two labels of one item are by two annotators (an (item, annotator) pair is unique). There
    are ``sum_n c_n (c_n - 1) / 2`` pairs for ``c_n`` labels on item ``n``: O(labels x labels per
    item), never items x annotators.

    Returns
    -------
    first, second : ndarray of int64 of shape (n_pairs,)
        Label positions (into ``annotations.items`` etc.), ``first`` before ``second`` in the
        item's label order.
    """
    order = annotations.by_item.order
    counts = annotations.item_counts
    starts = annotations.by_item.indptr[:-1]
    sizes = np.repeat(counts, counts)
    offset = np.arange(annotations.n_labels, dtype=np.int64) - np.repeat(starts, counts)
    n_after = sizes - 1 - offset
    total = int(n_after.sum())
    if total == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    a = np.repeat(np.arange(annotations.n_labels, dtype=np.int64), n_after)
    within = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(n_after) - n_after, n_after)
    b = a + 1 + within
    return order[a], order[b]


def percent_agreement(
    annotations: Annotations, *, by: Literal["item", "annotator"] | None = None
) -> float | FloatArray:
    """Raw (percent) agreement: the share of label pairs of one item that agree.

    Parameters
    ----------
    annotations : Annotations
    by : {None, "item", "annotator"}, default=None
        ``None``: the mean over the items with at least two labels of each item's share of
        agreeing pairs (the observed agreement :math:`\\bar P` of Fleiss' kappa). ``"item"``:
        that share per item, shape (n_items,), ``nan`` for items with fewer than two labels.
        ``"annotator"``: per annotator, the share of its labels' pairs (with the other labels
        of the same items) that agree, shape (n_annotators,), ``nan`` without such a pair.

    Examples
    --------
    >>> ann = Annotations([0, 0, 0, 1, 1], [0, 1, 2, 0, 1], [1, 1, 0, 0, 0])
    >>> float(percent_agreement(ann))  # item 0: 1 of 3 pairs, item 1: 1 of 1
    0.6666666666666666
    """
    if by not in (None, "item", "annotator"):
        raise ValueError(f"by must be None, 'item' or 'annotator', got {by!r}")
    first, second = label_pairs(annotations)
    agree = (annotations.labels[first] == annotations.labels[second]).astype(np.float64)
    if by == "annotator":
        M = annotations.n_annotators
        hits = np.bincount(annotations.annotators[first], weights=agree, minlength=M) + np.bincount(
            annotations.annotators[second], weights=agree, minlength=M
        )
        tot = np.bincount(annotations.annotators[first], minlength=M) + np.bincount(
            annotations.annotators[second], minlength=M
        )
        out: FloatArray = np.divide(hits, tot, out=np.full(M, np.nan), where=tot > 0)
        return out
    N = annotations.n_items
    item = annotations.items[first]
    hits = np.bincount(item, weights=agree, minlength=N)
    tot = np.bincount(item, minlength=N).astype(np.float64)
    per_item: FloatArray = np.divide(hits, tot, out=np.full(N, np.nan), where=tot > 0)
    if by == "item":
        return per_item
    scored = tot > 0
    return float(per_item[scored].mean()) if scored.any() else float("nan")


def fleiss_kappa(annotations: Annotations) -> float:
    r"""Fleiss' kappa (Fleiss 1971), generalised to items with unequal numbers of labels.

    Over the items with :math:`n_i \ge 2` labels, :math:`f_{ik}` of them of class ``k``:
    :math:`P_i = \sum_k f_{ik} (f_{ik} - 1) / (n_i (n_i - 1))` (the share of agreeing pairs of
    item ``i``), :math:`\bar P` the plain mean of :math:`P_i` over those items, :math:`p_k` the
    share of class ``k`` among all their labels, :math:`\bar P_e = \sum_k p_k^2` and
    :math:`\kappa = (\bar P - \bar P_e) / (1 - \bar P_e)`. With the same number of labels on
    every item this is exactly Fleiss' kappa; with unequal numbers every item counts once in
    :math:`\bar P` (not in proportion to its pairs) and every label once in :math:`p_k`. Items
    with a single label are not scored (they hold no pair).

    Returns
    -------
    float
        ``nan`` when no item has two labels or when :math:`\bar P_e = 1` (one class only:
        kappa is undefined, although the agreement is perfect).

    Examples
    --------
    >>> ann = Annotations([0, 0, 1, 1], [0, 1, 0, 1], [0, 0, 1, 0])
    >>> round(fleiss_kappa(ann), 3)  # P = (1 + 0) / 2, Pe = 0.75^2 + 0.25^2
    -0.333
    """
    f = annotations.vote_counts()
    n = f.sum(axis=1)
    valid = n >= 2
    if not valid.any():
        return float("nan")
    fv, nv = f[valid], n[valid]
    p_i = ((fv * (fv - 1.0)).sum(axis=1)) / (nv * (nv - 1.0))
    p_bar = float(p_i.mean())
    p_k = fv.sum(axis=0) / float(nv.sum())
    pe = float((p_k**2).sum())
    if pe >= 1.0:
        return float("nan")
    return (p_bar - pe) / (1.0 - pe)


def cohen_kappa_pairs(annotations: Annotations, *, min_overlap: int = 1) -> pd.DataFrame:
    r"""Cohen's kappa of every pair of annotators who labelled at least ``min_overlap`` common items.

    For annotators ``a`` and ``b`` on their shared items: :math:`p_o` the share of items they
    label alike, :math:`p_e = \sum_k p^a_k p^b_k` with :math:`p^a_k` the share of ``a``'s labels
    *on the shared items* that are ``k``, and :math:`\kappa = (p_o - p_e) / (1 - p_e)`
    (Cohen 1960). Sparse: only pairs that share items appear (built from :func:`label_pairs`,
    never an annotators x annotators or items x annotators array).

    Parameters
    ----------
    annotations : Annotations
    min_overlap : int >= 1, default=1
        Fewest shared items for a pair to be listed.

    Returns
    -------
    DataFrame
        One row per pair, ordered by ``annotator_a`` then ``annotator_b`` (index order, a < b),
        columns ``annotator_a``, ``annotator_b`` (ids), ``n_shared``, ``agreement``
        (:math:`p_o`), ``expected`` (:math:`p_e`) and ``kappa`` (``nan`` where
        :math:`p_e = 1`: both used one and the same class only).
    """
    if isinstance(min_overlap, bool) or not isinstance(min_overlap, int | np.integer) or min_overlap < 1:
        raise ValueError(f"min_overlap must be an integer >= 1, got {min_overlap!r}")
    K = annotations.n_classes
    first, second = label_pairs(annotations)
    a1, a2 = annotations.annotators[first], annotations.annotators[second]
    l1, l2 = annotations.labels[first], annotations.labels[second]
    swap = a1 > a2
    a1, a2 = np.where(swap, a2, a1), np.where(swap, a1, a2)
    l1, l2 = np.where(swap, l2, l1), np.where(swap, l1, l2)
    columns = ["annotator_a", "annotator_b", "n_shared", "agreement", "expected", "kappa"]
    if a1.size == 0:
        return pd.DataFrame({c: [] for c in columns})
    M = max(annotations.n_annotators, 1)
    key = a1 * M + a2
    pairs, inv, n_shared = np.unique(key, return_inverse=True, return_counts=True)
    keep = n_shared >= min_overlap
    P = len(pairs)
    agree = np.bincount(inv, weights=(l1 == l2).astype(np.float64), minlength=P)
    # class marginals of each side on the shared items, (P, K), from (pair, class) bincounts
    ma = np.bincount(inv * K + l1, minlength=P * K).reshape(P, K).astype(np.float64)
    mb = np.bincount(inv * K + l2, minlength=P * K).reshape(P, K).astype(np.float64)
    n = n_shared.astype(np.float64)
    po = agree / n
    pe = (ma * mb).sum(axis=1) / (n * n)
    kappa = np.divide(po - pe, 1.0 - pe, out=np.full(P, np.nan), where=pe < 1.0)
    pa, pb = pairs // M, pairs % M
    return pd.DataFrame(
        {
            "annotator_a": annotations.annotator_ids[pa[keep]],
            "annotator_b": annotations.annotator_ids[pb[keep]],
            "n_shared": n_shared[keep].astype(np.int64),
            "agreement": po[keep],
            "expected": pe[keep],
            "kappa": kappa[keep],
        }
    )


@dataclass(frozen=True)
class AgreementSummary:
    """Every agreement measure of one crowd (:func:`agreement_summary`).

    Attributes
    ----------
    alpha : dict of str to float
        Krippendorff's alpha per level (``"nominal"``, and ``"ordinal"``/``"interval"`` when
        asked for).
    fleiss_kappa : float
    percent_agreement : float
    mean_cohen_kappa : float
        Mean of the pairwise Cohen's kappas, weighted by the shared items (pairs with a defined
        kappa and at least ``min_overlap`` shared items); ``nan`` without such a pair.
    n_annotator_pairs : int
        Pairs of annotators in that mean.
    n_items_scored : int
        Items with at least two labels (the only ones agreement is measured on).
    """

    alpha: dict[str, float]
    fleiss_kappa: float
    percent_agreement: float
    mean_cohen_kappa: float
    n_annotator_pairs: int
    n_items_scored: int

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (JSON-serialisable)."""
        return {
            "alpha": dict(self.alpha),
            "fleiss_kappa": self.fleiss_kappa,
            "percent_agreement": self.percent_agreement,
            "mean_cohen_kappa": self.mean_cohen_kappa,
            "n_annotator_pairs": self.n_annotator_pairs,
            "n_items_scored": self.n_items_scored,
        }


def agreement_summary(
    annotations: Annotations,
    *,
    levels: tuple[Level, ...] = ("nominal",),
    values: npt.ArrayLike | None = None,
    min_overlap: int = 5,
) -> AgreementSummary:
    """Krippendorff's alpha (each of ``levels``), Fleiss' kappa, raw agreement, mean Cohen's kappa.

    Parameters
    ----------
    annotations : Annotations
    levels : tuple of {"nominal", "ordinal", "interval", "ratio"}, default=("nominal",)
    values : array-like of shape (n_classes,), optional
        Class values for the interval / ratio levels (see :func:`alpha_krippendorff`).
    min_overlap : int, default=5
        Fewest shared items of an annotator pair in the mean Cohen's kappa.
    """
    pairs = cohen_kappa_pairs(annotations, min_overlap=min_overlap)
    ok = pairs[np.isfinite(pairs["kappa"].to_numpy(dtype=np.float64))]
    w = ok["n_shared"].to_numpy(dtype=np.float64)
    mean_kappa = float((ok["kappa"].to_numpy(dtype=np.float64) * w).sum() / w.sum()) if len(ok) else float("nan")
    return AgreementSummary(
        alpha={lv: alpha_krippendorff(annotations, level=lv, values=values) for lv in levels},
        fleiss_kappa=fleiss_kappa(annotations),
        percent_agreement=float(percent_agreement(annotations)),
        mean_cohen_kappa=mean_kappa,
        n_annotator_pairs=len(ok),
        n_items_scored=int((annotations.item_counts >= 2).sum()),
    )
