"""KOS: Karger-Oh-Shah iterative message passing for binary labels."""

from __future__ import annotations

import numpy as np

from crowdlearn.aggregate.base import (
    BaseAggregator,
    FloatArray,
    break_ties,
    check_in,
    check_number,
    check_random_state,
)
from crowdlearn.aggregate.majority import TIE_BREAKS
from crowdlearn.annotations import Annotations, AnnotationsError

__all__ = ["KOS"]


class KOS(BaseAggregator):
    r"""Karger-Oh-Shah (KOS) belief-propagation-like inference on the item-annotator graph.

    Binary labels only, coded :math:`A_{nm} = +1` for class 0 and :math:`-1` for class 1. Messages
    live on the observed labels (edges): annotator-to-item :math:`y_{m \to n}`, started i.i.d.
    :math:`N(1, 1)`, and item-to-annotator :math:`x_{n \to m}`. Each iteration

    * :math:`x_{n \to m} = \sum_{m' \ne m} A_{nm'} y_{m' \to n}`,
    * :math:`y_{m \to n} = \sum_{n' \ne n} A_{n'm} x_{n' \to m}`,

    each sum a ``bincount`` over the labels minus the edge's own term, O(n_labels). The messages
    are rescaled to max :math:`|y| = 1` after every iteration (the signs, which are all that the
    result uses, do not change; crowd-kit instead stops when they pass 1e300). The label of item
    ``n`` is the sign of :math:`\sum_m A_{nm} y_{m \to n}`; an exact 0 is a tie, broken by
    ``tie_break`` (crowd-kit raises a ``KeyError`` there).

    Gold labels (``fit(..., known_labels=...)``) fix the result of gold items only (their class
    and a one-hot ``probas_`` row); the messages do not use them. ``partial_fit`` refits on all
    labels seen so far.

    Reference: D. R. Karger, S. Oh, D. Shah, "Iterative learning for reliable crowdsourcing
    systems", NeurIPS 2011.

    Parameters
    ----------
    n_iter : int, default=100
        Message-passing iterations.
    tie_break : {"random", "first"}, default="random"
        Rule for items whose score is exactly 0.
    random_state : int, Generator or None, default=0
        Seed of the initial messages and of the random tie-break.

    Attributes
    ----------
    labels_ : ndarray of shape (n_items,)
        Class index (0 or 1).
    probas_ : ndarray of shape (n_items, 2)
        One-hot ``labels_`` (0.5 / 0.5 on ties): KOS gives no calibrated probabilities.
    scores_ : ndarray of shape (n_items,)
        :math:`\sum_m A_{nm} y_{m \to n}` (> 0 favours class 0), in the rescaled units.
    skills_ : ndarray of shape (n_annotators,)
        Reliability :math:`\sum_n A_{nm} x_{n \to m}` of each annotator, divided by the largest
        absolute value (sign: agreement with the inferred labels).
    priors_ : ndarray of shape (2,)
        Mean of ``probas_`` over labelled items.

    Examples
    --------
    >>> from crowdlearn import Annotations
    >>> ann = Annotations([0, 0, 0, 1, 1, 1], [0, 1, 2, 0, 1, 2], [1, 1, 0, 0, 0, 1])
    >>> KOS().fit_predict(ann).tolist()
    [1, 0]
    """

    scores_: FloatArray
    skills_: FloatArray

    def __init__(
        self, *, n_iter: int = 100, tie_break: str = "random", random_state: int | np.random.Generator | None = 0
    ) -> None:
        self.n_iter = n_iter
        self.tie_break = tie_break
        self.random_state = random_state

    def _validate_params(self, ann: Annotations) -> None:
        owner = type(self).__name__
        check_number(self.n_iter, "n_iter", owner, low=0, integer=True)
        check_in(self.tie_break, TIE_BREAKS, "tie_break", owner)
        check_random_state(self.random_state, "random_state", owner)
        if ann.n_classes != 2:
            raise AnnotationsError(
                f"KOS is for binary labels only; the annotations have {ann.n_classes} classes "
                f"{ann.classes.tolist()[:10]}"
            )

    def _fit(self, ann: Annotations) -> None:
        rng = (
            self.random_state
            if isinstance(self.random_state, np.random.Generator)
            else np.random.default_rng(self.random_state)
        )
        N, M = ann.n_items, ann.n_annotators
        it, an = ann.items, ann.annotators
        A = np.where(ann.labels == 0, 1.0, -1.0)
        y = rng.normal(1.0, 1.0, size=ann.n_labels)
        x = np.zeros(ann.n_labels)
        for _ in range(int(self.n_iter)):
            Ay = A * y
            x = np.bincount(it, weights=Ay, minlength=N)[it] - Ay
            Ax = A * x
            y = np.bincount(an, weights=Ax, minlength=M)[an] - Ax
            scale = float(np.max(np.abs(y))) if y.size else 0.0
            if scale == 0.0:
                break
            y /= scale
        score = np.bincount(it, weights=A * y, minlength=N)
        rel = np.bincount(an, weights=A * x, minlength=M)
        top = float(np.max(np.abs(rel))) if rel.size else 0.0
        self.scores_ = np.asarray(score, dtype=np.float64)
        self.skills_ = np.asarray(rel / top if top > 0 else rel, dtype=np.float64)
        votes = np.stack([(score > 0).astype(np.float64), (score < 0).astype(np.float64)], axis=1)
        tie = score == 0
        votes[tie] = 0.5
        self.labels_ = break_ties(votes, self.tie_break, rng)
        self.probas_ = votes
        labelled = np.bincount(it, minlength=N) > 0
        self.priors_ = votes[labelled].mean(axis=0) if labelled.any() else np.full(2, 0.5)
