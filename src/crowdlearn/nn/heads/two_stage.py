"""The head and loss of the methods trained on per-item soft targets (mv-train, ds-train, MBEM).

The classifier ``f`` is trained by the cross-entropy with each item's target distribution
``t_n`` (an aggregate of its crowd labels), ``-(1/B) sum_n sum_k t_n[k] log f(x_n)_k``; the
annotator model is *fixed*: the confusions that produced the targets (majority vote's,
Dawid-Skene's, MBEM's latest), so ``confusions_``, :meth:`~crowdlearn.CrowdClassifier.annotator_report`
and held-out-label validation (``-log sum_j A_m[y, j] f(x)_j``) use them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import Tensor, nn

from crowdlearn.nn.confusion import ConfusionMatrices
from crowdlearn.nn.model import CrowdModel
from crowdlearn.train.batching import Batch

__all__ = ["FixedConfusions", "SoftTargetCrossEntropy"]


class FixedConfusions(ConfusionMatrices):
    """:class:`~crowdlearn.nn.ConfusionMatrices` that are not trained (``requires_grad=False``).

    Parameters
    ----------
    n_annotators, n_classes : int
    confusions : ndarray of shape (M, K, K) or str
        Column-stochastic matrices (or a :class:`ConfusionMatrices` ``init`` string, used when a
        saved model is rebuilt before its weights are loaded).
    """

    def __init__(self, n_annotators: int, n_classes: int, confusions: np.ndarray[Any, Any] | str = "identity") -> None:
        # the aggregators' confusions are smoothed already: keep them as they are
        super().__init__(n_annotators, n_classes, init=confusions, smoothing=1e-10)
        self.requires_grad_(False)


class SoftTargetCrossEntropy(nn.Module):
    """``-(1/B) sum_rows sum_k targets[r, k] log softmax(logits)[r, k]`` over the batch's rows.

    A criterion with ``takes_batch = True`` (:meth:`~crowdlearn.train.Trainer.get_loss`): the
    targets are the batch's (``Batch.targets``, (B, K)); the head is not used. Returns
    ``{"loss", "nll"}`` (both the cross-entropy with the targets).
    """

    takes_batch = True

    def forward(
        self, model: CrowdModel, logits: Tensor, batch: Batch, representation: Tensor | None = None
    ) -> dict[str, Tensor]:
        """Loss parts of one batch (logits (B, K) float32)."""
        if batch.targets is None:
            raise ValueError("SoftTargetCrossEntropy needs per-item targets (Batch.targets); the method gives none")
        ce = -(batch.targets * logits.float().log_softmax(dim=1)).sum(dim=1).mean()
        return {"loss": ce, "nll": ce}
