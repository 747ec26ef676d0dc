"""Quality control: agreement, item and annotator quality, from the labels and optionally a model.

All work on the observed (item, annotator, label) triples of an
:class:`~crowdlearn.annotations.Annotations` object, in O(n_labels * n_classes) time and memory
(never items x annotators; :func:`cohen_kappa_pairs` lists the label pairs of each item):

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

Items and annotators, from an aggregator's posteriors and/or a classifier's predictions:

* :func:`item_scores`: consensus, posterior confidence, entropy, agreement with the consensus.
* :func:`waum`: weighted area under the margin (ambiguity) from a trained model's per-epoch
  margins (:class:`crowdlearn.train.MarginRecorder`) and its confusions.
* :func:`relabel_ranking`: the items to send back for labelling, most doubtful first.
* :func:`filter_ambiguous`: drop the most ambiguous items before training (kept / dropped).
* :func:`crowdlab`: CROWDLAB-style consensus and quality scores of a model and the crowd.
* :func:`annotator_scores`: agreement, accuracy, spammer score, worst class (and CROWDLAB quality).

What to label next and by whom (:func:`suggest_queries`, :func:`activelab_scores`,
:func:`best_annotators`, :func:`crowd_posteriors`) lives in :mod:`crowdlearn.active` and is
re-exported here (imported on first use: :mod:`crowdlearn.active` builds on the aggregators,
which import this module). See docs/quality.md and docs/active.md.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.stats import entropy

from crowdlearn._checks import show
from crowdlearn.annotations import Annotations

if TYPE_CHECKING:  # imported on first use at run time (module __getattr__ below)
    from crowdlearn.active import activelab_scores, best_annotators, crowd_posteriors, suggest_queries

__all__ = [
    "AgreementSummary",
    "CrowdlabResult",
    "FilterResult",
    "accuracy_on_aggregates",
    "activelab_scores",
    "agreement_summary",
    "alpha_krippendorff",
    "annotator_scores",
    "best_annotators",
    "cohen_kappa_pairs",
    "consistency",
    "crowd_posteriors",
    "crowdlab",
    "filter_ambiguous",
    "fleiss_kappa",
    "item_scores",
    "label_pairs",
    "one_coin_label_probabilities",
    "percent_agreement",
    "relabel_ranking",
    "soft_confusions",
    "suggest_queries",
    "uncertainty",
    "waum",
]

_ACTIVE = ("activelab_scores", "best_annotators", "crowd_posteriors", "suggest_queries")


def __getattr__(name: str) -> Any:
    """The active-learning functions of :mod:`crowdlearn.active`, imported on first use."""
    if name in _ACTIVE:
        from crowdlearn import active

        return getattr(active, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    agg = ann.item_class_indices(a, name)
    known = agg[ann.items]
    scored = known >= 0
    return (ann.labels == known) & scored, scored


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
    agg = annotations.item_class_indices(aggregates, "aggregates")
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
    f = annotations.vote_counts()
    n = f.sum(axis=1)
    valid = n >= 2
    fv, nv = f[valid], n[valid]
    F = fv.sum(axis=0)  # n_c: the pairable values of each class
    if np.count_nonzero(F) <= 1:
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
        cum = np.concatenate([[0.0], np.cumsum(F)])
        lo = np.minimum.outer(np.arange(K), np.arange(K))
        hi = np.maximum.outer(np.arange(K), np.arange(K))
        D = (cum[hi + 1] - cum[lo] - (F[:, None] + F[None, :]) / 2.0) ** 2
    else:
        v = _class_values(annotations, values, level)
        diff = v[:, None] - v[None, :]
        if level == "interval":
            D = diff**2
        else:
            s = v[:, None] + v[None, :]
            D = np.divide(diff, s, out=np.zeros((K, K)), where=s != 0) ** 2
    # o_ck summed against delta: f_u^T D f_u / (n_u - 1) per item (D has a zero diagonal), in this
    # order of operations so that the nominal value is bit-identical to crowd-kit's (NLTK's sums)
    total = float(nv.sum())
    do = float(((np.einsum("nk,kl,nl->n", fv, D, fv) / (nv * (nv - 1))) * nv).sum()) / total
    de = float(F @ D @ F) / (total * (total - 1))
    if de == 0.0:
        return 1.0
    return 1.0 - do / de


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
    # from the (n_items, K) vote counts, without listing the pairs: a label of class y on item n
    # agrees with f[n, y] - 1 of the item's n_n - 1 other labels
    f = annotations.vote_counts()
    n = annotations.item_counts.astype(np.float64)
    if by == "annotator":
        M = annotations.n_annotators
        it, an = annotations.items, annotations.annotators
        hits = np.bincount(an, weights=f[it, annotations.labels] - 1.0, minlength=M)
        tot = np.bincount(an, weights=n[it] - 1.0, minlength=M)
        out: FloatArray = np.divide(hits, tot, out=np.full(M, np.nan), where=tot > 0)
        return out
    N = annotations.n_items
    pairs = n * (n - 1.0)
    per_item: FloatArray = np.divide((f * (f - 1.0)).sum(axis=1), pairs, out=np.full(N, np.nan), where=pairs > 0)
    if by == "item":
        return per_item
    scored = pairs > 0
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


# ---------------------------------------------------------------------------------------- items
def _posteriors(posteriors: npt.ArrayLike, ann: Annotations, name: str = "posteriors") -> FloatArray:
    p = np.asarray(posteriors, dtype=np.float64)
    want = (ann.n_items, ann.n_classes)
    if p.shape != want:
        raise ValueError(f"{name} must have shape (n_items, n_classes) = {want}, got {p.shape}")
    bad = ~np.isfinite(p) | (p < 0)
    if bad.any():
        r, c = (int(x[0]) for x in np.nonzero(bad))
        raise ValueError(f"{name}[{r}, {c}] = {p[r, c]} is not a probability (finite, >= 0)")
    sums = p.sum(axis=1)
    off = np.abs(sums - 1.0) > 1e-4
    if off.any():
        r = int(np.flatnonzero(off)[0])
        raise ValueError(f"{name} rows must sum to 1; row {r} sums to {sums[r]:.6g}")
    return p


def _confusions_arg(confusions: npt.ArrayLike, ann: Annotations) -> FloatArray:
    A = np.asarray(confusions, dtype=np.float64)
    want = (ann.n_annotators, ann.n_classes, ann.n_classes)
    if A.shape != want:
        raise ValueError(f"confusions must have shape (n_annotators, n_classes, n_classes) = {want}, got {A.shape}")
    if not np.isfinite(A).all():
        raise ValueError("confusions must be finite")
    return A


def _entropy_rows(p: FloatArray) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, -p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    out: FloatArray = terms.sum(axis=1)
    return out


def item_scores(
    annotations: Annotations,
    posteriors: npt.ArrayLike,
    *,
    proba: npt.ArrayLike | None = None,
    ambiguity: npt.ArrayLike | None = None,
) -> pd.DataFrame:
    """Consensus quality of every item from any aggregator's (or model's) posteriors.

    Parameters
    ----------
    annotations : Annotations
    posteriors : array-like of shape (n_items, n_classes)
        Posterior over the true class of each item: an aggregator's ``probas_`` /
        ``fit_predict_proba``, or :func:`crowdlab`'s ``probas``.
    proba : array-like of shape (n_items, n_classes), optional
        A classifier's ``f(x)`` of the items: adds :func:`crowdlab`'s ``quality`` (the CROWDLAB
        consensus quality score; its consensus replaces the posteriors' argmax).
    ambiguity : array-like of shape (n_items,), optional
        An ambiguity score where lower is more ambiguous (e.g. :func:`waum`), added as column
        ``ambiguity``.

    Returns
    -------
    DataFrame indexed by item id (``annotations.item_ids``), in item-index order, columns
        ``n_labels``; ``consensus`` (class id) and ``consensus_index``; ``confidence`` (the
        consensus class's posterior); ``entropy`` (of the posterior, natural log, 0 = certain,
        ``log K`` = uniform); ``agreement`` (share of the item's labels equal to the consensus,
        ``nan`` without labels); with ``proba``, ``quality``; with ``ambiguity``, ``ambiguity``.
    """
    post = _posteriors(posteriors, annotations)
    consensus = post.argmax(axis=1).astype(np.int64) if annotations.n_items else np.zeros(0, dtype=np.int64)
    quality_col = None
    if proba is not None:
        res = crowdlab(annotations, proba)
        consensus, quality_col = res.consensus, res.consensus_quality
    votes = annotations.vote_counts()
    n = annotations.item_counts.astype(np.float64)
    rows = np.arange(annotations.n_items)
    table = pd.DataFrame(
        {
            "n_labels": annotations.item_counts.astype(np.int64),
            "consensus": annotations.classes[consensus] if annotations.n_items else [],
            "consensus_index": consensus,
            "confidence": post[rows, consensus],
            "entropy": _entropy_rows(post),
            "agreement": np.divide(votes[rows, consensus], n, out=np.full(annotations.n_items, np.nan), where=n > 0),
        },
        index=pd.Index(annotations.item_ids, name="item"),
    )
    if quality_col is not None:
        table["quality"] = quality_col
    if ambiguity is not None:
        amb = np.asarray(ambiguity, dtype=np.float64)
        if amb.shape != (annotations.n_items,):
            raise ValueError(f"ambiguity must have shape ({annotations.n_items},) (one per item), got {amb.shape}")
        table["ambiguity"] = amb
    return table


def relabel_ranking(items: pd.DataFrame, *, by: str | None = None, n: int | None = None) -> pd.DataFrame:
    """Items to send back for labelling, most doubtful first.

    Parameters
    ----------
    items : DataFrame
        From :func:`item_scores`.
    by : str, optional
        The column to rank by, lowest first: default ``"ambiguity"`` when present, else
        ``"quality"`` when present, else ``"confidence"``. ``"entropy"`` ranks highest first.
    n : int, optional
        Keep the first ``n`` rows (default: all).

    Returns
    -------
    DataFrame
        The labelled items (``n_labels > 0``; an item without labels has no consensus to doubt)
        sorted by ``by`` (ties by item order), with a ``rank`` column (1 = most doubtful).
    """
    if by is None:
        by = next(c for c in ("ambiguity", "quality", "confidence") if c in items.columns)
    if by not in items.columns:
        raise ValueError(f"by={by!r} is not a column of the item table (columns: {', '.join(map(str, items.columns))})")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0):
        raise ValueError(f"n must be a non-negative integer or None, got {n!r}")
    labelled = items[items["n_labels"] > 0]
    key = labelled[by].to_numpy(dtype=np.float64)
    if by == "entropy":
        key = -key
    if np.isnan(key).any():
        pos = int(np.flatnonzero(np.isnan(key))[0])
        raise ValueError(f"column {by!r} is NaN for the labelled item {show(labelled.index[pos])}; cannot rank it")
    order = np.argsort(key, kind="stable")
    out = labelled.iloc[order].copy()
    out.insert(0, "rank", np.arange(1, len(out) + 1, dtype=np.int64))
    return out if n is None else out.iloc[: int(n)]


@dataclass(frozen=True)
class FilterResult:
    """What :func:`filter_ambiguous` kept and dropped.

    Attributes
    ----------
    annotations : Annotations
        The labels of the kept items, re-indexed ``0..len(kept)-1`` in ``kept`` order (their ids
        kept); train on ``X[kept]`` with it.
    kept, dropped : ndarray of int64
        Item indices (of the input annotations), ascending; together every item exactly once.
    threshold : float
        The score at or below which labelled items were dropped (``-inf`` when none was).
    """

    annotations: Annotations
    kept: IntArray
    dropped: IntArray
    threshold: float


def filter_ambiguous(annotations: Annotations, scores: npt.ArrayLike, *, fraction: float = 0.05) -> FilterResult:
    """Drop the ``fraction`` of labelled items with the lowest (most ambiguous) score before training.

    As WAUM (Lefort et al., TMLR 2024) prunes the items under a quantile of their weighted AUM.

    Parameters
    ----------
    annotations : Annotations
    scores : array-like of shape (n_items,)
        Lower = more ambiguous (:func:`waum`, ``item_scores(...)["quality"]``, ...). Must be
        finite on every labelled item; items without labels are always kept (nothing to drop).
    fraction : float in [0, 1), default=0.05
        Share of the labelled items to drop: the ``floor(fraction * n_labelled)`` lowest scores
        (ties broken by item order).

    Returns
    -------
    FilterResult
    """
    if isinstance(fraction, bool) or not isinstance(fraction, float | int) or not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be a number in [0, 1), got {fraction!r}")
    sc = np.asarray(scores, dtype=np.float64)
    if sc.shape != (annotations.n_items,):
        raise ValueError(f"scores must have shape ({annotations.n_items},) (one per item), got {sc.shape}")
    labelled = np.flatnonzero(annotations.item_counts > 0)
    bad = ~np.isfinite(sc[labelled])
    if bad.any():
        i = int(labelled[np.flatnonzero(bad)[0]])
        raise ValueError(
            f"scores[{i}] = {sc[i]} (item {show(annotations.item_ids[i])}) is not finite; "
            "every labelled item needs a score"
        )
    k = int(np.floor(float(fraction) * labelled.size))
    order = labelled[np.argsort(sc[labelled], kind="stable")]
    dropped = np.sort(order[:k]).astype(np.int64)
    mask = np.ones(annotations.n_items, dtype=bool)
    mask[dropped] = False
    kept = np.flatnonzero(mask).astype(np.int64)
    return FilterResult(
        annotations=annotations.subset_items(kept),
        kept=kept,
        dropped=dropped,
        threshold=float(sc[order[k - 1]]) if k else float("-inf"),
    )


def waum(
    annotations: Annotations, margins: npt.ArrayLike, proba: npt.ArrayLike, confusions: npt.ArrayLike
) -> FloatArray:
    r"""Weighted area under the margin of every item (after WAUM, Lefort et al., TMLR 2024).

    For label ``y`` of annotator ``m`` on item ``n``, the AUM is ``margins[n, y]``: the mean over
    training epochs of :math:`f_t(x_n)_y - \max_{k \ne y} f_t(x_n)_k` (recorded by
    :class:`crowdlearn.train.MarginRecorder`). Its trust score is
    :math:`s_m(x_n) = \sum_k A_m[k, k] f(x_n)_k` (the annotator's chance of being right on
    this item under the fitted confusions and the final prediction), and
    :math:`\mathrm{WAUM}(x_n) = \sum_m s_m(x_n) \mathrm{AUM}_{nm} / \sum_m s_m(x_n)` over the
    item's labels. Low (negative) values mark items whose labels the model kept contradicting:
    ambiguous or mislabelled items.

    Differences from peerannot's WAUM: the margins come from the one crowd model
    (``CrowdClassifier``'s ``f``, evaluated after every epoch in eval mode) rather than from a
    classifier trained on the duplicated (item, label) pairs, and the confusions are the
    model's ``confusions_`` rather than a separate Dawid-Skene fit.

    Parameters
    ----------
    annotations : Annotations
    margins : array-like of shape (n_items, n_classes)
        Mean margin of every candidate label (``MarginRecorder.aum_``).
    proba : array-like of shape (n_items, n_classes)
        Final class probabilities ``f(x)`` of the items.
    confusions : array-like of shape (n_annotators, n_classes, n_classes)
        ``confusions[m, i, j] = P(m says i | true j)``.

    Returns
    -------
    ndarray of shape (n_items,)
        ``nan`` for items without labels.
    """
    mg = np.asarray(margins, dtype=np.float64)
    want = (annotations.n_items, annotations.n_classes)
    if mg.shape != want:
        raise ValueError(f"margins must have shape (n_items, n_classes) = {want}, got {mg.shape}")
    if not np.isfinite(mg).all():
        raise ValueError("margins must be finite (a margin is a difference of two probabilities)")
    p = _posteriors(proba, annotations, "proba")
    A = _confusions_arg(confusions, annotations)
    diag = np.diagonal(A, axis1=1, axis2=2)  # (M, K)
    it, an, lb = annotations.items, annotations.annotators, annotations.labels
    trust = (diag[an] * p[it]).sum(axis=1)
    aum = mg[it, lb]
    N = annotations.n_items
    num = np.bincount(it, weights=trust * aum, minlength=N)
    den = np.bincount(it, weights=trust, minlength=N)
    out: FloatArray = np.full(N, np.nan)
    has = annotations.item_counts > 0
    # trust 0 for every label of an item (annotators always wrong there): plain mean AUM
    plain = np.bincount(it, weights=aum, minlength=N) / np.maximum(annotations.item_counts, 1)
    out[has] = np.where(den[has] > 0, num[has] / np.where(den[has] > 0, den[has], 1.0), plain[has])
    return out


# ------------------------------------------------------------------------------------ CROWDLAB
@dataclass(frozen=True)
class CrowdlabResult:
    """Consensus and quality scores from a classifier and the crowd (:func:`crowdlab`).

    Attributes
    ----------
    consensus : ndarray of int64 of shape (n_items,)
        Consensus class index (the argmax of ``probas``).
    probas : ndarray of shape (n_items, n_classes)
        The weighted ensemble of the model and the annotators.
    consensus_quality : ndarray of shape (n_items,)
        ``probas[n, consensus[n]]``: the confidence that the consensus is right.
    label_quality : ndarray of shape (n_labels,)
        For every label, the ensemble's probability of it with its own annotator left out.
    annotator_quality : ndarray of shape (n_annotators,)
        ``W * mean label_quality + (1 - W) * agreement_with_consensus`` of each annotator
        (``W`` = ``model_weight / (model_weight + mean annotator weight per item)``); ``nan``
        for annotators without labels.
    agreement_with_consensus : ndarray of shape (n_annotators,)
    model_weight : float
    annotator_weights : ndarray of shape (n_annotators,)
    """

    consensus: IntArray
    probas: FloatArray
    consensus_quality: FloatArray
    label_quality: FloatArray
    annotator_quality: FloatArray
    agreement_with_consensus: FloatArray
    model_weight: float
    annotator_weights: FloatArray


#: Smallest weight of the model or an annotator in :func:`crowdlab` (one worse than the
#: most-common-class baseline would otherwise get a negative weight).
_MIN_WEIGHT = 1e-6


def crowdlab(annotations: Annotations, proba: npt.ArrayLike, *, rounds: int = 2) -> CrowdlabResult:
    r"""Consensus labels and quality scores from a classifier's predictions and the crowd's labels.

    After CROWDLAB (Goh, Tkachenko & Mueller, "CROWDLAB: Supervised learning to infer consensus
    labels and quality scores for data with multiple annotators", NeurIPS 2022 HILL workshop,
    arXiv 2210.06812): a weighted ensemble of the model and the annotators, written here from
    the paper's description (not cleanlab's code), on the observed labels only.

    1. Initial consensus :math:`c_n`: majority vote, ties broken by ``proba``.
    2. Agreement of annotator ``m``: over its labels on items with two or more labels, the mean
       share of the *other* labels of the item equal to its own (:math:`a_m`; annotators
       without such a label get the mean over all such labels).
    3. Against the current consensus :math:`c`, on the items with two or more labels (all
       labelled items when none has two): the baseline :math:`B` (accuracy of always answering
       the most common consensus class), the model's accuracy :math:`A_f`, and :math:`\bar a`,
       the share of those items' labels equal to :math:`c`.
    4. Weights :math:`w_m = 1 - (1 - a_m) / (1 - B)` and
       :math:`w_f = (1 - (1 - A_f) / (1 - B)) \sqrt{\text{mean labels per item}}`, each at
       least 1e-6.
    5. Every label is a one-hot smoothed to :math:`\bar a` (:math:`\bar a` on the label,
       :math:`(1 - \bar a) / (K - 1)` elsewhere); the ensemble is
       :math:`p_n = (w_f f(x_n) + \sum_m w_m L_{nm}) / (w_f + \sum_m w_m)` and the new consensus
       its argmax. Items without labels get :math:`f(x_n)`.
    6. Steps 3-5 run ``rounds`` times (the second round recomputes :math:`B`, :math:`A_f` and
       :math:`\bar a` against the ensemble's consensus).

    With the default ``rounds=2`` the model weight equals cleanlab 2.9's
    (``get_label_quality_multiannotator``) and the consensus and its quality score equal or
    nearly equal cleanlab's on the datasets of docs/benchmarks.md (measured there); cleanlab's
    weights of annotators who share few items differ from these, and the annotator quality
    score (``W`` in :class:`CrowdlabResult`) is our own reading of the paper.

    Parameters
    ----------
    annotations : Annotations
    proba : array-like of shape (n_items, n_classes)
        Out-of-sample class probabilities of the items (cross-validated predictions, or a
        model's ``predict_proba``; in-sample predictions of an overfitted model make it
        overconfident, as the paper warns).
    rounds : int >= 1, default=2
        Rounds of steps 3-5.

    Returns
    -------
    CrowdlabResult
    """
    if isinstance(rounds, bool) or not isinstance(rounds, int | np.integer) or rounds < 1:
        raise ValueError(f"rounds must be an integer >= 1, got {rounds!r}")
    p = _posteriors(proba, annotations, "proba")
    K, N, M = annotations.n_classes, annotations.n_items, annotations.n_annotators
    it, an, lb = annotations.items, annotations.annotators, annotations.labels
    votes = annotations.vote_counts()
    cnt = annotations.item_counts.astype(np.float64)
    labelled = cnt > 0
    multi = cnt >= 2
    c0 = (votes + 0.5 * p).argmax(axis=1) if N else np.zeros(0, dtype=np.int64)  # p < 1 breaks ties only
    multi_label = cnt[it] >= 2
    share = np.divide(votes[it, lb] - 1.0, cnt[it] - 1.0, out=np.zeros(len(it)), where=multi_label)
    mean_share = float(share[multi_label].mean()) if multi_label.any() else 1.0
    hits = np.bincount(an[multi_label], weights=share[multi_label], minlength=M)
    tot = np.bincount(an[multi_label], minlength=M)
    a_m = np.divide(hits, tot, out=np.full(M, mean_share), where=tot > 0)
    mean_labels = float(cnt[labelled].mean()) if labelled.any() else 1.0
    consensus = c0
    for _ in range(int(rounds)):
        # the label likelihood: how often a label equals the current consensus (items with 2+ labels)
        a_bar = float((lb[multi_label] == consensus[it[multi_label]]).mean()) if multi_label.any() else 1.0
        a_bar = min(max(a_bar, 1e-6), 1.0 - 1e-6) if K > 1 else 1.0
        off = (1.0 - a_bar) / max(K - 1, 1)
        if labelled.any():
            sc = multi if multi.any() else labelled
            base = float(np.bincount(consensus[sc], minlength=K).max() / sc.sum())
            acc_f = float((p[sc].argmax(axis=1) == consensus[sc]).mean())
        else:
            base, acc_f = 0.0, 1.0
        if base < 1.0:
            w_m = np.maximum(1.0 - (1.0 - a_m) / (1.0 - base), _MIN_WEIGHT)
            w_f = max(1.0 - (1.0 - acc_f) / (1.0 - base), _MIN_WEIGHT) * float(np.sqrt(mean_labels))
        else:  # one class only: nothing to calibrate against
            w_m = np.ones(M)
            w_f = float(np.sqrt(mean_labels))
        w_lab = w_m[an]
        num = w_f * p
        num += np.bincount(it, weights=w_lab * off, minlength=N)[:, None]
        np.add.at(num, (it, lb), w_lab * (a_bar - off))
        den = w_f + np.bincount(it, weights=w_lab, minlength=N)
        ens = num / den[:, None]
        consensus = ens.argmax(axis=1).astype(np.int64) if N else np.zeros(0, dtype=np.int64)
    rows = np.arange(N)
    # each label's quality: the ensemble without its own annotator's term
    loo_num = num[it, lb] - w_lab * a_bar
    label_quality = loo_num / (den[it] - w_lab)
    agree = (lb == consensus[it]).astype(np.float64)
    n_lab = np.bincount(an, minlength=M).astype(np.float64)
    has = n_lab > 0
    agreement = np.divide(np.bincount(an, weights=agree, minlength=M), n_lab, out=np.full(M, np.nan), where=has)
    mean_lq = np.divide(np.bincount(an, weights=label_quality, minlength=M), n_lab, out=np.full(M, np.nan), where=has)
    per_item_w = float((den[labelled] - w_f).mean()) if labelled.any() else 0.0
    W = w_f / (w_f + per_item_w) if w_f + per_item_w > 0 else 0.5
    return CrowdlabResult(
        consensus=consensus,
        probas=ens,
        consensus_quality=ens[rows, consensus],
        label_quality=label_quality,
        annotator_quality=W * mean_lq + (1.0 - W) * agreement,
        agreement_with_consensus=agreement,
        model_weight=float(w_f),
        annotator_weights=w_m.astype(np.float64),
    )


# ---------------------------------------------------------------------------------- annotators
def soft_confusions(annotations: Annotations, posteriors: npt.ArrayLike, *, smoothing: float = 0.01) -> FloatArray:
    r"""Every annotator's confusion matrix estimated from item posteriors (one Dawid-Skene M-step).

    :math:`A_m[i, j] \propto \text{smoothing} + \sum_{(n, m, y = i)} q_{nj}`, columns normalised;
    O(n_labels K) time, O(n_annotators K^2) memory.

    Parameters
    ----------
    annotations : Annotations
    posteriors : array-like of shape (n_items, n_classes)
    smoothing : float >= 0, default=0.01
        Pseudo-count added to every entry (a column with no mass becomes uniform).

    Returns
    -------
    ndarray of shape (n_annotators, n_classes, n_classes)
        Column-stochastic: ``A[m, i, j] = P(m says i | true j)``.
    """
    if not smoothing >= 0:
        raise ValueError(f"smoothing must be >= 0, got {smoothing!r}")
    q_ = _posteriors(posteriors, annotations)
    M, K = annotations.n_annotators, annotations.n_classes
    counts = np.zeros((M * K, K))
    np.add.at(counts, annotations.annotators * K + annotations.labels, q_[annotations.items])
    counts = counts.reshape(M, K, K) + float(smoothing)
    col = counts.sum(axis=1, keepdims=True)
    out: FloatArray = np.divide(counts, col, out=np.full_like(counts, 1.0 / max(K, 1)), where=col > 0)
    return out


def annotator_scores(
    annotations: Annotations,
    posteriors: npt.ArrayLike,
    *,
    confusions: npt.ArrayLike | None = None,
    proba: npt.ArrayLike | None = None,
    min_support: float = 1.0,
) -> pd.DataFrame:
    r"""Per-annotator quality: agreement, estimated accuracy, spammer score, worst class.

    Parameters
    ----------
    annotations : Annotations
    posteriors : array-like of shape (n_items, n_classes)
        Posterior over the true class of each item (an aggregator's ``probas_``).
    confusions : array-like of shape (n_annotators, n_classes, n_classes), optional
        ``P(m says i | true j)`` (an aggregator's or a ``CrowdClassifier``'s ``confusions_``);
        default :func:`soft_confusions` of ``posteriors``.
    proba : array-like of shape (n_items, n_classes), optional
        A classifier's ``f(x)``: adds the CROWDLAB ``quality`` (:func:`crowdlab`), which combines
        the model's predictions with the labels.
    min_support : float, default=1.0
        Fewest items (posterior mass) of a true class an annotator must have labelled for the
        class to be its ``worst_class`` candidate.

    Returns
    -------
    DataFrame indexed by annotator id, columns
        ``n_labels``; ``agreement`` (share of its labels equal to the posterior's argmax);
        ``accuracy`` (:math:`\sum_j s_j A_m[j, j] / \sum_j s_j` with :math:`s_j` the posterior
        mass of class ``j`` on the items it labelled: its expected accuracy there);
        ``spammer_score`` (:func:`crowdlearn.metrics.spammer_score`: 0 for answers independent
        of the true class, 1 for a perfect annotator; after Raykar & Yu, JMLR 2012);
        ``worst_class`` (class id with the lowest :math:`A_m[j, j]` among the classes with
        support >= ``min_support``; None without one) and ``worst_class_accuracy``; with
        ``proba``, ``quality``. Annotators without labels have ``nan`` scores.
    """
    from crowdlearn.metrics import spammer_score

    post = _posteriors(posteriors, annotations)
    M, K = annotations.n_annotators, annotations.n_classes
    A = soft_confusions(annotations, post) if confusions is None else _confusions_arg(confusions, annotations)
    it, an, lb = annotations.items, annotations.annotators, annotations.labels
    n_lab = np.bincount(an, minlength=M).astype(np.float64)
    has = n_lab > 0
    top = post.argmax(axis=1) if annotations.n_items else np.zeros(0, dtype=np.int64)
    agree = np.bincount(an, weights=(lb == top[it]).astype(np.float64), minlength=M)
    support = np.zeros((M, K))
    np.add.at(support, an, post[it])
    diag = np.diagonal(A, axis1=1, axis2=2)
    tot = support.sum(axis=1)
    acc = np.divide((diag * support).sum(axis=1), tot, out=np.full(M, np.nan), where=tot > 0)
    cand = np.where(support >= min_support, diag, np.inf)
    worst = cand.argmin(axis=1) if K else np.zeros(M, dtype=np.int64)
    found = np.isfinite(cand[np.arange(M), worst]) & has
    spam = spammer_score(A) if K >= 2 else np.full(M, np.nan)
    worst_ids = np.empty(M, dtype=object)
    worst_ids[:] = None
    if found.any():
        worst_ids[found] = annotations.classes[worst[found]]
    table = pd.DataFrame(
        {
            "n_labels": n_lab.astype(np.int64),
            "agreement": np.divide(agree, n_lab, out=np.full(M, np.nan), where=has),
            "accuracy": acc,
            "spammer_score": np.where(has, spam, np.nan),
            "worst_class": worst_ids,
            "worst_class_accuracy": np.where(found, diag[np.arange(M), worst], np.nan),
        },
        index=pd.Index(annotations.annotator_ids, name="annotator"),
    )
    if proba is not None:
        table["quality"] = crowdlab(annotations, proba).annotator_quality
    return table
