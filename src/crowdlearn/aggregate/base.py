"""Shared machinery of the aggregators: input conversion, parameters, vectorized EM pieces.

Every aggregator accepts either an :class:`~crowdlearn.annotations.Annotations` object or a
crowd-kit style :class:`pandas.DataFrame` with columns ``task``, ``worker``, ``label``. Fitted
attributes are always numpy arrays indexed by the item / annotator / class *indices* of the
annotations; ``fit_predict`` and ``fit_predict_proba`` return numpy arrays for
:class:`Annotations` input and pandas objects indexed by task id for DataFrame input (as
crowd-kit does). crowd-kit's own API (its parameters, attributes and return types) is
:mod:`crowdlearn.compat.crowdkit`, the one-import switch (docs/crowdkit.md).

The numerics work on the observed (item, annotator, label) triples only. The central object is
the one-hot label matrix ``X`` (scipy CSR of shape ``(n_items, n_annotators * K)``, a single 1 at
column ``m * K + y`` for each label), so that with ``A`` the stacked confusions

* E-step: ``log p(labels of n | true j) = (X @ log A.reshape(M * K, K))[n, j]``
* M-step: ``counts = X.T @ posteriors`` reshaped to ``(M, K, K)`` (column = true class).

Cost per EM iteration is O(n_labels * K) time and O(n_items * K) extra memory.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, Literal, Self

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp

from crowdlearn._checks import check_in, check_number, check_random_state, param_error
from crowdlearn.annotations import Annotations, AnnotationsError

__all__ = [
    "BaseAggregator",
    "FloatArray",
    "IntArray",
    "IterationCallback",
    "PriorSpec",
    "as_annotations",
    "check_in",
    "check_number",
    "check_random_state",
    "clamped_posterior",
    "is_dask_frame",
    "known_label_array",
    "label_matrix",
    "posterior_from_log",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
#: ``"learn"`` (estimated in each M-step), ``"uniform"`` or a fixed array of shape (n_classes,).
PriorSpec = Literal["learn", "uniform"] | npt.ArrayLike

#: ``callback(iterations_done, log_likelihood)``, called by EM aggregators after every iteration.
IterationCallback = Callable[[int, float], None]

FRAME_COLUMNS = ("task", "worker", "label")


def is_dask_frame(data: Any) -> bool:
    """Whether ``data`` is a Dask DataFrame (checked without importing Dask)."""
    return type(data).__module__.split(".")[0] in ("dask", "dask_expr") and hasattr(data, "to_delayed")


def as_annotations(data: Annotations | pd.DataFrame) -> tuple[Annotations, bool]:
    """Convert the input of ``fit`` to :class:`Annotations`.

    Returns the annotations and whether the input was a DataFrame (then outputs are pandas).
    A DataFrame must have columns ``task``, ``worker``, ``label`` (crowd-kit's long format).
    """
    if isinstance(data, Annotations):
        return data, False
    if is_dask_frame(data):
        raise TypeError(
            "this aggregator has no Dask backend (supported: MajorityVote, DawidSkene, OneCoinDawidSkene, MACE); "
            "pass frame.compute() (a pandas DataFrame) to fit it in memory"
        )
    if isinstance(data, pd.DataFrame):
        missing = [c for c in FRAME_COLUMNS if c not in data.columns]
        if missing:
            raise AnnotationsError(
                f"DataFrame is missing column(s) {missing}; expected crowd-kit style columns "
                f"'task', 'worker', 'label', got {list(data.columns)}"
            )
        return Annotations.from_ids(data["task"], data["worker"], data["label"]), True
    raise TypeError(
        f"expected an Annotations object or a pandas DataFrame with columns task, worker, label; "
        f"got {type(data).__name__}"
    )


def label_matrix(ann: Annotations) -> sp.csr_matrix:
    """One-hot label matrix ``X`` of shape (n_items, n_annotators * n_classes), CSR, float64.

    Row ``n`` has a 1 at column ``m * K + y`` for each label ``y`` given by annotator ``m`` to
    item ``n``; ``nnz == n_labels``. Built by scipy's linear-time COO -> CSR bucket pass (about
    3x faster than the comparison sort behind ``Annotations.by_item`` on unsorted input).
    """
    K = ann.n_classes
    small = max(ann.n_annotators * K, ann.n_items, ann.n_labels) < 2**31 - 1
    rows: IntArray | npt.NDArray[np.int32] = ann.items.astype(np.int32) if small else ann.items
    cols = ann.annotators * K + ann.labels
    return sp.csr_matrix(
        (np.ones(ann.n_labels, dtype=np.float64), (rows, cols.astype(np.int32) if small else cols)),
        shape=(ann.n_items, ann.n_annotators * K),
    )


def items_labelled(ann: Annotations) -> npt.NDArray[np.bool_]:
    """Boolean mask (n_items,) of items with at least one label (bincount; no sort)."""
    mask: npt.NDArray[np.bool_] = np.bincount(ann.items, minlength=ann.n_items) > 0
    return mask


def labels_per_annotator(ann: Annotations) -> IntArray:
    """Number of labels of each annotator, shape (n_annotators,) (bincount; no sort)."""
    return np.bincount(ann.annotators, minlength=ann.n_annotators).astype(np.int64)


def posterior_from_log(log_joint: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Normalise unnormalised log posteriors row by row, in place, with a max shift.

    Parameters
    ----------
    log_joint : ndarray of shape (n_items, n_classes)
        ``log prior_j + log p(labels of item n | true class j)``; overwritten by the posterior.

    Returns
    -------
    posterior : ndarray of shape (n_items, n_classes)
        The same array, rows summing to 1.
    log_norm : ndarray of shape (n_items,)
        ``logsumexp_j log_joint[n, j]``: the log-likelihood of each item's labels; their sum
        is the observed-data log-likelihood.
    """
    # the max shift keeps exp() from underflowing to 0 for items with many labels
    shift = row_max(log_joint)
    if not np.all(np.isfinite(shift)):
        bad = int(np.flatnonzero(~np.isfinite(shift))[0])
        raise FloatingPointError(
            f"item {bad} has zero likelihood under every class (all log-probabilities are -inf); "
            "use a positive smoothing or check fixed priors/initial confusions for zeros"
        )
    np.subtract(log_joint, shift[:, None], out=log_joint)
    np.exp(log_joint, out=log_joint)
    # row sums as a BLAS mat-vec: numpy's axis=1 reduction is slow for few columns
    norm = log_joint @ np.ones(log_joint.shape[1])
    log_joint /= norm[:, None]
    return log_joint, shift + np.log(norm)


