"""crowd-kit's ``GLAD`` on :class:`crowdlearn.aggregate.GLAD`."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from crowdlearn.aggregate import GLAD as _GLADNative
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
