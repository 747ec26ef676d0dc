"""crowd-kit's ``DawidSkene`` and ``OneCoinDawidSkene`` on crowdlearn's vectorized EM."""

from __future__ import annotations

import warnings
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from crowdlearn.aggregate import DawidSkene as _DawidSkene
from crowdlearn.aggregate import OneCoinDawidSkene as _OneCoinDawidSkene
from crowdlearn.aggregate.base import FloatArray, label_matrix, normalise_columns, soft_vote, spmm
from crowdlearn.aggregate.dawid_skene import ds_m_step, one_coin_confusions
from crowdlearn.annotations import Annotations
from crowdlearn.compat.crowdkit import _frame
from crowdlearn.compat.crowdkit.aggregation.base import ProbasAggregator

__all__ = ["DawidSkene", "OneCoinDawidSkene"]

#: crowd-kit's floor on expected counts and priors (``_EPS``); here the M-step pseudo-count.
EPS = 1e-10


class _CrowdKitRule:
    """crowd-kit's documented stopping rule and start, on top of crowdlearn's EM loop.

    Stops after an iteration whose log-likelihood per label rose by less than ``ck_tol`` (the
    true observed-data log-likelihood; crowd-kit's own bound counts the prior once per label).
    ``ck_start``: starting (confusions, priors) of the first E-step, or None for the vote.
    """

    ck_tol: float = 0.0
    ck_scale: float = 1.0
    ck_start: tuple[FloatArray, FloatArray] | None = None

    def _rule(self, history: list[float]) -> bool:
        return len(history) >= 2 and (history[-1] - history[-2]) / self.ck_scale < self.ck_tol


class _DS(_CrowdKitRule, _DawidSkene):
    def _iteration_done(self, n_done: int, history: list[float], tol: float) -> bool:
        super()._iteration_done(n_done, history, 0.0)  # the callback; tol 0 never stops
        return self._rule(history)

    def _initial_confusions(self, ann: Annotations) -> tuple[FloatArray, FloatArray | None] | None:
        return self.ck_start if self.ck_start is not None else super()._initial_confusions(ann)


class _OneCoin(_CrowdKitRule, _OneCoinDawidSkene):
    def _iteration_done(self, n_done: int, history: list[float], tol: float) -> bool:
        super()._iteration_done(n_done, history, 0.0)
        return self._rule(history)


def errors_frame(ann: Annotations, conf: FloatArray) -> pd.DataFrame:
    """Confusions (M, K, K) as crowd-kit's ``errors_``: rows (worker, observed label), columns true label."""
    M, K, _ = conf.shape
    index = pd.MultiIndex.from_product(
        [_frame.id_index(ann.annotator_ids, "worker"), _frame.id_index(ann.classes, "label")], names=["worker", "label"]
    )
    return pd.DataFrame(conf.reshape(M * K, K), index=index, columns=pd.Index(ann.classes.tolist()))


def _priors_series(ann: Annotations, probas: FloatArray) -> pd.Series:
    return pd.Series(probas.mean(axis=0), index=_frame.id_index(ann.classes, "label"), name="prior")


def _clamp(T: FloatArray, known: npt.NDArray[np.int64] | None) -> FloatArray:
    if known is not None:
        idx = np.flatnonzero(known >= 0)
        T[idx] = 0.0
        T[idx, known[idx]] = 1.0
    return T


class _EMFrames(ProbasAggregator):
    """Empty-input results shared by the two Dawid-Skene classes."""

    probas_: pd.DataFrame | None
    priors_: pd.Series | None
    errors_: pd.DataFrame | None
    loss_history_: list[float]

    def _empty(self) -> None:
        self.probas_ = pd.DataFrame()
        self.priors_ = pd.Series(dtype=float, name="prior")
        self.errors_ = pd.DataFrame()
        self.labels_ = pd.Series(dtype=float, name="agg_label")
        self.loss_history_ = []

    def _results(self, ann: Annotations, probas: FloatArray, errors: pd.DataFrame, history: list[float]) -> None:
        self.probas_ = _frame.probas_frame(ann, probas)
        self.priors_ = _priors_series(ann, probas)
        self.errors_ = errors
        self.labels_ = _frame.labels_series(ann, np.argmax(probas, axis=1).astype(np.int64))
        self.loss_history_ = [ll / ann.n_labels for ll in history]