def known_label_array(known_labels: Any, ann: Annotations) -> IntArray | None:
    """Normalise ``known_labels`` to an int array (n_items,) with -1 where unknown.

    Accepts ``None``; an array-like of class indices of shape (n_items,) with -1 for unknown
    items; or a :class:`pandas.Series` / mapping from item id to class id.
    """
    if known_labels is None:
        return None
    if isinstance(known_labels, (pd.Series, dict)):
        s = pd.Series(known_labels)
        out = np.full(ann.n_items, -1, dtype=np.int64)
        out[ann.item_index(s.index.tolist())] = ann.class_index(s.tolist())
        return out
    return ann.item_class_indices(known_labels, "known_labels", hint=" (or a Series item id -> class id)")


def clamped_posterior(log_joint: FloatArray, known: IntArray | None) -> tuple[FloatArray, float]:
    """Posterior and log-likelihood with the gold items' posteriors clamped to their class.

    Parameters
    ----------
    log_joint : ndarray of shape (n_items, n_classes)
        ``log prior_j + log p(labels of item n | true class j)``; overwritten by the posterior.
    known : ndarray of int of shape (n_items,) or None
        Gold class of each item, -1 where unknown.

    Returns
    -------
    posterior : ndarray of shape (n_items, n_classes)
        Rows sum to 1; the rows of gold items are one-hot at the gold class.
    log_likelihood : float
        ``sum_n log Z_n`` over the items without gold plus the complete-data term
        ``log prior_y + log p(labels | y)`` of each gold item.
    """
    if known is None or not (known >= 0).any():
        T, log_norm = posterior_from_log(log_joint)
        return T, float(log_norm.sum())
    idx = np.flatnonzero(known >= 0)
    cls = known[idx]
    known_ll = float(log_joint[idx, cls].sum())
    T, log_norm = posterior_from_log(log_joint)
    ll = float(log_norm.sum() - log_norm[idx].sum()) + known_ll
    clamp_rows(T, known)
    return T, ll


