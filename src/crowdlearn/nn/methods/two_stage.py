"""The two-stage baselines as methods: aggregate the crowd labels, then train the classifier.

``mv-train``: majority vote; ``ds-train``: Dawid-Skene (Dawid & Skene, 1979; the smoothed EM of
:class:`crowdlearn.aggregate.DawidSkene`, ``SMOOTHED_DS_PARAMS``). The classifier is trained by the cross-entropy with
each item's aggregate: its one-hot label (``soft=0``, the default: the field's "MV -> MLP"
baseline) or the aggregator's posterior distribution (``soft=1``). The aggregator's confusions
are kept, fixed, as the annotator model (``confusions_``, held-out-label validation).
Torch-free at import.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from crowdlearn.nn.methods._recipes import COSINE_RECIPE
from crowdlearn.nn.registry import HeadContext, MethodParam, MethodSpec, Targets, TargetsContext

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from crowdlearn.nn.losses import Regularizer

__all__ = ["SPECS", "fixed_confusion_head", "soft_target_criterion"]

SOFT = MethodParam(
    "soft", 0, "1: train on the aggregate's posterior distribution; 0: on its hard label", low=0, high=1, integer=True
)


def fixed_confusion_head(ctx: HeadContext) -> nn.Module:
    """The targets' confusions (``ctx.init``), not trained."""
    from crowdlearn.nn.heads.two_stage import FixedConfusions

    return FixedConfusions(ctx.n_annotators, ctx.n_classes, ctx.init)


def soft_target_criterion(params: Mapping[str, Any], regularizers: list[Regularizer]) -> nn.Module:
    """Cross-entropy with the batch's per-item targets (the spec declares no regularizers)."""
    from crowdlearn.nn.heads.two_stage import SoftTargetCrossEntropy

    return SoftTargetCrossEntropy()


def one_hot(labels: np.ndarray[Any, Any], k: int) -> np.ndarray[Any, Any]:
    """(n,) class indices -> (n, k) one-hot rows (float64)."""
    out = np.zeros((len(labels), k))
    out[np.arange(len(labels)), labels] = 1.0
    return out


def _aggregate(kind: str) -> Any:
    def targets(ctx: TargetsContext) -> Targets | None:
        if ctx.round > 0:
            return None
        from crowdlearn.aggregate import DawidSkene, MajorityVote
        from crowdlearn.aggregate.dawid_skene import SMOOTHED_DS_PARAMS

        agg = MajorityVote(random_state=ctx.random_state) if kind == "mv" else DawidSkene(**SMOOTHED_DS_PARAMS)
        agg.fit(ctx.annotations, known_labels=ctx.known_labels)  # gold items: their class
        k = ctx.annotations.n_classes
        soft = np.asarray(agg.probas_, dtype=np.float64) if ctx.params["soft"] else one_hot(agg.labels_, k)
        return Targets(soft, np.asarray(agg.confusions_, dtype=np.float64))

    return targets


SPECS: tuple[MethodSpec, ...] = (
    MethodSpec(
        "mv-train",
        "two-stage: majority vote, then cross-entropy on the voted labels (``soft=1``: on the vote "
        "shares); the vote's confusions are kept fixed",
        fixed_confusion_head,
        params=(SOFT,),
        inits=("identity",),
        make_criterion=soft_target_criterion,
        targets=_aggregate("mv"),
        known_labels="targets",
        recipe=COSINE_RECIPE,
        citation="the two-stage baseline, e.g. Rodrigues & Pereira, AAAI 2018",
    ),
    MethodSpec(
        "ds-train",
        "two-stage: Dawid-Skene EM, then cross-entropy on its labels (``soft=1``: on its posteriors); "
        "its confusions are kept fixed",
        fixed_confusion_head,
        params=(SOFT,),
        inits=("identity",),
        make_criterion=soft_target_criterion,
        targets=_aggregate("ds"),
        known_labels="targets",
        citation="Dawid & Skene, JRSS C 1979",
    ),
)
