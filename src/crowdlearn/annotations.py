"""The one in-memory form of crowdsourced labels: observed (item, annotator, label) triples.

:class:`Annotations` stores three aligned integer arrays of the *observed* pairs only, plus the
maps between integer indices and the original ids of items, annotators and classes. It never
builds a dense ``n_items x n_annotators`` matrix; every derived view (CSR by item or by
annotator, counts) costs O(number of labels).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from crowdlearn._checks import show

if TYPE_CHECKING:
    import pandas as pd
else:  # imported on first use: integer arrays and integer CSVs need no pandas
    from crowdlearn._lazy import lazy_module

    pd = lazy_module("pandas")

__all__ = [
    "Annotations",
    "AnnotationsError",
    "CSRView",
    "OnDuplicate",
    "Summary",
]

OnDuplicate = Literal["error", "first", "last"]
IntArray = npt.NDArray[np.int64]


class AnnotationsError(ValueError):
    """Raised for crowdsourced-label input that does not satisfy the data model.

    The message names the offending file, row/column and value where they are known, and what
    was expected instead.
    """


def _as_rng(random_state: int | np.random.Generator | None) -> np.random.Generator:
    """A given generator, or a new one seeded by ``random_state``."""
    return random_state if isinstance(random_state, np.random.Generator) else np.random.default_rng(random_state)


def _folds_and_rng(n_splits: Any, random_state: int | np.random.Generator | None) -> tuple[int, np.random.Generator]:
    """``n_splits`` checked (an integer >= 2) and the generator of a k-fold split."""
    if isinstance(n_splits, bool) or not isinstance(n_splits, (int, np.integer)) or n_splits < 2:
        raise AnnotationsError(f"n_splits must be an integer >= 2, got {show(n_splits)}")
    return int(n_splits), _as_rng(random_state)


def _as_index_array(values: npt.ArrayLike, name: str) -> IntArray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise AnnotationsError(f"{name} must be a 1-d array of integer indices, got shape {arr.shape}")
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr) | (arr != np.round(arr))
        if bad.any():
            pos = int(np.flatnonzero(bad)[0])
            raise AnnotationsError(f"{name}[{pos}] = {show(arr[pos])} is not an integer index (expected integers >= 0)")
    elif arr.dtype.kind not in "iub":
        raise AnnotationsError(
            f"{name} must hold integer indices, got dtype {arr.dtype}; "
            "use Annotations.from_ids(...) to map arbitrary ids to indices"
        )
    out = arr.astype(np.int64, copy=True)  # a copy: the caller's array stays theirs to change
    if out.min() < 0:  # a reduction, no (n,) mask unless there is a negative index to report
        pos = int(np.flatnonzero(out < 0)[0])
        raise AnnotationsError(f"{name}[{pos}] = {int(out[pos])} is negative (expected indices >= 0)")
    return out


def _readonly(a: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    a.flags.writeable = False
    return a


def _default_ids(n: int) -> np.ndarray[Any, Any]:
    return np.arange(n, dtype=np.int64)


def _ids_array(ids: Sequence[Hashable] | np.ndarray[Any, Any] | None, n: int, name: str) -> np.ndarray[Any, Any]:
    if ids is None:
        return _readonly(_default_ids(n))
    arr = np.asarray(ids)
    if arr.dtype.kind == "U" or arr.dtype.kind == "S":
        arr = arr.astype(object)
    if arr.ndim != 1 or len(arr) != n:
        raise AnnotationsError(f"{name} must have length {n}, got shape {arr.shape}")
    uniq = pd.Index(arr)
    if not uniq.is_unique:
        dup = uniq[uniq.duplicated()][0]
        raise AnnotationsError(f"{name} contains the id {show(dup)} more than once; ids must be unique")
    if pd.isna(uniq).any():
        raise AnnotationsError(f"{name} contains a missing (NaN/None) id; ids must be present")
    return _readonly(arr.copy())


@dataclass(frozen=True)
class CSRView:
    """Compressed rows of the label arrays, grouped by item or by annotator.

    Attributes
    ----------
    indptr : ndarray of shape (n_rows + 1,)
        Row ``r`` owns positions ``order[indptr[r]:indptr[r + 1]]`` of the label arrays.
    order : ndarray of shape (n_labels,)
        Permutation of label positions sorted by row (stable, so original order within a row).
    """

    indptr: IntArray
    order: IntArray

    def positions(self, rows: npt.ArrayLike) -> IntArray:
        """Label positions of the given rows, concatenated in the order of ``rows``.

        Costs O(len(rows) + labels returned); no dense intermediate.
        """
        r = np.asarray(rows, dtype=np.int64)
        starts = self.indptr[r]
        lengths = self.indptr[r + 1] - starts
        total = int(lengths.sum())
        if total == 0:
            return np.zeros(0, dtype=np.int64)
        # position j of the output = starts[row(j)] + (j - offset(row(j)))
        offsets = np.repeat(starts - np.cumsum(lengths) + lengths, lengths)
        return self.order[offsets + np.arange(total, dtype=np.int64)]


@dataclass(frozen=True)
class Summary:
    """Counts and distributions describing an :class:`Annotations` object."""

    n_items: int
    n_annotators: int
    n_classes: int
    n_labels: int
    n_duplicates_dropped: int
    n_items_unlabeled: int
    n_annotators_without_labels: int
    labels_per_item: dict[str, float]
    labels_per_annotator: dict[str, float]
    class_counts: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (JSON-serialisable)."""
        return {
            "n_items": self.n_items,
            "n_annotators": self.n_annotators,
            "n_classes": self.n_classes,
            "n_labels": self.n_labels,
            "n_duplicates_dropped": self.n_duplicates_dropped,
            "n_items_unlabeled": self.n_items_unlabeled,
            "n_annotators_without_labels": self.n_annotators_without_labels,
            "labels_per_item": self.labels_per_item,
            "labels_per_annotator": self.labels_per_annotator,
            "class_counts": self.class_counts,
        }

    def __str__(self) -> str:
        def dist(d: dict[str, float]) -> str:
            return ", ".join(f"{k} {v:g}" for k, v in d.items())

        lines = [
            f"items:      {self.n_items} ({self.n_items_unlabeled} without labels)",
            f"annotators: {self.n_annotators} ({self.n_annotators_without_labels} without labels)",
            f"classes:    {self.n_classes}",
            f"labels:     {self.n_labels}"
            + (
                f" ({self.n_duplicates_dropped} repeated (item, annotator) labels dropped)"
                if self.n_duplicates_dropped
                else ""
            ),
            f"labels per item:      {dist(self.labels_per_item)}",
            f"labels per annotator: {dist(self.labels_per_annotator)}",
            "class counts: " + ", ".join(f"{k}: {v}" for k, v in self.class_counts.items()),
        ]
        return "\n".join(lines)


