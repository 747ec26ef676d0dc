"""crowd-kit's ``Wawa`` on :class:`crowdlearn.aggregate.Wawa`."""

from __future__ import annotations

import numpy as np
import pandas as pd

from crowdlearn.aggregate import Wawa as _Wawa
from crowdlearn.annotations import Annotations
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

    def _fit_frame(self, data: pd.DataFrame) -> Annotations | None:
        """Learn each worker's agreement with the majority vote."""
        data = _frame.columns(data)
        if data.empty:
            self.skills_ = pd.Series(dtype=float, name="skill")
            return None
        ann = _frame.to_annotations(data)
        w = _Wawa(tie_break="first")
        w.fit(ann)
        self._native_vote = (ann, w.labels_, w.probas_)
        self.skills_ = _frame.worker_series(ann, np.asarray(w.skills_), "skill").sort_index()
        return ann