class DawidSkene(_EMFrames):
    r"""Dawid-Skene (crowd-kit API) on :class:`crowdlearn.aggregate.DawidSkene`.

    crowd-kit's loop: start from the majority-vote probabilities, M-step, then ``n_iter`` times
    E-step + M-step; ``probas_`` are the last E-step's, ``errors_`` / ``priors_`` the M-step after
    it. The numerics are crowdlearn's (sparse E/M steps over the observed labels, pseudo-count
    1e-10 where crowd-kit clips counts at 1e-10).

    Stopping (a documented difference): crowd-kit documents "converges when the loss change is
    less than ``tol``", but its loss is an evidence bound that adds the log prior once per label
    instead of once per task, and can fall while EM improves; here the loss is the true
    log-likelihood per label (``loss_history_``), and fitting stops after the first iteration
    whose loss rose by less than ``tol``.

    Parameters
    ----------
    n_iter : int, default=100
        Maximum EM iterations (0: the majority vote).
    tol : float, default=1e-5
        Stop when the per-label log-likelihood rises by less than this.
    initial_error_strategy : {"assign", "addition"} or None, default=None
        How ``fit``'s ``initial_error`` enters the first M-step: replace the counts (``assign``;
        every (worker, label) of the data needed) or add to them (``addition``).

    Attributes
    ----------
    labels_ : Series
        Most probable label of each task (index ``task``, name ``agg_label``).
    probas_ : DataFrame
        Posterior of each label, indexed by task, one column per label (name ``label``).
    priors_ : Series
        Class prior (index ``label``, name ``prior``).
    errors_ : DataFrame
        Confusions, rows (worker, observed label), one column per true label; columns of each
        worker sum to 1.
    loss_history_ : list of float
        Log-likelihood per label after each iteration.
    """

    def __init__(
        self,
        n_iter: int = 100,
        tol: float = 1e-5,
        initial_error_strategy: Literal["assign", "addition"] | None = None,
    ) -> None:
        self.n_iter = n_iter
        self.tol = tol
        self.initial_error_strategy = initial_error_strategy
        self.probas_ = None
        self.priors_ = None
        self.errors_ = None
        self.labels_ = None
        self.loss_history_ = []

    def fit(
        self,
        data: pd.DataFrame,
        true_labels: pd.Series | None = None,
        initial_error: pd.DataFrame | None = None,
    ) -> DawidSkene:
        """Run EM on ``data`` (task, worker, label).

        Parameters
        ----------
        data : DataFrame
        true_labels : Series, optional
            Gold labels (task -> label): their probabilities are clamped in every E-step.
        initial_error : DataFrame, optional
            Counts (or, for ``assign``, probabilities) indexed by (worker, label) with one column
            per true label, used by the first M-step per ``initial_error_strategy``.
        """
        data = _frame.columns(data)
        if data.empty:
            self._empty()
            return self
        ann = _frame.to_annotations(data)
        M, K = ann.n_annotators, ann.n_classes
        known = _frame.class_codes(ann, pd.Series(true_labels), "true_labels") if true_labels is not None else None
        n_iter = int(self.n_iter)
        start = None
        if initial_error is not None and self.initial_error_strategy is not None:
            T0 = _clamp(soft_vote(ann), known)
            counts = spmm(label_matrix(ann).T, T0).reshape(M, K, K)
            errors0 = self._initial_errors(ann, counts, initial_error)
            if n_iter == 0:
                frame = (
                    _normalised_frame(initial_error)
                    if self.initial_error_strategy == "assign"
                    else errors_frame(ann, errors0)
                )
                self._results(ann, T0, frame, [])
                return self
            start = (errors0, T0.mean(axis=0))
            n_iter -= 1
        est = _DS(n_iter=n_iter, tol=0.0, smoothing=EPS)
        est.ck_tol, est.ck_scale, est.ck_start = float(self.tol), float(ann.n_labels), start
        est.fit(ann, known_labels=known)
        T = est.probas_
        errors = ds_m_step(label_matrix(ann).T, T, M, EPS)
        self._results(ann, T, errors_frame(ann, errors), est.log_likelihood_)
        return self

    def _initial_errors(self, ann: Annotations, counts: FloatArray, initial_error: pd.DataFrame) -> FloatArray:
        """The first M-step's confusions (M, K, K) with ``initial_error`` applied."""
        strategy = self.initial_error_strategy
        if strategy not in ("assign", "addition"):
            raise ValueError(f"Invalid initial_error_strategy: {strategy!r}, should be 'assign' or 'addition'")
        if list(initial_error.index.names) != ["worker", "label"]:
            raise ValueError(
                f"The index of initial_error must be: ['worker', 'label'], but got: {list(initial_error.index.names)}"
            )
        classes = pd.Index(ann.classes.tolist())
        unknown = [c for c in initial_error.columns.tolist() if c not in classes]
        if unknown:  # crowd-kit adds them as extra columns that never take part; say so
            warnings.warn(
                f"initial_error column(s) {unknown[:10]} are not labels of the data {classes.tolist()[:10]}; ignored",
                UserWarning,
                stacklevel=3,
            )
        M, K = ann.n_annotators, ann.n_classes
        rows = pd.MultiIndex.from_product([ann.annotator_ids.tolist(), classes.tolist()], names=["worker", "label"])
        given = initial_error.reindex(index=rows, columns=classes)
        if strategy == "assign":
            observed = np.zeros(M * K, dtype=bool)
            observed[ann.annotators * K + ann.labels] = True
            absent = observed & given.isna().all(axis=1).to_numpy()
            if absent.any():
                workers = sorted({ann.annotator_ids[i // K] for i in np.flatnonzero(absent)}, key=str)
                raise ValueError(
                    "All the workers in data should be in initial_error: Can not find "
                    f"{len(workers)} workers' error matrix in initial_error ({workers[:10]})"
                )
            if (initial_error <= 1.0).all().all() and not np.allclose(
                initial_error.groupby(level="worker", sort=False).sum(), 1.0
            ):
                raise ValueError("The sum of each worker's error matrix in initial_error should be 1.0")
            counts = given.fillna(0.0).to_numpy(dtype=np.float64).reshape(M, K, K)
        else:
            counts = counts + given.fillna(0.0).to_numpy(dtype=np.float64).reshape(M, K, K)
        return normalise_columns(np.maximum(counts, EPS), 0.0)

    def fit_predict_proba(
        self, data: pd.DataFrame, true_labels: pd.Series | None = None, initial_error: pd.DataFrame | None = None
    ) -> pd.DataFrame:
        """Fit and return ``probas_``."""
        self.fit(data, true_labels, initial_error)
        assert self.probas_ is not None
        return self.probas_

    def fit_predict(
        self, data: pd.DataFrame, true_labels: pd.Series | None = None, initial_error: pd.DataFrame | None = None
    ) -> pd.Series:
        """Fit and return ``labels_``."""
        self.fit(data, true_labels, initial_error)
        assert self.labels_ is not None
        return self.labels_


def _normalised_frame(initial_error: pd.DataFrame) -> pd.DataFrame:
    """crowd-kit's ``assign`` result at ``n_iter=0``: the given matrix, columns normalised per worker."""
    e = initial_error.clip(lower=EPS)
    return e / e.groupby(level="worker", sort=False).transform("sum")


class OneCoinDawidSkene(_EMFrames):
    """One-coin Dawid-Skene (crowd-kit API) on :class:`crowdlearn.aggregate.OneCoinDawidSkene`.

    Same loop and stopping rule as :class:`DawidSkene`; each worker has one skill (accuracy)
    and uniform errors.

    Parameters
    ----------
    n_iter : int, default=100
    tol : float, default=1e-5
    initial_error_strategy : None
        Accepted for crowd-kit's signature; one-coin fitting takes no initial error.

    Attributes
    ----------
    skills_ : Series
        Accuracy of each worker (index ``worker``, name ``skill``).
    labels_, probas_, priors_, errors_, loss_history_
        As in :class:`DawidSkene` (``errors_`` clipped to [1e-10, 1 - 1e-10]).
    """

    skills_: pd.Series | None

    def __init__(self, n_iter: int = 100, tol: float = 1e-5, initial_error_strategy: Any = None) -> None:
        self.n_iter = n_iter
        self.tol = tol
        self.initial_error_strategy = initial_error_strategy
        self.probas_ = None
        self.priors_ = None
        self.errors_ = None
        self.labels_ = None
        self.skills_ = None
        self.loss_history_ = []

    def fit(self, data: pd.DataFrame) -> OneCoinDawidSkene:
        """Run EM on ``data`` (task, worker, label)."""
        data = _frame.columns(data)
        if data.empty:
            self._empty()
            return self
        ann = _frame.to_annotations(data)
        est = _OneCoin(n_iter=int(self.n_iter), tol=0.0, smoothing=EPS)
        est.ck_tol, est.ck_scale = float(self.tol), float(ann.n_labels)
        est.fit(ann)
        T = est.probas_
        p = est._m_params(ann, None, T)
        if ann.n_classes == 1:
            p = np.ones(ann.n_annotators)
        conf = np.clip(one_coin_confusions(p, ann.n_classes), EPS, 1 - EPS)
        self._results(ann, T, errors_frame(ann, conf), est.log_likelihood_)
        self.skills_ = _frame.worker_series(ann, p, "skill")
        return self
