"""Majority vote (optionally weighted) and Wawa (worker agreement with aggregate)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from crowdlearn.aggregate.base import (
    BaseAggregator,
    FloatArray,
    break_ties,
    check_in,
    check_random_state,
    clamp_rows,
    label_matrix,
    labels_per_annotator,
    normalise_columns,
    spmm,
)
from crowdlearn.annotations import Annotations

__all__ = ["MajorityVote", "Wawa"]

TIE_BREAKS = ("random", "first")


#: Pseudo-count of the confusions estimated against the vote: the 0.01 of the smoothed Dawid-Skene
#: behind CrowdClassifier(init="ds"), not DawidSkene's own default (smoothing=1e-6, near maximum
#: likelihood), so an annotator who never gave a class gets no hard zero.
VOTE_CONFUSION_SMOOTHING = 0.01


def vote_confusions(ann: Annotations, probas: FloatArray) -> FloatArray:
    """Confusions (n_annotators, K, K) of each annotator against the soft vote ``probas``.

    Expected counts ``sum over labels (n, m, y = i) of probas[n, j]`` plus 0.01, columns
    normalised (exactly one Dawid-Skene M-step from the vote).
    """
    M, K = ann.n_annotators, ann.n_classes
    counts = spmm(label_matrix(ann).T, probas).reshape(M, K, K)
    return normalise_columns(counts, VOTE_CONFUSION_SMOOTHING)


def _vote(
    ann: Annotations,
    weights: FloatArray | None,
    tie_break: str,
    random_state: int | np.random.Generator | None,
    known: npt.NDArray[np.int64] | None = None,
) -> tuple[FloatArray, FloatArray, npt.NDArray[np.int64]]:
    """(probas, priors, labels) of a (weighted) vote; unlabeled items get the prior.

    Gold items (``known >= 0``) get their gold class, one-hot, and count in the prior.
    """
    votes = ann.vote_counts(weights)
    total = votes.sum(axis=1)
    labelled = total > 0
    K = ann.n_classes
    probas = np.empty_like(votes)
    probas[labelled] = votes[labelled] / total[labelled, None]
    clamp_rows(probas, known)
    if known is not None:
        labelled = labelled | (known >= 0)
    priors = probas[labelled].mean(axis=0) if labelled.any() else np.full(K, 1.0 / K)
    probas[~labelled] = priors
    rng = random_state if isinstance(random_state, np.random.Generator) else np.random.default_rng(random_state)
    labels = break_ties(probas, tie_break, rng)
    return probas, priors, labels


class MajorityVote(BaseAggregator):
    """Majority vote, optionally weighted by annotator.

    Parameters
    ----------
    weights : array-like of shape (n_annotators,), Series or mapping, optional
        Non-negative weight of each annotator's vote (by annotator index, or keyed by annotator
        id). Default: every vote counts 1.
    tie_break : {"random", "first"}, default="random"
        How to choose among classes with the same (maximal) vote. ``"random"``: uniformly at
        random among the tied classes, seeded by ``random_state`` (fair: no class is favoured,
        and the expected accuracy equals that of a fresh coin flip). ``"first"``: the smallest
        class index (crowd-kit's rule; deterministic but biased toward low class indices).
    random_state : int, Generator or None, default=0
        Seed of the random tie-break.

    Attributes
    ----------
    labels_ : ndarray of shape (n_items,)
        Majority class index; items without labels get the most probable class under ``priors_``.
    probas_ : ndarray of shape (n_items, n_classes)
        Normalised (weighted) vote counts; items without labels get ``priors_``.
    confusions_ : ndarray of shape (n_annotators, n_classes, n_classes)
        Each annotator's confusions against the soft vote ``probas_`` (one Dawid-Skene M-step,
        pseudo-count 0.01; column = true class, columns sum to 1).
    priors_ : ndarray of shape (n_classes,)
        Mean of ``probas_`` over labelled items (uniform if there are none).
    classes_, item_ids_, annotator_ids_ : ndarray
        Original ids (see :class:`~crowdlearn.aggregate.base.BaseAggregator`).

    Gold labels (``fit(..., known_labels=...)``): gold items get their gold class (one-hot
    ``probas_``), count in ``priors_`` and are the reference of ``confusions_``. ``partial_fit``
    recounts the votes of all labels seen so far (one pass, the same result as ``fit``).

    Examples
    --------
    >>> from crowdlearn import Annotations
    >>> ann = Annotations([0, 0, 0, 1], [0, 1, 2, 0], [1, 1, 0, 0])
    >>> MajorityVote().fit_predict(ann).tolist()
    [1, 0]
    """

    confusions_: FloatArray

    def __init__(
        self,
        *,
        weights: Any = None,
        tie_break: str = "random",
        random_state: int | np.random.Generator | None = 0,
    ) -> None:
        self.weights = weights
        self.tie_break = tie_break
        self.random_state = random_state

    def _validate_params(self, ann: Annotations) -> None:
        check_in(self.tie_break, TIE_BREAKS, "tie_break", type(self).__name__)
        check_random_state(self.random_state, "random_state", type(self).__name__)

    def _fit(self, ann: Annotations) -> None:
        w = None
        if self.weights is not None:
            w = self._per_annotator(self.weights, "weights", ann.n_annotators)
            if not np.all(np.isfinite(w)) or (w < 0).any():
                pos = int(np.flatnonzero(~(np.isfinite(w) & (w >= 0)))[0])
                raise ValueError(
                    f"The 'weights' parameter must be finite and >= 0; annotator "
                    f"{self.annotator_ids_.tolist()[pos]!r} has weight {float(w[pos])!r}"
                )
        self.probas_, self.priors_, self.labels_ = _vote(ann, w, self.tie_break, self.random_state, self._known)
        self.confusions_ = vote_confusions(ann, self.probas_)


class Wawa(BaseAggregator):
    """Worker Agreement With Aggregate: a majority vote weighted by agreement with the majority.

    1. Majority vote (tie rule as :class:`MajorityVote`).
    2. ``skills_[m]`` = share of annotator ``m``'s labels equal to the majority label.
    3. Majority vote weighted by ``skills_``.

    Gold labels (``fit(..., known_labels=...)``): the majority label of a gold item is its gold
    class, so on gold items ``skills_`` is the accuracy against the truth; gold items get their
    gold class in the result.

    Parameters
    ----------
    tie_break : {"random", "first"}, default="random"
        Tie rule of both votes, see :class:`MajorityVote`.
    random_state : int, Generator or None, default=0
        Seed of the random tie-break.

    Attributes
    ----------
    skills_ : ndarray of shape (n_annotators,)
        Agreement of each annotator with the majority vote (0 for annotators without labels).
    labels_, probas_, priors_, confusions_ : ndarray
        As in :class:`MajorityVote`, from the skill-weighted vote.
    """

    skills_: FloatArray
    confusions_: FloatArray

    def __init__(self, *, tie_break: str = "random", random_state: int | np.random.Generator | None = 0) -> None:
        self.tie_break = tie_break
        self.random_state = random_state

    def _validate_params(self, ann: Annotations) -> None:
        check_in(self.tie_break, TIE_BREAKS, "tie_break", type(self).__name__)
        check_random_state(self.random_state, "random_state", type(self).__name__)

    def _fit(self, ann: Annotations) -> None:
        rng = (
            self.random_state
            if isinstance(self.random_state, np.random.Generator)
            else np.random.default_rng(self.random_state)
        )
        _, _, mv = _vote(ann, None, self.tie_break, rng, self._known)
        agree = (ann.labels == mv[ann.items]).astype(np.float64)
        n = labels_per_annotator(ann)
        hits = np.bincount(ann.annotators, weights=agree, minlength=ann.n_annotators)
        self.skills_ = np.divide(hits, n, out=np.zeros(ann.n_annotators), where=n > 0)
        self.probas_, self.priors_, self.labels_ = _vote(ann, self.skills_, self.tie_break, rng, self._known)
        self.confusions_ = vote_confusions(ann, self.probas_)
