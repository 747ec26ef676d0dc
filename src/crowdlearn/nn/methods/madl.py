"""MaDL (Herde, Huseljic & Sick, TMLR 2023) on the method registry.

Torch-free at import: the factories import :mod:`crowdlearn.nn.heads.madl` when called.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from crowdlearn.nn.methods._recipes import FAST_MIXUP_RECIPE
from crowdlearn.nn.registry import HeadContext, MethodParam, MethodSpec

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from crowdlearn.nn.losses import Regularizer

__all__ = ["CITATION", "SPECS"]

CITATION = "Herde, Huseljic & Sick, TMLR 2023"

#: the defaults of the official code (ies-research/multi-annotator-deep-learning,
#: evaluation/create_experiment_scripts.py: embed_size 16, eta 0.8, alpha/beta 1.25/0.25)
PARAMS = (
    MethodParam(
        "eta",
        0.8,
        "prior probability of a correct label (diagonal of the initial confusions), in (0, 1)",
        low=0.0,
        strict=True,
        high=1.0,
    ),
    MethodParam("embed_size", 16, "size of the annotator and item embeddings", low=1, integer=True),
    MethodParam(
        "annotator_weights",
        1,
        "1: weight the loss by inverse annotator densities (with the Gamma prior); 0: plain mean NLL",
        low=0,
        high=1,
        integer=True,
    ),
    MethodParam("gamma_shape", 1.25, "shape of the Gamma prior of the RBF bandwidth", low=0.0, strict=True),
    MethodParam("gamma_rate", 0.25, "rate of the Gamma prior of the RBF bandwidth", low=0.0, strict=True),
)


def _head(ctx: HeadContext) -> nn.Module:
    from crowdlearn.nn.heads.madl import MaDLHead

    p = ctx.params
    weights = bool(p["annotator_weights"])
    return MaDLHead(
        ctx.n_annotators,
        ctx.n_classes,
        representation_size=int(ctx.representation_dim or 128),  # H of the backbone (measured by the estimator)
        embed_size=int(p["embed_size"]),
        eta=float(p["eta"]),
        gamma_shape=float(p["gamma_shape"]) if weights else None,
        gamma_rate=float(p["gamma_rate"]) if weights else None,
    )


def _criterion(params: Mapping[str, Any], regularizers: list[Regularizer]) -> nn.Module:
    from crowdlearn.nn.heads.madl import MaDLLoss

    return MaDLLoss()


SPECS: tuple[MethodSpec, ...] = (
    MethodSpec(
        "madl",
        "MaDL: instance-dependent confusions P(z | y, x, m) from an annotator embedding and the item "
        "representation (outer product, residual MLP), P(z | x, m) = sum_y P(y | x) P(z | y, x, m); "
        "loss weighted by inverse annotator densities in the embedding space, Gamma prior on the RBF bandwidth",
        _head,
        params=PARAMS,
        inits=("identity",),
        needs_representation=True,
        instance_dependent=True,
        make_criterion=_criterion,
        recipe=FAST_MIXUP_RECIPE,
        citation=CITATION,
    ),
)
