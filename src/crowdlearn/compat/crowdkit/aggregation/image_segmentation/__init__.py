"""crowd-kit's ``aggregation.image_segmentation``, computed by :mod:`crowdlearn.aggregate.segmentation`."""

from crowdlearn.compat.crowdkit.aggregation.image_segmentation.segmentation_em import SegmentationEM
from crowdlearn.compat.crowdkit.aggregation.image_segmentation.segmentation_majority_vote import (
    SegmentationMajorityVote,
)
from crowdlearn.compat.crowdkit.aggregation.image_segmentation.segmentation_rasa import SegmentationRASA

__all__ = ["SegmentationEM", "SegmentationMajorityVote", "SegmentationRASA"]
