"""Multilabel truth inference by binary relevance: one binary aggregator per class."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from crowdlearn.aggregate.base import BaseAggregator, FloatArray
from crowdlearn.aggregate.majority import MajorityVote
from crowdlearn.annotations import Annotations, AnnotationsError

__all__ = ["BinaryRelevance", "binary_problems"]


def binary_problems(
    items: Iterable[Hashable], annotators: Iterable[Hashable], label_sets: Iterable[Iterable[Hashable]]
) -> tuple[np.ndarray[Any, Any], Iterator[Annotations]]:
    """Split multilabel answers into one binary :class:`Annotations` per class.

    Parameters
    ----------
    items, annotators : sequences of ids of length n_answers
    label_sets : sequence of length n_answers
        The set (list, tuple, frozenset...) of classes in each answer; may be empty.

    Returns
    -------
    classes : ndarray of shape (n_classes,)
        Sorted class ids.
    problems : iterator of Annotations
        For class ``c`` (in ``classes`` order), the answers coded ``True`` (c in the set) or
        ``False``, with classes ``[False, True]`` and the same item / annotator indices for every
        class. Built from one pass over the flattened sets; O(n_answers) per class.
    """
    sets = [list(s) if not isinstance(s, str) else [s] for s in label_sets]
    it_codes, it_ids = pd.factorize(pd.Series(list(items), dtype=object))
    an_codes, an_ids = pd.factorize(pd.Series(list(annotators), dtype=object))
    n = len(sets)
    if not (len(it_codes) == len(an_codes) == n):
        raise AnnotationsError(
            f"items, annotators and label sets must have the same length, got {len(it_codes)}, {len(an_codes)}, {n}"
        )
    lens = np.fromiter((len(s) for s in sets), dtype=np.int64, count=n)
    flat = [c for s in sets for c in s]
    try:
        classes = np.asarray(sorted(set(flat)), dtype=object)  # type: ignore[type-var]
    except TypeError as exc:
        raise AnnotationsError("multilabel classes mix types; they must all be integers or all be strings") from exc
    row = np.repeat(np.arange(n), lens)
    code = pd.Index(classes).get_indexer(pd.Index(flat, dtype=object)) if flat else np.zeros(0, dtype=np.int64)
    order = np.argsort(code, kind="stable")
    starts = np.searchsorted(code[order], np.arange(len(classes) + 1))
    item_ids, annotator_ids = np.asarray(it_ids, dtype=object), np.asarray(an_ids, dtype=object)

    def gen() -> Iterator[Annotations]:
        for c in range(len(classes)):
            has = np.zeros(n, dtype=np.int64)
            has[row[order[starts[c] : starts[c + 1]]]] = 1
            yield Annotations(
                it_codes,
                an_codes,
                has,
                item_ids=item_ids,
                annotator_ids=annotator_ids,
                classes=np.asarray([False, True], dtype=object),
            )

    return classes, gen()


class BinaryRelevance:
    """Multilabel aggregation: the ``base_aggregator`` run on each class's present / absent answers.

    Each answer is a set of classes. For every class ``c`` the answers become binary labels
    ("c is in the set"), a fresh copy of ``base_aggregator`` (same parameters) aggregates them,
    and ``c`` is in an item's result when that aggregate is ``True``. Classes are independent:
    the cost is that of ``n_classes`` binary aggregations.

    Reference: G. Tsoumakas, I. Katakis, "Multi-label classification: an overview", IJDWM 2007
    (binary relevance); crowd-kit's ``BinaryRelevance`` for crowd labels.

    Parameters
    ----------
    base_aggregator : BaseAggregator, optional
        Any aggregator of :mod:`crowdlearn.aggregate` (default: ``MajorityVote()``); cloned per class.

    Attributes
    ----------
    labels_ : ndarray of bool of shape (n_items, n_classes)
        ``labels_[n, c]``: class ``c`` is in item ``n``'s aggregated set.
    probas_ : ndarray of shape (n_items, n_classes)
        Probability that class ``c`` is present (the base aggregator's ``probas_[:, True]``).
    aggregators_ : dict
        Class id -> the fitted binary aggregator.
    classes_, item_ids_, annotator_ids_ : ndarray
        Sorted class ids, item ids (first appearance), annotator ids.

    Examples
    --------
    >>> br = BinaryRelevance().fit(["t1", "t1", "t1"], ["a", "b", "c"], [["x", "y"], ["x"], ["x", "y"]])
    >>> br.label_sets()
    [['x', 'y']]
    """

    labels_: npt.NDArray[np.bool_]
    probas_: FloatArray
    aggregators_: dict[Hashable, BaseAggregator]
    classes_: np.ndarray[Any, Any]
    item_ids_: np.ndarray[Any, Any]
    annotator_ids_: np.ndarray[Any, Any]

    def __init__(self, base_aggregator: BaseAggregator | None = None) -> None:
        self.base_aggregator = base_aggregator

    def fit(
        self,
        items: Iterable[Hashable],
        annotators: Iterable[Hashable],
        label_sets: Iterable[Iterable[Hashable]],
        *,
        known_labels: Mapping[Hashable, Iterable[Hashable]] | None = None,
    ) -> BinaryRelevance:
        """Aggregate each class separately.

        Parameters
        ----------
        items, annotators : sequences of ids of length n_answers
        label_sets : sequence of length n_answers of sets of class ids
        known_labels : mapping item id -> set of class ids, optional
            Gold label sets of some items: for each class ``c`` the binary aggregator gets
            ``known_labels`` "``c`` in the set" for those items (see
            :meth:`BaseAggregator.fit`), so they get exactly their gold set.

        Returns
        -------
        self
        """
        items, annotators, label_sets = list(items), list(annotators), list(label_sets)
        base = self.base_aggregator if self.base_aggregator is not None else MajorityVote()
        if not isinstance(base, BaseAggregator):
            raise TypeError(f"base_aggregator must be an aggregator of crowdlearn.aggregate, got {type(base).__name__}")
        classes, problems = binary_problems(items, annotators, label_sets)
        self.classes_ = classes
        self.aggregators_ = {}
        cols_l: list[npt.NDArray[np.bool_]] = []
        cols_p: list[FloatArray] = []
        ann: Annotations | None = None
        gold = self._gold(known_labels, classes)
        for c, ann in zip(classes.tolist(), problems):
            agg = type(base)(**base.get_params())
            if gold is None:
                agg.fit(ann)
            else:
                known = np.full(ann.n_items, -1, dtype=np.int64)
                idx = ann.item_index(list(gold))
                known[idx] = [int(c in labels) for labels in gold.values()]
                agg.fit(ann, known_labels=known)
            self.aggregators_[c] = agg
            cols_l.append(agg.labels_ == 1)
            cols_p.append(agg.probas_[:, 1])
        if ann is None:
            self.item_ids_ = np.asarray(pd.unique(pd.Series(items, dtype=object)), dtype=object)
            self.annotator_ids_ = np.asarray(pd.unique(pd.Series(annotators, dtype=object)), dtype=object)
        else:
            self.item_ids_, self.annotator_ids_ = ann.item_ids, ann.annotator_ids
        N = len(self.item_ids_)
        self.labels_ = np.stack(cols_l, axis=1) if cols_l else np.zeros((N, 0), dtype=bool)
        self.probas_ = np.stack(cols_p, axis=1) if cols_p else np.zeros((N, 0))
        return self

    @staticmethod
    def _gold(
        known_labels: Mapping[Hashable, Iterable[Hashable]] | None, classes: np.ndarray[Any, Any]
    ) -> dict[Hashable, set[Hashable]] | None:
        if known_labels is None:
            return None
        if not isinstance(known_labels, Mapping):
            raise TypeError(
                f"known_labels must be a mapping item id -> set of class ids, got {type(known_labels).__name__}"
            )
        gold: dict[Hashable, set[Hashable]] = {
            k: {v} if isinstance(v, str) else set(v) for k, v in known_labels.items()
        }
        known = set(classes.tolist())
        for item, labels in gold.items():
            extra = sorted(labels - known, key=str)
            if extra:
                raise AnnotationsError(
                    f"known_labels[{item!r}] holds class {extra[0]!r}, which no answer uses (classes: "
                    f"{sorted(known, key=str)[:10]})"
                )
        return gold

    def label_sets(self) -> list[list[Hashable]]:
        """The aggregated set of each item (classes in ``classes_`` order), after :meth:`fit`."""
        cl = self.classes_.tolist()
        return [[cl[c] for c in np.flatnonzero(row)] for row in self.labels_]
