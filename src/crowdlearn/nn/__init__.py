"""Torch building blocks: the confusion layer, crowd losses and regularizers, backbones.

Imports torch only (never :mod:`crowdlearn.train` or the estimators).
"""

from crowdlearn.nn import functional
from crowdlearn.nn.backbones import MLP, LeNet, SmallResNet, paper_mlp
from crowdlearn.nn.confusion import DEFAULT_SMOOTHING, ConfusionMatrices, IdentityHead
from crowdlearn.nn.crowdlayer import CROWDLAYER_KINDS, CrowdLayer
from crowdlearn.nn.losses import CoupledCrossEntropy, CrowdLoss, GeoCrowdNetFLoss, GeoCrowdNetWLoss, TraceRegLoss
from crowdlearn.nn.model import CrowdModel

__all__ = [
    "CROWDLAYER_KINDS",
    "DEFAULT_SMOOTHING",
    "MLP",
    "ConfusionMatrices",
    "CoupledCrossEntropy",
    "CrowdLayer",
    "CrowdLoss",
    "CrowdModel",
    "GeoCrowdNetFLoss",
    "GeoCrowdNetWLoss",
    "IdentityHead",
    "LeNet",
    "SmallResNet",
    "TraceRegLoss",
    "functional",
    "paper_mlp",
]
