"""crowd-kit's ``SegmentationEM`` on :class:`crowdlearn.aggregate.segmentation.SegmentationEM`."""

from __future__ import annotations

from crowdlearn.aggregate.segmentation import SegmentationEM as _Native
from crowdlearn.compat.crowdkit.aggregation.image_segmentation._masks import IterativeSegmentation

__all__ = ["SegmentationEM"]


class SegmentationEM(IterativeSegmentation):
    """crowd-kit's ``SegmentationEM``: :class:`crowdlearn.aggregate.segmentation.SegmentationEM` per task.

    Parameters (``n_iter``, ``tol``) and attributes (``segmentations_``, ``loss_history_``): see
    :class:`~crowdlearn.compat.crowdkit.aggregation.image_segmentation._masks.IterativeSegmentation`.
    """

    _native = _Native