def clamp_rows(T: FloatArray, known: IntArray | None) -> None:
    """Set the rows (n_items, K) of gold items (``known >= 0``) to one-hot at their class, in place."""
    if known is None:
        return
    idx = np.flatnonzero(known >= 0)
    if idx.size:
        T[idx] = 0.0
        T[idx, known[idx]] = 1.0


def spmm(sparse: Any, dense: FloatArray) -> FloatArray:
    """``sparse @ dense`` as a float64 ndarray (scipy sparse times a dense 2-d array)."""
    return np.asarray(sparse @ dense, dtype=np.float64)


def row_max(a: FloatArray) -> FloatArray:
    """Row maxima of a (n, K) array, column by column (much faster than ``max(axis=1)`` for small K)."""
    if a.shape[1] > 32:  # many classes: one reduction beats K passes
        wide: FloatArray = a.max(axis=1)
        return wide
    out = a[:, 0].copy()
    for k in range(1, a.shape[1]):
        np.maximum(out, a[:, k], out=out)
    return out


def normalise_columns(counts: FloatArray, smoothing: float) -> FloatArray:
    """``(counts + smoothing)`` normalised over axis -2 (columns sum to 1); empty columns uniform."""
    c = counts + smoothing
    tot = c.sum(axis=-2, keepdims=True)
    K = c.shape[-2]
    out: FloatArray = np.divide(c, tot, out=np.full_like(c, 1.0 / K), where=tot > 0)
    return out


def shrink_counts(counts: FloatArray, smoothing: float, shrinkage: str = "uniform") -> FloatArray:
    """Column-normalised confusions from expected counts and a Dirichlet prior of total ``K * smoothing``.

    Parameters
    ----------
    counts : ndarray of shape (n_annotators, K, K)
        Expected counts, ``counts[m, i, j]`` = expected number of labels ``i`` of annotator
        ``m`` on items of true class ``j``.
    smoothing : float
        Pseudo-count per cell (``"uniform"``); the same total, ``K * smoothing`` per column, for
        ``"pooled"``.
    shrinkage : {"uniform", "pooled"}
        ``"uniform"``: ``(counts + s) / column sum`` (a symmetric Dirichlet). ``"pooled"``:
        ``(counts + K s P) / column sum`` with ``P`` the pooled confusion (the counts summed
        over annotators, columns normalised): an annotator with few items of class ``j`` is
        pulled towards the crowd's confusion of ``j`` instead of towards uniform (partial
        pooling). A column no annotator has mass in is uniform either way.

    Returns
    -------
    ndarray of shape (n_annotators, K, K)
        Columns sum to 1 (uniform where a column has no mass at all).
    """
    if shrinkage == "uniform" or smoothing == 0:
        return normalise_columns(counts, smoothing)
    K = counts.shape[-1]
    pooled = normalise_columns(counts.sum(axis=0), 0.0)  # (K, K), empty columns uniform
    return normalise_columns(counts + (K * smoothing) * pooled, 0.0)


def safe_log(a: FloatArray) -> FloatArray:
    """Elementwise log with ``log(0) = -inf`` and no warning."""
    with np.errstate(divide="ignore"):
        return np.log(a)


