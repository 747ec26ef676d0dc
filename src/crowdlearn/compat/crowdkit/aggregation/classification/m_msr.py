"""crowd-kit's ``MMSR`` on :class:`crowdlearn.aggregate.MMSR`."""

from __future__ import annotations

import numpy as np
import pandas as pd

from crowdlearn.aggregate import MMSR as _MMSR
from crowdlearn.aggregate.mmsr import signed_vote
from crowdlearn.compat.crowdkit import _frame
from crowdlearn.compat.crowdkit.aggregation.base import BaseClassificationAggregator

__all__ = ["MMSR"]


class MMSR(BaseClassificationAggregator):
    """M-MSR (crowd-kit API): skills by robust rank-one completion, then a skill-weighted vote.

    ``fit`` runs :class:`crowdlearn.aggregate.MMSR` (same start as crowd-kit for the same
    ``random_state``); ``predict`` / ``predict_score`` vote with the fitted log-odds skills, which
    may be negative (:func:`crowdlearn.aggregate.mmsr.signed_vote`).

    Parameters
    ----------
    n_iter : int, default=10000
    tol : float, default=1e-10
    random_state : int, default=0

    Attributes
    ----------
    skills_ : Series
        Log-odds weight of each worker (index ``worker``, name ``skill``).
    scores_ : DataFrame
        Weighted votes divided by their row sum, indexed by task, one column per label.
    labels_ : Series
        Most-scored label of each task.
    loss_history_ : list of float
    """

    def __init__(self, n_iter: int = 10000, tol: float = 1e-10, random_state: int | None = 0) -> None:
        self.n_iter = n_iter
        self.tol = tol
        self.random_state = random_state
        self.skills_: pd.Series | None = None
        self.scores_: pd.DataFrame | None = None
        self.labels_: pd.Series | None = None
        self.loss_history_: list[float] = []

    def fit(self, data: pd.DataFrame) -> MMSR:
        """Estimate the skills from ``data`` (task, worker, label)."""
        data = _frame.columns(data)
        if data.empty:
            self.skills_ = pd.Series(dtype=float, name="skill")
            self.loss_history_ = []
            return self
        ann = _frame.to_annotations(data)
        est = _MMSR(n_iter=int(self.n_iter), tol=float(self.tol), random_state=self.random_state)
        est.fit(ann)
        self.skills_ = _frame.worker_series(ann, est.skills_, "skill")
        self.loss_history_ = list(est.loss_history_)
        return self

    def _apply(self, data: pd.DataFrame) -> MMSR:
        if self.skills_ is None:
            raise ValueError("This MMSR instance is not fitted yet: call fit before predict")
        data = _frame.columns(data)
        if data.empty:
            self.scores_ = pd.DataFrame()
            self.labels_ = pd.Series([], dtype="O", name="agg_label")
            return self
        ann = _frame.to_annotations(data)
        w = pd.Series(self.skills_, dtype=np.float64).reindex(_frame.id_index(ann.annotator_ids, "worker"))
        if w.isna().any():
            missing = w.index[w.isna()].tolist()[:10]
            raise ValueError(f"Skill value is missing for workers {missing}; fit on answers that include them")
        scores, labels = signed_vote(ann, w.to_numpy(dtype=np.float64))
        self.scores_ = _frame.probas_frame(ann, scores)
        self.labels_ = _frame.labels_series(ann, labels)
        return self

    def predict(self, data: pd.DataFrame) -> pd.Series:
        """Labels of ``data`` by the skill-weighted vote."""
        self._apply(data)
        assert self.labels_ is not None
        return self.labels_

    def predict_score(self, data: pd.DataFrame) -> pd.DataFrame:
        """Scores of ``data`` by the skill-weighted vote."""
        self._apply(data)
        assert self.scores_ is not None
        return self.scores_

    def fit_predict(self, data: pd.DataFrame) -> pd.Series:
        """Fit and return the labels of ``data``."""
        return self.fit(data).predict(data)

    def fit_predict_score(self, data: pd.DataFrame) -> pd.DataFrame:
        """Fit and return the scores of ``data``."""
        return self.fit(data).predict_score(data)
