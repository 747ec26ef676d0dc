"""The annotators' confusion matrices as a small torch module (the "crowd head")."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from crowdlearn.nn import functional as CF

__all__ = ["DEFAULT_SMOOTHING", "ConfusionMatrices", "IdentityHead"]

#: Smoothing applied when initializing from given matrices: ``A <- (1 - s) A + s / K`` so that
#: exact zeros (e.g. a Dawid-Skene estimate) become finite logits ``log A``.
DEFAULT_SMOOTHING = 1e-2


class ConfusionMatrices(nn.Module):
    """``M`` column-stochastic ``K x K`` confusion matrices, one per annotator.

    ``A_m = softmax(P_m)`` over the row index, so every column sums to 1 by construction and
    ``A_m[i, j] = P(annotator m says i | true class j)``. The forward pass works on the observed
    (item, annotator) pairs only: ``O(E K^2)`` for ``E`` pairs.

    Parameters
    ----------
    n_annotators : int
        ``M``.
    n_classes : int
        ``K``.
    init : {"identity", "uniform"} or array-like of shape (M, K, K), default="identity"
        ``"identity"``: logits ``P_m = scale * I`` (the choice of Ibrahim et al., ICLR 2023, with
        ``scale=1``); ``"uniform"``: zero logits (every column uniform; known to let CCEM collapse
        on real data); an array: column-stochastic matrices, stored as
        ``P_m = log((1 - smoothing) A_m + smoothing / K)`` (so ``A_m`` is reproduced up to the
        smoothing).
    scale : float, default=1.0
        Diagonal logit for ``init="identity"``; the initial diagonal probability is
        ``e^scale / (e^scale + K - 1)``.
    smoothing : float in [0, 1), default=DEFAULT_SMOOTHING (1e-2)
        Used with an array ``init`` only.

    Attributes
    ----------
    logits : Parameter of shape (M, K, K)
        The unconstrained ``P_m``.
    """

    def __init__(
        self,
        n_annotators: int,
        n_classes: int,
        *,
        init: str | np.ndarray[Any, Any] | Tensor = "identity",
        scale: float = 1.0,
        smoothing: float = DEFAULT_SMOOTHING,
    ) -> None:
        super().__init__()
        if n_annotators < 1 or n_classes < 2:
            raise ValueError(f"need n_annotators >= 1 and n_classes >= 2, got {n_annotators} and {n_classes}")
        self.n_annotators = int(n_annotators)
        self.n_classes = int(n_classes)
        self.logits = nn.Parameter(torch.empty(self.n_annotators, self.n_classes, self.n_classes))
        self.reset_parameters(init=init, scale=scale, smoothing=smoothing)

    def reset_parameters(
        self,
        *,
        init: str | np.ndarray[Any, Any] | Tensor = "identity",
        scale: float = 1.0,
        smoothing: float = DEFAULT_SMOOTHING,
    ) -> None:
        """(Re)initialize the logits; see the class docstring for the options."""
        m, k = self.n_annotators, self.n_classes
        with torch.no_grad():
            if isinstance(init, str):
                if init == "identity":
                    self.logits.copy_(float(scale) * torch.eye(k).expand(m, k, k))
                elif init == "uniform":
                    self.logits.zero_()
                else:
                    raise ValueError(f"init must be 'identity', 'uniform' or an (M, K, K) array, got {init!r}")
                return
            a = torch.as_tensor(np.asarray(init) if not isinstance(init, Tensor) else init, dtype=torch.float64)
            if a.shape != (m, k, k):
                raise ValueError(f"initial confusions must have shape ({m}, {k}, {k}), got {tuple(a.shape)}")
            if not torch.isfinite(a).all() or (a < 0).any():
                raise ValueError("initial confusions must be finite and non-negative")
            col = a.sum(dim=1)
            if not torch.allclose(col, torch.ones_like(col), atol=1e-4):
                bad = torch.nonzero((col - 1).abs() > 1e-4)[0].tolist()
                raise ValueError(
                    f"initial confusions must have columns summing to 1 (A[m, :, j]); annotator {bad[0]}, "
                    f"column {bad[1]} sums to {float(col[bad[0], bad[1]]):.6g}"
                )
            if not 0.0 <= smoothing < 1.0:
                raise ValueError(f"smoothing must be in [0, 1), got {smoothing!r}")
            smoothed = (1.0 - smoothing) * a + smoothing / k
            if (smoothed <= 0).any():
                raise ValueError("initial confusions contain zeros; pass smoothing > 0 to take their log")
            self.logits.copy_(torch.log(smoothed).to(self.logits.dtype))

    def log_confusions(self) -> Tensor:
        """``log A``, shape (M, K, K)."""
        return CF.log_confusions(self.logits)

    def confusions(self) -> Tensor:
        """``A``, shape (M, K, K); columns sum to 1."""
        return torch.softmax(self.logits, dim=1)

    def forward(self, log_probs: Tensor, annotators: Tensor) -> Tensor:
        """Log distribution of each observed annotator's label.

        Parameters
        ----------
        log_probs : Tensor of shape (E, K)
            ``log f(x)`` of the item of each observed pair.
        annotators : Tensor of int64 of shape (E,)

        Returns
        -------
        Tensor of shape (E, K)
            ``log (A_{m_e} f(x_e))``.
        """
        return CF.annotator_log_probs(log_probs, self.log_confusions(), annotators)

    def extra_repr(self) -> str:
        return f"n_annotators={self.n_annotators}, n_classes={self.n_classes}"


class IdentityHead(nn.Module):
    """A head without annotator model: every crowd label is taken as a true label.

    Training with it is plain cross-entropy on the crowd labels; with one aggregated label per
    item (majority vote, Dawid-Skene) it is the two-stage baseline "aggregate, then train".
    """

    def __init__(self, n_annotators: int, n_classes: int) -> None:
        super().__init__()
        self.n_annotators = int(n_annotators)
        self.n_classes = int(n_classes)

    def forward(self, log_probs: Tensor, annotators: Tensor) -> Tensor:
        """Returns ``log_probs`` (E, K) unchanged."""
        return log_probs

    def extra_repr(self) -> str:
        return f"n_annotators={self.n_annotators}, n_classes={self.n_classes}"