def check_priors(priors: Any, n_classes: int, owner: str) -> FloatArray | None:
    """Validate the ``priors`` parameter; return a fixed prior or None for ``"learn"``."""
    if isinstance(priors, str):
        if priors == "learn":
            return None
        if priors == "uniform":
            return np.full(n_classes, 1.0 / n_classes)
        raise param_error(owner, "priors", "'learn', 'uniform' or an array", priors)
    try:
        p = np.asarray(priors, dtype=np.float64)
    except (TypeError, ValueError):
        raise param_error(owner, "priors", f"'learn', 'uniform' or an array of shape ({n_classes},)", priors) from None
    if p.shape != (n_classes,):
        raise ValueError(f"The 'priors' parameter of {owner} must have shape ({n_classes},), got {p.shape}")
    if not np.isfinite(p).all() or (p < 0).any() or not np.isclose(p.sum(), 1.0):
        raise param_error(owner, "priors", "finite, non-negative and sum to 1", p.tolist())
    return p


class BaseAggregator:
    """Common surface of all aggregators (fit / fit_predict / fit_predict_proba, params).

    Subclasses implement :meth:`_fit` on :class:`Annotations` and set ``labels_``,
    ``probas_``, ``priors_`` (and method-specific attributes).

    Attributes
    ----------
    labels_ : ndarray of shape (n_items,)
        Aggregated class index of each item.
    probas_ : ndarray of shape (n_items, n_classes)
        Posterior (or normalised vote) of each class for each item; rows sum to 1.
    priors_ : ndarray of shape (n_classes,)
        Class prior.
    classes_ : ndarray of shape (n_classes,)
        Original class ids, in class-index order.
    item_ids_ : ndarray of shape (n_items,)
        Original item ids, in item-index order.
    annotator_ids_ : ndarray of shape (n_annotators,)
        Original annotator ids.
    annotations_ : Annotations
        The labels fitted so far (the input of :meth:`fit`, plus those of every
        :meth:`partial_fit`); a reference, not a copy.
    known_labels_ : ndarray of int of shape (n_items,)
        Gold class of each item (``known_labels`` of :meth:`fit` / :meth:`partial_fit`), -1 where
        unknown.
    """

    labels_: IntArray
    probas_: FloatArray
    priors_: FloatArray
    classes_: np.ndarray[Any, Any]
    item_ids_: np.ndarray[Any, Any]
    annotator_ids_: np.ndarray[Any, Any]
    annotations_: Annotations
    known_labels_: IntArray
    _frame_output: bool
    _callback: IterationCallback | None
    _known: IntArray | None

    # ------------------------------------------------------------------ params (sklearn style)
    @classmethod
    def _get_param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return sorted(p.name for p in sig.parameters.values() if p.name != "self" and p.kind == p.KEYWORD_ONLY)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Parameters given to ``__init__`` (scikit-learn convention)."""
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params: Any) -> BaseAggregator:
        """Set parameters (scikit-learn convention); unknown names raise ``ValueError``."""
        valid = set(self._get_param_names())
        for key, value in params.items():
            if key not in valid:
                raise ValueError(f"Invalid parameter {key!r} for {type(self).__name__}; valid: {sorted(valid)}")
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # ------------------------------------------------------------------ public API
    def fit(
        self,
        annotations: Annotations | pd.DataFrame,
        *,
        known_labels: Any = None,
        callback: IterationCallback | None = None,
    ) -> Self:
        """Learn from crowd labels.

        Parameters
        ----------
        annotations : Annotations, DataFrame or Dask DataFrame
            The labels; a DataFrame needs columns ``task``, ``worker``, ``label``. A Dask
            DataFrame runs the Dask backend (:mod:`crowdlearn.aggregate.dask_backend`;
            MajorityVote, DawidSkene, OneCoinDawidSkene and MACE; others raise ``TypeError``).
        known_labels : array-like of int of shape (n_items,), Series or dict, optional
            Gold labels: the true class of some items, as class indices with -1 for unknown items,
            or a mapping item id -> class id. Every aggregator returns the gold class for them
            (``labels_`` and a one-hot ``probas_`` row); what else it does with them is on each
            class (EM methods clamp their posteriors in every E-step, so they inform the
            annotator parameters; see docs/active.md, "Gold labels"). With a Dask DataFrame, a
            Series or dict item id -> class id (the DawidSkene family).
        callback : callable, optional
            ``callback(iterations_done, log_likelihood)`` after every EM iteration (progress
            display; the EM methods only, one-pass methods never call it).

        Returns
        -------
        self
        """
        if is_dask_frame(annotations):
            from crowdlearn.aggregate.dask_backend import fit_dask

            fit_dask(self, annotations, known_labels=known_labels, callback=callback)
            return self
        ann = self._start_fit(annotations, callback, known_labels)
        self._fit(ann)
        self._finish_fit()
        return self

    def partial_fit(
        self,
        annotations: Annotations | pd.DataFrame,
        *,
        known_labels: Any = None,
        callback: IterationCallback | None = None,
    ) -> Self:
        """Add labels to a fitted aggregator without starting again from scratch.

        ``annotations`` holds the *new* labels; they are appended to the labels seen so far
        (``annotations_``) by id (:meth:`Annotations.concat`): items, annotators and classes
        keep their indices, new item and annotator ids get the next indices, so every fitted
        array grows at its end. A label for an (item, annotator) pair seen before is an error,
        and so is a class not seen before. On an unfitted aggregator this is :meth:`fit`.

        The EM aggregators with a warm start (:class:`~crowdlearn.aggregate.DawidSkene`,
        :class:`~crowdlearn.aggregate.OneCoinDawidSkene`, :class:`~crowdlearn.aggregate.GLAD`,
        :class:`~crowdlearn.aggregate.MACE`) continue EM from the fitted parameters (new
        annotators and items start from the values :meth:`fit` would start them from) until the
        ``tol`` rule stops it: on a likelihood with one dominant mode this is the fixed point of
        a fit on all labels, in fewer iterations for small updates. EM is path dependent: after
        many updates from a poor start a warm start can stay in a worse mode than a fit from
        scratch finds, so refit now and then (compare ``log_likelihood_[-1]``). The one-pass
        aggregators recount (one pass over all labels seen so far, equal to :meth:`fit` on
        them). See docs/active.md, "Incremental updates".

        Parameters
        ----------
        annotations : Annotations or DataFrame
            The new labels.
        known_labels : array-like of shape (n_items_total,), Series or dict, optional
            Gold labels to add, over the combined items (class indices with -1 for unknown, or
            item id -> class id); earlier gold labels are kept unless overridden.
        callback : callable, optional
            As in :meth:`fit`.

        Returns
        -------
        self
        """
        if not hasattr(self, "annotations_"):
            return self.fit(annotations, known_labels=known_labels, callback=callback)
        new, _ = as_annotations(annotations)
        old = self.annotations_
        combined = old.concat(new)
        if combined.n_classes != old.n_classes:
            extra = combined.classes[old.n_classes :].tolist()[:10]
            raise AnnotationsError(
                f"partial_fit got class id(s) {extra} not seen by fit (classes {old.classes.tolist()[:10]}); "
                "fit again with all classes (Annotations.from_ids(..., classes=[...]))"
            )
        previous = np.full(combined.n_items, -1, dtype=np.int64)
        previous[: old.n_items] = self.known_labels_
        added = known_label_array(known_labels, combined)
        known = previous if added is None else np.where(added >= 0, added, previous)
        n_items, n_annotators = old.n_items, old.n_annotators
        frame = self._frame_output
        self._start_fit(combined, callback, known)
        self._frame_output = frame
        self._partial_fit(combined, n_items, n_annotators)
        self._finish_fit()
        return self

    def fit_predict(self, annotations: Annotations | pd.DataFrame, **fit_params: Any) -> Any:
        """Fit and return the aggregated labels.

        Returns
        -------
        ndarray of shape (n_items,) with class indices (Annotations input), or a
        :class:`pandas.Series` of class ids indexed by task, named ``agg_label`` (DataFrame input).
        """
        self.fit(annotations, **fit_params)
        return self._labels_output()

    def fit_predict_proba(self, annotations: Annotations | pd.DataFrame, **fit_params: Any) -> Any:
        """Fit and return the posterior over classes.

        Returns
        -------
        ndarray of shape (n_items, n_classes) (Annotations input), or a :class:`pandas.DataFrame`
        indexed by task with one column per class id (DataFrame input).
        """
        self.fit(annotations, **fit_params)
        return self._probas_output()

    # ------------------------------------------------------------------ helpers
    def _start_fit(
        self,
        annotations: Annotations | pd.DataFrame,
        callback: IterationCallback | None = None,
        known_labels: Any = None,
    ) -> Annotations:
        if is_dask_frame(annotations):
            raise TypeError(
                f"{type(self).__name__} has no Dask backend (supported: MajorityVote, DawidSkene, "
                "OneCoinDawidSkene, MACE); pass frame.compute() (a pandas DataFrame) to fit it in memory"
            )
        ann, frame = as_annotations(annotations)
        for name in ("labels_frame_", "probas_frame_"):  # left by an earlier Dask fit
            self.__dict__.pop(name, None)
        if ann.n_classes < 1:
            raise AnnotationsError(f"{type(self).__name__} needs at least one class; the annotations have none")
        self._validate_params(ann)
        known = known_label_array(known_labels, ann)
        self._callback = callback
        self._frame_output = frame
        self._known = known if known is not None and bool((known >= 0).any()) else None
        self.known_labels_ = known if known is not None else np.full(ann.n_items, -1, dtype=np.int64)
        self.annotations_ = ann
        self.classes_ = ann.classes
        self.item_ids_ = ann.item_ids
        self.annotator_ids_ = ann.annotator_ids
        return ann

    def _finish_fit(self) -> None:
        """Give the gold items their gold class in ``labels_`` and ``probas_`` (every aggregator)."""
        if self._known is None:
            return
        self.probas_ = np.array(self.probas_, dtype=np.float64)
        clamp_rows(self.probas_, self._known)
        idx = np.flatnonzero(self._known >= 0)
        labels = np.array(self.labels_, dtype=np.int64)
        labels[idx] = self._known[idx]
        self.labels_ = labels

    def _partial_fit(self, ann: Annotations, n_old_items: int, n_old_annotators: int) -> None:
        """Refit on all labels seen so far (``ann``); the EM aggregators override it with a warm start.

        The fitted attributes still describe the first ``n_old_items`` items and
        ``n_old_annotators`` annotators of ``ann`` when this is called.
        """
        self._fit(ann)

    def _validate_params(self, ann: Annotations) -> None:
        """Check the parameters against the data; overridden by subclasses."""

    def _iteration_done(self, n_done: int, history: list[float], tol: float) -> bool:
        """Report EM iteration ``n_done`` to the fit's callback; True when EM has converged."""
        callback = getattr(self, "_callback", None)
        if callback is not None:
            callback(n_done, history[-1])
        return has_converged(history, tol)

    def _fit(self, ann: Annotations) -> None:
        raise NotImplementedError

    def _labels_output(self) -> Any:
        if "labels_frame_" in self.__dict__:  # fitted by the Dask backend: lazy, indexed by task
            return self.__dict__["labels_frame_"]
        if not self._frame_output:
            return self.labels_
        return pd.Series(self.classes_[self.labels_], index=pd.Index(self.item_ids_, name="task"), name="agg_label")

    def _probas_output(self) -> Any:
        if "probas_frame_" in self.__dict__:
            return self.__dict__["probas_frame_"]
        if not self._frame_output:
            return self.probas_
        return pd.DataFrame(
            self.probas_,
            index=pd.Index(self.item_ids_, name="task"),
            columns=pd.Index(self.classes_, name="label"),
        )

    def _per_annotator(self, values: Any, name: str, n_annotators: int) -> FloatArray:
        """An array (n_annotators,) or a Series/Mapping keyed by annotator id -> float array."""
        if isinstance(values, (pd.Series, Mapping)):
            s = pd.Series(values, dtype=np.float64)
            aligned = s.reindex(self.annotator_ids_)
            absent = np.flatnonzero(~pd.Index(self.annotator_ids_).isin(s.index))
            if absent.size:
                missing = self.annotator_ids_[absent[:10]].tolist()
                raise ValueError(f"The '{name}' parameter has no value for annotator id(s) {missing}")
            return np.asarray(aligned.to_numpy(dtype=np.float64), dtype=np.float64)
        arr = np.asarray(values, dtype=np.float64)
        if arr.shape != (n_annotators,):
            raise ValueError(
                f"The '{name}' parameter must have shape ({n_annotators},) (one per annotator), got {arr.shape}"
            )
        return arr


