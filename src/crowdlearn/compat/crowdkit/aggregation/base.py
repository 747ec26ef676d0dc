"""crowd-kit's ``aggregation.base``: the classification aggregator base class."""

from __future__ import annotations

from typing import Any

import pandas as pd

__all__ = ["BaseClassificationAggregator", "BaseImageSegmentationAggregator", "ProbasAggregator"]


class BaseClassificationAggregator:
    """Base of the crowd-kit style classification aggregators.

    Attributes
    ----------
    labels_ : Series or None
        Aggregated label of each task, indexed by ``task``, named ``agg_label``.
    """

    labels_: pd.Series | None = None

    def fit(self, data: pd.DataFrame) -> BaseClassificationAggregator:
        """Fit on answers with columns ``task``, ``worker``, ``label``; returns self."""
        raise NotImplementedError

    def fit_predict(self, data: pd.DataFrame) -> pd.Series:
        """Fit and return ``labels_``."""
        self.fit(data)
        assert self.labels_ is not None
        return self.labels_

    def _params(self) -> dict[str, Any]:
        """Constructor parameters (public attributes without a trailing underscore)."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_") and not k.endswith("_")}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._params().items())
        return f"{type(self).__name__}({args})"


class ProbasAggregator(BaseClassificationAggregator):
    """A classification aggregator with per-task class probabilities ``probas_``.

    Attributes
    ----------
    probas_ : DataFrame or None
        Indexed by ``task``, one column per label.
    """

    probas_: pd.DataFrame | None = None

    def fit_predict_proba(self, data: pd.DataFrame) -> pd.DataFrame:
        """Fit and return ``probas_``."""
        self.fit(data)
        assert self.probas_ is not None
        return self.probas_


class BaseImageSegmentationAggregator:
    """Base of the crowd-kit style image segmentation aggregators.

    Attributes
    ----------
    segmentations_ : Series or None
        Aggregated mask (a boolean ndarray) of each task, indexed by ``task`` (sorted), named
        ``agg_segmentation``.
    """

    segmentations_: pd.Series | None = None

    def fit(self, data: pd.DataFrame) -> BaseImageSegmentationAggregator:
        """Fit on answers with columns ``task``, ``worker``, ``segmentation``; returns self."""
        raise NotImplementedError

    def fit_predict(self, data: pd.DataFrame) -> pd.Series:
        """Fit and return ``segmentations_``."""
        self.fit(data)
        assert self.segmentations_ is not None
        return self.segmentations_

    def __repr__(self) -> str:
        params = {k: v for k, v in vars(self).items() if not k.startswith("_") and not k.endswith("_")}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in params.items())})"
