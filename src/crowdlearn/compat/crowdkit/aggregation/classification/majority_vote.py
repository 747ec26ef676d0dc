"""crowd-kit's ``MajorityVote`` on :class:`crowdlearn.aggregate.MajorityVote`."""

from __future__ import annotations

import numpy as np
import pandas as pd

from crowdlearn.aggregate import MajorityVote as _MajorityVote
from crowdlearn.annotations import Annotations
from crowdlearn.compat.crowdkit import _frame
from crowdlearn.compat.crowdkit.aggregation.base import BaseClassificationAggregator
from crowdlearn.quality import accuracy_on_aggregates

__all__ = ["MajorityVote"]

ON_MISSING = ("error", "ignore", "value")


def skill_weights(
    ann: Annotations, skills: pd.Series, on_missing_skill: str, default_skill: float | None
) -> tuple[Annotations, np.ndarray]:
    """Per-annotator weights from a Series worker -> skill, with crowd-kit's missing-skill rules.

    Returns the annotations (without the labels of workers lacking a skill when
    ``on_missing_skill="ignore"``) and the weights of shape (n_annotators,).
    """
    if on_missing_skill != "value" and default_skill is not None:
        raise ValueError('default_skill is used but on_missing_skill is not "value"')
    if on_missing_skill not in ON_MISSING:
        raise ValueError(f'Unknown option {on_missing_skill!r} of "on_missing_skill" argument.')
    w = np.array(
        pd.Series(skills, dtype=np.float64).reindex(_frame.id_index(ann.annotator_ids, "worker")), dtype=np.float64
    )
    missing = np.isnan(w)
    if missing.any():
        per_label = missing[ann.annotators]
        if on_missing_skill == "error":
            raise ValueError(
                f"Skill value is missing in {int(per_label.sum())} assignments (workers "
                f"{ann.annotator_ids[np.flatnonzero(missing)[:10]].tolist()}). Specify skills for every used worker "
                "or use a different 'on_missing_skill' value."
            )
        if on_missing_skill == "value":
            if default_skill is None:
                raise ValueError('Default skill value must be specified when using on_missing_skill="value"')
            w[missing] = float(default_skill)
        else:
            kept = ann.subset_labels(~per_label)
            lost = int(
                np.count_nonzero(
                    (np.bincount(ann.items, minlength=ann.n_items) > 0)
                    & (np.bincount(kept.items, minlength=ann.n_items) == 0)
                )
            )
            if lost:
                raise ValueError(
                    f"{lost} tasks have no workers with known skills. Provide at least one worker with a known "
                    "skill for every task or use a different 'on_missing_skill' value."
                )
            ann = kept
            w[missing] = 0.0
    return ann, w


class MajorityVote(BaseClassificationAggregator):
    """Majority vote, optionally weighted by worker skills (crowd-kit API).

    Runs :class:`crowdlearn.aggregate.MajorityVote` with ``tie_break="first"`` (crowd-kit's rule:
    the first label in sorted order wins a tie).

    Parameters
    ----------
    default_skill : float, optional
        Skill of workers missing from ``skills`` when ``on_missing_skill="value"``.
    on_missing_skill : {"error", "ignore", "value"}, default="error"
        Workers without a skill: raise; drop their answers; or use ``default_skill``.

    Attributes
    ----------
    labels_ : Series
        Majority label of each task (index ``task``, name ``agg_label``).
    probas_ : DataFrame
        Normalised (weighted) votes, indexed by task, one column per label.
    skills_ : Series
        Each worker's accuracy on the aggregated labels (index ``worker``, name ``skill``).
    """

    def __init__(self, default_skill: float | None = None, on_missing_skill: str = "error") -> None:
        self.default_skill = default_skill
        self.on_missing_skill = on_missing_skill
        self.skills_: pd.Series | None = None
        self.probas_: pd.DataFrame | None = None
        self.labels_: pd.Series | None = None

    def fit(self, data: pd.DataFrame, skills: pd.Series | None = None) -> MajorityVote:
        """Vote on ``data`` (columns task, worker, label), weighting by ``skills`` (worker -> skill)."""
        data = _frame.columns(data)
        if data.empty:
            self.probas_ = pd.DataFrame()
            self.labels_ = pd.Series([], dtype="O", name="agg_label")
            self.skills_ = pd.Series(dtype=float, name="skill")
            return self
        return self._fit_ann(_frame.to_annotations(data), skills)

    def _fit_ann(self, ann: Annotations, skills: pd.Series | None) -> MajorityVote:
        """``fit`` on answers already encoded."""
        weights = None
        if skills is not None:
            ann, weights = skill_weights(ann, skills, self.on_missing_skill, self.default_skill)
        mv = _MajorityVote(weights=weights, tie_break="first").fit(ann)
        self.probas_ = _frame.probas_frame(ann, mv.probas_)
        self.labels_ = _frame.labels_series(ann, mv.labels_)
        acc = np.asarray(accuracy_on_aggregates(ann, mv.labels_, by="annotator"))
        self.skills_ = _frame.worker_series(ann, acc, "skill", drop_nan=True).sort_index()
        return self

    def fit_predict_proba(self, data: pd.DataFrame, skills: pd.Series | None = None) -> pd.DataFrame:
        """Fit and return ``probas_``."""
        self.fit(data, skills)
        assert self.probas_ is not None
        return self.probas_

    def fit_predict(self, data: pd.DataFrame, skills: pd.Series | None = None) -> pd.Series:
        """Fit and return ``labels_``."""
        self.fit(data, skills)
        assert self.labels_ is not None
        return self.labels_
