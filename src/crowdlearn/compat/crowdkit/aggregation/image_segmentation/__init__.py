"""crowd-kit's ``aggregation.image_segmentation``: not provided (crowdlearn aggregates class labels).

The names exist so that code importing them loads; fitting raises ``NotImplementedError``.
"""

from __future__ import annotations

from typing import Any, NoReturn

__all__ = ["SegmentationEM", "SegmentationMajorityVote", "SegmentationRASA"]


class _Unsupported:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs

    def fit(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise NotImplementedError(
            f"{type(self).__name__}: image segmentation aggregation is not part of crowdlearn "
            "(only classification aggregation and metrics are)"
        )

    fit_predict = fit


class SegmentationMajorityVote(_Unsupported):
    """Not provided (see the module docstring)."""


class SegmentationEM(_Unsupported):
    """Not provided (see the module docstring)."""


class SegmentationRASA(_Unsupported):
    """Not provided (see the module docstring)."""
