"""crowd-kit's ``aggregation`` for classification, computed by :mod:`crowdlearn.aggregate`.

``from crowdlearn.compat.crowdkit.aggregation import DawidSkene`` replaces
``from crowdkit.aggregation import DawidSkene``.
"""

from crowdlearn.compat.crowdkit.aggregation import base
from crowdlearn.compat.crowdkit.aggregation.classification import (
    GLAD,
    KOS,
    MACE,
    MMSR,
    DawidSkene,
    GoldMajorityVote,
    MajorityVote,
    OneCoinDawidSkene,
    Wawa,
    ZeroBasedSkill,
)
from crowdlearn.compat.crowdkit.aggregation.image_segmentation import (
    SegmentationEM,
    SegmentationMajorityVote,
    SegmentationRASA,
)
from crowdlearn.compat.crowdkit.aggregation.multilabel import BinaryRelevance

__all__ = [
    "GLAD",
    "KOS",
    "MACE",
    "MMSR",
    "BinaryRelevance",
    "DawidSkene",
    "GoldMajorityVote",
    "MajorityVote",
    "OneCoinDawidSkene",
    "SegmentationEM",
    "SegmentationMajorityVote",
    "SegmentationRASA",
    "Wawa",
    "ZeroBasedSkill",
    "base",
]
