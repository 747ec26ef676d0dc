"""Max-MIG (Cao, Xu, Kong & Wang, ICLR 2019): the crowds aggregator and the f-mutual-information gain.

Torch-free at import: the factories import :mod:`crowdlearn.nn.heads.max_mig` when called.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from crowdlearn.nn.registry import HeadContext, MethodParam, MethodSpec

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from crowdlearn.nn.losses import Regularizer

__all__ = ["SPECS"]


def _head(ctx: HeadContext) -> nn.Module:
    from crowdlearn.nn.heads.max_mig import MaxMIGAggregator

    return MaxMIGAggregator(
        ctx.n_annotators,
        ctx.n_classes,
        init=ctx.init,
        scale=float(ctx.init_scale),
        learn_prior=bool(ctx.params["learn_prior"]),
    )


def _criterion(params: Mapping[str, Any], regularizers: list[Regularizer]) -> nn.Module:
    from crowdlearn.nn.heads.max_mig import MaxMIGLoss

    return MaxMIGLoss(regularizers=regularizers)


#: Max-MIG: the classifier h and the aggregator g = softmax(log p + sum of the observed labels'
#: log C_m[z, :]) maximise MIG = mean_i (1 + log R_ii) - mean_{i != j} R_ij, R_ij = sum_c h_ic g_jc / p_c
#: (f = KL, the paper's choice). Defaults: the paper learns p with h and g (learn_prior=1); its
#: official code keeps p uniform (learn_prior=0) and starts the weights from majority-vote
#: confusions (init="mv").
SPECS: tuple[MethodSpec, ...] = (
    MethodSpec(
        "max-mig",
        "Max-MIG: maximise the f-mutual-information gain (f = KL) between the classifier ``h(x)`` and the "
        "crowds aggregator ``g(y) = softmax(log p + sum_(m,z) log C_m[z, :])`` over each item's observed labels; "
        "``confusions_`` are the ``C_m``, held-out validation scores ``log sum_j C_m[z, j] h(x)_j``",
        _head,
        params=(
            MethodParam(
                "learn_prior",
                1,
                "1: learn the aggregator's class prior p (the paper); 0: keep it uniform (the official code)",
                low=0,
                high=1,
                integer=True,
            ),
        ),
        make_criterion=_criterion,
        citation="Cao, Xu, Kong & Wang, ICLR 2019",
    ),
)
