"""crowd-kit's ``ZeroBasedSkill`` on :class:`crowdlearn.aggregate.ZeroBasedSkill`."""

from __future__ import annotations

import pandas as pd

from crowdlearn.aggregate import ZeroBasedSkill as _ZeroBasedSkill
from crowdlearn.annotations import Annotations
from crowdlearn.compat.crowdkit import _frame
from crowdlearn.compat.crowdkit.aggregation.classification._skill_vote import SkillWeightedVote

__all__ = ["ZeroBasedSkill"]


class ZeroBasedSkill(SkillWeightedVote):
    """Zero-Based Skill (crowd-kit API): skills by a decaying moving average of accuracy on the vote.

    Parameters are those of :class:`crowdlearn.aggregate.ZeroBasedSkill` (which does the work,
    with ``tie_break="first"``), positional in crowd-kit's order.

    Attributes
    ----------
    skills_ : Series
        Learned skill of each worker (index ``worker``, name ``skill``).
    labels_, probas_ : Series, DataFrame
        After predict / predict_proba.
    """

    def __init__(
        self,
        n_iter: int = 100,
        lr_init: float = 1.0,
        lr_steps_to_reduce: int = 20,
        lr_reduce_factor: float = 0.5,
        eps: float = 1e-5,
    ) -> None:
        self.n_iter = n_iter
        self.lr_init = lr_init
        self.lr_steps_to_reduce = lr_steps_to_reduce
        self.lr_reduce_factor = lr_reduce_factor
        self.eps = eps
        self.skills_: pd.Series | None = None
        self.probas_: pd.DataFrame | None = None
        self.labels_: pd.Series | None = None

    def _fit_frame(self, data: pd.DataFrame) -> Annotations | None:
        """Learn the skills."""
        data = _frame.columns(data)
        if data.empty:
            self.skills_ = pd.Series(dtype=float, name="skill")
            return None
        ann = _frame.to_annotations(data)
        z = _ZeroBasedSkill(
            n_iter=self.n_iter,
            lr_init=self.lr_init,
            lr_steps_to_reduce=self.lr_steps_to_reduce,
            lr_reduce_factor=self.lr_reduce_factor,
            eps=self.eps,
            tie_break="first",
        )
        z.fit(ann)
        self._native_vote = (ann, z.labels_, z.probas_)
        self.skills_ = _frame.worker_series(ann, z.skills_, "skill").sort_index()
        return ann
