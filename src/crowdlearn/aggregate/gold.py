"""Gold majority vote: a majority vote weighted by each annotator's accuracy on gold items."""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import pandas as pd

from crowdlearn.aggregate.base import (
    FloatArray,
    IterationCallback,
    check_in,
    check_random_state,
    known_label_array,
)
from crowdlearn.aggregate.majority import TIE_BREAKS, _vote, _VoteAggregator
from crowdlearn.annotations import Annotations
from crowdlearn.quality import accuracy_on_aggregates

__all__ = ["GoldMajorityVote"]


class GoldMajorityVote(_VoteAggregator):
    r"""Majority vote weighted by accuracy on gold (known-truth) items.

    ``skills_[m]`` is the share of annotator ``m``'s labels on gold items that equal the gold
    class; every item then gets the vote :math:`\arg\max_k \sum_{(n, m, y = k)} s_m`. An annotator
    without any label on a gold item has no skill: :meth:`fit` raises and names them (give more
    gold, or use :class:`~crowdlearn.aggregate.MajorityVote` with your own ``weights``).

    Parameters
    ----------
    tie_break : {"random", "first"}, default="random"
        Tie rule of the vote, see :class:`~crowdlearn.aggregate.MajorityVote`.
    random_state : int, Generator or None, default=0
        Seed of the random tie-break.

    Attributes
    ----------
    skills_ : ndarray of shape (n_annotators,)
        Accuracy of each annotator on the gold items.
    labels_, probas_, priors_, confusions_ : ndarray
        As in :class:`~crowdlearn.aggregate.MajorityVote`, from the skill-weighted vote
        (``confusions_`` computed on first access).

    Examples
    --------
    >>> from crowdlearn import Annotations
    >>> ann = Annotations([0, 0, 0, 1, 1, 1], [0, 1, 2, 0, 1, 2], [1, 0, 1, 0, 1, 0])
    >>> gmv = GoldMajorityVote().fit(ann, known_labels=[1, -1])
    >>> gmv.skills_.tolist(), gmv.labels_.tolist()
    ([1.0, 0.0, 1.0], [1, 0])
    """

    skills_: FloatArray

    def __init__(self, *, tie_break: str = "random", random_state: int | np.random.Generator | None = 0) -> None:
        self.tie_break = tie_break
        self.random_state = random_state

    def _validate_params(self, ann: Annotations) -> None:
        check_in(self.tie_break, TIE_BREAKS, "tie_break", type(self).__name__)
        check_random_state(self.random_state, "random_state", type(self).__name__)

    def fit(
        self,
        annotations: Annotations | pd.DataFrame,
        *,
        known_labels: Any = None,
        true_labels: Any = None,
        callback: IterationCallback | None = None,
    ) -> Self:
        """Estimate the skills on the gold items and vote.

        Parameters
        ----------
        annotations : Annotations or DataFrame
            Crowd labels; a DataFrame needs columns ``task``, ``worker``, ``label``.
        known_labels : array-like of shape (n_items,), Series or dict
            Gold classes: class indices with -1 for unknown, or a mapping item id -> class id
            (the parameter name every aggregator uses). Gold items get their gold class.
        true_labels : array-like, Series or dict
            The same, under crowd-kit's name; give one of the two.
        callback : callable, optional
            Unused (one-pass method).

        Returns
        -------
        self
        """
        if known_labels is not None and true_labels is not None:
            raise ValueError("GoldMajorityVote.fit: give known_labels or true_labels (the same thing), not both")
        gold = known_labels if known_labels is not None else true_labels
        ann = self._start_fit(annotations, callback, gold)
        if known_label_array(gold, ann) is None:
            raise ValueError("GoldMajorityVote.fit needs true_labels or known_labels (the gold classes of some items)")
        self._fit(ann)
        self._finish_fit()
        return self

    def _fit(self, ann: Annotations) -> None:
        self._forget_confusions()
        known = self.known_labels_
        skills = np.asarray(accuracy_on_aggregates(ann, known, by="annotator"), dtype=np.float64)
        missing = np.flatnonzero(np.isnan(skills))
        if missing.size:
            ids = self.annotator_ids_[missing[:10]].tolist()
            raise ValueError(
                f"{missing.size} annotator(s) have no label on a gold item, so no skill: {ids}"
                f"{' ...' if missing.size > 10 else ''}; add gold items they labelled or drop their labels"
            )
        self.skills_ = skills
        self.probas_, self.priors_, self.labels_ = _vote(ann, skills, self.tie_break, self.random_state, self._known)
