"""crowd-kit's ``aggregation.classification``."""

from crowdlearn.compat.crowdkit.aggregation.classification.dawid_skene import DawidSkene, OneCoinDawidSkene
from crowdlearn.compat.crowdkit.aggregation.classification.glad import GLAD
from crowdlearn.compat.crowdkit.aggregation.classification.gold_majority_vote import GoldMajorityVote
from crowdlearn.compat.crowdkit.aggregation.classification.kos import KOS
from crowdlearn.compat.crowdkit.aggregation.classification.m_msr import MMSR
from crowdlearn.compat.crowdkit.aggregation.classification.mace import MACE
from crowdlearn.compat.crowdkit.aggregation.classification.majority_vote import MajorityVote
from crowdlearn.compat.crowdkit.aggregation.classification.wawa import Wawa
from crowdlearn.compat.crowdkit.aggregation.classification.zero_based_skill import ZeroBasedSkill

__all__ = [
    "GLAD",
    "KOS",
    "MACE",
    "MMSR",
    "DawidSkene",
    "GoldMajorityVote",
    "MajorityVote",
    "OneCoinDawidSkene",
    "Wawa",
    "ZeroBasedSkill",
]
