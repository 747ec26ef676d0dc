"""A classifier backbone plus a crowd head: the one model shape every method trains."""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["CrowdModel"]


class CrowdModel(nn.Module):
    """``backbone`` maps inputs to ``K`` logits; ``head`` maps ``log f(x)`` to annotators' labels.

    Methods differ only by the head (``ConfusionMatrices``, ``IdentityHead``, ``CrowdLayer``, ...)
    and by the loss (:mod:`crowdlearn.nn.losses`); the trainer is shared.

    Parameters
    ----------
    backbone : nn.Module
        Any module mapping a batch of inputs to logits of shape (B, K).
    head : nn.Module
        Called as ``head(log_probs (E, K), annotators (E,)) -> (E, K)`` log distribution of each
        observed annotator's label.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, x: Tensor) -> Tensor:
        """Classifier logits, shape (B, K)."""
        out: Tensor = self.backbone(x)
        return out

    def crowd_log_probs(self, logits: Tensor, rows: Tensor, annotators: Tensor) -> Tensor:
        """Log distribution of each observed label, shape (E, K).

        Parameters
        ----------
        logits : Tensor of shape (B, K)
        rows : Tensor of int64 of shape (E,)
            Row of ``logits`` of each observed label.
        annotators : Tensor of int64 of shape (E,)
        """
        log_probs = logits.float().log_softmax(dim=1).index_select(0, rows)
        out: Tensor = self.head(log_probs, annotators)
        return out
