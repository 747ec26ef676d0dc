"""CrowdLayer (Rodrigues & Pereira, "Deep learning from crowds", AAAI 2018) as a crowd head."""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor, nn

from crowdlearn.nn import confusion
from crowdlearn.nn import functional as CF

__all__ = ["CROWDLAYER_KINDS", "CrowdLayer"]

CrowdLayerKind = Literal["mw", "vw", "vb"]
#: The three variants of the original paper.
CROWDLAYER_KINDS: tuple[str, ...] = ("mw", "vw", "vb")


class CrowdLayer(nn.Module):
    """Per-annotator transformation of the classifier's probabilities, followed by a softmax.

    With ``p = f(x) = exp(log_probs)`` (shape (E, K), the classifier's probabilities of the item of
    each observed pair) and annotator ``m`` of the pair, the head computes the *activation*

    - ``kind="mw"`` (matrix of weights): ``a = W_m p``, ``W_m`` a ``K x K`` matrix,
      ``a_i = sum_j W_m[i, j] p_j``; initialized to the identity;
    - ``kind="vw"`` (vector of weights): ``a = w_m * p`` (elementwise), ``w_m`` in ``R^K``;
      initialized to ones;
    - ``kind="vb"`` (vector of biases): ``a = p + b_m``, ``b_m`` in ``R^K``; initialized to zeros;

    and returns ``log softmax(a)`` (E, K): the log distribution of annotator ``m``'s label. Trained
    with cross-entropy on the observed labels (:class:`~crowdlearn.nn.CrowdLoss`), this is the
    original's "crowd layer" on top of the softmax output with a softmax cross-entropy per
    annotator (the Keras original stores ``W_m`` transposed, ``p W``; the same model). Note that
    at its initialization the layer is *not* the identity map on distributions: it gives
    ``softmax(p)``, a flattened version of ``p`` (the three variants agree there). Only observed
    pairs are touched: ``O(E K^2)`` for MW, ``O(E K)`` for VW and VB; the parameters of the
    batch's ``U`` distinct annotators are taken once. With ``sparse=True`` (the default) their
    gradient is sparse (those ``U`` rows) and :meth:`param_groups` asks the trainer for
    :class:`~crowdlearn.train.optim.LazyAdam`, which leaves absent annotators' parameters and
    moments untouched (a batch holding every annotator gives a dense gradient: Adam's step);
    ``sparse=False``: dense gradients and Adam.

    The implied confusion matrices (:meth:`confusions`) feed one-hot probability vectors
    ``p = e_j`` through the layer: ``C_m[:, j] = softmax(a(e_j))``, i.e. ``P(label i | true j)``
    under the layer; columns sum to 1.

    Parameters
    ----------
    n_annotators : int
        ``M``.
    n_classes : int
        ``K``.
    kind : {"mw", "vw", "vb"}, default="mw"
    sparse : bool or None, default=None
        Sparse gradients and lazy Adam (see above); None:
        :data:`crowdlearn.nn.confusion.SPARSE_BY_DEFAULT` (True).

    Attributes
    ----------
    weight : Parameter of shape (M, K, K) (``"mw"``) or (M, K) (``"vw"``, ``"vb"``)
        ``W_m``, ``w_m`` or ``b_m``.
    """

    def __init__(
        self, n_annotators: int, n_classes: int, *, kind: CrowdLayerKind = "mw", sparse: bool | None = None
    ) -> None:
        super().__init__()
        if n_annotators < 1 or n_classes < 2:
            raise ValueError(f"need n_annotators >= 1 and n_classes >= 2, got {n_annotators} and {n_classes}")
        if kind not in CROWDLAYER_KINDS:
            raise ValueError(f"kind must be one of {', '.join(map(repr, CROWDLAYER_KINDS))}, got {kind!r}")
        self.n_annotators = int(n_annotators)
        self.n_classes = int(n_classes)
        self.kind = str(kind)
        self.sparse = bool(confusion.SPARSE_BY_DEFAULT if sparse is None else sparse)
        m, k = self.n_annotators, self.n_classes
        shape = (m, k, k) if kind == "mw" else (m, k)
        self.weight = nn.Parameter(torch.empty(shape))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The original's initialization: identity (MW), ones (VW), zeros (VB)."""
        m, k = self.n_annotators, self.n_classes
        with torch.no_grad():
            if self.kind == "mw":
                self.weight.copy_(torch.eye(k).expand(m, k, k))
            elif self.kind == "vw":
                self.weight.fill_(1.0)
            else:
                self.weight.zero_()

    def activation(self, probs: Tensor, annotators: Tensor) -> Tensor:
        """The pre-softmax activation ``a`` (E, K) for probabilities ``probs`` (E, K)."""
        touched, inverse = CF.unique_annotators(annotators)
        # every annotator in the batch: a dense gradient (the lazy optimizer steps it as Adam)
        sparse = (
            self.sparse
            and torch.is_grad_enabled()
            and self.weight.requires_grad
            and touched.numel() < self.n_annotators
        )
        w = CF.gather_rows(self.weight, touched, sparse_grad=sparse, distinct=True).index_select(0, inverse)
        if self.kind == "mw":
            return torch.bmm(w, probs.unsqueeze(2)).squeeze(2)
        if self.kind == "vw":
            return w * probs
        return probs + w

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
            ``log softmax(a)`` with ``a`` as in the class docstring.
        """
        return torch.log_softmax(self.activation(log_probs.exp(), annotators), dim=1)

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """The optimizer group of ``weight``: ``lr``, no weight decay, ``"sparse": self.sparse``,
        ``"base_lr": None`` (the trainer's schedule follows its ``confusion_lr``)."""
        if not self.weight.requires_grad:  # frozen (e.g. the two-stage methods' fixed confusions)
            return []
        return [{"params": [self.weight], "lr": float(lr), "weight_decay": 0.0, "sparse": self.sparse, "base_lr": None}]

    def confusions(self) -> Tensor:
        """Implied confusions ``C_m[i, j] = softmax(a(e_j))_i``, shape (M, K, K); columns sum to 1."""
        m, k = self.n_annotators, self.n_classes
        eye = torch.eye(k, dtype=self.weight.dtype, device=self.weight.device)
        probs = eye.repeat(m, 1)  # (M K, K): row m K + j is e_j
        annotators = torch.arange(m, device=self.weight.device).repeat_interleave(k)
        cols = torch.softmax(self.activation(probs, annotators), dim=1)  # (M K, K): column j of C_m
        return cols.reshape(m, k, k).transpose(1, 2)

    def extra_repr(self) -> str:
        return f"n_annotators={self.n_annotators}, n_classes={self.n_classes}, kind={self.kind!r}, sparse={self.sparse}"
