"""Metrics for classifiers and confusion-matrix estimates.

Conventions (shared with :mod:`crowdlearn.aggregate` and :mod:`crowdlearn.nn`): a confusion
array has shape ``(n_annotators, n_classes, n_classes)`` and
``confusions[m, i, j] = P(annotator m says i | true class j)``, so every **column** sums to one.

Class permutation. Crowdsourcing models are identifiable only up to one relabelling of the
*latent* classes: ``A_m f = (A_m P^T)(P f)`` for any permutation matrix ``P``. The observed
labels (rows of ``A_m``) are never permuted, only the true-class axis (columns of ``A_m``, the
entries of ``f``). :func:`align_classes` finds that one permutation, shared by all annotators,
with the Hungarian method (:func:`scipy.optimize.linear_sum_assignment`).
"""

from __future__ import annotations

from typing import Literal, overload

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

from crowdlearn.annotations import Annotations

__all__ = [
    "accuracy",
    "align_classes",
    "annotator_accuracy",
    "confusion_estimation_error",
    "empirical_confusions",
    "expected_calibration_error",
    "spammer_score",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Norm = Literal["fro", "l1"]


# ---------------------------------------------------------------------------- validation
def _labels_1d(y: npt.ArrayLike, name: str) -> IntArray:
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-d array of class indices, got shape {arr.shape}")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise ValueError(f"{name} must hold integer class indices, got non-integer values")
    elif arr.dtype.kind not in "iub":
        raise ValueError(f"{name} must hold integer class indices, got dtype {arr.dtype}")
    out = arr.astype(np.int64)
    if out.size and out.min() < 0:
        pos = int(np.flatnonzero(out < 0)[0])
        raise ValueError(
            f"{name}[{pos}] = {int(out[pos])}: class indices must be >= 0 "
            "(-1 marks an unknown truth; select the known items first, e.g. y_true >= 0)"
        )
    return out


def _proba_2d(p: npt.ArrayLike, name: str) -> FloatArray:
    arr = np.asarray(p, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must have shape (n_items, n_classes), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _confusions(a: npt.ArrayLike, name: str) -> FloatArray:
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[1] != arr.shape[2]:
        raise ValueError(f"{name} must have shape (n_annotators, n_classes, n_classes), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(f"{name}[{bad[0]}, {bad[1]}, {bad[2]}] is NaN or infinite")
    return arr


def _check_norm(norm: str) -> None:
    if norm not in ("fro", "l1"):
        raise ValueError(f"norm must be 'fro' or 'l1', got {norm!r}")


# ---------------------------------------------------------------------------- classifier metrics
def accuracy(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> float:
    """Share of items whose predicted class equals the true class.

    Parameters
    ----------
    y_true : array-like of int of shape (n_items,)
        True class indices (all known, >= 0).
    y_pred : array-like of shape (n_items,) or (n_items, n_classes)
        Predicted class indices, or class scores/probabilities (the argmax is taken).

    Returns
    -------
    float
        Accuracy in [0, 1].

    Examples
    --------
    >>> accuracy([0, 1, 2, 2], [0, 1, 1, 2])
    0.75
    """
    yt = _labels_1d(y_true, "y_true")
    yp_arr = np.asarray(y_pred)
    yp = np.argmax(_proba_2d(yp_arr, "y_pred"), axis=1) if yp_arr.ndim == 2 else _labels_1d(yp_arr, "y_pred")
    if len(yt) != len(yp):
        raise ValueError(f"y_true and y_pred must have the same length, got {len(yt)} and {len(yp)}")
    if len(yt) == 0:
        raise ValueError("accuracy of an empty set is undefined: y_true has no items")
    return float(np.mean(yt == yp))


def expected_calibration_error(y_true: npt.ArrayLike, proba: npt.ArrayLike, n_bins: int = 15) -> float:
    """Expected calibration error of the top-class confidence.

    ``ECE = sum_b (|B_b| / n) * |accuracy(B_b) - mean confidence(B_b)|`` over ``n_bins``
    equal-width confidence bins ``(b/n_bins, (b+1)/n_bins]`` (the first bin includes 0).

    Parameters
    ----------
    y_true : array-like of int of shape (n_items,)
        True class indices.
    proba : array-like of shape (n_items, n_classes)
        Predicted class probabilities (rows should sum to 1).
    n_bins : int, default=15
        Number of equal-width bins over [0, 1].

    Returns
    -------
    float
        ECE in [0, 1]; 0 for a perfectly calibrated predictor.
    """
    if int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    yt = _labels_1d(y_true, "y_true")
    p = _proba_2d(proba, "proba")
    if p.shape[0] != len(yt):
        raise ValueError(f"y_true has {len(yt)} items but proba has {p.shape[0]} rows")
    if len(yt) == 0:
        raise ValueError("ECE of an empty set is undefined: y_true has no items")
    if yt.max() >= p.shape[1]:
        raise ValueError(f"y_true contains class {int(yt.max())} but proba has only {p.shape[1]} columns")
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == yt).astype(np.float64)
    # bin b holds confidences in (b/n, (b+1)/n]; ceil-1 gives that index, 0 goes to bin 0
    bins = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    acc_sum = np.bincount(bins, weights=correct, minlength=n_bins)
    conf_sum = np.bincount(bins, weights=conf, minlength=n_bins)
    return float(np.abs(acc_sum - conf_sum).sum() / len(yt))


# ---------------------------------------------------------------------------- confusion metrics
def _entry_diff(estimated: FloatArray, true: FloatArray, norm: Norm) -> FloatArray:
    """cost[k, l] = sum_m d(true[m, :, k], estimated[m, :, l]), shape (K, K)."""
    diff = true[:, :, :, None] - estimated[:, :, None, :]  # (M, K_rows, K_true, K_est)
    if norm == "fro":
        return np.asarray((diff**2).sum(axis=(0, 1)), dtype=np.float64)
    return np.asarray(np.abs(diff).sum(axis=(0, 1)), dtype=np.float64)


def align_classes(estimated: npt.ArrayLike, true: npt.ArrayLike, *, norm: Norm = "fro") -> IntArray:
    """One permutation of the latent classes, shared by all annotators, aligning an estimate.

    Solves ``min_perm sum_k sum_m d(true[m, :, k], estimated[m, :, perm[k]])`` exactly with the
    Hungarian method, where ``d`` is the squared Euclidean (``norm="fro"``) or the L1 distance
    between columns. Only the true-class axis (columns) is permuted: the rows are the observed
    labels, which a model cannot relabel.

    Parameters
    ----------
    estimated, true : array-like of shape (n_annotators, n_classes, n_classes)
        Column-stochastic confusion arrays, ``[m, i, j] = P(m says i | class j)``.
    norm : {"fro", "l1"}, default="fro"
        Column distance used for the matching.

    Returns
    -------
    ndarray of int64 of shape (n_classes,)
        ``perm[k]`` is the estimated class matched to true class ``k``: the aligned estimate is
        ``estimated[:, :, perm]`` and an aligned class posterior is ``proba[:, perm]``.

    Examples
    --------
    >>> A = np.array([[[0.9, 0.2], [0.1, 0.8]]])
    >>> align_classes(A[:, :, ::-1], A).tolist()
    [1, 0]
    """
    _check_norm(norm)
    est = _confusions(estimated, "estimated")
    tru = _confusions(true, "true")
    if est.shape != tru.shape:
        raise ValueError(f"estimated has shape {est.shape} but true has shape {tru.shape}")
    cost = _entry_diff(est, tru, norm)
    rows, cols = linear_sum_assignment(cost)
    perm = np.empty(est.shape[1], dtype=np.int64)
    perm[rows] = cols
    return perm


@overload
def confusion_estimation_error(
    estimated: npt.ArrayLike,
    true: npt.ArrayLike,
    norm: Norm = ...,
    per_annotator: Literal[False] = ...,
    *,
    align: bool = ...,
) -> float: ...


@overload
def confusion_estimation_error(
    estimated: npt.ArrayLike,
    true: npt.ArrayLike,
    norm: Norm = ...,
    *,
    per_annotator: Literal[True],
    align: bool = ...,
) -> FloatArray: ...


@overload
def confusion_estimation_error(
    estimated: npt.ArrayLike,
    true: npt.ArrayLike,
    norm: Norm,
    per_annotator: Literal[True],
    *,
    align: bool = ...,
) -> FloatArray: ...


def confusion_estimation_error(
    estimated: npt.ArrayLike,
    true: npt.ArrayLike,
    norm: Norm = "fro",
    per_annotator: bool = False,
    *,
    align: bool = True,
) -> float | FloatArray:
    """Relative error of estimated confusion matrices after one shared class alignment.

    ``error_m = ||A_hat_m[:, perm] - A_m|| / ||A_m||`` with the Frobenius norm (``"fro"``) or the
    entrywise L1 norm (``"l1"``, ``sum_ij |.|``), where ``perm`` is the single class permutation
    found by :func:`align_classes` over all annotators. The scalar form is the mean over
    annotators (Ibrahim, Nguyen & Fu, ICLR 2023, use the Frobenius version).

    Parameters
    ----------
    estimated, true : array-like of shape (n_annotators, n_classes, n_classes)
        Estimated and true confusion arrays, ``[m, i, j] = P(m says i | true class j)``.
    norm : {"fro", "l1"}, default="fro"
        Matrix norm (also used for the alignment).
    per_annotator : bool, default=False
        Return the per-annotator errors, shape (n_annotators,), instead of their mean.
    align : bool, default=True
        Search the shared class permutation; ``False`` compares the arrays as given.

    Returns
    -------
    float or ndarray of shape (n_annotators,)

    Examples
    --------
    >>> A = np.array([[[0.9, 0.2], [0.1, 0.8]]])
    >>> confusion_estimation_error(A[:, :, ::-1], A)
    0.0
    """
    _check_norm(norm)
    est = _confusions(estimated, "estimated")
    tru = _confusions(true, "true")
    if est.shape != tru.shape:
        raise ValueError(f"estimated has shape {est.shape} but true has shape {tru.shape}")
    if est.shape[0] == 0:
        raise ValueError("estimation error over zero annotators is undefined")
    if align:
        est = est[:, :, align_classes(est, tru, norm=norm)]
    diff = est - tru
    if norm == "fro":
        num = np.sqrt((diff**2).sum(axis=(1, 2)))
        den = np.sqrt((tru**2).sum(axis=(1, 2)))
    else:
        num = np.abs(diff).sum(axis=(1, 2))
        den = np.abs(tru).sum(axis=(1, 2))
    if np.any(den == 0):
        m = int(np.flatnonzero(den == 0)[0])
        raise ValueError(f"true[{m}] is all zeros: its relative error is undefined")
    err = np.asarray(num / den, dtype=np.float64)
    return err if per_annotator else float(err.mean())


def empirical_confusions(annotations: Annotations, truth: npt.ArrayLike) -> FloatArray:
    """Each annotator's confusion matrix counted against known truth.

    Parameters
    ----------
    annotations : Annotations
        Observed labels.
    truth : array-like of shape (n_items,) or (n_items, n_classes)
        Hard true class per item (``-1`` = unknown: that item's labels are not counted), or a
        soft truth (class posterior per item; each label adds its item's posterior as a
        fractional count).

    Returns
    -------
    ndarray of shape (n_annotators, n_classes, n_classes)
        ``[m, i, j]`` = share of annotator m's labels on true-class-j items that are i. Columns
        sum to one; a column with no data (annotator m never labelled a known class-j item) is
        uniform ``1 / n_classes``, i.e. "nothing known" rather than a guess.
    """
    K, M = annotations.n_classes, annotations.n_annotators
    t = np.asarray(truth)
    counts = np.zeros((M, K, K), dtype=np.float64)
    if t.ndim == 1:
        if len(t) != annotations.n_items:
            raise ValueError(f"truth has {len(t)} entries but annotations have {annotations.n_items} items")
        if t.dtype.kind not in "iub":
            raise ValueError(f"truth must hold integer class indices (-1 = unknown), got dtype {t.dtype}")
        t = t.astype(np.int64)
        if t.size and (t.min() < -1 or t.max() >= K):
            pos = int(np.flatnonzero((t < -1) | (t >= K))[0])
            raise ValueError(f"truth[{pos}] = {int(t[pos])}: expected -1 (unknown) or a class index in [0, {K})")
        tl = t[annotations.items]
        known = tl >= 0
        np.add.at(counts, (annotations.annotators[known], annotations.labels[known], tl[known]), 1.0)
    elif t.ndim == 2:
        post = _proba_2d(t, "truth")
        if post.shape != (annotations.n_items, K):
            raise ValueError(f"soft truth must have shape ({annotations.n_items}, {K}), got {post.shape}")
        if post.min() < 0:
            raise ValueError("soft truth contains negative probabilities")
        # one (K,) row added per observed label: O(n_labels * K)
        flat = (annotations.annotators * K + annotations.labels)[:, None] * K + np.arange(K)[None, :]
        flat_counts = np.bincount(flat.ravel(), weights=post[annotations.items].ravel(), minlength=M * K * K)
        counts = flat_counts.astype(np.float64).reshape(M, K, K)
    else:
        raise ValueError(f"truth must have shape (n_items,) or (n_items, n_classes), got {t.shape}")
    col = counts.sum(axis=1, keepdims=True)
    uniform = np.full_like(counts, 1.0 / K)
    return np.where(col > 0, counts / np.where(col > 0, col, 1.0), uniform)


def annotator_accuracy(confusions: npt.ArrayLike, priors: npt.ArrayLike | None = None) -> FloatArray:
    """Each annotator's probability of giving the true class: ``sum_k priors[k] * A_m[k, k]``.

    Parameters
    ----------
    confusions : array-like of shape (n_annotators, n_classes, n_classes)
        Column-stochastic confusion arrays.
    priors : array-like of shape (n_classes,), optional
        Class priors; default uniform, giving ``trace(A_m) / n_classes``.

    Returns
    -------
    ndarray of shape (n_annotators,)
    """
    A = _confusions(confusions, "confusions")
    K = A.shape[1]
    pri = np.full(K, 1.0 / K) if priors is None else np.asarray(priors, dtype=np.float64)
    if pri.shape != (K,):
        raise ValueError(f"priors must have shape ({K},), got {pri.shape}")
    if pri.min() < 0 or not np.isclose(pri.sum(), 1.0):
        raise ValueError(f"priors must be non-negative and sum to 1, got sum {pri.sum():.6g}")
    diag = np.diagonal(A, axis1=1, axis2=2)
    return np.asarray(diag @ pri, dtype=np.float64)


def spammer_score(confusions: npt.ArrayLike) -> FloatArray:
    """Distance of each confusion matrix from the nearest rank-one (spammer) matrix.

    A spammer's answer does not depend on the true class: ``A_m = a 1^T`` (all columns equal).
    The score is ``||A_m - abar 1^T||_F / sqrt(K - 1)`` with ``abar`` the mean column (the
    nearest such matrix in Frobenius norm). It is 0 for a spammer and 1 for a perfect annotator
    (or any permutation matrix); K - 1 is the largest value the squared distance can take for
    column-stochastic matrices. (After Raykar & Yu, JMLR 2012, with a different normalisation.)

    Parameters
    ----------
    confusions : array-like of shape (n_annotators, n_classes, n_classes)

    Returns
    -------
    ndarray of shape (n_annotators,), values in [0, 1] for column-stochastic input
    """
    A = _confusions(confusions, "confusions")
    K = A.shape[1]
    if K < 2:
        raise ValueError("spammer score needs at least 2 classes")
    centred = A - A.mean(axis=2, keepdims=True)
    return np.asarray(np.sqrt((centred**2).sum(axis=(1, 2)) / (K - 1)), dtype=np.float64)
