"""Majority vote (optionally weighted) and Wawa (worker agreement with aggregate)."""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

from crowdlearn.aggregate.base import (
    BaseAggregator,
    FloatArray,
    IntArray,
    check_in,
    check_random_state,
    clamp_rows,
    label_matrix,
    labels_per_annotator,
    normalise_columns,
    row_max,
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

    Gold items (``known >= 0``) get their gold class, one-hot, and count in the prior. One
    ``bincount`` over the labels (the counts of :meth:`Annotations.vote_counts`), then
    O(n_items * K) column passes: no per-label sort, no (n_items, K) random draw (only the tied
    items draw, see :func:`vote_labels`), no confusions (:class:`_VoteAggregator`).
    """
    N, K = ann.n_items, ann.n_classes
    cell = np.multiply(ann.items, K)
    cell += ann.labels
    w = None if weights is None else weights[ann.annotators]
    # int64 counts unweighted (no float copy: the division below writes the floats), float64 weighted
    counts = np.bincount(cell, weights=w, minlength=N * K).reshape(N, K)
    del cell, w
    few = 0 < K <= 8  # K column passes are much faster than numpy's row-wise broadcasting for few columns
    if weights is None and few:
        # exact integers (below 2**53) in float64: any order of the additions gives the same sums
        total = counts[:, 0].astype(np.float64)
        for k in range(1, K):
            total += counts[:, k]
    else:
        total = counts.sum(axis=1)  # weighted: numpy's own row sum (its rounding, as before)
    labelled = total > 0
    all_labelled = bool(labelled.all())
    denom = np.asarray(total if all_labelled else np.where(labelled, total, 1), dtype=np.float64)
    del total
    # the probabilities overwrite the counts (same shape, 8-byte items, read and written element
    # by element in place): no second (N, K) array, whose fresh memory costs page faults
    probas: FloatArray = counts.view(np.float64)  # a view of itself when weighted (float64 counts)
    if few:
        for k in range(K):
            np.divide(counts[:, k], denom, out=probas[:, k])
    else:
        np.divide(counts, denom[:, None], out=probas)
    del counts
    clamp_rows(probas, known)
    if known is not None:
        labelled = labelled | (known >= 0)
        all_labelled = bool(labelled.all())
    if all_labelled and N:
        priors = probas.mean(axis=0)
    elif labelled.any():
        # the rows of unlabelled items are still 0 here: the sum over all rows is that over the labelled ones
        priors = probas.sum(axis=0) / int(labelled.sum())
    else:
        priors = np.full(K, 1.0 / K)
    if not all_labelled:
        probas[~labelled] = priors
    rng = random_state if isinstance(random_state, np.random.Generator) else np.random.default_rng(random_state)
    labels = vote_labels(probas, tie_break, rng)
    return probas, priors, labels


def vote_labels(scores: FloatArray, tie_break: str, rng: np.random.Generator, rtol: float = 1e-12) -> IntArray:
    """Row-wise argmax of ``scores`` (n_items, K) with ties broken by ``tie_break``.

    Values within ``rtol * max(1, |max|)`` of the row maximum count as tied (weighted votes
    accumulate rounding error). ``"first"``: the smallest tied class index. ``"random"``:
    uniformly among the tied classes, one draw of ``rng.random((n_tied_items, K))`` for the
    items with a tie only (items without a tie draw nothing).
    """
    N, K = scores.shape
    if K == 0:
        return np.zeros(N, dtype=np.int64)
    mx = row_max(scores)
    tied = scores >= (mx - rtol * np.maximum(1.0, np.abs(mx)))[:, None]
    labels: IntArray = np.argmax(tied, axis=1).astype(np.int64, copy=False)
    if tie_break == "first" or K == 1:
        return labels
    if K <= 8:  # column passes (a count of at most 8 fits int8)
        n_tied = tied[:, 0].astype(np.int8)
        for k in range(1, K):
            n_tied += tied[:, k]
    else:
        n_tied = tied.sum(axis=1, dtype=np.int64)
    rows = np.flatnonzero(n_tied > 1)
    if rows.size:
        keys = rng.random((rows.size, K))
        keys[~tied[rows]] = -1.0
        labels[rows] = np.argmax(keys, axis=1)
    return labels


class _VoteAggregator(BaseAggregator):
    """An aggregator whose ``confusions_`` are one M-step from its vote, computed on first access.

    ``labels_`` and ``probas_`` need one ``bincount``; the confusions need a label matrix and a
    sparse product (more than the vote itself), so they wait until asked for and are then kept
    (:func:`functools.cached_property`). A new ``fit`` / ``partial_fit`` forgets them.
    """

    @cached_property
    def confusions_(self) -> FloatArray:
        """Confusions (n_annotators, K, K) against the fitted ``probas_`` (:func:`vote_confusions`)."""
        try:
            ann, probas = self.annotations_, self.probas_
        except AttributeError:
            raise AttributeError(f"{type(self).__name__} has no confusions_ before fit") from None
        return vote_confusions(ann, probas)

    def _forget_confusions(self) -> None:
        self.__dict__.pop("confusions_", None)


class MajorityVote(_VoteAggregator):
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
        pseudo-count 0.01; column = true class, columns sum to 1). Computed on first access
        (it costs more than the vote) and then kept until the next fit.
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
        self._forget_confusions()
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


class Wawa(_VoteAggregator):
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
        As in :class:`MajorityVote`, from the skill-weighted vote (``confusions_`` on first access).
    """

    skills_: FloatArray

    def __init__(self, *, tie_break: str = "random", random_state: int | np.random.Generator | None = 0) -> None:
        self.tie_break = tie_break
        self.random_state = random_state

    def _validate_params(self, ann: Annotations) -> None:
        check_in(self.tie_break, TIE_BREAKS, "tie_break", type(self).__name__)
        check_random_state(self.random_state, "random_state", type(self).__name__)

    def _fit(self, ann: Annotations) -> None:
        self._forget_confusions()
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
