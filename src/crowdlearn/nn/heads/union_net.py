"""Union-Net A and B (Wei, Xie, Feng, Han & An, IEEE TNNLS 2022): all labels of an item as one union.

Wei, Xie, Feng, Han & An, "Deep Learning From Multiple Noisy Annotators as A Union", IEEE
Transactions on Neural Networks and Learning Systems 34(12), 2023 (online 2022),
doi:10.1109/TNNLS.2022.3168696. No official code is public; the defaults follow the
implementation of Herde et al. (github.com/ies-research/multi-annotator-machine-learning,
``maml/classifiers/_union_net.py``, which cites the paper's equations).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from crowdlearn.nn import functional as CF
from crowdlearn.nn.confusion import DEFAULT_SMOOTHING
from crowdlearn.nn.losses import RegularizedLoss, Regularizer
from crowdlearn.nn.model import CrowdModel

if TYPE_CHECKING:  # pragma: no cover
    from crowdlearn.train.batching import Batch

__all__ = ["UNION_NET_CITATION", "UNION_NET_VARIANTS", "UnionLoss", "UnionNet"]

UNION_NET_CITATION = "Wei, Xie, Feng, Han & An, IEEE TNNLS 2022"
#: ``"a"``: a linear layer and a softmax over the union; ``"b"``: a column-normalised transition
UNION_NET_VARIANTS: tuple[str, ...] = ("a", "b")


class UnionNet(nn.Module):
    """The union of all annotators' labels of an item, generated from its true class by one transition.

    Union-Net concatenates the one-hot labels of all ``M`` annotators of an item into one vector
    over the ``M K`` (annotator, class) pairs and models it with one transition matrix ``T`` of
    shape (M K, K) from the true class (stored as (M, K, K): ``T[m, i, j]`` is the entry of union
    row ``(m, i)``, "annotator m says i", and true class ``j``). With ``p = f(x)``:

    - ``variant="a"`` (the paper's Eq. (5), a linear layer without bias and a softmax):
      ``P((m, i) | x) = exp((T p)_{m,i}) / sum_{m', i'} exp((T p)_{m',i'})``, ``T`` unconstrained;
    - ``variant="b"`` (Eq. (6)): every column of ``T`` is a distribution over the whole union,
      ``Tn[(m, i), j] = exp(T[m, i, j]) / sum_{m', i'} exp(T[m', i', j])`` (one transition
      shared by all annotators: they compete for the column's mass), and
      ``P((m, i) | x) = (Tn p)_{m,i}``.

    The training objective (:class:`UnionLoss`) is the union's cross-entropy: ``-(1/B) sum
    log P((m, y) | x_n)`` over the observed labels ``(n, m, y)`` of the ``B`` items of a batch
    (Eq. (6); each item's target is its multi-hot union vector).

    The head's forward gives what every crowdlearn head gives, annotator ``m``'s label
    distribution given that ``m`` labels the item: the union restricted to ``m``'s block and
    renormalised, ``P(i | x, m) = P((m, i) | x) / sum_i' P((m, i') | x)``; for variant A this
    is ``softmax_i((T_m p)_i)`` (a CrowdLayer-MW), for B ``sum_j Tn[(m, i), j] p_j / sum_j s_m(j)
    p_j`` with ``s_m(j) = sum_i Tn[(m, i), j]``. It is what held-out-label validation scores.
    :meth:`confusions` are ``P(m says i | true j, m labels)``: ``softmax_i(T[m, :, j])`` for both
    variants (for B, ``Tn[(m, i), j] / s_m(j)``).

    Cost: the forward gathers the batch's annotators (``O(E K^2)``). The union's normaliser is,
    by the model's definition, a sum over all ``M`` annotators: for B the column normaliser of
    ``T`` (``O(M K^2)`` per step, in the forward and the loss), for A the per-item softmax over
    the union (``O(B M K^2)`` per step, the (B, M K) union logits of the batch's items, in the
    loss only).

    Parameters
    ----------
    n_annotators : int
        ``M``.
    n_classes : int
        ``K``.
    variant : {"a", "b"}
    init : {"identity", "uniform"} or array-like of shape (M, K, K), default="identity"
        ``"identity"``: every block ``T_m = scale * ((1 - epsilon) I + epsilon / (K - 1) (1 1^T - I))``,
        the paper's Eq. (7) used as the logits (as in Herde et al.'s implementation, with
        ``scale = 1``); ``"uniform"``: zeros; an array of column-stochastic ``A_m`` (e.g.
        Dawid-Skene's): ``T_m = log((1 - smoothing) A_m + smoothing / K)``, so that the
        confusions start at ``A_m`` (smoothed) and, for B, every annotator's block at mass ``1/M``.
    scale : float, default=1.0
    epsilon : float in [0, 1), default=1e-5
        The prior error probability of Eq. (7) (Herde et al.'s default).
    smoothing : float in [0, 1), default=DEFAULT_SMOOTHING (1e-2)
        With an array ``init`` only.

    Attributes
    ----------
    transition : Parameter of shape (M, K, K)
        ``T``, the union's (M K, K) transition reshaped per annotator.
    """

    def __init__(
        self,
        n_annotators: int,
        n_classes: int,
        *,
        variant: Literal["a", "b"],
        init: str | np.ndarray[Any, Any] | Tensor = "identity",
        scale: float = 1.0,
        epsilon: float = 1e-5,
        smoothing: float = DEFAULT_SMOOTHING,
    ) -> None:
        super().__init__()
        if n_annotators < 1 or n_classes < 2:
            raise ValueError(f"need n_annotators >= 1 and n_classes >= 2, got {n_annotators} and {n_classes}")
        if variant not in UNION_NET_VARIANTS:
            raise ValueError(f"variant must be 'a' or 'b', got {variant!r}")
        self.n_annotators = int(n_annotators)
        self.n_classes = int(n_classes)
        self.variant = str(variant)
        self.transition = nn.Parameter(torch.empty(self.n_annotators, self.n_classes, self.n_classes))
        self.reset_parameters(init=init, scale=scale, epsilon=epsilon, smoothing=smoothing)

    def reset_parameters(
        self,
        *,
        init: str | np.ndarray[Any, Any] | Tensor = "identity",
        scale: float = 1.0,
        epsilon: float = 1e-5,
        smoothing: float = DEFAULT_SMOOTHING,
    ) -> None:
        """(Re)initialise ``T``; see the class docstring for the options."""
        m, k = self.n_annotators, self.n_classes
        if not 0.0 <= epsilon < 1.0:
            raise ValueError(f"epsilon must be in [0, 1), got {epsilon!r}")
        with torch.no_grad():
            if isinstance(init, str):
                if init == "identity":
                    eye = torch.eye(k)
                    block = (1.0 - epsilon) * eye + epsilon / (k - 1) * (1.0 - eye)
                    self.transition.copy_(float(scale) * block.expand(m, k, k))
                elif init == "uniform":
                    self.transition.zero_()
                else:
                    raise ValueError(f"init must be 'identity', 'uniform' or an (M, K, K) array, got {init!r}")
                return
            # the log of smoothed column-stochastic matrices: ConfusionMatrices' rule and checks
            from crowdlearn.nn.confusion import ConfusionMatrices

            probe = ConfusionMatrices(m, k, init=init, smoothing=smoothing)
            self.transition.copy_(probe.logits.to(self.transition.dtype))

    def log_transition(self) -> Tensor:
        """Variant B's ``log Tn``, each column normalised over the whole union, shape (M, K, K)."""
        t = self.transition
        return t - torch.logsumexp(t.flatten(0, 1), dim=0)  # (K,) normaliser of each column, over all M K rows

    def union_log_probs(self, log_probs: Tensor, rows: Tensor, annotators: Tensor) -> Tensor:
        """``log P((m_e, i) | x_{rows_e})`` for every class ``i`` of each observed pair's block, shape (E, K).

        Parameters
        ----------
        log_probs : Tensor of shape (B, K)
            ``log f(x)`` of the batch's items (one row per item, not per label).
        rows : Tensor of int64 of shape (E,)
            Row of ``log_probs`` of each observed label.
        annotators : Tensor of int64 of shape (E,)

        Returns
        -------
        Tensor of shape (E, K)
            The pair's block of the item's union distribution (summing over all blocks of an
            item, all ``M`` annotators, gives 1).
        """
        if self.variant == "b":
            return CF.annotator_log_probs(log_probs.index_select(0, rows), self.log_transition(), annotators)
        probs = log_probs.exp()  # (B, K)
        union_logits = probs @ self.transition.flatten(0, 1).T  # (B, M K): the union's softmax is over all M K
        block = torch.einsum("eij,ej->ei", self.transition.index_select(0, annotators), probs.index_select(0, rows))
        return block - torch.logsumexp(union_logits, dim=1).index_select(0, rows).unsqueeze(1)

    def forward(self, log_probs: Tensor, annotators: Tensor) -> Tensor:
        """Annotator ``m``'s label distribution given that ``m`` labels the item (the union's block, renormalised).

        Parameters
        ----------
        log_probs : Tensor of shape (E, K)
            ``log f(x)`` of the item of each observed pair.
        annotators : Tensor of int64 of shape (E,)

        Returns
        -------
        Tensor of shape (E, K)
            ``log P(i | x, m)``; see the class docstring.
        """
        if self.variant == "b":
            union = CF.annotator_log_probs(log_probs, self.log_transition(), annotators)
        else:
            union = torch.einsum("eij,ej->ei", self.transition.index_select(0, annotators), log_probs.exp())
        return torch.log_softmax(union, dim=1)

    def confusions(self) -> Tensor:
        """``P(m says i | true j, m labels)``, ``softmax(T)`` over the rows of each block, shape (M, K, K)."""
        return torch.softmax(self.transition, dim=1)

    def annotator_masses(self) -> Tensor:
        """Variant B's ``s_m(j) = sum_i Tn[(m, i), j]``, the share of the union that annotator ``m`` takes
        given true class ``j``, shape (M, K); every column sums to 1 over the annotators."""
        if self.variant != "b":
            raise ValueError("annotator_masses() is defined for variant 'b' only (A's masses depend on f(x))")
        return torch.logsumexp(self.log_transition(), dim=1).exp()

    def extra_repr(self) -> str:
        return f"n_annotators={self.n_annotators}, n_classes={self.n_classes}, variant={self.variant!r}"


class UnionLoss(RegularizedLoss):
    """Union-Net's objective: the cross-entropy of each item's union of labels, plus regularizers.

    ``loss = -(1/B) sum_{(n, m, y)} log P((m, y) | x_n) + sum_i w_i r_i`` over the observed labels
    of the batch's ``B`` items (the paper's Eq. (6); Herde et al. divide by the items too), with
    the head's :meth:`UnionNet.union_log_probs`. ``nll`` (reported, not minimised) is the mean
    negative log-likelihood of the labels under the head's per-annotator distributions, the
    quantity every crowdlearn method reports and held-out validation scores.

    A criterion of the whole batch (``takes_batch = True``; see
    :meth:`crowdlearn.train.Trainer.get_loss`).

    Parameters
    ----------
    regularizers : sequence of Regularizer, default=()
        Terms to add; their ``name`` must differ.
    """

    takes_batch = True

    def __init__(self, regularizers: Sequence[Regularizer] = ()) -> None:
        super().__init__(regularizers=regularizers)

    def forward(
        self, model: CrowdModel, logits: Tensor, batch: Batch, representation: Tensor | None = None
    ) -> dict[str, Tensor]:
        """Loss parts of one batch: ``loss``, ``nll`` and, with regularizers, ``reg`` and each term.

        Parameters
        ----------
        model : CrowdModel
            Its head is a :class:`UnionNet`.
        logits : Tensor of shape (B, K)
        batch : Batch
            ``rows``, ``annotators``, ``labels`` (E,) index the rows of ``logits``.
        representation : Tensor of shape (B, H), optional
            Unused.
        """
        head = model.head
        if not isinstance(head, UnionNet):
            raise TypeError(f"UnionLoss needs a UnionNet head, got {type(head).__name__}")
        if batch.targets is not None or batch.annotator_mix is not None:
            what = "soft targets" if batch.targets is not None else "annotator mixtures"
            raise TypeError(f"the batch carries {what}, which UnionLoss cannot use")
        if batch.labels.numel() == 0:
            raise ValueError("the batch has no observed labels; cannot compute the loss")
        union = head.union_log_probs(logits.log_softmax(dim=1), batch.rows, batch.annotators)  # (E, K)
        labels = batch.labels.unsqueeze(1)
        loss = -union.gather(1, labels).sum() / logits.shape[0]
        nll = -union.log_softmax(dim=1).gather(1, labels).mean()
        return self.add_regularizers(model, logits, {"loss": loss, "nll": nll})
