"""Turning long (item, annotator, label) tables into :class:`Annotations` plus a truth vector."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from crowdlearn.annotations import Annotations, OnDuplicate
from crowdlearn.datasets._base import IntArray


def long_to_annotations(
    items: npt.ArrayLike,
    annotators: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    classes: Sequence[Hashable],
    item_ids: Sequence[Hashable] | np.ndarray[Any, Any] | None = None,
    on_duplicate: OnDuplicate = "error",
) -> Annotations:
    """Annotations from id columns: items in ``item_ids`` order (default: sorted unique ids),
    annotators in sorted unique order, classes in the given order."""
    it = np.asarray(items)
    an = np.asarray(annotators)
    ids = np.unique(it) if item_ids is None else np.asarray(item_ids)
    return Annotations.from_ids(
        it,
        an,
        np.asarray(labels),
        classes=list(classes),
        item_ids=list(ids.tolist()),
        annotator_ids=list(np.unique(an).tolist()),
        on_duplicate=on_duplicate,
    )


def truth_from_pairs(
    ann: Annotations,
    item_ids: npt.ArrayLike,
    values: npt.ArrayLike,
    *,
    source: Path | str,
    keep_unknown_items: bool = False,
) -> IntArray:
    """Truth vector (n_items,) int64, -1 where unknown, from (item id, class value) pairs.

    Repeated pairs must agree. Ids that are not items of ``ann`` are an error unless
    ``keep_unknown_items`` (then they are ignored: gold for items nobody labelled).
    """
    ids = np.asarray(item_ids)
    vals = np.asarray(values)
    lookup = {k: i for i, k in enumerate(ann.item_ids.tolist())}
    cls = {k: i for i, k in enumerate(ann.classes.tolist())}
    truth = np.full(ann.n_items, -1, dtype=np.int64)
    for row, (k, v) in enumerate(zip(ids.tolist(), vals.tolist(), strict=True)):
        idx = lookup.get(k)
        if idx is None:
            if keep_unknown_items:
                continue
            raise ValueError(f"{source}: row {row}: item {k!r} has a true label but no crowd label")
        c = cls.get(v)
        if c is None:
            raise ValueError(f"{source}: row {row}: true label {v!r} is not one of the classes {list(cls)}")
        if truth[idx] >= 0 and truth[idx] != c:
            raise ValueError(f"{source}: row {row}: item {k!r} has two different true labels")
        truth[idx] = c
    return truth
