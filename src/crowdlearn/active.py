"""Active learning on crowds: which items to label next, and by whom.

Given a model of the items (a classifier's predicted class probabilities, or an aggregator's
posteriors) and the labels collected so far, :func:`activelab_scores` rates how likely each
item's current consensus label is to be right, in the spirit of ActiveLab (H. W. J. Goh and
J. Mueller, "ActiveLab: Active Learning with Re-Labeling by Multiple Annotators",
arXiv:2301.11856, 2023): a weighted ensemble of the model's prediction and the annotators'
labels, the weights from how often each agrees with the consensus beyond what always answering
the most common class would give; an item without labels is scored by the model together with
one average-weight "annotator" that says nothing (uniform), so unlabelled items are not always
preferred to doubtful labelled ones. The lowest scores are the items to (re-)label.
:func:`best_annotators` picks, for each chosen item, the available annotator most likely to be
right on it (``sum_j q_n(j) A_m[j, j]`` from the posterior ``q_n`` and the confusions ``A_m``),
never one who already labelled it; :func:`suggest_queries` does both from a fitted aggregator
or :class:`~crowdlearn.CrowdClassifier`.

All work on the observed (item, annotator, label) triples; the only items x annotators products
are those of the chosen items with the available annotators, in chunks.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from crowdlearn.aggregate.base import label_matrix, posterior_from_log, safe_log, spmm
from crowdlearn.annotations import Annotations

__all__ = ["activelab_scores", "best_annotators", "crowd_posteriors", "suggest_queries"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: The smallest weight of the model or an annotator in the ensemble (a weight of exactly 0 would
#: leave an item whose annotators all score 0 without a denominator).
MIN_WEIGHT = 1e-3
#: Rows of the chosen items scored against the available annotators at a time.
CHUNK = 4096


def _proba(model_proba: npt.ArrayLike, ann: Annotations, name: str) -> FloatArray:
    p = np.asarray(model_proba, dtype=np.float64)
    if p.shape != (ann.n_items, ann.n_classes):
        raise ValueError(
            f"{name} must have shape (n_items, n_classes) = ({ann.n_items}, {ann.n_classes}), got {p.shape}"
        )
    if not np.isfinite(p).all() or (p < 0).any():
        pos = np.argwhere(~(np.isfinite(p) & (p >= 0)))[0].tolist()
        raise ValueError(f"{name}[{pos[0]}, {pos[1]}] = {float(p[pos[0], pos[1]])!r} is not a probability")
    rows = p.sum(axis=1)
    if not np.allclose(rows, 1.0, atol=1e-6):
        bad = int(np.flatnonzero(~np.isclose(rows, 1.0, atol=1e-6))[0])
        raise ValueError(f"{name} rows must sum to 1; row {bad} sums to {rows[bad]:.6g}")
    return p


def _confusions(confusions: npt.ArrayLike, ann: Annotations) -> FloatArray:
    A = np.asarray(confusions, dtype=np.float64)
    M, K = ann.n_annotators, ann.n_classes
    if A.shape != (M, K, K):
        raise ValueError(f"confusions must have shape (n_annotators, K, K) = ({M}, {K}, {K}), got {A.shape}")
    if not np.isfinite(A).all() or (A < 0).any():
        raise ValueError("confusions must be finite and >= 0")
    return A


def crowd_posteriors(annotations: Annotations, model_proba: npt.ArrayLike, confusions: npt.ArrayLike) -> FloatArray:
    """Posterior of each item's class given the model and its labels: ``q_n ∝ p_n ⊙ prod A_m[y, :]``.

    Parameters
    ----------
    annotations : Annotations
        The labels so far.
    model_proba : array-like of shape (n_items, n_classes)
        The model's class probabilities of each item (the prior of its true class).
    confusions : array-like of shape (n_annotators, n_classes, n_classes)
        ``confusions[m, i, j] = P(m says i | true j)``.

    Returns
    -------
    ndarray of shape (n_items, n_classes)
        Rows sum to 1 (log space with a max shift; one sparse product over the labels).
    """
    ann = annotations
    p = _proba(model_proba, ann, "model_proba")
    A = _confusions(confusions, ann)
    M, K = ann.n_annotators, ann.n_classes
    log_joint = spmm(label_matrix(ann), safe_log(A).reshape(M * K, K)) + safe_log(p)
    return posterior_from_log(log_joint)[0]


def activelab_scores(
    annotations: Annotations,
    model_proba: npt.ArrayLike,
    *,
    annotator_accuracy: npt.ArrayLike | None = None,
) -> FloatArray:
    r"""ActiveLab-like score of each item: how likely its consensus label is right (low: label it next).

    With :math:`p_n` the model's probabilities, :math:`w_M` the model's weight and :math:`w_m`
    annotator ``m``'s, an item's ensemble distribution is

    .. math:: e_n(k) = \frac{w_M p_n(k) + \sum_{(n, m, y)} w_m [y = k]}{w_M + \sum_{(n, m, y)} w_m}

    and its score is :math:`\max_k e_n(k)` (the ensemble's belief in its consensus class). An
    item without labels gets :math:`(w_M \max_k p_n(k) + \bar w / K) / (w_M + \bar w)`, with
    :math:`\bar w` the mean annotator weight: one average annotator whose vote is uniform.

    Weights, with ``b`` the share of the most common consensus class (the accuracy of always
    answering it) and ``a`` an accuracy: :math:`w = \max(1 - (1 - a) / (1 - b), 10^{-3})`.
    Annotator ``m``'s ``a`` is ``annotator_accuracy[m]`` when given (e.g.
    ``sum_j priors_j A_m[j, j]`` from an aggregator's confusions), else its agreement with the
    majority vote of the other annotators on items it shares; the model's ``a`` is the
    agreement of ``argmax p_n`` with the majority vote on labelled items, and :math:`w_M` is
    multiplied by the square root of the mean number of labels of a labelled item (the model
    counts for more where items have many labels), as in CROWDLAB/ActiveLab. This restates the
    method of Goh & Mueller (arXiv:2301.11856) in crowdlearn's terms; it is not cleanlab's code.

    Parameters
    ----------
    annotations : Annotations
        The labels so far.
    model_proba : array-like of shape (n_items, n_classes)
        Class probabilities of each item from a model of the items (a classifier's
        ``predict_proba``, or an aggregator's ``probas_``).
    annotator_accuracy : array-like of shape (n_annotators,), optional
        Each annotator's accuracy; default: agreement with the others' majority vote.

    Returns
    -------
    ndarray of shape (n_items,)
        Scores in ``(0, 1]``; sort ascending to get the items to label first.
    """
    ann = annotations
    p = _proba(model_proba, ann, "model_proba")
    M, K = ann.n_annotators, ann.n_classes
    votes = ann.vote_counts()
    n_lab = votes.sum(axis=1)
    labelled = n_lab > 0
    consensus = np.where(labelled, np.argmax(votes, axis=1), np.argmax(p, axis=1))
    share = np.bincount(consensus[labelled], minlength=K) / max(int(labelled.sum()), 1)
    base = float(share.max()) if labelled.any() else 1.0 / K
    base = min(base, 1.0 - 1e-6)

    def weight(acc: FloatArray) -> FloatArray:
        out: FloatArray = np.maximum(1.0 - (1.0 - acc) / (1.0 - base), MIN_WEIGHT)
        return out

    if annotator_accuracy is None:
        # agreement with the others' majority: remove the annotator's own vote from its item's counts
        others = votes[ann.items].copy()
        others[np.arange(ann.n_labels), ann.labels] -= 1.0
        shared = others.sum(axis=1) > 0
        agree = (np.argmax(others, axis=1) == ann.labels) & shared
        n_shared = np.bincount(ann.annotators, weights=shared.astype(np.float64), minlength=M)
        hits = np.bincount(ann.annotators, weights=agree.astype(np.float64), minlength=M)
        acc = np.divide(hits, n_shared, out=np.full(M, base), where=n_shared > 0)
    else:
        acc = np.asarray(annotator_accuracy, dtype=np.float64)
        if acc.shape != (M,) or not np.isfinite(acc).all():
            raise ValueError(f"annotator_accuracy must be a finite array of shape ({M},), got shape {acc.shape}")
    w_ann = weight(acc)
    model_acc = float((np.argmax(p, axis=1)[labelled] == consensus[labelled]).mean()) if labelled.any() else base
    mean_labels = float(n_lab[labelled].mean()) if labelled.any() else 1.0
    w_model = float(weight(np.array([model_acc]))[0]) * np.sqrt(mean_labels)

    weighted = ann.vote_counts(w_ann)  # (N, K): sum of w_m [y = k]
    total = weighted.sum(axis=1)
    ens = (w_model * p + weighted) / (w_model + total)[:, None]
    scores: FloatArray = ens.max(axis=1)
    w_bar = float(w_ann[ann.annotator_counts > 0].mean()) if ann.n_labels else 1.0
    scores[~labelled] = (w_model * p[~labelled].max(axis=1) + w_bar / K) / (w_model + w_bar)
    return scores


def best_annotators(
    items: npt.ArrayLike,
    posteriors: npt.ArrayLike,
    confusions: npt.ArrayLike,
    annotations: Annotations,
    *,
    available: npt.ArrayLike | None = None,
) -> tuple[IntArray, FloatArray]:
    """For each item, the available annotator most likely to label it right (who has not yet).

    ``P(m right on n) = sum_j posteriors[n, j] * confusions[m, j, j]``.

    Parameters
    ----------
    items : array-like of int of shape (B,)
        Item indices to assign.
    posteriors : array-like of shape (n_items, n_classes)
        Current belief in each item's class (e.g. :func:`crowd_posteriors`).
    confusions : array-like of shape (n_annotators, n_classes, n_classes)
    annotations : Annotations
        The labels so far (an annotator is never asked about an item it labelled).
    available : array-like of int or bool mask of shape (n_annotators,), optional
        The annotators that can be asked now (default: all).

    Returns
    -------
    annotators : ndarray of int of shape (B,)
        The chosen annotator of each item; -1 when no available annotator is left for it.
    p_correct : ndarray of shape (B,)
        The chosen annotator's probability of being right (NaN where none is left).
    """
    ann = annotations
    q = _proba(posteriors, ann, "posteriors")
    A = _confusions(confusions, ann)
    M = ann.n_annotators
    idx = np.asarray(items, dtype=np.int64).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= ann.n_items):
        bad = idx[(idx < 0) | (idx >= ann.n_items)][0]
        raise ValueError(f"items contains {int(bad)}, not an item index in [0, {ann.n_items})")
    if available is None:
        pool = np.arange(M, dtype=np.int64)
    else:
        av = np.asarray(available)
        pool = np.flatnonzero(av) if av.dtype == bool else av.astype(np.int64).reshape(-1)
        if av.dtype == bool and av.shape != (M,):
            raise ValueError(f"available as a mask must have shape ({M},), got {av.shape}")
        if pool.size and (pool.min() < 0 or pool.max() >= M):
            raise ValueError(f"available contains {int(pool[(pool < 0) | (pool >= M)][0])}, not in [0, {M})")
    diag = np.diagonal(A, axis1=1, axis2=2)[pool]  # (P, K)
    out = np.full(idx.size, -1, dtype=np.int64)
    best = np.full(idx.size, np.nan)
    col = np.full(M, -1, dtype=np.int64)
    col[pool] = np.arange(pool.size)
    for start in range(0, idx.size, CHUNK):
        chunk = idx[start : start + CHUNK]
        right = q[chunk] @ diag.T  # (B, P)
        rows, anns, _ = ann.labels_of(chunk)
        done = col[anns] >= 0
        right[rows[done], col[anns[done]]] = -np.inf
        if right.shape[1] == 0:
            continue
        pick = np.argmax(right, axis=1)
        val = right[np.arange(chunk.size), pick]
        ok = np.isfinite(val)
        out[start : start + chunk.size] = np.where(ok, pool[pick], -1)
        best[start : start + chunk.size] = np.where(ok, val, np.nan)
    return out, best


def suggest_queries(
    model: Any,
    annotations: Annotations,
    n_queries: int,
    *,
    X: Any = None,
    available: npt.ArrayLike | None = None,
) -> pd.DataFrame:
    """The next ``n_queries`` (item, annotator) pairs to ask, lowest ActiveLab-like score first.

    Parameters
    ----------
    model : fitted aggregator or CrowdClassifier
        An aggregator of :mod:`crowdlearn.aggregate` with ``probas_`` and ``confusions_``
        (fitted on ``annotations``), or a fitted :class:`~crowdlearn.CrowdClassifier` (then
        ``X``, the inputs of the items, is required: the model's ``predict_proba(X)`` is
        combined with the labels through its ``confusions_``).
    annotations : Annotations
        The labels so far, in the model's item and annotator index spaces.
    n_queries : int
        How many items to ask about (one annotator each).
    X : array-like, optional
        Inputs of the items (row ``n`` = item ``n``), for a CrowdClassifier.
    available : array-like of int or bool mask of shape (n_annotators,), optional
        The annotators that can be asked now.

    Returns
    -------
    DataFrame
        One row per query, in order: ``item`` and ``annotator`` (indices), ``item_id`` and
        ``annotator_id``, ``score`` (:func:`activelab_scores`), ``p_correct`` (the chosen
        annotator's probability of being right). Items for which no available annotator is left
        are skipped (so fewer rows can come back).
    """
    ann = annotations
    if not (isinstance(n_queries, (int, np.integer)) and n_queries >= 1):
        raise ValueError(f"n_queries must be a positive integer, got {n_queries!r}")
    confusions = getattr(model, "confusions_", None)
    if confusions is None:
        raise TypeError(
            "model must be a fitted aggregator with confusions_ or a fitted CrowdClassifier, "
            f"got {type(model).__name__}"
        )
    if hasattr(model, "predict_proba") and hasattr(model, "model_"):
        if X is None:
            raise ValueError("a CrowdClassifier model needs X, the inputs of the items")
        proba = np.asarray(model.predict_proba(X), dtype=np.float64)
        posteriors = crowd_posteriors(ann, proba, confusions)
    else:
        proba = np.asarray(model.probas_, dtype=np.float64)
        posteriors = proba
    priors = np.asarray(getattr(model, "priors_", np.full(ann.n_classes, 1.0 / ann.n_classes)))
    A = _confusions(confusions, ann)
    accuracy = np.einsum("mjj,j->m", A, priors)
    scores = activelab_scores(ann, proba, annotator_accuracy=accuracy)
    order = np.argsort(scores, kind="stable")
    picked: list[int] = []
    chosen: list[int] = []
    p_right: list[float] = []
    for start in range(0, order.size, max(int(n_queries), 1)):
        block = order[start : start + int(n_queries)]
        who, p = best_annotators(block, posteriors, A, ann, available=available)
        keep = who >= 0
        picked.extend(block[keep].tolist())
        chosen.extend(who[keep].tolist())
        p_right.extend(p[keep].tolist())
        if len(picked) >= n_queries:
            break
    picked, chosen, p_right = picked[:n_queries], chosen[:n_queries], p_right[:n_queries]
    items = np.asarray(picked, dtype=np.int64)
    annotators = np.asarray(chosen, dtype=np.int64)
    return pd.DataFrame(
        {
            "item": items,
            "annotator": annotators,
            "item_id": ann.item_ids[items],
            "annotator_id": ann.annotator_ids[annotators],
            "score": scores[items],
            "p_correct": np.asarray(p_right, dtype=np.float64),
        }
    )
