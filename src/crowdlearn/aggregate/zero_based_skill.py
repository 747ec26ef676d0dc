"""Zero-Based Skill: a majority vote whose annotator weights follow their agreement with it."""

from __future__ import annotations

import numpy as np

from crowdlearn.aggregate.base import FloatArray, check_in, check_number, check_random_state
from crowdlearn.aggregate.majority import TIE_BREAKS, _vote, _VoteAggregator
from crowdlearn.annotations import Annotations

__all__ = ["ZeroBasedSkill"]


class ZeroBasedSkill(_VoteAggregator):
    r"""Zero-Based Skill (ZBS): skill-weighted majority vote with skills learned by a decaying step.

    Skills start at :math:`s_m = 1/K + \varepsilon`. Iteration :math:`t = 1, \dots, T`: the
    learning rate :math:`\eta` is multiplied by ``lr_reduce_factor`` when ``t`` is a multiple of
    ``lr_steps_to_reduce``; the vote weighted by :math:`s` gives labels :math:`\hat y`; then
    :math:`s_m \leftarrow s_m + \eta\,(\mathrm{acc}_m(\hat y) - s_m)`, with
    :math:`\mathrm{acc}_m` the share of annotator ``m``'s labels equal to :math:`\hat y`. The
    result is the vote weighted by the final skills. Each iteration is two ``bincount`` passes
    over the labels, O(n_labels + n_items * K). As in crowd-kit, all ``n_iter`` iterations run
    (``eps`` only offsets the start). Gold labels (``fit(..., known_labels=...)``) replace the
    vote of gold items, so the skills are learned against the truth there.

    Reference: crowd-kit's ``ZeroBasedSkill`` (Toloka, 2020-2024), an exponential moving average
    of accuracy on aggregates.

    Parameters
    ----------
    n_iter : int, default=100
        Iterations (``0``: the vote with the initial, equal skills).
    lr_init : float, default=1.0
        Initial learning rate.
    lr_steps_to_reduce : int, default=20
        The rate is reduced every this many iterations.
    lr_reduce_factor : float, default=0.5
        Factor of each reduction.
    eps : float, default=1e-5
        Offset of the initial skill ``1/K + eps``.
    tie_break : {"random", "first"}, default="random"
        Tie rule of every vote, see :class:`~crowdlearn.aggregate.MajorityVote`.
    random_state : int, Generator or None, default=0
        Seed of the random tie-break.

    Attributes
    ----------
    skills_ : ndarray of shape (n_annotators,)
        Learned skill of each annotator (annotators without labels keep the initial value).
    labels_, probas_, priors_, confusions_ : ndarray
        As in :class:`~crowdlearn.aggregate.MajorityVote`, from the skill-weighted vote
        (``confusions_`` computed on first access).

    Examples
    --------
    >>> from crowdlearn import Annotations
    >>> ann = Annotations([0, 0, 0, 1, 1, 1], [0, 1, 2, 0, 1, 2], [1, 1, 0, 0, 0, 1])
    >>> ZeroBasedSkill(tie_break="first").fit_predict(ann).tolist()
    [1, 0]
    """

    skills_: FloatArray

    def __init__(
        self,
        *,
        n_iter: int = 100,
        lr_init: float = 1.0,
        lr_steps_to_reduce: int = 20,
        lr_reduce_factor: float = 0.5,
        eps: float = 1e-5,
        tie_break: str = "random",
        random_state: int | np.random.Generator | None = 0,
    ) -> None:
        self.n_iter = n_iter
        self.lr_init = lr_init
        self.lr_steps_to_reduce = lr_steps_to_reduce
        self.lr_reduce_factor = lr_reduce_factor
        self.eps = eps
        self.tie_break = tie_break
        self.random_state = random_state

    def _validate_params(self, ann: Annotations) -> None:
        owner = type(self).__name__
        check_number(self.n_iter, "n_iter", owner, low=0, integer=True)
        check_number(self.lr_init, "lr_init", owner)
        check_number(self.lr_steps_to_reduce, "lr_steps_to_reduce", owner, low=1, integer=True)
        check_number(self.lr_reduce_factor, "lr_reduce_factor", owner)
        check_number(self.eps, "eps", owner)
        check_in(self.tie_break, TIE_BREAKS, "tie_break", owner)
        check_random_state(self.random_state, "random_state", owner)

    def _fit(self, ann: Annotations) -> None:
        self._forget_confusions()
        rng = (
            self.random_state
            if isinstance(self.random_state, np.random.Generator)
            else np.random.default_rng(self.random_state)
        )
        M = ann.n_annotators
        n = np.bincount(ann.annotators, minlength=M).astype(np.float64)
        skills = np.full(M, 1.0 / ann.n_classes + float(self.eps))
        lr = float(self.lr_init)
        for t in range(1, int(self.n_iter) + 1):
            if t % int(self.lr_steps_to_reduce) == 0:
                lr *= float(self.lr_reduce_factor)
            labels = _vote(ann, skills, self.tie_break, rng, self._known)[2]
            hits = np.bincount(
                ann.annotators, weights=(ann.labels == labels[ann.items]).astype(np.float64), minlength=M
            )
            acc = np.divide(hits, n, out=skills.copy(), where=n > 0)  # no labels: no update
            skills = skills + lr * (acc - skills)
        self.skills_ = skills
        self.probas_, self.priors_, self.labels_ = _vote(ann, skills, self.tie_break, rng, self._known)
