"""crowd-kit's ``KOS`` on :class:`crowdlearn.aggregate.KOS`."""

from __future__ import annotations

import pandas as pd

from crowdlearn.aggregate import KOS as _KOS
from crowdlearn.compat.crowdkit import _frame
from crowdlearn.compat.crowdkit.aggregation.base import BaseClassificationAggregator

__all__ = ["KOS"]


class KOS(BaseClassificationAggregator):
    """Karger-Oh-Shah inference for binary labels (crowd-kit API).

    Runs :class:`crowdlearn.aggregate.KOS` (seeded by ``random_state``; an item whose score is
    exactly 0 gets the first label instead of crowd-kit's ``KeyError``). More than two labels
    raise ``ValueError``.

    Parameters
    ----------
    n_iter : int, default=100
    random_state : int, default=0

    Attributes
    ----------
    labels_ : Series
        Label of each task (index ``task``, name ``agg_label``).
    """

    def __init__(self, n_iter: int = 100, random_state: int = 0) -> None:
        self.n_iter = n_iter
        self.random_state = random_state
        self.labels_: pd.Series | None = None

    def fit(self, data: pd.DataFrame) -> KOS:
        """Fit on ``data`` (task, worker, label)."""
        data = _frame.columns(data)
        if data.empty:
            self.labels_ = pd.Series([], dtype="O", name="agg_label")
            return self
        ann = _frame.to_annotations(data)
        if ann.n_classes != 2:
            raise ValueError("KOS aggregation method is for binary classification only.")
        est = _KOS(n_iter=int(self.n_iter), tie_break="first", random_state=self.random_state).fit(ann)
        self.labels_ = _frame.labels_series(ann, est.labels_)
        return self

    def fit_predict(self, data: pd.DataFrame) -> pd.Series:
        """Fit and return ``labels_``."""
        self.fit(data)
        assert self.labels_ is not None
        return self.labels_
