"""crowd-kit's ``MACE`` on :class:`crowdlearn.aggregate.MACE`."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from crowdlearn.aggregate import MACE as _MACE
from crowdlearn.compat.crowdkit import _frame
from crowdlearn.compat.crowdkit.aggregation.base import ProbasAggregator

__all__ = ["MACE"]


class MACE(ProbasAggregator):
    r"""MACE (crowd-kit API) on :class:`crowdlearn.aggregate.MACE`.

    ``method="vb"``: variational Bayes with a Beta(``alpha``, ``beta``) competence prior (crowdlearn's
    is symmetric: ``alpha`` must equal ``beta``) and crowd-kit's Dirichlet(10) strategy prior;
    ``method="em"``: MAP EM with pseudo-count ``smoothing``; both with a uniform class prior, as
    crowd-kit's MACE (and the paper). crowdlearn starts from the soft
    majority vote, deterministically, so ``n_restarts``, ``default_noise``, ``random_state`` and
    ``verbose`` (crowd-kit's random restarts) are accepted and unused; fitting runs ``n_iter``
    iterations or stops at crowdlearn's tolerance.

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
        ``[P(spamming), P(knowing)]`` of each worker (workers in first-appearance order).
    thetas_ : ndarray of shape (n_workers, n_labels)
        Spamming strategy of each worker (labels sorted).
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
        if self.method == "vb":
            est = _MACE(
                n_iter=int(self.n_iter),
                method="vb",
                competence_prior=float(self.alpha),
                strategy_prior=10.0,
                priors="uniform",
            )
        else:
            s = float(self.smoothing)
            est = _MACE(n_iter=int(self.n_iter), method="em", smoothing=s, competence_smoothing=s, priors="uniform")
        est.fit(ann)
        self.probas_ = _frame.probas_frame(ann, est.probas_)
        self.labels_ = _frame.labels_series(ann, est.labels_)
        self.spamming_ = np.column_stack([1.0 - est.competences_, est.competences_])
        self.thetas_ = est.strategies_
        return self