def _describe(counts: IntArray) -> dict[str, float]:
    if counts.size == 0:
        return {"min": 0.0, "median": 0.0, "mean": 0.0, "max": 0.0}
    return {
        "min": float(counts.min()),
        "median": float(np.median(counts)),
        "mean": round(float(counts.mean()), 4),
        "max": float(counts.max()),
    }


class Annotations:
    """Crowdsourced labels as observed (item, annotator, label) triples.

    Parameters
    ----------
    items, annotators, labels : array-like of int of shape (n_labels,)
        Index of the item, of the annotator and of the class for each observed label.
    n_items, n_annotators, n_classes : int, optional
        Sizes of the three index spaces. Default to ``max index + 1`` (or the length of the
        matching id array). Items or annotators with no label are allowed and kept.
    item_ids, annotator_ids, classes : sequence, optional
        Original ids (str or int) of each index. Default to ``0..n-1``. The order of
        ``classes`` fixes the class index order.
    on_duplicate : {"error", "first", "last"}, default="error"
        What to do when the same (item, annotator) pair is observed more than once.

    Notes
    -----
    All arrays are stored read-only, so derived views can be cached safely. Operations return
    new objects. Nothing here ever allocates ``n_items x n_annotators`` memory.

    Examples
    --------
    >>> ann = Annotations.from_ids(["a", "a", "b"], ["w1", "w2", "w1"], ["cat", "dog", "dog"])
    >>> ann.n_items, ann.n_annotators, ann.n_classes, ann.n_labels
    (2, 2, 2, 3)
    >>> list(ann.classes)
    ['cat', 'dog']
    """

    __slots__ = (
        "__dict__",
        "annotator_ids",
        "annotators",
        "classes",
        "item_ids",
        "items",
        "labels",
        "n_annotators",
        "n_classes",
        "n_duplicates_dropped",
        "n_items",
    )

    items: IntArray
    annotators: IntArray
    labels: IntArray
    n_items: int
    n_annotators: int
    n_classes: int
    item_ids: np.ndarray[Any, Any]
    annotator_ids: np.ndarray[Any, Any]
    classes: np.ndarray[Any, Any]
    n_duplicates_dropped: int

    def __init__(
        self,
        items: npt.ArrayLike,
        annotators: npt.ArrayLike,
        labels: npt.ArrayLike,
        *,
        n_items: int | None = None,
        n_annotators: int | None = None,
        n_classes: int | None = None,
        item_ids: Sequence[Hashable] | np.ndarray[Any, Any] | None = None,
        annotator_ids: Sequence[Hashable] | np.ndarray[Any, Any] | None = None,
        classes: Sequence[Hashable] | np.ndarray[Any, Any] | None = None,
        on_duplicate: OnDuplicate = "error",
    ) -> None:
        it = _as_index_array(items, "items")
        an = _as_index_array(annotators, "annotators")
        lb = _as_index_array(labels, "labels")
        if not (len(it) == len(an) == len(lb)):
            raise AnnotationsError(
                f"items, annotators and labels must have the same length, got {len(it)}, {len(an)}, {len(lb)}"
            )
        if on_duplicate not in ("error", "first", "last"):
            raise AnnotationsError(f"on_duplicate must be 'error', 'first' or 'last', got {show(on_duplicate)}")

        def size(explicit: int | None, ids: Any, idx: IntArray, name: str) -> int:
            inferred = int(idx.max()) + 1 if idx.size else 0
            if explicit is None:
                explicit = len(ids) if ids is not None else inferred
            explicit = int(explicit)
            if explicit < inferred:
                pos = int(np.argmax(idx))
                raise AnnotationsError(
                    f"{name} index {int(idx[pos])} at position {pos} is out of range: "
                    f"expected indices in [0, {explicit})"
                )
            return explicit

        ni = size(n_items, item_ids, it, "item")
        na = size(n_annotators, annotator_ids, an, "annotator")
        nc = size(n_classes, classes, lb, "label")

        # duplicates: key = item * n_annotators + annotator; the smallest repeated key is reported
        dropped = 0
        found = _repeated_pairs(it, an, na, ni)
        if found is not None:
            rows, keys = found
            if on_duplicate == "error":
                k = int(keys.min())
                first, second = (int(r) for r in rows[keys == k][:2])
                iid = item_ids[it[second]] if item_ids is not None else int(it[second])
                aid = annotator_ids[an[second]] if annotator_ids is not None else int(an[second])
                raise AnnotationsError(
                    f"duplicate (item, annotator) pair ({show(iid)}, {show(aid)}) at rows {first} and {second}; "
                    "each annotator may label an item once "
                    "(pass on_duplicate='first' or on_duplicate='last' to keep one)"
                )
            keep = _keep_one(len(it), rows, keys, on_duplicate)
            dropped = len(it) - len(keep)
            it, an, lb = it[keep], an[keep], lb[keep]

        self.items = _readonly(it)
        self.annotators = _readonly(an)
        self.labels = _readonly(lb)
        self.n_items = ni
        self.n_annotators = na
        self.n_classes = nc
        self.item_ids = _ids_array(item_ids, ni, "item_ids")
        self.annotator_ids = _ids_array(annotator_ids, na, "annotator_ids")
        self.classes = _ids_array(classes, nc, "classes")
        #: Labels removed because their (item, annotator) pair was repeated (``on_duplicate``
        #: "first" or "last"); reported by :meth:`summary`, never silent.
        self.n_duplicates_dropped = dropped

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_ids(
        cls,
        items: Iterable[Hashable],
        annotators: Iterable[Hashable],
        labels: Iterable[Hashable],
        *,
        classes: Sequence[Hashable] | None = None,
        item_ids: Sequence[Hashable] | None = None,
        annotator_ids: Sequence[Hashable] | None = None,
        on_duplicate: OnDuplicate = "error",
        source: str | None = None,
        first_line: int = 0,
    ) -> Annotations:
        """Build from original ids (strings or ints) of items, annotators and labels.

        Ids are indexed in order of first appearance unless ``item_ids`` / ``annotator_ids``
        give the full list (which may include ids with no label). ``classes`` fixes the class
        order; by default classes are sorted. A label not in ``classes`` is an error.

        ``source`` and ``first_line`` only shape error messages: row ``r`` of the input is
        reported as ``{source}, line {r + first_line}`` (readers pass the file name and the
        line number of the first data row).
        """
        where = _Where(source, first_line)
        it_raw = pd.Series(list(items) if not isinstance(items, (np.ndarray, pd.Series)) else items)
        an_raw = pd.Series(list(annotators) if not isinstance(annotators, (np.ndarray, pd.Series)) else annotators)
        lb_raw = pd.Series(list(labels) if not isinstance(labels, (np.ndarray, pd.Series)) else labels)
        for name, s in (("item", it_raw), ("annotator", an_raw), ("label", lb_raw)):
            if isinstance(s.dtype, np.dtype) and s.dtype.kind in "iub":
                continue  # numpy integers and bools have no missing value: no (n,) mask to build
            na = s.isna().to_numpy()
            if na.any():
                row = int(np.flatnonzero(na)[0])
                raise AnnotationsError(f"{where(row)}: missing {name} id (NaN/empty); every label needs an {name}")
        if not (len(it_raw) == len(an_raw) == len(lb_raw)):
            raise AnnotationsError(
                "items, annotators and labels must have the same length, "
                f"got {len(it_raw)}, {len(an_raw)}, {len(lb_raw)}"
            )
        return cls._from_columns(
            _Column.of(it_raw),
            _Column.of(an_raw),
            _Column.of(lb_raw),
            classes=classes,
            item_ids=item_ids,
            annotator_ids=annotator_ids,
            on_duplicate=on_duplicate,
            where=where,
        )

    @classmethod
    def _from_columns(
        cls,
        items: _Column,
        annotators: _Column,
        labels: _Column,
        *,
        classes: Sequence[Hashable] | None,
        item_ids: Sequence[Hashable] | None,
        annotator_ids: Sequence[Hashable] | None,
        on_duplicate: OnDuplicate,
        where: _Where,
    ) -> Annotations:
        """The core of :meth:`from_ids` (and of the readers): factorized columns to Annotations.

        Every step works on the distinct values, then maps the codes with one ``take``; the
        only passes over all labels are those takes and the duplicate check.
        """
        it_idx, it_ids = _encode_column(items, item_ids, "item", where=where)
        an_idx, an_ids = _encode_column(annotators, annotator_ids, "annotator", where=where)
        if classes is None:
            # sort only the distinct labels (K log K) and remap the codes
            if labels.distinct and isinstance(labels.values, np.ndarray):
                lb_vals: Any = labels.values  # already distinct: the factorize would be the identity
                lb_sub = np.arange(len(lb_vals), dtype=np.int64)
            else:
                lb_sub, lb_vals = _factorize(labels.series())
            uniq = list(_id_array(lb_vals).tolist())
            try:
                order = sorted(range(len(uniq)), key=uniq.__getitem__)
            except TypeError as exc:
                kinds = sorted({type(v).__name__ for v in uniq})
                raise AnnotationsError(
                    f"{where.prefix()}labels mix types ({', '.join(kinds)}); "
                    "labels must all be integers or all be strings"
                ) from exc
            rank = np.empty(len(order), dtype=np.int64)
            rank[np.asarray(order, dtype=np.int64)] = np.arange(len(order), dtype=np.int64)
            lb_idx = _remap(labels.codes, rank[lb_sub])
            cl = np.empty(len(order), dtype=object)
            cl[:] = [uniq[i] for i in order]
            if _all_int(cl):
                cl = np.asarray(cl.tolist(), dtype=np.int64)
        else:
            lb_idx, cl = _encode_column(labels, classes, "label", what="declared classes", where=where)
        dropped = 0
        found = _repeated_pairs(it_idx, an_idx, len(an_ids), len(it_ids))
        if found is not None:
            if on_duplicate == "error":
                a, b = _first_duplicate(*found)
                raise AnnotationsError(
                    f"{where(b)}: duplicate (item, annotator) pair ({show(items.value(b))}, "
                    f"{show(annotators.value(b))}), first seen at {where(a).split(', ')[-1]}; each annotator may "
                    "label an item once (pass on_duplicate='first' or on_duplicate='last' to keep one)"
                )
            if on_duplicate not in ("first", "last"):
                raise AnnotationsError(f"on_duplicate must be 'error', 'first' or 'last', got {show(on_duplicate)}")
            keep = _keep_one(len(it_idx), *found, on_duplicate)
            dropped = len(it_idx) - len(keep)
            it_idx, an_idx, lb_idx = it_idx[keep], an_idx[keep], lb_idx[keep]
        elif on_duplicate not in ("error", "first", "last"):
            raise AnnotationsError(f"on_duplicate must be 'error', 'first' or 'last', got {show(on_duplicate)}")
        # the encoded indices are in range and the ids distinct by construction: no second pass
        return cls._from_valid(
            it_idx,
            an_idx,
            lb_idx,
            item_ids=it_ids if item_ids is None else _ids_array(it_ids, len(it_ids), "item_ids"),
            annotator_ids=an_ids if annotator_ids is None else _ids_array(an_ids, len(an_ids), "annotator_ids"),
            classes=cl if classes is None else _ids_array(cl, len(cl), "classes"),
            dropped=dropped,
        )

    @classmethod
    def _from_valid(
        cls,
        items: IntArray,
        annotators: IntArray,
        labels: IntArray,
        *,
        item_ids: np.ndarray[Any, Any],
        annotator_ids: np.ndarray[Any, Any],
        classes: np.ndarray[Any, Any],
        dropped: int,
    ) -> Annotations:
        """Wrap arrays already checked (indices in range, no repeated pair, distinct ids)."""
        self = cls.__new__(cls)
        self.items = _readonly(np.ascontiguousarray(items, dtype=np.int64))
        self.annotators = _readonly(np.ascontiguousarray(annotators, dtype=np.int64))
        self.labels = _readonly(np.ascontiguousarray(labels, dtype=np.int64))
        self.n_items = len(item_ids)
        self.n_annotators = len(annotator_ids)
        self.n_classes = len(classes)
        self.item_ids = _readonly(item_ids)
        self.annotator_ids = _readonly(annotator_ids)
        self.classes = _readonly(classes)
        self.n_duplicates_dropped = dropped
        return self

    # ------------------------------------------------------------------ basics
    @property
    def n_labels(self) -> int:
        """Number of observed (item, annotator, label) triples."""
        return int(self.items.shape[0])

    def __len__(self) -> int:
        return self.n_labels

    def __repr__(self) -> str:
        return (
            f"Annotations(n_items={self.n_items}, n_annotators={self.n_annotators}, "
            f"n_classes={self.n_classes}, n_labels={self.n_labels})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Annotations):
            return NotImplemented
        return (
            self.n_items == other.n_items
            and self.n_annotators == other.n_annotators
            and self.n_classes == other.n_classes
            and np.array_equal(self.items, other.items)
            and np.array_equal(self.annotators, other.annotators)
            and np.array_equal(self.labels, other.labels)
            and _ids_equal(self.item_ids, other.item_ids)
            and _ids_equal(self.annotator_ids, other.annotator_ids)
            and _ids_equal(self.classes, other.classes)
        )

    __hash__ = None  # type: ignore[assignment]

    def same_content(self, other: Annotations) -> bool:
        """True when both hold the same set of (item id, annotator id, class id) triples.

        Ignores the order of labels and the index assigned to each id.
        """

        def rows(a: Annotations) -> pd.DataFrame:  # compared as text: int 7 and "7" are the same id
            return a.to_frame().astype(str).sort_values(["item", "annotator"]).reset_index(drop=True)

        return bool(rows(self).equals(rows(other)))

    # ------------------------------------------------------------------ id maps
    @cached_property
    def _item_lookup(self) -> dict[Hashable, int]:
        return {k: i for i, k in enumerate(self.item_ids.tolist())}

    @cached_property
    def _annotator_lookup(self) -> dict[Hashable, int]:
        return {k: i for i, k in enumerate(self.annotator_ids.tolist())}

    @cached_property
    def _class_lookup(self) -> dict[Hashable, int]:
        return {k: i for i, k in enumerate(self.classes.tolist())}

    def item_index(self, ids: Iterable[Hashable]) -> IntArray:
        """Indices of the given item ids; unknown ids raise :class:`AnnotationsError`."""
        return _lookup(self._item_lookup, ids, "item")

    def annotator_index(self, ids: Iterable[Hashable]) -> IntArray:
        """Indices of the given annotator ids; unknown ids raise :class:`AnnotationsError`."""
        return _lookup(self._annotator_lookup, ids, "annotator")

    def class_index(self, ids: Iterable[Hashable]) -> IntArray:
        """Indices of the given class ids; unknown classes raise :class:`AnnotationsError`."""
        return _lookup(self._class_lookup, ids, "class")

    def item_class_indices(self, values: npt.ArrayLike, name: str, *, hint: str = "") -> IntArray:
        """``values`` checked as one class index per item (-1: none), shape (n_items,), as int64.

        Gold labels and aggregated labels take this form. A wrong shape or dtype, or a value
        outside ``[-1, n_classes)``, raises :class:`AnnotationsError` naming ``name`` (and the
        first bad position); ``hint`` is appended to the shape message (e.g. another accepted form).
        """
        a = np.asarray(values)
        if a.shape != (self.n_items,) or a.dtype.kind not in "iu":
            raise AnnotationsError(
                f"{name} must be an int array of shape ({self.n_items},) with -1 for unknown items{hint}; "
                f"got dtype {a.dtype} and shape {a.shape}"
            )
        bad = (a < -1) | (a >= self.n_classes)
        if bad.any():
            pos = int(np.flatnonzero(bad)[0])
            raise AnnotationsError(
                f"{name}[{pos}] = {int(a[pos])} is not a class index in [0, {self.n_classes}) or -1 (unknown)"
            )
        return a.astype(np.int64)

    # ------------------------------------------------------------------ derived views
    @cached_property
    def by_item(self) -> CSRView:
        """CSR view grouping label positions by item (cached)."""
        return _csr(self.items, self.n_items)

    @cached_property
    def by_annotator(self) -> CSRView:
        """CSR view grouping label positions by annotator (cached)."""
        return _csr(self.annotators, self.n_annotators)

    @cached_property
    def item_counts(self) -> IntArray:
        """Number of labels of each item, shape (n_items,) (one ``bincount``; no sort)."""
        return _readonly(np.bincount(self.items, minlength=self.n_items).astype(np.int64, copy=False))

    @cached_property
    def annotator_counts(self) -> IntArray:
        """Number of labels given by each annotator, shape (n_annotators,) (one ``bincount``; no sort)."""
        return _readonly(np.bincount(self.annotators, minlength=self.n_annotators).astype(np.int64, copy=False))

    @cached_property
    def class_counts(self) -> IntArray:
        """Number of labels of each class, shape (n_classes,)."""
        return _readonly(np.bincount(self.labels, minlength=self.n_classes).astype(np.int64))

    def vote_counts(self, weights: npt.ArrayLike | None = None) -> npt.NDArray[np.float64]:
        """Per-item class vote counts, shape (n_items, n_classes).

        ``weights`` (shape (n_annotators,)) weighs each annotator's vote. Cost O(n_labels +
        n_items * n_classes): the result is items x classes, never items x annotators.
        """
        w = None if weights is None else np.asarray(weights, dtype=np.float64)[self.annotators]
        cell = np.multiply(self.items, self.n_classes)
        cell += self.labels
        flat = np.bincount(cell, weights=w, minlength=self.n_items * self.n_classes)
        # weighted counts are float64 already: no copy
        return flat.reshape(self.n_items, self.n_classes).astype(np.float64, copy=False)

    def labels_of(self, items: npt.ArrayLike) -> tuple[IntArray, IntArray, IntArray]:
        """All observed labels of a batch of items in O(labels).

        Parameters
        ----------
        items : array-like of int of shape (batch,)
            Item indices.

        Returns
        -------
        rows : ndarray of shape (n_batch_labels,)
            Position in ``items`` (0..batch-1) of the item each label belongs to.
        annotators, labels : ndarray of shape (n_batch_labels,)
        """
        b = np.asarray(items, dtype=np.int64)
        pos = self.by_item.positions(b)
        counts = self.item_counts[b]
        rows = np.repeat(np.arange(len(b), dtype=np.int64), counts)
        return rows, self.annotators[pos], self.labels[pos]

    # ------------------------------------------------------------------ operations
    def subset_items(self, items: npt.ArrayLike, *, reindex: bool = True) -> Annotations:
        """Keep the labels of the given items.

        Parameters
        ----------
        items : array-like of int or bool
            Item indices (or a boolean mask of shape (n_items,)).
        reindex : bool, default=True
            If True the result has exactly the selected items, re-indexed ``0..len(items)-1`` in
            the given order (their original ids are kept in ``item_ids``). If False the index
            space and ids are unchanged and the other items simply lose their labels.
        Annotators and classes keep their indices in both cases.
        """
        sel = self._selection(items, self.n_items, "item")
        pos = np.sort(self.by_item.positions(sel))
        if not reindex:
            return self._with(self.items[pos], self.annotators[pos], self.labels[pos])
        new_index = np.full(self.n_items, -1, dtype=np.int64)
        new_index[sel] = np.arange(len(sel), dtype=np.int64)
        return Annotations(
            new_index[self.items[pos]],
            self.annotators[pos],
            self.labels[pos],
            n_items=len(sel),
            n_annotators=self.n_annotators,
            n_classes=self.n_classes,
            item_ids=self.item_ids[sel],
            annotator_ids=self.annotator_ids,
            classes=self.classes,
        )

    def subset_annotators(self, annotators: npt.ArrayLike, *, reindex: bool = True) -> Annotations:
        """Keep the labels of the given annotators (indices or boolean mask).

        With ``reindex=True`` annotators are re-indexed ``0..len-1`` in the given order; items
        and classes keep their indices (items left without labels stay, unlabeled).
        """
        sel = self._selection(annotators, self.n_annotators, "annotator")
        pos = np.sort(self.by_annotator.positions(sel))
        if not reindex:
            return self._with(self.items[pos], self.annotators[pos], self.labels[pos])
        new_index = np.full(self.n_annotators, -1, dtype=np.int64)
        new_index[sel] = np.arange(len(sel), dtype=np.int64)
        return Annotations(
            self.items[pos],
            new_index[self.annotators[pos]],
            self.labels[pos],
            n_items=self.n_items,
            n_annotators=len(sel),
            n_classes=self.n_classes,
            item_ids=self.item_ids,
            annotator_ids=self.annotator_ids[sel],
            classes=self.classes,
        )

    def subset_labels(self, mask: npt.ArrayLike) -> Annotations:
        """Keep the labels selected by a boolean mask or positions; index spaces unchanged."""
        m = np.asarray(mask)
        if m.dtype == bool:
            if m.shape != (self.n_labels,):
                raise AnnotationsError(f"label mask must have shape ({self.n_labels},), got {m.shape}")
            pos = np.flatnonzero(m)
        else:
            pos = self._selection(m, self.n_labels, "label position")
        return self._with(self.items[pos], self.annotators[pos], self.labels[pos])

    def split_holdout(
        self,
        fraction: float = 0.1,
        *,
        random_state: int | np.random.Generator | None = 0,
        min_keep: int = 1,
        by: Literal["annotator", "item"] = "annotator",
    ) -> tuple[Annotations, Annotations]:
        """Hold out a fraction of each annotator's labels, or of the items (seeded), e.g. for
        crowd-only validation.

        Parameters
        ----------
        fraction : float in [0, 1)
            ``by="annotator"``: share of each annotator's labels moved to the held-out part
            (rounded down). ``by="item"``: share of the labelled items (rounded down) whose labels,
            all of them, move to the held-out part.
        random_state : int, Generator or None, default=0
            Seed (or generator) of the random choice.
        min_keep : int, default=1
            ``by="annotator"`` only: each annotator keeps at least this many labels in the
            training part.
        by : {"annotator", "item"}, default="annotator"
            ``"item"`` holds out whole items: a model trained on the training part has never seen
            a held-out item's labels, so the held-out labels score how it generalises to new
            items (``"annotator"`` scores new labels of items it trained on).

        Returns
        -------
        train, held_out : Annotations
            Same index spaces and ids as ``self``; together they hold every label exactly once.
        """
        if not 0.0 <= fraction < 1.0:
            raise AnnotationsError(f"fraction must be in [0, 1), got {show(fraction)}")
        rng = _as_rng(random_state)
        if by == "item":
            if min_keep != 1:
                raise AnnotationsError(f"min_keep applies to by='annotator' only, got min_keep={show(min_keep)}")
            labelled = np.flatnonzero(self.item_counts > 0)
            n_out = int(np.floor(len(labelled) * fraction))
            out_items = np.zeros(self.n_items, dtype=bool)
            out_items[rng.permutation(labelled)[:n_out]] = True
            held_items = out_items[self.items]
            return self.subset_labels(~held_items), self.subset_labels(held_items)
        if by != "annotator":
            raise AnnotationsError(f"by must be 'annotator' or 'item', got {show(by)}")
        counts = self.annotator_counts
        n_out = np.minimum(np.floor(counts * fraction).astype(np.int64), np.maximum(counts - min_keep, 0))
        # random rank of each label within its annotator: sort by (annotator, random key)
        key = rng.random(self.n_labels)
        order = np.lexsort((key, self.annotators))
        starts = self.by_annotator.indptr[:-1]
        rank = np.empty(self.n_labels, dtype=np.int64)
        rank[order] = np.arange(self.n_labels) - np.repeat(starts, counts)
        held = rank < n_out[self.annotators]
        return self.subset_labels(~held), self.subset_labels(held)

    def kfold_labels(self, n_splits: int = 5, *, random_state: int | np.random.Generator | None = 0) -> IntArray:
        """The fold of every label, each annotator's labels spread evenly over ``n_splits`` folds (seeded).

        Within each annotator the labels are put in a random order and dealt to the folds in
        turn, starting at a random fold per annotator: an annotator with ``c`` labels has
        ``floor(c / n_splits)`` or one more in every fold, and the folds' sizes differ by at
        most the number of annotators.

        Parameters
        ----------
        n_splits : int >= 2, default=5
        random_state : int, Generator or None, default=0
            Seed (or generator) of the order and the starting folds.

        Returns
        -------
        ndarray of int64 of shape (n_labels,)
            Fold ``0..n_splits-1`` of each label (in label order).
        """
        k, rng = _folds_and_rng(n_splits, random_state)
        counts = self.annotator_counts
        key = rng.random(self.n_labels)
        offset = rng.integers(0, k, size=self.n_annotators)
        order = np.lexsort((key, self.annotators))
        starts = self.by_annotator.indptr[:-1]
        rank = np.empty(self.n_labels, dtype=np.int64)
        rank[order] = np.arange(self.n_labels) - np.repeat(starts, counts)
        folds: IntArray = ((rank + offset[self.annotators]) % k).astype(np.int64)
        return folds

    def kfold_items(self, n_splits: int = 5, *, random_state: int | np.random.Generator | None = 0) -> IntArray:
        """The fold of every label by its item: the labelled items, in a random order, dealt to
        ``n_splits`` folds in turn (seeded), and each label in its item's fold.

        The folds' item counts differ by at most one; an item's labels are never split between folds.

        Parameters
        ----------
        n_splits : int >= 2, default=5
        random_state : int, Generator or None, default=0

        Returns
        -------
        ndarray of int64 of shape (n_labels,)
            Fold ``0..n_splits-1`` of each label (in label order).
        """
        k, rng = _folds_and_rng(n_splits, random_state)
        labelled = rng.permutation(np.flatnonzero(self.item_counts > 0))
        item_fold = np.zeros(self.n_items, dtype=np.int64)
        item_fold[labelled] = np.arange(len(labelled), dtype=np.int64) % k
        folds: IntArray = item_fold[self.items]
        return folds

    def split_kfold(
        self,
        n_splits: int = 5,
        *,
        random_state: int | np.random.Generator | None = 0,
        by: Literal["annotator", "item"] = "annotator",
    ) -> list[tuple[Annotations, Annotations]]:
        """K-fold over each annotator's labels, or over the items: ``n_splits`` (train, held-out) pairs.

        Fold ``f`` holds out the labels that :meth:`kfold_labels` (``by="annotator"``) or
        :meth:`kfold_items` (``by="item"``: whole items) puts in fold ``f`` and trains on the
        others, so every label is held out exactly once over the folds and never twice. With
        ``by="annotator"`` an annotator with fewer than ``n_splits`` labels is absent from the
        held-out part of some folds; one with a single label has no training label in the fold
        that holds it out.

        Parameters
        ----------
        n_splits : int >= 2, default=5
        random_state : int, Generator or None, default=0
        by : {"annotator", "item"}, default="annotator"

        Returns
        -------
        list of (train, held_out) Annotations
            ``n_splits`` pairs, each with the index spaces and ids of ``self``; within a pair
            they hold every label exactly once.
        """
        if by == "annotator":
            folds = self.kfold_labels(n_splits, random_state=random_state)
        elif by == "item":
            folds = self.kfold_items(n_splits, random_state=random_state)
        else:
            raise AnnotationsError(f"by must be 'annotator' or 'item', got {show(by)}")
        return [(self.subset_labels(folds != f), self.subset_labels(folds == f)) for f in range(int(n_splits))]

    def concat(self, *others: Annotations, on_duplicate: OnDuplicate = "error") -> Annotations:
        """Concatenate with other Annotations, matching items, annotators and classes by id.

        Ids of ``self`` keep their indices; new ids are appended in order of appearance. Classes
        must be compatible: the union keeps ``self``'s order and appends new classes.
        """
        parts = [self, *others]
        item_ids = _union_ids([p.item_ids for p in parts])
        ann_ids = _union_ids([p.annotator_ids for p in parts])
        cls_ids = _union_ids([p.classes for p in parts])
        it_map = {k: i for i, k in enumerate(item_ids.tolist())}
        an_map = {k: i for i, k in enumerate(ann_ids.tolist())}
        cl_map = {k: i for i, k in enumerate(cls_ids.tolist())}
        its, ans, lbs = [], [], []
        for p in parts:
            its.append(np.array([it_map[k] for k in p.item_ids.tolist()], dtype=np.int64)[p.items])
            ans.append(np.array([an_map[k] for k in p.annotator_ids.tolist()], dtype=np.int64)[p.annotators])
            lbs.append(np.array([cl_map[k] for k in p.classes.tolist()], dtype=np.int64)[p.labels])
        return Annotations(
            np.concatenate(its),
            np.concatenate(ans),
            np.concatenate(lbs),
            item_ids=item_ids,
            annotator_ids=ann_ids,
            classes=cls_ids,
            on_duplicate=on_duplicate,
        )

    def to_frame(self, *, ids: bool = True) -> pd.DataFrame:
        """Long table with columns ``item``, ``annotator``, ``label``.

        With ``ids=True`` (default) the columns hold the original ids; otherwise the indices.
        """
        if not ids:
            return pd.DataFrame({"item": self.items, "annotator": self.annotators, "label": self.labels})
        return pd.DataFrame(
            {
                "item": self.item_ids[self.items],
                "annotator": self.annotator_ids[self.annotators],
                "label": self.classes[self.labels],
            }
        )

    def summary(self) -> Summary:
        """Counts, labels per item/annotator distribution and class balance."""
        return Summary(
            n_items=self.n_items,
            n_annotators=self.n_annotators,
            n_classes=self.n_classes,
            n_labels=self.n_labels,
            n_duplicates_dropped=self.n_duplicates_dropped,
            n_items_unlabeled=int((self.item_counts == 0).sum()),
            n_annotators_without_labels=int((self.annotator_counts == 0).sum()),
            labels_per_item=_describe(self.item_counts),
            labels_per_annotator=_describe(self.annotator_counts),
            class_counts={str(c): int(n) for c, n in zip(self.classes.tolist(), self.class_counts.tolist())},
        )

    # ------------------------------------------------------------------ helpers
    def _with(self, items: IntArray, annotators: IntArray, labels: IntArray) -> Annotations:
        return Annotations(
            items,
            annotators,
            labels,
            n_items=self.n_items,
            n_annotators=self.n_annotators,
            n_classes=self.n_classes,
            item_ids=self.item_ids,
            annotator_ids=self.annotator_ids,
            classes=self.classes,
        )

    @staticmethod
    def _selection(sel: npt.ArrayLike, n: int, name: str) -> IntArray:
        arr = np.asarray(sel)
        if arr.dtype == bool:
            if arr.shape != (n,):
                raise AnnotationsError(f"{name} mask must have shape ({n},), got {arr.shape}")
            return np.flatnonzero(arr).astype(np.int64)
        idx = _as_index_array(arr.reshape(-1), f"{name} selection")
        if idx.size and int(idx.max()) >= n:
            raise AnnotationsError(f"{name} selection contains index {int(idx.max())}, expected < {n}")
        if np.unique(idx).size != idx.size:
            raise AnnotationsError(f"{name} selection contains repeated indices")
        return idx


def _csr(keys: IntArray, n: int) -> CSRView:
    order = np.argsort(keys, kind="stable").astype(np.int64)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(keys, minlength=n), out=indptr[1:])
    return CSRView(indptr=_readonly(indptr), order=_readonly(order))


