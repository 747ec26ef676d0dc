"""crowdlearn: deep learning from crowdsourced labels.

Learns, end to end and at once, a classifier for the true label and every annotator's
confusion matrix (coupled cross-entropy minimization and GeoCrowdNet; Ibrahim, Nguyen & Fu,
ICLR 2023), with classical truth inference (Dawid-Skene and peers) alongside.

The data model is imported eagerly; the estimators and aggregators are loaded on first use
(PEP 562), so ``import crowdlearn`` and the command line stay fast and torch is imported only
when a deep model is needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from crowdlearn.annotations import Annotations, AnnotationsError

__version__ = "0.1.0"

_LAZY = {
    "CrowdClassifier": "crowdlearn.estimators",
    "DawidSkene": "crowdlearn.aggregate",
    "OneCoinDawidSkene": "crowdlearn.aggregate",
    "MajorityVote": "crowdlearn.aggregate",
    "Wawa": "crowdlearn.aggregate",
    "GLAD": "crowdlearn.aggregate",
    "MACE": "crowdlearn.aggregate",
    "load_dataset": "crowdlearn.datasets",
    "read_annotations": "crowdlearn.io",
}

__all__ = [
    "GLAD",
    "MACE",
    "Annotations",
    "AnnotationsError",
    "CrowdClassifier",
    "DawidSkene",
    "MajorityVote",
    "OneCoinDawidSkene",
    "Wawa",
    "__version__",
    "load_dataset",
    "read_annotations",
]

if TYPE_CHECKING:  # pragma: no cover
    from crowdlearn.aggregate import GLAD, MACE, DawidSkene, MajorityVote, OneCoinDawidSkene, Wawa
    from crowdlearn.datasets import load_dataset
    from crowdlearn.estimators import CrowdClassifier
    from crowdlearn.io import read_annotations


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'crowdlearn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
