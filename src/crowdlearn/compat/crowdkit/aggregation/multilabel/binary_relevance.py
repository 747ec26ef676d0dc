"""crowd-kit's ``BinaryRelevance`` on :func:`crowdlearn.aggregate.multilabel.binary_problems`."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import pandas as pd

from crowdlearn.aggregate.multilabel import binary_problems
from crowdlearn.compat.crowdkit import _frame
from crowdlearn.compat.crowdkit.aggregation.base import BaseClassificationAggregator
from crowdlearn.compat.crowdkit.aggregation.classification.majority_vote import MajorityVote
from crowdlearn.compat.crowdkit.aggregation.utils import clone_aggregator

__all__ = ["BinaryRelevance"]


class BinaryRelevance(BaseClassificationAggregator):
    """Multilabel aggregation: ``base_aggregator`` on each label's present (1) / absent (0) answers.

    Each answer's ``label`` is a collection of labels. The per-label binary answers come from
    :func:`crowdlearn.aggregate.multilabel.binary_problems` (as for
    :class:`crowdlearn.aggregate.BinaryRelevance`); a clone of ``base_aggregator`` aggregates
    each.

    Parameters
    ----------
    base_aggregator : BaseClassificationAggregator, default=MajorityVote()

    Attributes
    ----------
    labels_ : Series
        The list of labels of each task (index ``task``, name ``agg_label``).
    aggregators_ : dict
        Label -> its fitted aggregator.
    """

    def __init__(self, base_aggregator: BaseClassificationAggregator | None = None) -> None:
        base = MajorityVote() if base_aggregator is None else base_aggregator
        if not isinstance(base, BaseClassificationAggregator):
            raise TypeError("Aggregator argument should be a classification aggregator")
        self.base_aggregator = base
        self.aggregators_: dict[Hashable, BaseClassificationAggregator] = {}
        self.labels_: pd.Series | None = None

    def fit(self, data: pd.DataFrame) -> BinaryRelevance:
        """Fit on ``data`` (task, worker, label = collection of labels)."""
        data = _frame.columns(data)
        self.aggregators_ = {}
        if data.empty:
            self.labels_ = pd.Series(dtype=float, name="agg_label")
            return self
        classes, problems = binary_problems(data["task"], data["worker"], data["label"])
        sets: dict[Any, list[Any]] | None = None
        for c, ann in zip(classes.tolist(), problems):
            frame = pd.DataFrame(
                {
                    "task": ann.item_ids[ann.items].tolist(),
                    "worker": ann.annotator_ids[ann.annotators].tolist(),
                    "label": ann.labels.tolist(),
                }
            )
            agg = clone_aggregator(self.base_aggregator)
            labels = agg.fit_predict(frame)
            self.aggregators_[c] = agg
            if sets is None:
                sets = {t: [] for t in ann.item_ids.tolist()}
            for task in labels.index[labels.to_numpy() == 1].tolist():
                sets[task].append(c)
        self.labels_ = pd.Series(sets, name="agg_label")
        self.labels_.index.name = "task"
        return self

    def fit_predict(self, data: pd.DataFrame) -> pd.Series:
        """Fit and return ``labels_``."""
        self.fit(data)
        assert self.labels_ is not None
        return self.labels_
