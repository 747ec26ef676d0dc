"""Max-MIG (Cao, Xu, Kong & Wang, ICLR 2019): a crowds aggregator head and the information-gain loss.

Max-MIG trains two networks that look at different sides of an item: the *data classifier*
``h(x)`` (the backbone's softmax) and the *crowds aggregator* ``g`` over the item's crowd labels.
Instead of a likelihood, it maximises the f-mutual-information gain between the two sides, so
that annotators who copy each other or label at random cannot pull the classifier their way.

Notation (B items in a batch, E observed labels, K classes, M annotators):

- ``C_m = softmax(L_m)`` over the row index: annotator ``m``'s column-stochastic weight matrix,
  ``C_m[i, j] = P(m says i | true class j)`` (the paper's ``W_m`` are ``log C_m``);
  ``p = softmax(pi)`` the class prior.
- The aggregator sums the log-weights of the item's *observed* labels only::

      log g(y_n) = log_softmax( log p + sum_{(m, z) labels of n} log C_m[z, :] )

  (the paper's ``g(y) = softmax(sum_m W_m y_m + log p)`` with one-hot ``y_m``, a missing label
  being the zero vector).
- The reward of a pair ``(i, j)``: ``R_ij = sum_c h(x_i)_c g(y_j)_c / p_c``.
- With the paper's f = KL (``f(t) = t log t``, ``f'(t) = 1 + log t``, ``f*(f'(t)) = t``)::

      MIG = (1/B) sum_i (1 + log R_ii)  -  (1/(B (B - 1))) sum_{i != j} R_ij

  over the batch: joint pairs ``i = i`` against product pairs ``i != j``; the loss is ``-MIG``.

The off-diagonal sum factorises, ``sum_{i,j} R_ij = sum_c (sum_i h_ic)(sum_j g_jc / p_c)``, so
the loss costs ``O(E K + U K^2 + B K)`` per batch (``U`` the batch's distinct annotators: their
column normalisers), never items x annotators.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from crowdlearn.nn.confusion import DEFAULT_SMOOTHING, ConfusionMatrices
from crowdlearn.nn.heads import _sparse

if TYPE_CHECKING:  # pragma: no cover
    from crowdlearn.nn.losses import Regularizer
    from crowdlearn.nn.model import CrowdModel
    from crowdlearn.train.batching import Batch

from crowdlearn.nn.losses import RegularizedLoss

__all__ = ["MaxMIGAggregator", "MaxMIGLoss", "mutual_information_gain"]

CITATION = (
    'Cao, Xu, Kong & Wang, "Max-MIG: an Information Theoretic Approach for Joint Learning from Crowds", '
    "ICLR 2019 (arXiv 1905.13436; code github.com/Newbeeer/Max-MIG)"
)


def mutual_information_gain(log_h: Tensor, log_g: Tensor, log_prior: Tensor) -> Tensor:
    """The empirical f-mutual-information gain with f = KL of one batch (a scalar to maximise).

    ``MIG = (1/B) sum_i (1 + log R_ii) - (1/(B (B-1))) sum_{i != j} R_ij`` with the reward
    ``R_ij = sum_c h_ic g_jc / p_c``; see the module docstring. ``log R_ii`` is a log-sum-exp (no
    ``log(0)``); the off-diagonal sum is ``sum_c (sum_i h_ic)(sum_j g_jc / p_c) - sum_i R_ii``,
    ``O(B K)``.

    Parameters
    ----------
    log_h : Tensor of shape (B, K)
        Log class probabilities of the data classifier ``h(x_i)``.
    log_g : Tensor of shape (B, K)
        Log aggregator outputs ``g(y_i)`` (row ``i`` aggregates item ``i``'s labels).
    log_prior : Tensor of shape (K,)
        ``log p``.

    Raises
    ------
    ValueError
        Fewer than 2 rows (no product pairs) or mismatched shapes.
    """
    if log_h.ndim != 2 or log_g.shape != log_h.shape or log_prior.shape != log_h.shape[1:]:
        raise ValueError(
            f"need log_h (B, K), log_g (B, K) and log_prior (K,), got {tuple(log_h.shape)}, "
            f"{tuple(log_g.shape)} and {tuple(log_prior.shape)}"
        )
    b = log_h.shape[0]
    if b < 2:
        raise ValueError(f"Max-MIG needs at least 2 items in a batch (it contrasts pairs of items), got {b}")
    log_ratio = log_g - log_prior  # log (g / p), (B, K)
    log_joint = torch.logsumexp(log_h + log_ratio, dim=1)  # log R_ii, (B,)
    total = (log_h.exp().sum(dim=0) * log_ratio.exp().sum(dim=0)).sum()  # sum over all (i, j)
    off_diagonal = total - log_joint.exp().sum()
    return (1.0 + log_joint).mean() - off_diagonal / (b * (b - 1))


class MaxMIGAggregator(nn.Module):
    """Max-MIG's crowds aggregator ``g`` as a crowd head (Cao, Xu, Kong & Wang, ICLR 2019).

    Holds one column-stochastic weight matrix per annotator, ``C_m = softmax(L_m)`` over the row
    index (``C_m[i, j] = P(m says i | true j)``; the paper's log-weights ``W_m = log C_m``), and a
    class prior ``p = softmax(pi)``. The aggregator of an item's observed labels is
    ``g(y_n) = softmax(log p + sum_{(m, z)} log C_m[z, :])`` (:meth:`aggregate`); the data-crowds
    forecaster is ``zeta_n = normalize(h(x_n) * g(y_n) / p)`` (:meth:`forecast`). Trained with
    :class:`MaxMIGLoss` (the f-MIG with f = KL between ``h(x)`` and ``g(y)``).

    The forward pass, used by held-out-label validation (``model.crowd_log_probs``), is the
    likelihood of an annotator's label under the same weights read as confusion matrices,
    ``log P(z | x, m) = log sum_j C_m[z, j] h(x)_j``: the probability the aggregator's model
    gives label ``z`` of a new item when the classifier is the truth. It is not trained directly
    (the objective is the MIG), so its value measures how well ``h`` and the ``C_m`` agree with
    labels not seen in training.

    Differences from the official code (github.com/Newbeeer/Max-MIG), which stores free
    log-weights ``W_m = log(T_m + 0.01)`` from majority-vote confusions ``T_m`` and keeps ``p``
    fixed at uniform: here the weights are normalised log-confusions (the paper's Bayes-optimal
    form, and a proper likelihood for validation); ``init="mv"`` starts them from majority-vote
    confusions as the official code does; ``learn_prior=False`` fixes ``p`` uniform as the official
    code does, True (the default) learns it with ``h`` and ``g`` as the paper states.

    Parameters
    ----------
    n_annotators : int
        ``M``.
    n_classes : int
        ``K``.
    init : {"identity", "uniform"} or array-like of shape (M, K, K), default="identity"
        Initial ``C_m``, as for :class:`~crowdlearn.nn.ConfusionMatrices` (logits ``scale * I``,
        zeros, or the log of given column-stochastic matrices, smoothed).
    scale : float, default=1.0
        Diagonal logit of ``init="identity"``.
    smoothing : float, default=DEFAULT_SMOOTHING (1e-2)
        Used with an array ``init``.
    learn_prior : bool, default=True
        Train ``p`` (initialised uniform); False keeps it uniform.
    sparse : bool or None, default=None
        The batch's ``U`` distinct annotators' ``L_m`` are gathered once; with ``sparse=True``
        their gradient is sparse and :meth:`param_groups` asks the trainer for a lazy Adam on
        them, which leaves absent annotators untouched; ``sparse=False``: dense gradients and Adam
        over all ``M``. None: :data:`crowdlearn.nn.confusion.SPARSE_BY_DEFAULT` (True).

    Attributes
    ----------
    weights : ConfusionMatrices
        ``weights.logits`` (M, K, K) are the ``L_m``.
    prior_logits : Parameter of shape (K,)
        ``pi`` (zeros at initialisation: ``p`` uniform); ``requires_grad`` is ``learn_prior``.
    """

    def __init__(
        self,
        n_annotators: int,
        n_classes: int,
        *,
        init: str | np.ndarray[Any, Any] | Tensor = "identity",
        scale: float = 1.0,
        smoothing: float = DEFAULT_SMOOTHING,
        learn_prior: bool = True,
        sparse: bool | None = None,
    ) -> None:
        super().__init__()
        self.weights = ConfusionMatrices(
            n_annotators, n_classes, init=init, scale=scale, smoothing=smoothing, sparse=_sparse.resolve_sparse(sparse)
        )
        self.n_annotators = self.weights.n_annotators
        self.n_classes = self.weights.n_classes
        self.learn_prior = bool(learn_prior)
        self.prior_logits = nn.Parameter(torch.zeros(self.n_classes), requires_grad=self.learn_prior)

    @property
    def sparse(self) -> bool:
        """Sparse gradients and lazy Adam for the ``L_m`` (``weights.sparse``)."""
        return self.weights.sparse

    @sparse.setter
    def sparse(self, value: bool) -> None:
        self.weights.sparse = bool(value)

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """Optimizer groups: the ``L_m`` (``"sparse": self.sparse``) and the prior (dense, when
        learnt), both at ``lr`` without weight decay, ``"base_lr": None``."""
        return _sparse.split_groups(self, [self.weights.logits], lr, self.sparse)

    def log_prior(self) -> Tensor:
        """``log p``, shape (K,)."""
        return torch.log_softmax(self.prior_logits, dim=0)

    def confusions(self) -> Tensor:
        """``C_m``, shape (M, K, K); columns sum to 1."""
        return self.weights.confusions()

    def label_log_weights(self, annotators: Tensor, labels: Tensor) -> Tensor:
        """``log C_{m_e}[z_e, :]`` of every observed label, shape (E, K).

        Only the batch's distinct annotators' column normalisers are computed:
        ``O(U K^2 + E K)``.

        Parameters
        ----------
        annotators, labels : Tensor of int64 of shape (E,)
        """
        if annotators.ndim != 1 or labels.shape != annotators.shape:
            raise ValueError(
                f"annotators and labels must be 1-d of the same length, got {tuple(annotators.shape)} and "
                f"{tuple(labels.shape)}"
            )
        uniq, inverse = torch.unique(annotators, return_inverse=True)
        log_c = torch.log_softmax(_sparse.gather(self.weights.logits, uniq, self.sparse), dim=1)  # (U, K, K)
        return log_c.reshape(-1, self.n_classes).index_select(0, inverse * self.n_classes + labels)  # log C_m[z, :]

    def aggregate(self, rows: Tensor, annotators: Tensor, labels: Tensor, n_rows: int) -> Tensor:
        """``log g(y_n)`` of every row, shape (n_rows, K), from its observed labels.

        A row without labels gets ``log p``.

        Parameters
        ----------
        rows, annotators, labels : Tensor of int64 of shape (E,)
            Row, annotator and class of each observed label.
        n_rows : int
            ``B``.
        """
        weights = self.label_log_weights(annotators, labels)
        summed = weights.new_zeros(n_rows, self.n_classes).index_add(0, rows, weights)
        return torch.log_softmax(summed + self.log_prior(), dim=1)

    def forecast(self, log_h: Tensor, rows: Tensor, annotators: Tensor, labels: Tensor) -> Tensor:
        """The data-crowds forecaster ``log zeta_n = log normalize(h(x_n) g(y_n) / p)``, shape (B, K).

        Parameters
        ----------
        log_h : Tensor of shape (B, K)
            ``log h(x)`` of the rows.
        rows, annotators, labels : Tensor of int64 of shape (E,)
        """
        log_g = self.aggregate(rows, annotators, labels, log_h.shape[0])
        return torch.log_softmax(log_h + log_g - self.log_prior(), dim=1)

    def forward(self, log_probs: Tensor, annotators: Tensor) -> Tensor:
        """``log P(z | x, m) = log sum_j C_m[z, j] h(x)_j`` for every observed pair, shape (E, K).

        Parameters
        ----------
        log_probs : Tensor of shape (E, K)
            ``log h(x)`` of the item of each observed pair.
        annotators : Tensor of int64 of shape (E,)
        """
        out: Tensor = self.weights(log_probs, annotators)  # the U distinct annotators' C_m, gathered once
        return out

    def extra_repr(self) -> str:
        return (
            f"n_annotators={self.n_annotators}, n_classes={self.n_classes}, learn_prior={self.learn_prior}, "
            f"sparse={self.sparse}"
        )


class MaxMIGLoss(RegularizedLoss):
    """``-MIG`` between the classifier ``h(x)`` and the aggregator ``g(y)`` over a batch (+ regularizers).

    See :func:`mutual_information_gain` and :class:`MaxMIGAggregator`. Called by the trainer with
    the whole batch (``takes_batch = True``): the labels are grouped by ``batch.rows`` into one
    aggregate per row, so a mixup view whose rows carry another item's labels pairs the mixed
    input with those labels.

    Parameters
    ----------
    regularizers : sequence of Regularizer, default=()
        Terms added with their weights (none by default).
    """

    takes_batch = True

    def __init__(self, *, regularizers: Sequence[Regularizer] = ()) -> None:
        super().__init__(regularizers=regularizers)

    def forward(
        self, model: CrowdModel, logits: Tensor, batch: Batch, representation: Tensor | None = None
    ) -> dict[str, Tensor]:
        """Loss parts of one batch.

        Parameters
        ----------
        model : CrowdModel
            Its head must be a :class:`MaxMIGAggregator`.
        logits : Tensor of shape (B, K)
            Classifier logits of the batch's rows.
        batch : Batch
            ``rows``, ``annotators``, ``labels`` (E,): every observed label of the rows.
        representation : Tensor of shape (B, H), optional
            Unused.

        Returns
        -------
        dict of str to Tensor
            ``"loss"`` (``-MIG`` plus the weighted terms), ``"mig"``, and ``"reg"`` plus every
            regularizer's term under its name when there are regularizers.
        """
        head = model.head
        if not isinstance(head, MaxMIGAggregator):
            raise TypeError(f"MaxMIGLoss needs a MaxMIGAggregator head, got {type(head).__name__}")
        if batch.labels.numel() == 0:
            raise ValueError("the batch has no observed labels; cannot compute the loss")
        log_h = logits.log_softmax(dim=1)
        log_g = head.aggregate(batch.rows, batch.annotators, batch.labels, logits.shape[0])
        mig = mutual_information_gain(log_h, log_g, head.log_prior())
        return self.add_regularizers(model, logits, {"loss": -mig, "mig": mig})
