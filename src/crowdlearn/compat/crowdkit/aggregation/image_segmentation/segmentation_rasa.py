"""crowd-kit's ``SegmentationRASA`` on :class:`crowdlearn.aggregate.segmentation.SegmentationRASA`."""

from __future__ import annotations

from crowdlearn.aggregate.segmentation import SegmentationRASA as _Native
from crowdlearn.compat.crowdkit.aggregation.image_segmentation._masks import IterativeSegmentation

__all__ = ["SegmentationRASA"]


class SegmentationRASA(IterativeSegmentation):
    """crowd-kit's ``SegmentationRASA``: :class:`crowdlearn.aggregate.segmentation.SegmentationRASA` per task.

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

    _native = _Native