def _ids_equal(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> bool:
    return len(a) == len(b) and all(x == y for x, y in zip(a.tolist(), b.tolist()))


def _union_ids(arrays: list[np.ndarray[Any, Any]]) -> np.ndarray[Any, Any]:
    seen: dict[Hashable, None] = {}
    for a in arrays:
        for k in a.tolist():
            seen.setdefault(k, None)
    keys = list(seen)
    out = np.empty(len(keys), dtype=object)
    out[:] = keys
    if all(isinstance(k, (int, np.integer)) and not isinstance(k, bool) for k in keys):
        return np.asarray(keys, dtype=np.int64)
    return out


def _lookup(table: dict[Hashable, int], ids: Iterable[Hashable], what: str) -> IntArray:
    out = []
    for k in ids:
        try:
            out.append(table[k])
        except KeyError:
            raise AnnotationsError(f"unknown {what} id {show(k)}") from None
    return np.asarray(out, dtype=np.int64)


class _Where:
    """Formats 'file, line N' (or 'row N') for error messages."""

    def __init__(self, source: str | None, first_line: int) -> None:
        self.source = source
        self.first_line = first_line

    def __call__(self, row: int) -> str:
        if self.source is None:
            return f"row {row + self.first_line}"
        return f"{self.source}, line {row + self.first_line}"

    def prefix(self) -> str:
        return f"{self.source}: " if self.source else ""


def _pair_key(
    items: IntArray, annotators: IntArray, n_annotators: int, n_items: int
) -> npt.NDArray[np.signedinteger[Any]]:
    """One integer per label, ``item * n_annotators + annotator``: equal exactly for a repeated pair.

    int32 when every key fits (sorting 4-byte keys is about twice as fast), else int64.
    """
    narrow = max(n_items, 1) * max(n_annotators, 1) <= np.iinfo(np.int32).max
    key: npt.NDArray[np.signedinteger[Any]] = np.empty(len(items), dtype=np.int32 if narrow else np.int64)
    # computed in int64 and written in the key's width, chunk by chunk: no (n,) int64 temporary
    np.multiply(items, max(n_annotators, 1), out=key, casting="unsafe")
    np.add(key, annotators, out=key, casting="unsafe")
    return key


def _repeated_pairs(
    items: IntArray, annotators: IntArray, n_annotators: int, n_items: int
) -> tuple[IntArray, npt.NDArray[Any]] | None:
    """Rows whose (item, annotator) pair occurs more than once (ascending) and their pair keys
    (:func:`_pair_key`); None when all pairs differ (the common case).

    The presence test sorts the keys without an index (numpy's SIMD sort: at 10M labels about 7x
    faster than a pandas hash table or a stable argsort, whose random memory access dominates),
    in place (the key is this function's own array: no sorted copy, whose fresh memory costs
    page faults), and skips the sort when the keys are already in order (a file written sorted
    by item and annotator; tested on a prefix first, so shuffled input pays almost nothing for
    it). Only when a pair repeats are the keys computed again and the rows of repeated keys
    located, with a binary search over those keys, so the exact first/last/error semantics
    below cost O(n_repeated log n_repeated) more.
    """
    if len(items) < 2:
        return None
    key = _pair_key(items, annotators, n_annotators, n_items)
    if not _is_sorted(key):
        key.sort()
    if not _has_equal_neighbours(key):
        return None
    eq = key[1:] == key[:-1]
    repeated = np.unique(key[1:][eq])
    del eq
    key = _pair_key(items, annotators, n_annotators, n_items)
    pos = np.minimum(np.searchsorted(repeated, key), len(repeated) - 1)
    rows = np.flatnonzero(repeated[pos] == key).astype(np.int64)
    return rows, key[rows]


def _remap(codes: IntArray, table: IntArray) -> IntArray:
    """``table[codes]``, written over ``codes`` block by block when it is a writeable int64 array.

    The codes of a label column are the readers' own array, used once: remapping them in place
    spares a fresh (n,) array (fresh memory costs page faults). The column's values no longer
    match its codes afterwards (:meth:`Annotations._from_columns` reads no label value after it).
    """
    if codes.dtype != np.int64 or not codes.flags.writeable or not codes.flags.c_contiguous:
        return table[codes]
    for b in range(0, len(codes), _BLOCK):
        block = codes[b : b + _BLOCK]
        block[...] = table[block]
    return codes


def _neighbour_blocks(n: int, first: int = 0) -> Iterator[tuple[int, int]]:
    """(b, e): compare ``key[b + 1 : e + 1]`` with ``key[b:e]``, blocks of 2**16 covering all n - 1 pairs."""
    for b in range(first, n - 1, _BLOCK):
        yield b, min(b + _BLOCK, n - 1)


def _is_sorted(key: npt.NDArray[Any]) -> bool:
    """Whether ``key`` is non-decreasing: a short prefix first, then block by block (no (n,) mask)."""
    m = min(len(key) - 1, 4096)
    if m > 0 and not bool((key[1 : m + 1] >= key[:m]).all()):
        return False
    return all(bool((key[b + 1 : e + 1] >= key[b:e]).all()) for b, e in _neighbour_blocks(len(key)))


def _has_equal_neighbours(key: npt.NDArray[Any]) -> bool:
    """Whether two consecutive entries are equal, block by block (no (n,) mask)."""
    return any(bool((key[b + 1 : e + 1] == key[b:e]).any()) for b, e in _neighbour_blocks(len(key)))


def _runs(rows: IntArray, keys: npt.NDArray[Any]) -> tuple[IntArray, npt.NDArray[np.bool_]]:
    """Repeated rows in (key, row) order and a mask of those that repeat the one before them."""
    order = rows[np.argsort(keys, kind="stable")]
    sk = np.sort(keys, kind="stable")
    return order, np.concatenate([[False], sk[1:] == sk[:-1]])


def _keep_one(n: int, rows: IntArray, keys: npt.NDArray[Any], on_duplicate: OnDuplicate) -> IntArray:
    """Positions (ascending) kept when each repeated pair keeps its first or last label."""
    order, repeat = _runs(rows, keys)
    if on_duplicate == "first":
        drop = order[repeat]
    else:  # "last": drop every label followed by one of the same pair
        drop = order[np.concatenate([repeat[1:], [False]])]
    keep = np.ones(n, dtype=bool)
    keep[drop] = False
    return np.flatnonzero(keep).astype(np.int64)


def _first_duplicate(rows: IntArray, keys: npt.NDArray[Any]) -> tuple[int, int]:
    """Positions (first, second) of the earliest repeated pair among the repeated rows."""
    order, repeat = _runs(rows, keys)
    seconds = order[repeat]
    j = int(np.argmin(seconds))
    return int(order[np.flatnonzero(repeat)[j] - 1]), int(seconds[j])


def _all_int(values: np.ndarray[Any, Any]) -> bool:
    """True when every value is an integer (Python or numpy; bools are not), checked without a Python loop."""
    if len(values) == 0:
        return False
    if values.dtype == object:
        if isinstance(values[0], str):
            return False  # one text is enough to say no (the ids of a text column)
        if len(values) <= 1024 and all(type(v) is int for v in values.tolist()):
            return True  # a few Python ints (the classes of integer labels): no pandas needed
    return bool(pd.api.types.infer_dtype(values, skipna=False) == "integer")


@dataclass(frozen=True)
class _Column:
    """One column of ids (or labels) as codes into its values: ``values.iloc[codes[r]]`` is row ``r``.

    Attributes
    ----------
    codes : ndarray of int64 of shape (n_labels,)
        Index into ``values`` of each row.
    values : Series or ndarray of shape (n_values,)
        The values, in order of first appearance (value ``u`` first occurs before value
        ``u + 1``); not necessarily distinct (a reader may have normalised them). A reader of
        integer files gives an ndarray (int64, or the integers' texts as objects) and then
        ``distinct`` is True.
    distinct : bool
        Whether ``values`` are known to be distinct (then they are the ids as they are).
    ints : ndarray of int64 of shape (n_values,) or None
        Set by a reader when ``values`` are the canonical decimal texts of these distinct
        integers (``"0"``, ``"42"``, ``"-7"``).
    """

    codes: IntArray
    values: pd.Series | np.ndarray[Any, Any]
    distinct: bool = False
    ints: npt.NDArray[np.int64] | None = None

    @classmethod
    def of(cls, values: pd.Series) -> _Column:
        """Factorize a column (a missing value is a value of its own): integers in a dense range
        by :func:`_factorize_dense`, anything else by hashing."""
        if isinstance(values.dtype, np.dtype) and values.dtype.kind in "iu":
            dense = _factorize_dense(values.to_numpy())
            if dense is not None:
                return cls(dense[0], pd.Series(dense[1]), distinct=True)
        codes, uniques = pd.factorize(values, sort=False, use_na_sentinel=False)
        return cls(codes.astype(np.int64, copy=False), pd.Series(uniques), distinct=True)

    def first_row(self, u: int) -> int:
        """The first row holding value ``u`` (a linear scan; used for error messages only)."""
        return int(np.argmax(self.codes == u))

    def value(self, row: int) -> Any:
        """The value of row ``row``."""
        vals = self.values
        u = int(self.codes[row])
        return vals[u] if isinstance(vals, np.ndarray) else vals.iloc[u]

    def series(self) -> pd.Series:
        """The values as a Series."""
        return self.values if not isinstance(self.values, np.ndarray) else pd.Series(self.values)


def _encode_column(
    column: _Column,
    declared: Sequence[Hashable] | None,
    name: str,
    what: str | None = None,
    where: _Where | None = None,
) -> tuple[IntArray, np.ndarray[Any, Any]]:
    """:func:`_encode` on the column's values, then one ``take`` to every row."""
    if declared is None and column.distinct:
        vals = column.values
        if isinstance(vals, np.ndarray):
            return column.codes, _id_array(vals)
        return column.codes, _id_array(vals.to_numpy() if isinstance(vals.dtype, np.dtype) else vals.array)
    try:
        sub, ids = _encode(column.series(), declared, name, what, where)
    except _UnknownValue as exc:
        row = column.first_row(exc.index)
        loc = (where or _Where(None, 0))(row)
        raise AnnotationsError(f"{loc}: {exc.message}") from None
    return sub[column.codes], ids


class _UnknownValue(Exception):
    """A value outside the declared ids (re-raised with its row by :func:`_encode_column`)."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index, self.message = index, message


def _encode(
    values: pd.Series,
    declared: Sequence[Hashable] | None,
    name: str,
    what: str | None = None,
    where: _Where | None = None,
) -> tuple[IntArray, np.ndarray[Any, Any]]:
    """Map raw ids to indices; with ``declared`` the id list (and order) is fixed."""
    if declared is None:
        codes, uniques = _factorize(values)
        return codes, _id_array(uniques)
    decl = np.empty(len(declared), dtype=object)
    decl[:] = list(declared)
    index = pd.Index(decl)
    if not index.is_unique:
        dup = index[index.duplicated()][0]
        raise AnnotationsError(f"declared {name} ids contain {show(dup)} more than once")
    codes = index.get_indexer(pd.Index(values.astype(object)))
    if (codes < 0).any():
        row = int(np.flatnonzero(codes < 0)[0])
        shown = ", ".join(show(c) for c in decl.tolist()[:20])
        raise _UnknownValue(
            row, f"{name} {show(values.iloc[row])} is not one of the {what or 'declared ' + name + ' ids'} ({shown})"
        )
    out_ids: np.ndarray[Any, Any] = decl
    if _all_int(decl):
        out_ids = np.asarray(decl.tolist(), dtype=np.int64)
    return codes.astype(np.int64), out_ids


def _factorize_dense(
    values: npt.NDArray[np.integer[Any]] | Sequence[npt.NDArray[np.integer[Any]]],
) -> tuple[IntArray, npt.NDArray[Any]] | None:
    """``pd.factorize(values)`` for integers spanning at most about twice their count, without hashing.

    ``values``: one array, or the consecutive chunks of one (a pyarrow column's), never
    concatenated. Returns codes (int64, shape (n,)) and the distinct values (shape
    (n_distinct,), the dtype of ``values``) in order of first appearance, exactly as
    ``pd.factorize`` gives them; None when the values span too wide a range for a table of that
    size (then hash them). The first row of every value comes from ``np.minimum.at`` into a
    table over the range, and the codes from one gather: at 10M labels of 2M item ids about 4x
    faster than the hash table, whose random probes into a table of distinct values dominate
    (ids 0..n-1, the common case, are the best one). Both passes go block by block, so the only
    array of one entry per row that this allocates is the codes (fresh memory costs page faults).
    """
    parts = [values] if isinstance(values, np.ndarray) else [p for p in values if len(p)]
    n = sum(len(p) for p in parts)
    if n == 0 or n >= np.iinfo(np.int32).max:
        return None
    dtype = parts[0].dtype
    lo, hi = min(int(p.min()) for p in parts), max(int(p.max()) for p in parts)
    span = hi - lo + 1
    if span > 2 * n + 65_536:
        return None

    def blocks() -> Iterator[tuple[int, npt.NDArray[np.integer[Any]]]]:
        """(first row, offsets from lo) of blocks of at most 2**16 rows."""
        start = 0
        for part in parts:
            for b in range(0, len(part), _BLOCK):
                v = part[b : b + _BLOCK]
                if v.dtype == np.int64 and lo == 0:
                    yield start + b, v
                elif v.dtype.kind == "u":  # unsigned: subtract in their own type (no wrap: values >= lo)
                    yield start + b, (v - v.dtype.type(lo)).astype(np.int64)
                else:  # widen first: a narrow type could overflow
                    yield start + b, v.astype(np.int64) - lo
            start += len(part)

    first = np.full(span, n, dtype=np.int32)  # the first row of each value (n: absent)
    for start, off in blocks():
        np.minimum.at(first, off, np.arange(start, start + len(off), dtype=np.int32))
    present = np.flatnonzero(first < n)
    # the present offsets in order of their first row
    if len(parts) == 1:  # mark the first rows, then read their values: no sort
        is_first = np.zeros(n, dtype=bool)
        is_first[first[present]] = True
        rows = np.flatnonzero(is_first)
        del is_first
        distinct = parts[0][rows]
        ordered = (distinct - dtype.type(lo)).astype(np.int64) if dtype.kind == "u" else distinct.astype(np.int64) - lo
    else:  # rows spread over chunks: one sort of (first row, offset) pairs
        pair = (first[present].astype(np.int64) << 32) | present
        pair.sort()
        ordered = pair & 0xFFFFFFFF
        distinct = ordered.astype(dtype) + dtype.type(lo)  # wraps back into range for narrow types
    del first, present
    table = np.empty(span, dtype=np.int64)
    table[ordered] = np.arange(len(ordered), dtype=np.int64)
    codes = np.empty(n, dtype=np.int64)
    for start, off in blocks():
        # mode="clip": the offsets are in range, and "raise" would buffer every block of the output
        np.take(table, off, out=codes[start : start + len(off)], mode="clip")
    return codes, distinct


#: Rows per block of the block-wise passes (small temporaries, reused by the allocator).
_BLOCK = 1 << 16


def _factorize(values: pd.Series) -> tuple[IntArray, Any]:
    """Codes (int64, shape (n,)) and distinct values in order of first appearance, by hashing."""
    codes, uniques = pd.factorize(values, sort=False)
    return codes.astype(np.int64, copy=False), uniques


def _id_array(uniques: Any) -> np.ndarray[Any, Any]:
    """Distinct ids as stored: int64 when all are integers, else an object array."""
    if isinstance(uniques, np.ndarray) and uniques.dtype.kind == "i":
        return uniques.astype(np.int64, copy=False)
    if isinstance(uniques, np.ndarray) and uniques.dtype.kind == "O":
        ids = uniques
    elif isinstance(uniques, np.ndarray):
        ids = np.empty(len(uniques), dtype=object)
        ids[:] = list(uniques)
    else:  # an extension array (pandas' string dtypes): its Python values
        ids = np.asarray(uniques, dtype=object)
    if _all_int(ids) or (isinstance(uniques, np.ndarray) and uniques.dtype.kind == "u"):
        return np.asarray(ids.tolist(), dtype=np.int64)  # raises rather than wraps beyond int64
    return ids
