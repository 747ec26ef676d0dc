"""Frame <-> crowdlearn conversions shared by the crowd-kit compatibility classes."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from crowdlearn.annotations import Annotations

__all__ = [
    "class_codes",
    "columns",
    "id_index",
    "labels_series",
    "probas_frame",
    "to_annotations",
    "worker_series",
]

COLUMNS = ["task", "worker", "label"]


def columns(data: pd.DataFrame, names: Sequence[str] = COLUMNS) -> pd.DataFrame:
    """``data[names]``: a missing column raises crowd-kit's ``KeyError``."""
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame with columns {list(names)}, got {type(data).__name__}")
    missing = [c for c in names if c not in data.columns]
    if missing:
        raise KeyError(f"the answers have no column(s) {missing}; expected {list(names)}, got {list(data.columns)}")
    return data[list(names)]


def to_annotations(data: pd.DataFrame) -> Annotations:
    """The answers as :class:`Annotations` (ids in first-appearance order, classes sorted)."""
    return Annotations.from_ids(data["task"], data["worker"], data["label"])


#: The last few id Indexes built (those of the latest fit), keyed by (id of the ids array, name);
#: the array is kept to check identity.
_INDEX_CACHE: dict[tuple[int, str], tuple[Any, pd.Index]] = {}


def id_index(ids: npt.ArrayLike | Sequence[Hashable], name: str) -> pd.Index:
    """A pandas Index of ids with pandas' own dtype inference (str, int, bool...), named ``name``.

    A numpy array of numbers / bools is wrapped as is; an object array gets ``infer_objects``
    (the dtype pandas infers from the values as a list, without building the list). The Index of
    the same array and name is built once (one fit asks for the task ids several times); each call
    returns its own Index object (renaming one result's index leaves the others alone).
    """
    if not isinstance(ids, np.ndarray):
        return pd.Index(list(ids), name=name)  # type: ignore[arg-type]
    key = (id(ids), name)
    hit = _INDEX_CACHE.get(key)
    if hit is not None and hit[0] is ids:
        return hit[1].copy()
    index = pd.Index(ids, name=name)
    if ids.dtype == object:
        index = index.infer_objects()
    if len(_INDEX_CACHE) >= 4:
        _INDEX_CACHE.pop(next(iter(_INDEX_CACHE)))
    _INDEX_CACHE[key] = (ids, index)
    return index.copy()


def labels_series(ann: Annotations, labels: npt.NDArray[np.int64], name: str = "agg_label") -> pd.Series:
    """Class ids of ``labels`` (indices) as a Series indexed by task."""
    values = id_index(ann.classes, "label").take(labels)
    return pd.Series(values, index=id_index(ann.item_ids, "task"), name=name)


def probas_frame(ann: Annotations, probas: npt.NDArray[np.float64]) -> pd.DataFrame:
    """(n_items, K) probabilities as a DataFrame indexed by task with one column per label."""
    return pd.DataFrame(probas, index=id_index(ann.item_ids, "task"), columns=id_index(ann.classes, "label"))


def worker_series(ann: Annotations, values: npt.NDArray[np.float64], name: str, drop_nan: bool = False) -> pd.Series:
    """Per-annotator values as a Series indexed by worker (``drop_nan``: only the defined ones)."""
    s = pd.Series(values, index=id_index(ann.annotator_ids, "worker"), name=name)
    return s[~np.isnan(values)] if drop_nan else s


def class_codes(ann: Annotations, series: pd.Series, what: str) -> npt.NDArray[np.int64]:
    """Item class indices (n_items,) from a Series task -> label; -1 for tasks not in it.

    Tasks of ``series`` that are not in the answers are ignored (as crowd-kit does); a label that
    is not a class of the answers raises ``ValueError``.
    """
    out = np.full(ann.n_items, -1, dtype=np.int64)
    if series is None or len(series) == 0:
        return out
    pos = id_index(ann.item_ids, "task").get_indexer(series.index)
    keep = pos >= 0
    values = pd.Index(series.to_numpy()[keep].tolist())
    cls = pd.Index(ann.classes.tolist()).get_indexer(values)
    if (cls < 0).any():
        bad = values[np.flatnonzero(cls < 0)[0]]
        raise ValueError(f"{what} has label {bad!r}, which no answer uses; labels: {ann.classes.tolist()[:10]}")
    out[pos[keep]] = cls
    return out


def accepted_classes(ann: Annotations, series: pd.Series, what: str) -> npt.NDArray[Any]:
    """Like :func:`class_codes`, but a task may appear several times (several gold labels): then a
    bool mask (n_items, K) of the accepted labels of each task."""
    s = pd.Series(series)
    if not s.index.has_duplicates:
        return class_codes(ann, s, what)
    pos = id_index(ann.item_ids, "task").get_indexer(s.index)
    keep = pos >= 0
    values = pd.Index(s.to_numpy()[keep].tolist())
    cls = pd.Index(ann.classes.tolist()).get_indexer(values)
    if (cls < 0).any():
        bad = values[np.flatnonzero(cls < 0)[0]]
        raise ValueError(f"{what} has label {bad!r}, which no answer uses; labels: {ann.classes.tolist()[:10]}")
    mask = np.zeros((ann.n_items, ann.n_classes), dtype=bool)
    mask[pos[keep], cls] = True
    return mask


def empty_series(name: str, dtype: Any = float) -> pd.Series:
    """An empty Series (crowd-kit's result on empty answers)."""
    return pd.Series(dtype=dtype, name=name)
