"""CoNAL (Chu, Ma & Wang, AAAI 2021): common and individual confusions mixed by an instance-dependent weight.

Torch-free at import: the factories import :mod:`crowdlearn.nn.heads.conal` when called.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from crowdlearn.nn.methods._recipes import FAST_MIXUP_RECIPE
from crowdlearn.nn.registry import HeadContext, MethodParam, MethodSpec

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from crowdlearn.nn.losses import Regularizer

__all__ = ["SPECS"]

#: defaults from the official code (github.com/zdchu/CoNAL): lam_diff (workflow.py), the 2 I kernels
#: and the embedding size 20 of its LabelMe model (conal.py; its Music model uses 80)
_PARAMS = (
    MethodParam(
        "lam_diff", 1e-5, "weight of -sum_m ||W_m - W_c||_F (pushes each annotator's kernel from the common)", low=0.0
    ),
    MethodParam(
        "emb_dim", 20, "size d of the instance and annotator embeddings of the weight w(x, m)", low=1, integer=True
    ),
    MethodParam("init_diag", 2.0, "W_c and every W_m start as init_diag * I"),
)


def _head(ctx: HeadContext) -> nn.Module:
    from crowdlearn.nn.heads.conal import CoNAL

    p = ctx.params
    return CoNAL(
        ctx.n_annotators,
        ctx.n_classes,
        rep_dim=int(ctx.representation_dim or 128),  # H of the backbone (measured by the estimator)
        emb_dim=int(p["emb_dim"]),
        init_diag=float(p["init_diag"]),
    )


def _distance(params: Mapping[str, Any]) -> Regularizer:
    from crowdlearn.nn.heads.conal import CommonDistance

    return CommonDistance(params["lam_diff"])


SPECS: tuple[MethodSpec, ...] = (
    MethodSpec(
        "conal",
        "CoNAL, annotator ``m``'s label ``~ softmax(w W_c f(x) + (1 - w) W_m f(x))`` with ``w = sigmoid(v(x) . u_m)`` "
        "from normalised instance and annotator embeddings, ``- lam_diff * sum_m ||W_m - W_c||_F``; "
        "instance-dependent (``predict_confusions``)",
        _head,
        regularizers=(_distance,),
        params=_PARAMS,
        inits=("identity",),
        needs_representation=True,
        instance_dependent=True,
        recipe=FAST_MIXUP_RECIPE,
        citation="Chu, Ma & Wang, AAAI 2021",
    ),
)
