"""crowd-kit's ``SegmentationMajorityVote`` on :class:`crowdlearn.aggregate.segmentation.SegmentationMajorityVote`."""

from __future__ import annotations

import pandas as pd

from crowdlearn.aggregate.segmentation import SegmentationMajorityVote as _Native
from crowdlearn.compat.crowdkit import _frame
from crowdlearn.compat.crowdkit.aggregation.base import BaseImageSegmentationAggregator
from crowdlearn.compat.crowdkit.aggregation.image_segmentation import _masks

__all__ = ["SegmentationMajorityVote"]


class SegmentationMajorityVote(BaseImageSegmentationAggregator):
    """Pixel-wise majority vote over the workers' masks, optionally weighted by skills (crowd-kit API).

    A pixel is in when its weighted "in" votes are at least half of the task's weighted votes.

    Parameters
    ----------
    default_skill : float, optional
        Skill of workers missing from ``skills`` when ``on_missing_skill="value"``.
    on_missing_skill : {"error", "ignore", "value"}, default="error"
        Workers without a skill: raise; drop their answers (raise if a task loses all); or use
        ``default_skill``.

    Attributes
    ----------
    segmentations_ : Series
        Boolean mask of each task (index ``task``, sorted; name ``agg_segmentation``).
    skills_ : Series or None
        The ``skills`` passed to ``fit`` (index ``worker``, name ``skill``).
    """

    def __init__(self, default_skill: float | None = None, on_missing_skill: str = "error") -> None:
        self.default_skill = default_skill
        self.on_missing_skill = on_missing_skill
        self.skills_: pd.Series | None = None
        self.segmentations_: pd.Series | None = None

    def fit(self, data: pd.DataFrame, skills: pd.Series | None = None) -> SegmentationMajorityVote:
        """Vote on ``data`` (columns task, worker, segmentation), weighting by ``skills`` (worker -> skill)."""
        data = _frame.columns(data, _masks.COLUMNS)
        weights = None
        if skills is not None:
            data, weights = _masks.answer_weights(data, skills, self.on_missing_skill, self.default_skill)
            self.skills_ = pd.Series(skills, name="skill")
        masks, codes, tasks = _masks.split(data)
        result = _Native().fit_predict(masks, codes, weights, n_tasks=len(tasks))
        self.segmentations_ = _masks.segmentations_series(result, tasks)
        return self

    def fit_predict(self, data: pd.DataFrame, skills: pd.Series | None = None) -> pd.Series:
        """Fit and return ``segmentations_``."""
        self.fit(data, skills)
        assert self.segmentations_ is not None
        return self.segmentations_
