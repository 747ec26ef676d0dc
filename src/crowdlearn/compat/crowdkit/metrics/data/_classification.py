"""crowd-kit's data metrics on :mod:`crowdlearn.quality` (frames in, floats or Series out)."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import numpy as np
import pandas as pd

from crowdlearn import quality
from crowdlearn.annotations import Annotations
from crowdlearn.compat.crowdkit import _frame
from crowdlearn.compat.crowdkit.aggregation.base import BaseClassificationAggregator
from crowdlearn.compat.crowdkit.aggregation.classification.majority_vote import MajorityVote

__all__ = ["alpha_krippendorff", "consistency", "uncertainty"]


def _check_answers(answers: pd.DataFrame) -> None:
    if not isinstance(answers, pd.DataFrame):
        raise TypeError("Working only with pandas DataFrame")
    for c in ("task", "worker", "label"):
        assert c in answers, f'There is no "{c}" column in answers'


def _annotations(answers: pd.DataFrame) -> tuple[Annotations, np.ndarray]:
    """Answers as Annotations and the worker id of each annotator index.

    A repeated (task, worker) answer is kept as a label of its own (crowd-kit counts every
    answer): each repeat gets a pseudo-annotator ``(worker, k)`` with the worker's skill.
    """
    it, it_ids = pd.factorize(answers["task"])
    an, an_ids = pd.factorize(answers["worker"])
    workers = np.asarray(an_ids, dtype=object)
    ids = list(workers)
    dup = pd.Series(list(zip(it.tolist(), an.tolist()))).duplicated().to_numpy()
    if dup.any():
        an = an.copy()
        extra = np.flatnonzero(dup)
        an[extra] = len(ids) + np.arange(extra.size)
        repeated = answers["worker"].to_numpy()[extra].tolist()
        ids += [(w, k + 1) for k, w in enumerate(repeated)]
        workers = np.concatenate([workers, np.asarray(repeated, dtype=object)])
    lab = answers["label"].tolist()
    uniq = pd.unique(pd.Series(lab, dtype=object)).tolist()
    try:
        classes = sorted(uniq)
    except TypeError:
        classes = uniq
    codes = pd.Index(classes, dtype=object).get_indexer(pd.Index(lab, dtype=object))
    ann = Annotations(
        it,
        an,
        codes,
        item_ids=np.asarray(it_ids, dtype=object),
        annotator_ids=_object_array(ids),
        classes=np.asarray(classes, dtype=object),
    )
    return ann, workers


def _object_array(values: list[Any]) -> np.ndarray:
    """A 1-d object array (tuples stay elements)."""
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _skills_array(workers: np.ndarray, skills: pd.Series) -> np.ndarray:
    s = np.array(pd.Series(skills, dtype=np.float64).reindex(pd.Index(workers.tolist())), dtype=np.float64)
    if np.isnan(s).any():
        missing = sorted(set(workers[np.isnan(s)].tolist()), key=str)
        raise AssertionError(f"Did not provide skills for workers: {missing}. Please provide workers skills.")
    return s


def consistency(
    answers: pd.DataFrame,
    workers_skills: pd.Series | None = None,
    aggregator: BaseClassificationAggregator | None = None,
    by_task: bool = False,
) -> float | pd.Series:
    """Consistency of the answers with the aggregate (:func:`crowdlearn.quality.consistency`).

    ``aggregator`` (default ``MajorityVote()``) gives the labels and, without ``workers_skills``,
    the skills.
    """
    _check_answers(answers)
    aggregator = MajorityVote() if aggregator is None else aggregator
    aggregated = aggregator.fit_predict(answers)
    if workers_skills is None:
        workers_skills = getattr(aggregator, "skills_", None)
        if workers_skills is None:
            raise AssertionError("This aggregator is not supported. Please, provide workers skills.")
    ann, workers = _annotations(answers)
    agg = _frame.class_codes(ann, aggregated, "aggregated labels")
    values = quality.consistency(ann, _skills_array(workers, workers_skills), agg, by_item=by_task)
    if by_task:
        return pd.Series(values, index=_frame.id_index(ann.item_ids, "task")).sort_index()
    return float(values)  # type: ignore[arg-type]


def uncertainty(
    answers: pd.DataFrame,
    workers_skills: pd.Series | None = None,
    aggregator: BaseClassificationAggregator | None = None,
    compute_by: str = "task",
    aggregate: bool = True,
) -> float | pd.Series:
    """Entropy of the (skill-weighted) answers per task or worker (:func:`crowdlearn.quality.uncertainty`)."""
    _check_answers(answers)
    if workers_skills is None and aggregator is not None:
        aggregator.fit(answers)
        workers_skills = getattr(aggregator, "skills_", None)
        if workers_skills is None:
            raise AssertionError("This aggregator is not supported. Please, provide workers skills.")
    if compute_by not in ("task", "worker"):
        raise KeyError(f"compute_by must be 'task' or 'worker', got {compute_by!r}")
    ann, workers = _annotations(answers)
    skills = None if workers_skills is None else _skills_array(workers, workers_skills)
    if compute_by == "worker" and ann.n_annotators > len(pd.unique(answers["worker"])):
        raise ValueError(
            "the answers repeat a (task, worker) pair; per-task uncertainty counts each answer, but per-worker "
            "uncertainty needs one answer per (task, worker): drop the repeats first"
        )
    values = quality.uncertainty(ann, skills, by="item" if compute_by == "task" else "annotator", aggregate=aggregate)
    if aggregate:
        return float(values)  # type: ignore[arg-type]
    ids = ann.item_ids if compute_by == "task" else ann.annotator_ids
    return pd.Series(values, index=pd.Index(ids.tolist()), name=compute_by).sort_index()


def alpha_krippendorff(answers: pd.DataFrame, distance: Callable[[Hashable, Hashable], float] | None = None) -> float:
    """Krippendorff's alpha (:func:`crowdlearn.quality.alpha_krippendorff`); default: nominal distance."""
    _check_answers(answers)
    ann, _ = _annotations(answers)
    return quality.alpha_krippendorff(ann, distance)
