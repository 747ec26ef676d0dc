"""CrowdAR (Cao, Chen, Huang, Shen & Huang, SIGIR 2023): annotation reliability and soft annotations.

Torch-free at import: the factories import :mod:`crowdlearn.nn.heads.crowdar` when called.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from crowdlearn.nn.methods._recipes import COSINE_RECIPE
from crowdlearn.nn.registry import HeadContext, MethodParam, MethodSpec

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from crowdlearn.nn.losses import Regularizer

__all__ = ["SPECS"]


def _head(ctx: HeadContext) -> nn.Module:
    from crowdlearn.nn.heads.crowdar import CrowdARHead

    return CrowdARHead(
        ctx.n_annotators,
        ctx.n_classes,
        representation_dim=int(ctx.representation_dim or 128),
        hidden=int(ctx.params["difficulty_dim"]),
    )


def _criterion(params: Mapping[str, Any], regularizers: list[Regularizer]) -> nn.Module:
    from crowdlearn.nn.heads.crowdar import CrowdARLoss

    return CrowdARLoss(float(params["annotation_weight"]), regularizers=regularizers)


#: CrowdAR: reliability r = sigmoid(w3 . ((sigmoid(E_m) - d(x)) * f(x)) + b3), w3 >= 0, d(x) a
#: difficulty network on the (detached) item representation; soft annotation r onehot(z) + (1-r)/K
#: against the annotator model softmax(W_m f(x)); loss lam CE + (1 - lam) BCE(r, [argmax f = z]).
#: Defaults (lam 0.9, 128 difficulty units) from the field's re-implementation
#: (ies-research/multi-annotator-machine-learning), which follows the paper and its code.
SPECS: tuple[MethodSpec, ...] = (
    MethodSpec(
        "crowdar",
        "CrowdAR: annotation reliability ``r = sigmoid(w_3 . ((e_m - d(x)) * f(x)) + b_3)`` from annotator "
        "expertise and instance difficulty; cross-entropy of the soft annotation ``r onehot(z) + (1 - r)/K`` "
        "against ``softmax(W_m f(x))``, plus ``r``'s cross-entropy against ``[argmax f(x) = z]``",
        _head,
        params=(
            MethodParam(
                "annotation_weight",
                0.9,
                "lam in lam * soft-annotation CE + (1 - lam) * reliability BCE",
                low=0.0,
                high=1.0,
            ),
            MethodParam("difficulty_dim", 128, "hidden units of the instance-difficulty network", low=1, integer=True),
        ),
        inits=("identity",),
        needs_representation=True,
        make_criterion=_criterion,
        recipe=COSINE_RECIPE,
        citation="Cao, Chen, Huang, Shen & Huang, SIGIR 2023",
    ),
)
