"""crowd-kit's ``aggregation.utils``: evaluation and small frame helpers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from crowdlearn.compat.crowdkit import _frame
from crowdlearn.compat.crowdkit.aggregation import base
from crowdlearn.quality import accuracy_on_aggregates

__all__ = [
    "clone_aggregator",
    "evaluate",
    "evaluate_equal",
    "evaluate_in",
    "factorize",
    "get_accuracy",
    "get_most_probable_labels",
    "normalize_rows",
]


def clone_aggregator(aggregator: base.BaseClassificationAggregator) -> base.BaseClassificationAggregator:
    """A new, unfitted aggregator of the same class with the same parameters."""
    if not isinstance(aggregator, base.BaseClassificationAggregator):
        raise TypeError(f"can only clone a BaseClassificationAggregator, got {type(aggregator).__name__}")
    return type(aggregator)(**aggregator._params())


def evaluate_in(row: pd.Series) -> int:
    """1 when ``row['label_pred']`` is in ``row['label_true']``."""
    return int(row["label_pred"] in row["label_true"])


def evaluate_equal(row: pd.Series) -> int:
    """1 when ``row['label_pred'] == row['label_true']``."""
    return int(row["label_pred"] == row["label_true"])


def evaluate(
    df_true: pd.DataFrame, df_pred: pd.DataFrame, evaluate_func: Callable[[pd.Series], int] = evaluate_in
) -> float:
    """Mean of ``evaluate_func`` over the tasks of ``df_true`` joined with ``df_pred`` on ``task``.

    Both frames have a ``task`` column or index and a ``label`` column; every task of
    ``df_true`` must be predicted.
    """
    df = df_true.merge(df_pred, on="task", suffixes=("_true", "_pred"))
    if len(df) != len(df_true):
        raise ValueError(f"Dataset length mismatch, expected {len(df_true)}, got {len(df)}")
    return float(df.apply(evaluate_func, axis=1).mean())


def factorize(data: npt.NDArray[Any]) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """``(unique values, codes of the same shape)``."""
    unique_values, coded = np.unique(data, return_inverse=True)
    return unique_values, coded.reshape(data.shape)


def get_most_probable_labels(proba: pd.DataFrame) -> pd.Series:
    """The column of the largest value of each row (the first column on ties)."""
    if not proba.size:
        return pd.Series([], dtype="O")
    return proba.idxmax(axis="columns")


def normalize_rows(scores: pd.DataFrame) -> pd.DataFrame:
    """Each row divided by its sum."""
    return scores.div(scores.sum(axis=1), axis=0)


def get_accuracy(data: pd.DataFrame, true_labels: pd.Series, by: str | None = None) -> float | pd.Series:
    """Share of answers equal to ``true_labels`` (Series task -> label), overall or ``by='worker'``.

    Computed by :func:`crowdlearn.quality.accuracy_on_aggregates`; answers on tasks without a
    true label are not scored; workers without a scored answer are left out of the result.
    """
    data = _frame.columns(data)
    if by not in (None, "worker", "task"):
        raise ValueError(f"by must be None, 'worker' or 'task', got {by!r}")
    if data.empty:
        return pd.Series(dtype=float) if by is not None else float("nan")
    ann = _frame.to_annotations(data)
    truth = _frame.accepted_classes(ann, pd.Series(true_labels), "true_labels")
    if by is None:
        return float(accuracy_on_aggregates(ann, truth))  # type: ignore[arg-type]
    values = np.asarray(accuracy_on_aggregates(ann, truth, by="annotator" if by == "worker" else "item"))
    ids = ann.annotator_ids if by == "worker" else ann.item_ids
    s = pd.Series(values, index=_frame.id_index(ids, by))
    out: pd.Series = s[~np.isnan(values)].sort_index()  # crowd-kit's groupby order
    return out
