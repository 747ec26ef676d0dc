"""Losses as small modules: coupled cross-entropy and its regularized variants.

Each loss is called as ``loss(model, logits, rows, annotators, labels)`` and returns a dict of
scalar tensors with at least ``"loss"`` (what is minimized) and ``"nll"`` (the mean negative log
likelihood of the observed labels); regularized losses add ``"reg"`` (the regularizer's value,
before multiplying by ``lam``). ``lam`` is a plain attribute, so a callback may schedule it.
"""

from __future__ import annotations

from torch import Tensor, nn

from crowdlearn.nn import functional as CF
from crowdlearn.nn.model import CrowdModel

__all__ = [
    "CoupledCrossEntropy",
    "CrowdLoss",
    "GeoCrowdNetFLoss",
    "GeoCrowdNetWLoss",
    "TraceRegLoss",
]


class CrowdLoss(nn.Module):
    """Coupled cross-entropy (CCEM) on the observed labels; base of the regularized losses.

    ``nll = -(1/E) sum_e log P(annotator m_e says y_e | x_e)`` with the model's head; with a
    :class:`~crowdlearn.nn.ConfusionMatrices` head this is CCEM (Ibrahim, Nguyen & Fu, ICLR 2023).

    Parameters
    ----------
    lam : float, default=0.0
        Weight of the regularizer (unused by plain CCEM).
    """

    def __init__(self, lam: float = 0.0) -> None:
        super().__init__()
        self.lam = float(lam)

    def nll(self, model: CrowdModel, logits: Tensor, rows: Tensor, annotators: Tensor, labels: Tensor) -> Tensor:
        """Mean negative log-likelihood of the observed labels (scalar)."""
        logp = model.crowd_log_probs(logits, rows, annotators)  # (E, K)
        if logp.shape[0] == 0:
            raise ValueError("the batch has no observed labels; cannot compute the loss")
        return -logp.gather(1, labels.unsqueeze(1)).squeeze(1).mean()

    def regularizer(self, model: CrowdModel, logits: Tensor) -> Tensor | None:
        """The regularizer's value (scalar) or None."""
        return None

    def forward(
        self, model: CrowdModel, logits: Tensor, rows: Tensor, annotators: Tensor, labels: Tensor
    ) -> dict[str, Tensor]:
        """Loss parts; see the module docstring.

        Parameters
        ----------
        model : CrowdModel
        logits : Tensor of shape (B, K)
        rows, annotators, labels : Tensor of int64 of shape (E,)
        """
        nll = self.nll(model, logits, rows, annotators, labels)
        reg = self.regularizer(model, logits)
        if reg is None:
            return {"loss": nll, "nll": nll}
        return {"loss": nll + self.sign * self.lam * reg, "nll": nll, "reg": reg}

    #: +1 when the regularizer is added, -1 when it is subtracted (a volume to maximize)
    sign: float = 1.0

    def extra_repr(self) -> str:
        return f"lam={self.lam:g}"


#: CCEM is the base loss itself.
CoupledCrossEntropy = CrowdLoss


def _confusions(model: CrowdModel) -> Tensor:
    get = getattr(model.head, "confusions", None)
    if get is None:
        raise TypeError(f"this loss needs a head with confusions() (e.g. ConfusionMatrices), got {type(model.head)}")
    out: Tensor = get()
    return out


class GeoCrowdNetFLoss(CrowdLoss):
    """GeoCrowdNet(F): ``CCEM - lam * log det(F F^T + eps I)``, ``F`` the batch predictions (K, B).

    Ibrahim, Nguyen & Fu (ICLR 2023). See :func:`crowdlearn.nn.functional.logdet_volume_f`.
    """

    sign = -1.0

    def __init__(self, lam: float = 0.01, *, eps: float = CF.DEFAULT_RIDGE) -> None:
        super().__init__(lam)
        self.eps = float(eps)

    def regularizer(self, model: CrowdModel, logits: Tensor) -> Tensor | None:
        return CF.logdet_volume_f(logits.float().softmax(dim=1), eps=self.eps)


class GeoCrowdNetWLoss(CrowdLoss):
    """GeoCrowdNet(W): ``CCEM - lam * log det(W^T W + eps I)``, ``W`` the stacked confusions (MK, K).

    Ibrahim, Nguyen & Fu (ICLR 2023). See :func:`crowdlearn.nn.functional.logdet_volume_w`.
    """

    sign = -1.0

    def __init__(self, lam: float = 0.01, *, eps: float = CF.DEFAULT_RIDGE) -> None:
        super().__init__(lam)
        self.eps = float(eps)

    def regularizer(self, model: CrowdModel, logits: Tensor) -> Tensor | None:
        return CF.logdet_volume_w(_confusions(model), eps=self.eps)


class TraceRegLoss(CrowdLoss):
    """TraceReg (Tanno et al., CVPR 2019): ``CCEM + lam * sum_m trace(A_m)``."""

    def regularizer(self, model: CrowdModel, logits: Tensor) -> Tensor | None:
        return CF.trace_regularizer(_confusions(model))
