"""crowd-kit's ``SegmentationEM`` on :class:`crowdlearn.aggregate.segmentation.SegmentationEM`."""

from __future__ import annotations

import pandas as pd

from crowdlearn.aggregate.segmentation import SegmentationEM as _Native
from crowdlearn.compat.crowdkit.aggregation.base import BaseImageSegmentationAggregator
from crowdlearn.compat.crowdkit.aggregation.image_segmentation import _masks

__all__ = ["SegmentationEM"]


class SegmentationEM(BaseImageSegmentationAggregator):
    """crowd-kit's ``SegmentationEM``: :class:`crowdlearn.aggregate.segmentation.SegmentationEM` per task.

    Parameters
    ----------
    n_iter : int, default=10
    tol : float, default=1e-5

    Attributes
    ----------
    segmentations_ : Series
        Boolean mask of each task (index ``task``, sorted; name ``agg_segmentation``).
    loss_history_ : list of float
        The loss history of the last task (as crowd-kit keeps it).
    """

    def __init__(self, n_iter: int = 10, tol: float = 1e-5) -> None:
        self.n_iter = n_iter
        self.tol = tol
        self.segmentations_: pd.Series | None = None
        self.loss_history_: list[float] = []

    def fit(self, data: pd.DataFrame) -> SegmentationEM:
        """Aggregate each task of ``data`` (columns task, worker, segmentation)."""
        masks, codes, tasks = _masks.split(data)
        est = _Native(n_iter=self.n_iter, tol=self.tol).fit(masks, codes, n_tasks=len(tasks))
        self.segmentations_ = _masks.segmentations_series(est.segmentations_, tasks)
        self.loss_history_ = est.loss_histories_[-1] if est.loss_histories_ else []
        return self
