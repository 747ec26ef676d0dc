"""DataFrame (task, worker, segmentation) <-> the masks and task indices of crowdlearn's aggregators."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, TypeVar

import numpy as np
import numpy.typing as npt
import pandas as pd

from crowdlearn.compat.crowdkit import _frame
from crowdlearn.compat.crowdkit.aggregation.base import BaseImageSegmentationAggregator

__all__ = ["COLUMNS", "IterativeSegmentation", "answer_weights", "segmentations_series", "split"]

COLUMNS = ["task", "worker", "segmentation"]


def split(data: pd.DataFrame) -> tuple[list[Any], npt.NDArray[np.int64], pd.Index]:
    """The masks (n_answers), their task indices (n_answers,) and the sorted task ids (n_tasks)."""
    data = _frame.columns(data, COLUMNS)
    missing = data["task"].isna().to_numpy()
    if missing.any():
        raise ValueError(f"row {data.index[int(np.flatnonzero(missing)[0])]!r} has no task (NaN)")
    codes, tasks = pd.factorize(data["task"], sort=True)  # crowd-kit groups by task: sorted
    return data["segmentation"].tolist(), codes.astype(np.int64), tasks


def segmentations_series(masks: Sequence[npt.NDArray[np.bool_]], tasks: pd.Index) -> pd.Series:
    """Masks as crowd-kit's result: a Series indexed by ``task``, named ``agg_segmentation``."""
    values = np.empty(len(masks), dtype=object)
    values[:] = list(masks)
    return pd.Series(values, index=_frame.id_index(tasks, "task"), name="agg_segmentation")


def answer_weights(
    data: pd.DataFrame, skills: pd.Series, on_missing_skill: str, default_skill: float | None
) -> tuple[pd.DataFrame, npt.NDArray[np.float64]]:
    """Each answer's weight, its worker's skill, with crowd-kit's missing-skill rules.

    ``"error"``: raise when a worker has no skill; ``"value"``: use ``default_skill``;
    ``"ignore"``: drop those answers, raising when a task loses all of them. Returns the
    (possibly fewer) answers and their weights of shape (n_answers,).
    """
    if on_missing_skill != "value" and default_skill is not None:
        raise ValueError('default_skill is used but on_missing_skill is not "value"')
    if on_missing_skill not in ("error", "ignore", "value"):
        raise ValueError(f'Unknown option {on_missing_skill!r} of "on_missing_skill" argument.')
    w = np.array(pd.Series(skills, dtype=np.float64).reindex(pd.Index(data["worker"])), dtype=np.float64)
    missing = np.isnan(w)
    if not missing.any():
        return data, w
    if on_missing_skill == "error":
        raise ValueError(
            f"Skill value is missing in {int(missing.sum())} assignments (workers "
            f"{pd.unique(data['worker'].to_numpy()[missing])[:10].tolist()}). Specify skills for every used worker "
            "or use a different 'on_missing_skill' value."
        )
    if on_missing_skill == "value":
        if default_skill is None:
            raise ValueError('Default skill value must be specified when using on_missing_skill="value"')
        w[missing] = float(default_skill)
        return data, w
    lost = pd.Index(data["task"]).difference(pd.Index(data["task"][~missing]))
    if len(lost):
        raise ValueError(
            f"{len(lost)} tasks have no workers with known skills (e.g. {lost[:5].tolist()}). Provide at least one "
            "worker with a known skill for every task or use a different 'on_missing_skill' value."
        )
    return data[~missing], w[~missing]


_S = TypeVar("_S", bound="IterativeSegmentation")


class IterativeSegmentation(BaseImageSegmentationAggregator):
    """crowd-kit's iterative segmentation aggregators (EM, RASA) on the native class ``_native``.

    Parameters
    ----------
    n_iter : int, default=10
    tol : float, default=1e-5

    Attributes
    ----------
    segmentations_ : Series
        Boolean mask of each task (index ``task``, sorted; name ``agg_segmentation``).
    loss_history_ : list of float
        The loss history of the last task (as crowd-kit keeps it).
    """

    _native: ClassVar[Any]

    def __init__(self, n_iter: int = 10, tol: float = 1e-5) -> None:
        self.n_iter = n_iter
        self.tol = tol
        self.segmentations_: pd.Series | None = None
        self.loss_history_: list[float] = []

    def fit(self: _S, data: pd.DataFrame) -> _S:
        """Aggregate each task of ``data`` (columns task, worker, segmentation)."""
        masks, codes, tasks = split(data)
        est = self._native(n_iter=self.n_iter, tol=self.tol).fit(masks, codes, n_tasks=len(tasks))
        self.segmentations_ = segmentations_series(est.segmentations_, tasks)
        self.loss_history_ = est.loss_histories_[-1] if est.loss_histories_ else []
        return self
