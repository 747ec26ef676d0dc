"""crowd-kit's ``Wawa`` on :class:`crowdlearn.aggregate.Wawa`."""

from __future__ import annotations

import numpy as np
import pandas as pd

from crowdlearn.aggregate import Wawa as _Wawa
from crowdlearn.compat.crowdkit import _frame
from crowdlearn.compat.crowdkit.aggregation.classification._skill_vote import SkillWeightedVote

__all__ = ["Wawa"]


class Wawa(SkillWeightedVote):
    """Worker Agreement With Aggregate (crowd-kit API).

    ``fit``: the skills of :class:`crowdlearn.aggregate.Wawa` (agreement with the majority vote,
    ``tie_break="first"``). ``predict``: the vote weighted by them. Works with current
    scikit-learn (crowd-kit 1.4.2's Wawa crashes there on ``__sklearn_tags__``).

    Attributes
    ----------
    skills_ : Series
        Agreement of each worker with the majority vote (index ``worker``, name ``skill``).
    labels_ : Series
        Aggregated label of each task (after predict / fit_predict).
    probas_ : DataFrame
        Normalised skill-weighted votes (after predict_proba / fit_predict_proba).
    """

    def __init__(self) -> None:
        self.skills_: pd.Series | None = None
        self.probas_: pd.DataFrame | None = None
        self.labels_: pd.Series | None = None

    def fit(self, data: pd.DataFrame) -> Wawa:
        """Learn each worker's agreement with the majority vote."""
        data = _frame.columns(data)
        if data.empty:
            self.skills_ = pd.Series(dtype=float, name="skill")
            return self
        ann = _frame.to_annotations(data)
        w = _Wawa(tie_break="first")
        w.fit(ann)
        self.skills_ = _frame.worker_series(ann, np.asarray(w.skills_), "skill").sort_index()
        return self

    def fit_predict(self, data: pd.DataFrame) -> pd.Series:
        """Fit and return the labels of ``data``."""
        return self.fit(data).predict(data)

    def fit_predict_proba(self, data: pd.DataFrame) -> pd.DataFrame:
        """Fit and return the probabilities of ``data``."""
        return self.fit(data).predict_proba(data)