def break_ties(scores: FloatArray, tie_break: str, rng: np.random.Generator, rtol: float = 1e-12) -> IntArray:
    """Row-wise argmax of ``scores`` (n_rows, K) with ties broken by ``tie_break``.

    ``"first"``: the smallest class index among the tied maxima. ``"random"``: uniformly among
    them, using ``rng`` (seeded by the caller). Values within ``rtol * max(1, |max|)`` of the row
    maximum count as tied (weighted votes accumulate rounding error).
    """
    if scores.shape[1] == 0:
        return np.zeros(scores.shape[0], dtype=np.int64)
    mx = scores.max(axis=1, keepdims=True)
    tied = scores >= mx - rtol * np.maximum(1.0, np.abs(mx))
    if tie_break == "first":
        first: IntArray = np.argmax(tied, axis=1).astype(np.int64)
        return first
    keys = rng.random(scores.shape)
    keys[~tied] = -1.0
    chosen: IntArray = np.argmax(keys, axis=1).astype(np.int64)
    return chosen


def has_converged(history: list[float], tol: float) -> bool:
    """EM stopping rule on the observed-data log-likelihood history.

    True when the last change is at most ``tol * max(1, |last|)`` (a relative tolerance).
    ``tol <= 0`` disables the rule, so exactly ``n_iter`` iterations run (equal-work timing).
    """
    if tol <= 0 or len(history) < 2:
        return False
    return abs(history[-1] - history[-2]) <= tol * max(1.0, abs(history[-1]))


