"""The predict half shared by Wawa, GoldMajorityVote and ZeroBasedSkill: a skill-weighted vote."""

from __future__ import annotations

import pandas as pd

from crowdlearn.compat.crowdkit.aggregation.base import BaseClassificationAggregator
from crowdlearn.compat.crowdkit.aggregation.classification.majority_vote import MajorityVote

__all__ = ["SkillWeightedVote"]


class SkillWeightedVote(BaseClassificationAggregator):
    """``fit`` learns ``skills_``; ``predict`` is :class:`MajorityVote` weighted by them."""

    skills_: pd.Series | None
    probas_: pd.DataFrame | None

    def _apply(self, data: pd.DataFrame) -> SkillWeightedVote:
        if getattr(self, "skills_", None) is None:
            raise ValueError(f"This {type(self).__name__} instance is not fitted yet: call fit before predict")
        mv = MajorityVote().fit(data, self.skills_)
        self.labels_ = mv.labels_
        self.probas_ = mv.probas_
        return self

    def predict(self, data: pd.DataFrame) -> pd.Series:
        """Labels of ``data`` by the vote weighted by the fitted ``skills_``."""
        self._apply(data)
        assert self.labels_ is not None
        return self.labels_

    def predict_proba(self, data: pd.DataFrame) -> pd.DataFrame:
        """Normalised weighted votes of ``data``, indexed by task, one column per label."""
        self._apply(data)
        assert self.probas_ is not None
        return self.probas_
