"""Torch building blocks: the confusion layer, crowd losses and regularizers, backbones, the method registry.

Imports torch only (never :mod:`crowdlearn.train` or the estimators). The method registry
(:mod:`crowdlearn.nn.registry`, with the built-in methods) is imported eagerly and is torch-free;
the torch modules load on first use (PEP 562), so the command line can read the registry fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from crowdlearn.nn import methods as _methods  # noqa: F401  (registers the built-in methods)
from crowdlearn.nn.registry import (
    ENTRY_POINT_GROUP,
    HeadContext,
    MethodParam,
    MethodSpec,
    available_methods,
    get_method,
    register_method,
    unregister_method,
)

_LAZY = {
    "MLP": "crowdlearn.nn.backbones",
    "LeNet": "crowdlearn.nn.backbones",
    "SmallResNet": "crowdlearn.nn.backbones",
    "paper_mlp": "crowdlearn.nn.backbones",
    "CIFAR10_MEAN": "crowdlearn.nn.backbones",
    "CIFAR10_STD": "crowdlearn.nn.backbones",
    "CifarResNet": "crowdlearn.nn.backbones",
    "ImageBackbone": "crowdlearn.nn.backbones",
    "ImageNormalize": "crowdlearn.nn.backbones",
    "resnet18": "crowdlearn.nn.backbones",
    "resnet34": "crowdlearn.nn.backbones",
    "DEFAULT_SMOOTHING": "crowdlearn.nn.confusion",
    "ConfusionMatrices": "crowdlearn.nn.confusion",
    "IdentityHead": "crowdlearn.nn.confusion",
    "CROWDLAYER_KINDS": "crowdlearn.nn.crowdlayer",
    "CrowdLayer": "crowdlearn.nn.crowdlayer",
    "CoupledCrossEntropy": "crowdlearn.nn.losses",
    "CrowdLoss": "crowdlearn.nn.losses",
    "GeoCrowdNetFLoss": "crowdlearn.nn.losses",
    "GeoCrowdNetWLoss": "crowdlearn.nn.losses",
    "LogDetVolumeF": "crowdlearn.nn.losses",
    "LogDetVolumeW": "crowdlearn.nn.losses",
    "RegularizedLoss": "crowdlearn.nn.losses",
    "Regularizer": "crowdlearn.nn.losses",
    "TraceRegLoss": "crowdlearn.nn.losses",
    "TraceRegularizer": "crowdlearn.nn.losses",
    "CrowdModel": "crowdlearn.nn.model",
}

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "CROWDLAYER_KINDS",
    "DEFAULT_SMOOTHING",
    "ENTRY_POINT_GROUP",
    "MLP",
    "CifarResNet",
    "ConfusionMatrices",
    "CoupledCrossEntropy",
    "CrowdLayer",
    "CrowdLoss",
    "CrowdModel",
    "GeoCrowdNetFLoss",
    "GeoCrowdNetWLoss",
    "HeadContext",
    "IdentityHead",
    "ImageBackbone",
    "ImageNormalize",
    "LeNet",
    "LogDetVolumeF",
    "LogDetVolumeW",
    "MethodParam",
    "MethodSpec",
    "RegularizedLoss",
    "Regularizer",
    "SmallResNet",
    "TraceRegLoss",
    "TraceRegularizer",
    "available_methods",
    "functional",
    "get_method",
    "paper_mlp",
    "register_method",
    "resnet18",
    "resnet34",
    "unregister_method",
]

if TYPE_CHECKING:  # pragma: no cover
    from crowdlearn.nn import functional
    from crowdlearn.nn.backbones import (
        CIFAR10_MEAN,
        CIFAR10_STD,
        MLP,
        CifarResNet,
        ImageBackbone,
        ImageNormalize,
        LeNet,
        SmallResNet,
        paper_mlp,
        resnet18,
        resnet34,
    )
    from crowdlearn.nn.confusion import DEFAULT_SMOOTHING, ConfusionMatrices, IdentityHead
    from crowdlearn.nn.crowdlayer import CROWDLAYER_KINDS, CrowdLayer
    from crowdlearn.nn.losses import (
        CoupledCrossEntropy,
        CrowdLoss,
        GeoCrowdNetFLoss,
        GeoCrowdNetWLoss,
        LogDetVolumeF,
        LogDetVolumeW,
        RegularizedLoss,
        Regularizer,
        TraceRegLoss,
        TraceRegularizer,
    )
    from crowdlearn.nn.model import CrowdModel


def __getattr__(name: str) -> Any:
    if name == "functional":
        return importlib.import_module("crowdlearn.nn.functional")
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'crowdlearn.nn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
