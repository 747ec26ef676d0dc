"""Union-Net A and B (Wei, Xie, Feng, Han & An, IEEE TNNLS 2022): the labels of an item as one union.

Torch-free at import: the factories import :mod:`crowdlearn.nn.heads.union_net` when called.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from crowdlearn.nn.methods._recipes import COSINE_DS_RECIPE
from crowdlearn.nn.registry import HeadContext, MethodParam, MethodSpec

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from crowdlearn.nn.losses import Regularizer

__all__ = ["SPECS"]

_CITATION = "Wei, Xie, Feng, Han & An, IEEE TNNLS 2022"
#: Eq. (7)'s prior error probability; 1e-5 is the default of Herde et al.'s implementation (no official code)
_EPSILON = MethodParam(
    "epsilon", 1e-5, "prior error probability of the initial transition (1 - eps on the diagonal)", low=0.0, high=0.5
)


def _head(variant: str) -> Callable[[HeadContext], nn.Module]:
    def make(ctx: HeadContext) -> nn.Module:
        from crowdlearn.nn.heads.union_net import UnionNet

        return UnionNet(
            ctx.n_annotators,
            ctx.n_classes,
            variant="a" if variant == "a" else "b",
            init=ctx.init,
            scale=float(ctx.init_scale),
            epsilon=float(ctx.params["epsilon"]),
        )

    return make


def _criterion(params: Mapping[str, Any], regularizers: list[Regularizer]) -> nn.Module:
    from crowdlearn.nn.heads.union_net import UnionLoss

    return UnionLoss(regularizers)


SPECS: tuple[MethodSpec, ...] = (
    MethodSpec(
        "union-net-a",
        "Union-Net-A, an item's labels as one union over the ``M K`` (annotator, class) pairs, "
        "``P((m, i) | x) = softmax(T f(x))`` over the union with ``T`` (MK, K) unconstrained; "
        "the union's cross-entropy",
        _head("a"),
        params=(_EPSILON,),
        make_criterion=_criterion,
        citation=_CITATION,
    ),
    MethodSpec(
        "union-net-b",
        "Union-Net-B, an item's labels as one union, ``P((m, i) | x) = (T f(x))_{m,i}`` with every column of the "
        "shared transition ``T`` (MK, K) a distribution over the union; the union's cross-entropy",
        _head("b"),
        params=(_EPSILON,),
        make_criterion=_criterion,
        recipe=COSINE_DS_RECIPE,
        citation=_CITATION,
    ),
)
