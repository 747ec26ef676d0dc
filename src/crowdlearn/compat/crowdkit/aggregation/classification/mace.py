"""crowd-kit's ``MACE`` on :class:`crowdlearn.aggregate.MACE`."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from crowdlearn.aggregate import MACE as _MACE
from crowdlearn.aggregate.mace import random_start
from crowdlearn.annotations import Annotations
from crowdlearn.compat.crowdkit import _frame
from crowdlearn.compat.crowdkit.aggregation.base import ProbasAggregator

__all__ = ["MACE"]


class MACE(ProbasAggregator):
    r"""MACE (crowd-kit API) on :class:`crowdlearn.aggregate.MACE`.

    ``method="vb"``: variational Bayes with a Beta(``alpha``, ``beta``) competence prior (crowdlearn's
    is symmetric: ``alpha`` must equal ``beta``) and crowd-kit's Dirichlet(10) strategy prior;
    ``method="em"``: MAP EM with pseudo-count ``smoothing``; both with a uniform class prior, as
    crowd-kit's MACE (and the paper). Starts, as crowd-kit does, from
    :func:`crowdlearn.aggregate.mace.random_start` (``default_noise``, ``random_state``: crowd-kit's
    draws, workers in order of first appearance, labels in crowd-kit's order of first appearance)
    and runs all ``n_iter`` iterations. An int ``random_state`` makes crowd-kit's ``n_restarts``
    restarts identical, so it runs once; with ``random_state=None`` it runs ``n_restarts`` random
    starts and keeps the one of highest log-likelihood. ``verbose`` is accepted and unused.
    crowd-kit's own MACE misaligns the strategies after its first M-step (see docs/crowdkit.md);
    this one does not, so its results differ where the workers or labels do not appear in
    sorted order.

    Parameters
    ----------
    n_restarts : int, default=10
    n_iter : int, default=50
    method : {"vb", "em"}, default="vb"
    smoothing : float, default=0.1
    default_noise : float, default=0.5
    alpha, beta : float, default=0.5
    random_state : int, default=0
    verbose : int, default=0

    Attributes
    ----------
    labels_ : Series
    probas_ : DataFrame
    spamming_ : ndarray of shape (n_workers, 2)
        ``[P(spamming), P(knowing)]`` of each worker (workers in first-appearance order; under
        ``"vb"`` renormalised, where crowd-kit keeps the sub-normalised variational weights).
    thetas_ : ndarray of shape (n_workers, n_labels)
        Spamming strategy of each worker (workers in first-appearance order, labels sorted;
        renormalised under ``"vb"``).
    """

    def __init__(
        self,
        n_restarts: int = 10,
        n_iter: int = 50,
        method: str = "vb",
        smoothing: float = 0.1,
        default_noise: float = 0.5,
        alpha: float = 0.5,
        beta: float = 0.5,
        random_state: int = 0,
        verbose: int = 0,
    ) -> None:
        self.n_restarts = n_restarts
        self.n_iter = n_iter
        self.method = method
        self.smoothing = smoothing
        self.default_noise = default_noise
        self.alpha = alpha
        self.beta = beta
        self.random_state = random_state
        self.verbose = verbose
        self.labels_: pd.Series | None = None
        self.probas_: pd.DataFrame | None = None
        self.spamming_: npt.NDArray[np.float64] | None = None
        self.thetas_: npt.NDArray[np.float64] | None = None

    def fit(self, data: pd.DataFrame) -> MACE:
        """Fit on ``data`` (task, worker, label)."""
        data = _frame.columns(data)
        if self.method not in ("vb", "em"):
            raise ValueError(f"method must be 'vb' or 'em', got {self.method!r}")
        if self.method == "vb" and self.alpha != self.beta:
            raise ValueError(
                f"crowdlearn's MACE has a symmetric competence prior: alpha must equal beta, "
                f"got {self.alpha} and {self.beta}"
            )
        if data.empty:
            self.probas_ = pd.DataFrame()
            self.labels_ = pd.Series(dtype=float, name="agg_label")
            return self
        ann = _frame.to_annotations(data)
        est = self._best(ann, data)
        self.probas_ = _frame.probas_frame(ann, est.probas_)
        self.labels_ = _frame.labels_series(ann, est.labels_)
        self.spamming_ = np.column_stack([1.0 - est.competences_, est.competences_])
        self.thetas_ = est.strategies_
        return self

    def _native(self, theta: npt.NDArray[np.float64], xi: npt.NDArray[np.float64]) -> _MACE:
        vb = self.method == "vb"
        return _MACE(
            n_iter=int(self.n_iter),
            tol=0.0,  # crowd-kit runs all n_iter iterations
            method=self.method,
            competence_prior=float(self.alpha) if vb else 0.5,
            strategy_prior=10.0,
            smoothing=float(self.smoothing),
            competence_smoothing=float(self.smoothing),
            priors="uniform",
            init_competences=theta,
            init_strategies=xi,
        )

    def _best(self, ann: Annotations, data: pd.DataFrame) -> _MACE:
        """Fit from crowd-kit's random start(s); the fit of highest final log-likelihood."""
        # crowd-kit draws the strategies' columns in its label order (first appearance)
        order = pd.Index(ann.classes.tolist()).get_indexer(pd.unique(data["label"]).tolist())
        n_runs = 1 if self.random_state is not None else max(int(self.n_restarts), 1)
        best: _MACE | None = None
        for _ in range(n_runs):
            theta, drawn = random_start(ann.n_annotators, ann.n_classes, float(self.default_noise), self.random_state)
            xi = np.empty_like(drawn)
            xi[:, order] = drawn
            est = self._native(theta, xi).fit(ann)
            if best is None or (est.log_likelihood_ and est.log_likelihood_[-1] > best.log_likelihood_[-1]):
                best = est
        assert best is not None
        return best
