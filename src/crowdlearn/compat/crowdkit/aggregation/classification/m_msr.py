"""crowd-kit's ``MMSR``: not yet provided by crowdlearn."""

from __future__ import annotations

from typing import Any, NoReturn

import pandas as pd

from crowdlearn.compat.crowdkit.aggregation.base import BaseClassificationAggregator

__all__ = ["MMSR"]


class MMSR(BaseClassificationAggregator):
    """M-MSR (Ma and Olshevsky, 2020): not yet in crowdlearn; fitting raises ``NotImplementedError``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs

    def fit(self, data: pd.DataFrame) -> NoReturn:
        """Not provided."""
        raise NotImplementedError("MMSR is not implemented in crowdlearn yet")

    def fit_predict(self, data: pd.DataFrame) -> NoReturn:
        """Not provided."""
        raise NotImplementedError("MMSR is not implemented in crowdlearn yet")

    def fit_predict_score(self, data: pd.DataFrame) -> NoReturn:
        """Not provided."""
        raise NotImplementedError("MMSR is not implemented in crowdlearn yet")
