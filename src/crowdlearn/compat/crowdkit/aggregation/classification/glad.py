"""crowd-kit's ``GLAD`` on :class:`crowdlearn.aggregate.GLAD`."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from crowdlearn.aggregate import GLAD as _GLADNative
from crowdlearn.aggregate.glad import glad_e_step, glad_q, glad_q_gradient
from crowdlearn.annotations import Annotations
from crowdlearn.compat.crowdkit import _frame
from crowdlearn.compat.crowdkit.aggregation.base import ProbasAggregator
from crowdlearn.compat.crowdkit.aggregation.classification.dawid_skene import _CrowdKitRule

__all__ = ["GLAD"]


class _GLAD(_CrowdKitRule, _GLADNative):
    def _iteration_done(self, n_done: int, history: list[float], tol: float) -> bool:
        super()._iteration_done(n_done, history, 0.0)
        return self._rule(history)


def _one_mean(value: Any, name: str) -> float:
    """A prior mean given as a number or a Series of equal values (crowdlearn's GLAD takes one)."""
    if value is None:
        return 1.0
    if isinstance(value, pd.Series):
        v = value.to_numpy(dtype=np.float64)
        if v.size and not np.all(v == v[0]):
            raise ValueError(
                f"{name} must be one value for all (crowdlearn's GLAD has one prior mean); "
                f"got {v.size} different values"
            )
        return float(v[0]) if v.size else 1.0
    return float(value)


class GLAD(ProbasAggregator):
    r"""GLAD (crowd-kit API): worker expertise :math:`\alpha` and task difficulty :math:`e^{\beta}`.

    Runs :class:`crowdlearn.aggregate.GLAD` (vectorized EM with a block-Newton M-step);
    ``m_step_max_iter`` and ``m_step_tol`` (crowd-kit's conjugate-gradient M-step) are accepted
    and unused, and ``silent`` has no effect (there is no progress bar). Stops as
    :class:`~crowdlearn.compat.crowdkit.aggregation.DawidSkene` does: after the first iteration
    whose log-likelihood per label rose by less than ``tol``.

    Parameters
    ----------
    n_iter : int, default=100
    tol : float, default=1e-5
    silent : bool, default=True
    labels_priors : Series, optional
        Class prior (label -> probability); default uniform.
    alphas_priors_mean : float or Series, optional
        Mean of the Gaussian prior of every :math:`\alpha` (default 1).
    betas_priors_mean : float or Series, optional
        Mean of the Gaussian prior of every :math:`\beta` (default 1).
    m_step_max_iter : int, default=25
    m_step_tol : float, default=1e-2

    Attributes
    ----------
    labels_ : Series
    probas_ : DataFrame
    alphas_ : Series
        Expertise of each worker (index ``worker``, name ``alpha``).
    betas_ : Series
        :math:`\beta` of each task, inverse difficulty :math:`e^{\beta}` (index ``task``, name ``beta``).
    loss_history_ : list of float
        Log-likelihood per label after each iteration.

    crowd-kit's private steps ``_init``, ``_join_all``, ``_e_step``, ``_compute_Q``,
    ``_gradient_Q``, ``_update_alphas_betas`` and ``_get_alphas_betas_by_point`` exist as pandas
    adapters over :func:`crowdlearn.aggregate.glad.glad_e_step`, :func:`~crowdlearn.aggregate.glad.glad_q`
    and :func:`~crowdlearn.aggregate.glad.glad_q_gradient` (``fit`` does not use them). Their
    ``data`` frame has one row per answer (task, worker, label, alpha, beta, and ``posterior``: the
    posterior that the answer's label is the true one), not crowd-kit's row per (answer, label).
    """

    def __init__(
        self,
        n_iter: int = 100,
        tol: float = 1e-5,
        silent: bool = True,
        labels_priors: pd.Series | None = None,
        alphas_priors_mean: Any = None,
        betas_priors_mean: Any = None,
        m_step_max_iter: int = 25,
        m_step_tol: float = 1e-2,
    ) -> None:
        self.n_iter = n_iter
        self.tol = tol
        self.silent = silent
        self.labels_priors = labels_priors
        self.alphas_priors_mean = alphas_priors_mean
        self.betas_priors_mean = betas_priors_mean
        self.m_step_max_iter = m_step_max_iter
        self.m_step_tol = m_step_tol
        self.labels_: pd.Series | None = None
        self.probas_: pd.DataFrame | None = None
        self.alphas_: pd.Series | None = None
        self.betas_: pd.Series | None = None
        self.loss_history_: list[float] = []

    def _priors(self, ann: Annotations) -> Any:
        if self.labels_priors is None:
            return "uniform"
        p = pd.Series(self.labels_priors, dtype=np.float64).reindex(pd.Index(ann.classes.tolist()))
        if p.isna().any():
            raise ValueError(f"labels_priors has no value for label(s) {p.index[p.isna()].tolist()}")
        return p.to_numpy()

    def fit(self, data: pd.DataFrame) -> GLAD:
        """Run EM on ``data`` (task, worker, label)."""
        data = _frame.columns(data)
        if data.empty:
            self.probas_ = pd.DataFrame()
            self.labels_ = pd.Series(dtype=float, name="agg_label")
            self.alphas_ = pd.Series(dtype=float, name="alpha")
            self.betas_ = pd.Series(dtype=float, name="beta")
            self.loss_history_ = []
            return self
        ann = _frame.to_annotations(data)
        est = _GLAD(
            n_iter=int(self.n_iter),
            tol=0.0,
            alpha_prior_mean=_one_mean(self.alphas_priors_mean, "alphas_priors_mean"),
            beta_prior_mean=_one_mean(self.betas_priors_mean, "betas_priors_mean"),
            priors=self._priors(ann),
        )
        est.ck_tol, est.ck_scale = float(self.tol), float(ann.n_labels)
        est.fit(ann)
        self.probas_ = _frame.probas_frame(ann, est.probas_)
        self.labels_ = _frame.labels_series(ann, est.labels_)
        self.alphas_ = _frame.worker_series(ann, est.alphas_, "alpha")
        self.betas_ = pd.Series(np.log(est.betas_), index=_frame.id_index(ann.item_ids, "task"), name="beta")
        self.loss_history_ = [ll / ann.n_labels for ll in est.log_likelihood_]
        return self

    # crowd-kit's private steps, as adapters over crowdlearn.aggregate.glad's functions. State:
    # the answers as Annotations (``_ann``, rows in the order of the data), alphas_ / betas_
    # (log inverse difficulty, crowd-kit's convention) / priors_ Series in the ids' order.

    def _init(self, data: pd.DataFrame) -> None:
        """Start values: alphas and betas at their prior means (1 by default), the class prior."""
        ann = _frame.to_annotations(_frame.columns(data))
        self._ann = ann
        self.workers_ = ann.annotator_ids
        self.tasks_ = ann.item_ids
        workers = _frame.id_index(ann.annotator_ids, "worker")
        tasks = _frame.id_index(ann.item_ids, "task")
        self.alphas_priors_mean_ = self._prior_means(self.alphas_priors_mean, workers, "alpha")
        self.betas_priors_mean_ = self._prior_means(self.betas_priors_mean, tasks, "beta")
        self.alphas_ = self.alphas_priors_mean_.copy()
        self.betas_ = self.betas_priors_mean_.copy()
        pri = self._priors(ann)
        pri = np.full(ann.n_classes, 1.0 / ann.n_classes) if isinstance(pri, str) else pri
        self.priors_ = pd.Series(pri, index=_frame.id_index(ann.classes, "label"), name="prior")
        self.prior_labels_ = self.priors_.index
        self._current_data: pd.DataFrame | None = None

    @staticmethod
    def _prior_means(value: Any, index: pd.Index, name: str) -> pd.Series:
        if value is None:
            return pd.Series(1.0, index=index, name=name)
        if isinstance(value, pd.Series):
            out = pd.Series(value, dtype=np.float64).reindex(index)
            if out.isna().any():
                raise ValueError(
                    f"{name}s_priors_mean has no value for {index.name}(s) {index[out.isna()][:10].tolist()}"
                )
            return out.rename(name)
        return pd.Series(float(value), index=index, name=name)

    def _state(self) -> tuple[Any, Any, Any]:
        ann = self._ann
        assert self.alphas_ is not None and self.betas_ is not None, "call _init first"
        alpha = self.alphas_.reindex(_frame.id_index(ann.annotator_ids, "worker")).to_numpy(dtype=np.float64)
        b = self.betas_.reindex(_frame.id_index(ann.item_ids, "task")).to_numpy(dtype=np.float64)
        return ann, alpha, b

    def _join_all(self, data: pd.DataFrame, alphas: pd.Series, betas: pd.Series, priors: pd.Series) -> pd.DataFrame:
        """The answers with their worker's alpha, their task's beta and a ``posterior`` column (0 until the E-step)."""
        self.alphas_, self.betas_, self.priors_ = alphas, betas, priors
        out = _frame.columns(data).reset_index(drop=True)
        if len(out) != self._ann.n_labels:
            raise ValueError(f"_join_all got {len(out)} answers, _init {self._ann.n_labels}: pass the same data")
        _, alpha, b = self._state()
        out = out.assign(
            alpha=alpha[self._ann.annotators], beta=b[self._ann.items], posterior=np.zeros(self._ann.n_labels)
        )
        return out

    def _e_step(self, data: pd.DataFrame) -> pd.DataFrame:
        """Posteriors at the current alphas / betas (``probas_``); ``data["posterior"]`` of each answer's label."""
        ann, alpha, b = self._state()
        pri = np.asarray(
            pd.Series(self.priors_, dtype=np.float64).reindex(_frame.id_index(ann.classes, "label")), dtype=np.float64
        )
        T, _ = glad_e_step(ann, alpha, b, pri)
        self.probas_ = _frame.probas_frame(ann, T)
        data = data.copy()
        data["posterior"] = T[ann.items, ann.labels]
        return data

    def _means(self) -> tuple[Any, Any]:
        return self.alphas_priors_mean_.to_numpy(dtype=np.float64), self.betas_priors_mean_.to_numpy(dtype=np.float64)

    def _compute_Q(self, data: pd.DataFrame) -> float:
        """:func:`crowdlearn.aggregate.glad.glad_q` at the current alphas / betas (-inf if NaN)."""
        ann, alpha, b = self._state()
        q = glad_q(ann, data["posterior"].to_numpy(dtype=np.float64), alpha, b, *self._means())
        return -np.inf if np.isnan(q) else q

    def _gradient_Q(self, data: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
        """Gradient of ``_compute_Q``: (dQ/dalpha indexed by worker, dQ/dbeta indexed by task)."""
        ann, alpha, b = self._state()
        g_a, g_b = glad_q_gradient(ann, data["posterior"].to_numpy(dtype=np.float64), alpha, b, *self._means())
        return (
            pd.Series(g_a, index=_frame.id_index(ann.annotator_ids, "worker"), name="dQa"),
            pd.Series(g_b, index=_frame.id_index(ann.item_ids, "task"), name="dQb"),
        )

    def _get_alphas_betas_by_point(self, x: Any) -> tuple[pd.Series, pd.Series]:
        """A flat vector (alphas of the workers, then betas of the tasks) as two Series."""
        x = np.asarray(x, dtype=np.float64)
        n = len(self.workers_)
        return (
            pd.Series(x[:n], index=_frame.id_index(self.workers_, "worker"), name="alpha"),
            pd.Series(x[n:], index=_frame.id_index(self.tasks_, "task"), name="beta"),
        )

    def _update_alphas_betas(self, alphas: pd.Series, betas: pd.Series) -> None:
        """Set alphas_ / betas_ (and the alpha / beta columns of ``_current_data``)."""
        self.alphas_, self.betas_ = alphas, betas
        if self._current_data is not None:
            _, alpha, b = self._state()
            self._current_data["alpha"] = alpha[self._ann.annotators]
            self._current_data["beta"] = b[self._ann.items]
