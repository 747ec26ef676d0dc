"""The deep methods that came before the registry (CCEM, GeoCrowdNet, TraceReg, CE, CrowdLayer).

Torch-free at import: each factory imports its head or regularizer when called.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from crowdlearn.nn.methods._recipes import (
    COSINE_RECIPE,
    FAST_MIXUP_RECIPE,
    SLOW_DS_CLR_RECIPE,
)
from crowdlearn.nn.registry import DEFAULT_RIDGE, HeadContext, MethodParam, MethodSpec

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from crowdlearn.nn.losses import Regularizer

__all__ = ["SPECS"]

_ICLR23 = "Ibrahim, Nguyen & Fu, ICLR 2023, arXiv 2306.03288"
_LAM = MethodParam("lam", 0.01, "regularization weight", low=0.0, top_level=True)
_EPS = MethodParam("eps", DEFAULT_RIDGE, "ridge of the log-determinant", low=0.0, strict=True, top_level=True)
#: partial pooling of the confusions: shared logits + per-annotator deviations under a Gaussian
#: prior worth about ``pool`` labels (crowdlearn.nn.heads.pooled); 0: off (per-annotator logits)
_POOL = MethodParam(
    "pool",
    0.0,
    "partial pooling: each annotator's deviation from the crowd's shared logits, prior of ~pool labels",
    low=0.0,
)


def _confusion_head(ctx: HeadContext) -> nn.Module:
    from crowdlearn.nn.confusion import ConfusionMatrices

    if float(ctx.params.get("pool", 0.0)) > 0.0:  # the ConfusionPooling regularizer is added by the estimator
        from crowdlearn.nn.heads.pooled import PooledConfusionMatrices

        counts = None if ctx.annotations is None else ctx.annotations.annotator_counts
        return PooledConfusionMatrices(
            ctx.n_annotators, ctx.n_classes, label_counts=counts, init=ctx.init, scale=float(ctx.init_scale)
        )
    return ConfusionMatrices(ctx.n_annotators, ctx.n_classes, init=ctx.init, scale=float(ctx.init_scale))


def _identity_head(ctx: HeadContext) -> nn.Module:
    from crowdlearn.nn.confusion import IdentityHead

    return IdentityHead(ctx.n_annotators, ctx.n_classes)


def _crowdlayer_head(kind: Any) -> Callable[[HeadContext], nn.Module]:
    def make(ctx: HeadContext) -> nn.Module:
        from crowdlearn.nn.crowdlayer import CrowdLayer

        return CrowdLayer(ctx.n_annotators, ctx.n_classes, kind=kind)

    return make


def _logdet_f(params: Mapping[str, Any]) -> Regularizer:
    from crowdlearn.nn.losses import LogDetVolumeF

    return LogDetVolumeF(params["lam"], eps=params["eps"])


def _logdet_w(params: Mapping[str, Any]) -> Regularizer:
    from crowdlearn.nn.losses import LogDetVolumeW

    return LogDetVolumeW(params["lam"], eps=params["eps"])


def _trace(params: Mapping[str, Any]) -> Regularizer:
    from crowdlearn.nn.losses import TraceRegularizer

    return TraceRegularizer(params["lam"])


_CROWDLAYER_FORMS = {
    "mw": "``a_m(p) = W_m p`` (identity init)",
    "vw": "``a_m(p) = w_m * p`` (ones init)",
    "vb": "``a_m(p) = p + b_m`` (zeros init)",
}

SPECS: tuple[MethodSpec, ...] = (
    MethodSpec(
        "ccem",
        "coupled cross-entropy ``-(1/|S|) sum log (A_m f(x_n))_y`` over the observed labels",
        _confusion_head,
        params=(_POOL,),
        refines_confusions=True,
        known_labels="clamp",
        recipe=SLOW_DS_CLR_RECIPE,
        citation=_ICLR23,
    ),
    MethodSpec(
        "geocrowdnet-f",
        "CCEM ``- lam * log det(F F^T + eps I)``, ``F`` (K, B) the batch predictions",
        _confusion_head,
        regularizers=(_logdet_f,),
        params=(_LAM, _EPS, _POOL),
        refines_confusions=True,
        known_labels="clamp",
        recipe=SLOW_DS_CLR_RECIPE,
        citation=_ICLR23,
    ),
    MethodSpec(
        "geocrowdnet-w",
        "CCEM ``- lam * log det(W^T W + eps I)``, ``W`` (MK, K) the stacked ``A_m``",
        _confusion_head,
        regularizers=(_logdet_w,),
        params=(_LAM, _EPS, _POOL),
        refines_confusions=True,
        known_labels="clamp",
        recipe=SLOW_DS_CLR_RECIPE,
        citation=_ICLR23,
    ),
    MethodSpec(
        "tracereg",
        "CCEM ``+ lam * (1/E) sum_e trace(A_{m_e})``: each label's annotator's trace, averaged over the batch's labels",
        _confusion_head,
        regularizers=(_trace,),
        params=(_LAM, _POOL),
        refines_confusions=True,
        known_labels="clamp",
        recipe=SLOW_DS_CLR_RECIPE,
        citation="Tanno et al., CVPR 2019",
    ),
    MethodSpec(
        "ce",
        "no annotator model (every ``A_m`` the identity): plain cross-entropy on the crowd labels; "
        'fitted on aggregated labels it is the two-stage baseline "aggregate, then train"',
        _identity_head,
        known_labels="clamp",
    ),
    *(
        MethodSpec(
            f"crowdlayer-{kind}",
            f"CrowdLayer, annotator ``m``'s label ``~ softmax(a_m(f(x)))`` with {_CROWDLAYER_FORMS[kind]}; "
            "``confusions_`` are the implied ``C_m[:, j] = softmax(a_m(e_j))``",
            _crowdlayer_head(kind),
            inits=("identity",),
            known_labels="clamp",
            recipe=FAST_MIXUP_RECIPE if kind == "vb" else COSINE_RECIPE,
            citation="Rodrigues & Pereira, AAAI 2018",
        )
        for kind in ("mw", "vw", "vb")  # crowdlearn.nn.CROWDLAYER_KINDS (a test checks they agree)
    ),
)
