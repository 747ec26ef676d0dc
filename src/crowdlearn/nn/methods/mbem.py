"""MBEM, model-bootstrapped EM (Khetan, Lipton & Anandkumar, "Learning from noisy singly-labeled
data", ICLR 2018), as a method trained in rounds.

Round 0 trains the classifier on the (unweighted) majority-vote posteriors ``q_n``; after each
round ``r`` the trained classifier's hard predictions ``t_n = argmax f(x_n)`` give

- the confusions ``A_m[s, k] ∝ 0.01 + #{labels (n, m, s): t_n = k}`` (columns normalised) and the
  class prior ``rho_k ∝ #{n: t_n = k}`` (both over the training items with labels),
- the posteriors ``q_n(k) ∝ rho_k prod_{(n, m, s)} A_m[s, k]`` (observed pairs only),

and the next round trains a fresh classifier (same seed) on ``q``; ``rounds`` trainings in all
(Khetan et al. run two). The loss of a round is the cross-entropy with ``q``
(``-(1/B) sum_n sum_k q_n(k) log f(x_n)_k``, the posterior-weighted loss of the paper); the last
round's confusions are kept, fixed, as the annotator model. Torch-free at import.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from crowdlearn.nn.methods.two_stage import fixed_confusion_head, one_hot, soft_target_criterion
from crowdlearn.nn.registry import MethodParam, MethodSpec, Targets, TargetsContext

__all__ = ["SPECS", "mbem_step"]

ROUNDS = MethodParam("rounds", 2, "trainings in all (the first on the majority vote)", low=1, integer=True)


def mbem_step(proba: np.ndarray[Any, Any], ctx: TargetsContext) -> Targets:
    """Confusions, prior and posteriors from the previous round's classifier probabilities (N, K)."""
    from crowdlearn.aggregate.majority import vote_confusions
    from crowdlearn.estimators import item_posteriors

    ann = ctx.annotations
    k = ann.n_classes
    labelled = ann.item_counts > 0
    predicted = one_hot(np.asarray(proba).argmax(axis=1), k)
    gold = np.flatnonzero(ctx.known_labels >= 0) if ctx.known_labels is not None else np.zeros(0, dtype=np.int64)
    if gold.size:  # gold items: their class, in the M-step and in the targets
        assert ctx.known_labels is not None
        predicted[gold] = one_hot(ctx.known_labels[gold], k)
    confusions = vote_confusions(ann, predicted)  # the M-step from the predictions (+0.01 counts)
    counts = predicted[labelled].sum(axis=0)
    rho = (counts + 1e-2) / (counts + 1e-2).sum()
    q = item_posteriors(np.broadcast_to(rho, (ann.n_items, k)), ann, confusions)
    if gold.size:
        assert ctx.known_labels is not None
        q[gold] = one_hot(ctx.known_labels[gold], k)
    return Targets(q, confusions)


def _targets(ctx: TargetsContext) -> Targets | None:
    if ctx.round >= int(ctx.params["rounds"]):
        return None
    if ctx.round == 0:
        from crowdlearn.aggregate import MajorityVote

        vote = MajorityVote(random_state=ctx.random_state)
        vote.fit(ctx.annotations, known_labels=ctx.known_labels)
        return Targets(np.asarray(vote.probas_, dtype=np.float64), np.asarray(vote.confusions_, dtype=np.float64))
    assert ctx.proba is not None
    return mbem_step(ctx.proba, ctx)


SPECS: tuple[MethodSpec, ...] = (
    MethodSpec(
        "mbem",
        "model-bootstrapped EM: train on the vote's posteriors, re-estimate confusions and "
        "posteriors from the classifier's predictions, retrain (``rounds`` trainings)",
        fixed_confusion_head,
        params=(ROUNDS,),
        inits=("identity",),
        make_criterion=soft_target_criterion,
        targets=_targets,
        known_labels="targets",
        citation="Khetan, Lipton & Anandkumar, ICLR 2018",
    ),
)
