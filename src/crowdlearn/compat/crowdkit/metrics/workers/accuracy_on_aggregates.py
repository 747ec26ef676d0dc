"""crowd-kit's ``accuracy_on_aggregates`` on :func:`crowdlearn.quality.accuracy_on_aggregates`."""

from __future__ import annotations

import pandas as pd

from crowdlearn.compat.crowdkit.aggregation.base import BaseClassificationAggregator
from crowdlearn.compat.crowdkit.aggregation.classification.majority_vote import MajorityVote
from crowdlearn.compat.crowdkit.aggregation.utils import get_accuracy

__all__ = ["accuracy_on_aggregates"]


def accuracy_on_aggregates(
    answers: pd.DataFrame,
    aggregator: BaseClassificationAggregator | None = None,
    aggregates: pd.Series | None = None,
    by: str | None = None,
) -> float | pd.Series:
    """Share of answers equal to the aggregated labels, overall or ``by="worker"``.

    ``aggregates`` (task -> label) or, without them, ``aggregator.fit_predict(answers)``
    (default ``MajorityVote()``).
    """
    if aggregates is None:
        aggregator = MajorityVote() if aggregator is None else aggregator
        aggregates = aggregator.fit_predict(answers)
    result = get_accuracy(answers, aggregates, by=by)
    if isinstance(result, pd.Series) and by is not None:
        result.index.name = by
    return result
