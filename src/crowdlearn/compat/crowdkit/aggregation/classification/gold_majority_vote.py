"""crowd-kit's ``GoldMajorityVote`` on :class:`crowdlearn.aggregate.GoldMajorityVote`."""

from __future__ import annotations

from typing import Self

import numpy as np
import pandas as pd

from crowdlearn.annotations import Annotations
from crowdlearn.compat.crowdkit import _frame
from crowdlearn.compat.crowdkit.aggregation.classification._skill_vote import SkillWeightedVote
from crowdlearn.quality import accuracy_on_aggregates

__all__ = ["GoldMajorityVote"]


class GoldMajorityVote(SkillWeightedVote):
    """Majority vote weighted by accuracy on gold tasks (crowd-kit API).

    ``fit(data, true_labels)``: each worker's accuracy on the gold tasks
    (:func:`crowdlearn.quality.accuracy_on_aggregates`, the skills of
    :class:`crowdlearn.aggregate.GoldMajorityVote`); workers without a gold answer get no skill.
    ``predict(data)``: the vote weighted by the skills; a worker without a skill raises
    ``ValueError`` (crowd-kit's ``on_missing_skill="error"``).

    Attributes
    ----------
    skills_ : Series
        Accuracy of each worker on the gold tasks (index ``worker``, name ``skill``).
    labels_, probas_ : Series, DataFrame
        After predict / predict_proba.
    """

    def __init__(self) -> None:
        self.skills_: pd.Series | None = None
        self.probas_: pd.DataFrame | None = None
        self.labels_: pd.Series | None = None

    def _fit_frame(self, data: pd.DataFrame, true_labels: pd.Series | None = None) -> Annotations | None:
        """Estimate the skills from the answers on gold tasks (``true_labels``: task -> label)."""
        if true_labels is None:
            raise TypeError("GoldMajorityVote.fit needs true_labels (a Series task -> gold label)")
        data = _frame.columns(data)
        if data.empty:
            self.skills_ = pd.Series(dtype=float, name="skill")
            return None
        ann = _frame.to_annotations(data)
        gold = _frame.accepted_classes(ann, pd.Series(true_labels), "true_labels")
        acc = np.asarray(accuracy_on_aggregates(ann, gold, by="annotator"))
        self.skills_ = _frame.worker_series(ann, acc, "skill", drop_nan=True).sort_index()
        return ann

    def fit(self, data: pd.DataFrame, true_labels: pd.Series | None = None) -> Self:
        """Estimate the skills from the answers on gold tasks (``true_labels``: task -> label)."""
        self._fit_frame(data, true_labels)
        return self

    def fit_predict(self, data: pd.DataFrame, true_labels: pd.Series | None = None) -> pd.Series:
        """Fit on the gold tasks and return the labels of ``data``."""
        self._apply(data, self._fit_frame(data, true_labels))
        assert self.labels_ is not None
        return self.labels_

    def fit_predict_proba(self, data: pd.DataFrame, true_labels: pd.Series | None = None) -> pd.DataFrame:
        """Fit on the gold tasks and return the probabilities of ``data``."""
        self._apply(data, self._fit_frame(data, true_labels))
        assert self.probas_ is not None
        return self.probas_
