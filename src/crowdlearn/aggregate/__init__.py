"""Truth inference without features: majority vote, Dawid-Skene and its peers.

Every aggregator follows one surface: ``fit(annotations) -> self``; fitted ``labels_``
(n_items,), ``probas_`` (n_items, K), ``priors_`` (K,), and where meaningful ``confusions_``
(n_annotators, K, K; column = true class, columns sum to 1), ``skills_`` (n_annotators,) and
``log_likelihood_``; ``fit_predict`` and ``fit_predict_proba``. Input is an
:class:`~crowdlearn.annotations.Annotations` object (numpy outputs) or a crowd-kit style
DataFrame with columns ``task``, ``worker``, ``label`` (pandas outputs indexed by task).
Image segmentation (binary masks per task): :mod:`crowdlearn.aggregate.segmentation`.
MajorityVote, DawidSkene, OneCoinDawidSkene and MACE also take a Dask DataFrame (the Dask backend,
:mod:`crowdlearn.aggregate.dask_backend`; docs/scale.md).
"""

from crowdlearn.aggregate.base import BaseAggregator
from crowdlearn.aggregate.dawid_skene import ClusteredDawidSkene, ConfusionBudgetError, DawidSkene, OneCoinDawidSkene
from crowdlearn.aggregate.glad import GLAD
from crowdlearn.aggregate.gold import GoldMajorityVote
from crowdlearn.aggregate.kos import KOS
from crowdlearn.aggregate.mace import MACE
from crowdlearn.aggregate.majority import MajorityVote, Wawa
from crowdlearn.aggregate.mmsr import MMSR
from crowdlearn.aggregate.multilabel import BinaryRelevance
from crowdlearn.aggregate.segmentation import SegmentationEM, SegmentationMajorityVote, SegmentationRASA
from crowdlearn.aggregate.spectral import SpectralError, spectral_confusions
from crowdlearn.aggregate.zero_based_skill import ZeroBasedSkill

__all__ = [
    "GLAD",
    "KOS",
    "MACE",
    "METHODS",
    "MMSR",
    "BaseAggregator",
    "BinaryRelevance",
    "ClusteredDawidSkene",
    "ConfusionBudgetError",
    "DawidSkene",
    "GoldMajorityVote",
    "MajorityVote",
    "OneCoinDawidSkene",
    "SegmentationEM",
    "SegmentationMajorityVote",
    "SegmentationRASA",
    "SpectralError",
    "Wawa",
    "ZeroBasedSkill",
    "spectral_confusions",
]

#: Short names of the aggregators (used by the command line): name -> class.
METHODS: dict[str, type[BaseAggregator]] = {
    "mv": MajorityVote,
    "wawa": Wawa,
    "ds": DawidSkene,
    "onecoin": OneCoinDawidSkene,
    "clustered-ds": ClusteredDawidSkene,
    "glad": GLAD,
    "mace": MACE,
}
