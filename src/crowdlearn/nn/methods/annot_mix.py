"""Annot-Mix (Herde, Lührs, Huseljic & Sick, ECAI 2024) on the method registry.

Torch-free at import: the factories import :mod:`crowdlearn.nn.heads.annot_mix` when called.

``CrowdClassifier(mixup=a)`` with ``a > 0`` sets the Beta parameter ``alpha`` of the record
mixup (Annot-Mix replaces the input mixup; it is never stacked on it); with ``mixup=0`` (the
default) ``method_params["alpha"]`` applies (default 1.0), and ``alpha=0`` trains without mixing.
Giving both ``mixup > 0`` and a different non-default ``alpha`` is an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from crowdlearn.nn.registry import HeadContext, MethodParam, MethodSpec

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from crowdlearn.nn.losses import Regularizer
    from crowdlearn.train.transforms import BatchTransform

__all__ = ["CITATION", "DEFAULT_ALPHA", "SPECS", "make_transform"]

CITATION = "Herde, Lührs, Huseljic & Sick, ECAI 2024"
#: Beta(alpha, alpha) of the official code (ies-research/multi-annotator-machine-learning, branch annot-mix,
#: conf/classifier/annot_mix.yaml)
DEFAULT_ALPHA = 1.0

PARAMS = (
    MethodParam(
        "alpha",
        DEFAULT_ALPHA,
        "Beta(alpha, alpha) of the record mixup (0: no mixing); CrowdClassifier(mixup=a > 0) sets it",
        low=0.0,
    ),
    MethodParam(
        "eta",
        0.9,
        "prior probability of a correct label (diagonal of the initial confusions), in (0, 1)",
        low=0.0,
        strict=True,
        high=1.0,
    ),
    MethodParam("embed_size", 128, "size of the annotator and item embeddings", low=1, integer=True),
    MethodParam("dropout", 0.5, "dropout of the annotator-performance model", low=0.0, high=0.99),
)


def _head(ctx: HeadContext) -> nn.Module:
    from crowdlearn.nn.heads.annot_mix import AnnotMixHead

    p = ctx.params
    return AnnotMixHead(
        ctx.n_annotators,
        ctx.n_classes,
        representation_size=int(ctx.representation_dim or 128),  # H of the backbone (measured by the estimator)
        embed_size=int(p["embed_size"]),
        dropout=float(p["dropout"]),
        eta=float(p["eta"]),
    )


def _criterion(params: Mapping[str, Any], regularizers: list[Regularizer]) -> nn.Module:
    from crowdlearn.nn.heads.annot_mix import AnnotMixLoss

    return AnnotMixLoss()


def make_transform(params: Mapping[str, Any], mixup: float) -> BatchTransform | None:
    """The record mixup of ``alpha``: ``mixup`` when > 0, else ``params["alpha"]`` (None when 0).

    Raises
    ------
    ValueError
        ``mixup > 0`` and ``params["alpha"]`` set to another value than its default or ``mixup``.
    """
    alpha = float(params["alpha"])
    if mixup > 0:
        if alpha not in (DEFAULT_ALPHA, float(mixup)):
            raise ValueError(
                f"method 'annot-mix': mixup={mixup:g} sets alpha, but method_params gives alpha={alpha:g}; "
                "give one of them"
            )
        alpha = float(mixup)
    if alpha == 0:
        return None
    from crowdlearn.nn.heads.annot_mix import RecordMixup

    return RecordMixup(alpha)


SPECS: tuple[MethodSpec, ...] = (
    MethodSpec(
        "annot-mix",
        "Annot-Mix: mixup of (input, annotator, label) records with t ~ Beta(alpha, alpha) per record; a "
        "MaDL-like head embeds the annotator mixture t emb(m) + (1 - t) emb(m') and gives instance-dependent "
        "confusions; cross-entropy against the mixed one-hot labels",
        _head,
        params=PARAMS,
        inits=("identity",),
        needs_representation=True,
        instance_dependent=True,
        make_criterion=_criterion,
        make_transform=make_transform,
        citation=CITATION,
    ),
)