def check_em_params(n_iter: Any, tol: Any, smoothing: Any, owner: str) -> None:
    """Validate the common EM parameters (``n_iter=0`` is the initialisation only)."""
    check_number(n_iter, "n_iter", owner, low=0, integer=True)
    check_number(tol, "tol", owner, low=0, allow_neg_inf=True)
    check_number(smoothing, "smoothing", owner, low=0)


def per_label_log_joint(ann: Annotations, log_match: FloatArray, log_other: FloatArray) -> FloatArray:
    """Sum of per-label log-likelihoods where each label has one value for the class it names.

    For each label ``(n, m, y)``: ``log p(y | true = y) = log_match`` and
    ``log p(y | true = k != y) = log_other``. Returns the (n_items, K) array
    ``sum over n's labels`` by two ``np.bincount`` scatter-adds, O(n_labels + n_items * K).
    """
    N, K = ann.n_items, ann.n_classes
    base = np.bincount(ann.items, weights=log_other, minlength=N)
    extra = np.bincount(ann.items * K + ann.labels, weights=log_match - log_other, minlength=N * K)
    out: FloatArray = np.asarray(extra.reshape(N, K) + base[:, None], dtype=np.float64)
    return out


def soft_vote(ann: Annotations) -> FloatArray:
    """Normalised vote counts (n_items, K); items without labels uniform."""
    votes = ann.vote_counts()
    tot = votes.sum(axis=1, keepdims=True)
    soft: FloatArray = np.divide(votes, tot, out=np.full_like(votes, 1.0 / max(ann.n_classes, 1)), where=tot > 0)
    return soft


def learned_priors(posteriors: FloatArray, labelled: npt.NDArray[np.bool_], fixed: FloatArray | None) -> FloatArray:
    """Fixed prior, or the mean posterior over labelled items (uniform if none are labelled)."""
    if fixed is not None:
        return fixed
    n = int(labelled.sum())
    K = posteriors.shape[1]
    if n == 0:
        return np.full(K, 1.0 / K)
    out: FloatArray = (labelled.astype(np.float64) / n) @ posteriors
    return out
