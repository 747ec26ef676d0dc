"""crowd-kit's ``SegmentationRASA`` on :class:`crowdlearn.aggregate.segmentation.SegmentationRASA`."""

from __future__ import annotations

from crowdlearn.aggregate.segmentation import SegmentationRASA as _Native
from crowdlearn.compat.crowdkit.aggregation.image_segmentation._masks import IterativeSegmentation

__all__ = ["SegmentationRASA"]


class SegmentationRASA(IterativeSegmentation):
    """crowd-kit's ``SegmentationRASA``: :class:`crowdlearn.aggregate.segmentation.SegmentationRASA` per task.

    Parameters (``n_iter``, ``tol``) and attributes (``segmentations_``, ``loss_history_``): see
    :class:`~crowdlearn.compat.crowdkit.aggregation.image_segmentation._masks.IterativeSegmentation`.
    """

    _native = _Native
