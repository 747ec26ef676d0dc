"""The predict half shared by Wawa, GoldMajorityVote and ZeroBasedSkill: a skill-weighted vote."""

from __future__ import annotations

from typing import Any, Self

import pandas as pd

from crowdlearn.annotations import Annotations
from crowdlearn.compat.crowdkit import _frame
from crowdlearn.compat.crowdkit.aggregation.base import BaseClassificationAggregator
from crowdlearn.compat.crowdkit.aggregation.classification.majority_vote import MajorityVote

__all__ = ["SkillWeightedVote"]


class SkillWeightedVote(BaseClassificationAggregator):
    """``fit`` learns ``skills_``; ``predict`` is :class:`MajorityVote` weighted by them."""

    skills_: pd.Series | None
    probas_: pd.DataFrame | None
    #: (answers, labels (n_items,), probas (n_items, K)) of the native aggregator's own skill-weighted
    #: vote in the last ``_fit_frame``, when it equals ``predict`` on the same answers.
    _native_vote: tuple[Annotations, Any, Any] | None = None

    def _fit_frame(self, data: pd.DataFrame) -> Annotations | None:
        """Learn ``skills_`` from ``data``; the encoded answers (None when ``data`` is empty)."""
        raise NotImplementedError

    def fit(self, data: pd.DataFrame) -> Self:
        """Learn ``skills_`` from ``data`` (columns task, worker, label)."""
        self._fit_frame(data)
        return self

    def fit_predict(self, data: pd.DataFrame) -> pd.Series:
        """Fit and return the labels of ``data`` (the answers encoded once for both steps)."""
        self._apply(data, self._fit_frame(data))
        assert self.labels_ is not None
        return self.labels_

    def fit_predict_proba(self, data: pd.DataFrame) -> pd.DataFrame:
        """Fit and return the probabilities of ``data``."""
        self._apply(data, self._fit_frame(data))
        assert self.probas_ is not None
        return self.probas_

    def _apply(self, data: pd.DataFrame, ann: Annotations | None = None) -> SkillWeightedVote:
        if getattr(self, "skills_", None) is None:
            raise ValueError(f"This {type(self).__name__} instance is not fitted yet: call fit before predict")
        native = getattr(self, "_native_vote", None)
        self._native_vote = None
        if ann is not None and native is not None and native[0] is ann:
            # fit's native aggregator already voted on these answers with these skills
            # (tie_break="first", every worker has a skill): its result is predict's
            self.labels_ = _frame.labels_series(ann, native[1])
            self.probas_ = _frame.probas_frame(ann, native[2])
            return self
        mv = MajorityVote().fit(data, self.skills_) if ann is None else MajorityVote()._fit_ann(ann, self.skills_)
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
