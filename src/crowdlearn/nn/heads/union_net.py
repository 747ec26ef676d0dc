"""Union-Net A and B (Wei, Xie, Feng, Han & An, IEEE TNNLS 2022): all labels of an item as one union.

Wei, Xie, Feng, Han & An, "Deep Learning From Multiple Noisy Annotators as A Union", IEEE
Transactions on Neural Networks and Learning Systems 34(12), 2023 (online 2022),
doi:10.1109/TNNLS.2022.3168696. No official code is public; the defaults follow the
implementation of Herde et al. (github.com/ies-research/multi-annotator-machine-learning,
``maml/classifiers/_union_net.py``, which cites the paper's equations).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from crowdlearn.nn import functional as CF
from crowdlearn.nn.confusion import DEFAULT_SMOOTHING
from crowdlearn.nn.heads import _sparse
from crowdlearn.nn.losses import RegularizedLoss, Regularizer
from crowdlearn.nn.model import CrowdModel

if TYPE_CHECKING:  # pragma: no cover
    from crowdlearn.train.batching import Batch

__all__ = ["UNION_NET_CITATION", "UNION_NET_VARIANTS", "UnionLoss", "UnionNet"]

UNION_NET_CITATION = "Wei, Xie, Feng, Han & An, IEEE TNNLS 2022"
#: ``"a"``: a linear layer and a softmax over the union; ``"b"``: a column-normalised transition
UNION_NET_VARIANTS: tuple[str, ...] = ("a", "b")
#: a column's cached masses are rebuilt when a refreshed one exceeds ``exp(this)`` times the shift
_REBUILD_LOG_RANGE = 300.0


@dataclass
class _MassCache:
    """Variant B's per-annotator column masses and their totals, float64, relative to a shift.

    ``mass[m, j] = exp(logsumexp_i T[m, i, j] - shift[j])``; ``total[j] = sum_m mass[m, j]``, so
    the column normaliser is ``log Z_j = shift[j] + log total[j]``.
    """

    mass: Tensor  # (M, K)
    total: Tensor  # (K,)
    shift: Tensor  # (K,)
    version: int  # the transition's version counter when last synchronised
    pending: Tensor  # (P,) rows a gradient may have reached since the last optimizer step


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

    Cost: the forward gathers the batch's ``U`` distinct annotators once (``O(E K^2 + U K^2)``).
    The union's normaliser is, by the model's definition, a sum over all ``M`` annotators. With
    ``sparse=True`` (the default) the ``U`` rows of ``T`` get a sparse gradient, stepped by a lazy
    Adam (:meth:`param_groups`) that leaves absent annotators untouched, and:

    - B: the column normaliser ``Z_j = sum_{m, i} exp(T[m, i, j])`` comes from a cache of every
      annotator's column masses (float64), refreshed for the rows a step may have changed
      (``O(U K^2)`` per step): its value is exact; its gradient reaches the batch's annotators
      only (the exact gradient would lower every absent annotator's mass too). Exact in value
      whenever the absent annotators' rows do not change between calls (a lazy optimizer); call
      :meth:`invalidate_cache` after editing ``transition`` in place outside an optimizer step.
    - A: the per-item softmax over the union is taken over the batch's ``U`` annotators' blocks
      and scaled by ``M / U`` (the blocks of the batch's annotators standing for all ``M``):
      ``log Z(x) ~= log(M / U) + logsumexp_{m in batch, i} (T p)_{m,i}``, ``O(B U K^2)``. An
      approximation, exact when the batch holds every annotator; ``nll`` (the per-annotator
      renormalised blocks) does not depend on it.

    ``sparse=False``: dense gradients and Adam over all ``M``, and the normalisers over all
    ``M`` at every step (B: ``O(M K^2)`` in the forward and the loss; A: ``O(B M K^2)``, the
    (B, M K) union logits, in the loss).

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
    sparse : bool or None, default=None
        Sparse gradients, lazy Adam and the normalisers above; None:
        :data:`crowdlearn.nn.confusion.SPARSE_BY_DEFAULT` (True).

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
        sparse: bool | None = None,
    ) -> None:
        super().__init__()
        if n_annotators < 1 or n_classes < 2:
            raise ValueError(f"need n_annotators >= 1 and n_classes >= 2, got {n_annotators} and {n_classes}")
        if variant not in UNION_NET_VARIANTS:
            raise ValueError(f"variant must be 'a' or 'b', got {variant!r}")
        self.n_annotators = int(n_annotators)
        self.n_classes = int(n_classes)
        self.variant = str(variant)
        self._cache: _MassCache | None = None
        self._sparse = _sparse.resolve_sparse(sparse)
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
        self.invalidate_cache()
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

    @property
    def sparse(self) -> bool:
        """Sparse gradients, lazy Adam and the normalisers of the class docstring."""
        return self._sparse

    @sparse.setter
    def sparse(self, value: bool) -> None:
        self._sparse = bool(value)
        self.invalidate_cache()  # a dense step changes every row: the masses are rebuilt when sparse again

    def invalidate_cache(self) -> None:
        """Forget variant B's cached column masses (rebuilt, ``O(M K^2)``, at the next call).

        Called on (re)initialisation and when a state dict is loaded; call it after editing
        ``transition`` in place outside an optimizer step.
        """
        self._cache = None

    def _rebuild(self, touched: Tensor) -> _MassCache:
        with torch.no_grad():
            t = self.transition.detach().double()
            log_mass = torch.logsumexp(t, dim=1)  # (M, K)
            shift = log_mass.max(dim=0).values
            mass = (log_mass - shift).exp()
            cache = _MassCache(mass, mass.sum(dim=0), shift, self.transition._version, touched)
        self._cache = cache
        return cache

    def _synced_masses(self, touched: Tensor) -> _MassCache:
        """The cache, exact for the current ``transition``, with ``touched`` recorded as pending.

        Rows change only at optimizer steps (the version counter of ``transition`` moves) and only
        those a gradient reached since the previous step: the rows of the calls since then
        (``pending``). A call after a step refreshes those rows (``O(P K^2)``) and starts a new
        pending set; a call before it (another view of the same step, a validation pass) adds its
        rows to the set.
        """
        cache = self._cache
        t = self.transition
        if cache is None or cache.mass.device != t.device:
            return self._rebuild(touched)
        with torch.no_grad():
            if t._version == cache.version:
                cache.pending = torch.unique(torch.cat([cache.pending, touched]))
                return cache
            ids = cache.pending
            new = torch.logsumexp(t.detach().index_select(0, ids).double(), dim=1) - cache.shift  # (P, K)
            if bool((new > _REBUILD_LOG_RANGE).any()):
                return self._rebuild(touched)
            new = new.exp()
            cache.total += new.sum(dim=0) - cache.mass.index_select(0, ids).sum(dim=0)
            cache.mass.index_copy_(0, ids, new)
            if bool((cache.total < math.exp(-_REBUILD_LOG_RANGE)).any()):
                return self._rebuild(touched)
            cache.version = t._version
            cache.pending = touched
        return cache

    def _touched_log_transition(self, annotators: Tensor) -> tuple[Tensor, Tensor]:
        """Variant B's ``log Tn`` of the batch's distinct annotators (U, K, K) and each pair's row (E,).

        Sparse: the rows gathered with a sparse gradient and the normaliser from the cache
        (exact value, gradient through these rows); dense: :meth:`log_transition` over all ``M``.
        """
        if annotators.ndim != 1:
            raise ValueError(f"annotators must be 1-d, got shape {tuple(annotators.shape)}")
        touched, inverse = torch.unique(annotators, return_inverse=True)
        if not self.sparse:
            return self.log_transition().index_select(0, touched), inverse
        rows = _sparse.gather(self.transition, touched, True)  # (U, K, K)
        cache = self._synced_masses(touched)
        part = (torch.logsumexp(rows.double(), dim=1) - cache.shift).exp().sum(dim=0)  # (K,)
        log_norm = cache.shift + torch.log(cache.total + (part - part.detach()))  # value: all M; gradient: U
        return rows - log_norm.to(rows.dtype), inverse

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """The optimizer group of ``transition``: ``lr``, no weight decay, ``"sparse": self.sparse``,
        ``"base_lr": None`` (the trainer's schedule follows its ``confusion_lr``)."""
        return _sparse.split_groups(self, [self.transition], lr, self.sparse)

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        self.invalidate_cache()
        super()._load_from_state_dict(*args, **kwargs)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_cache"] = None
        return state

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
            log_tn, inverse = self._touched_log_transition(annotators)
            return CF.annotator_log_probs(log_probs.index_select(0, rows), log_tn, inverse)
        probs = log_probs.exp()  # (B, K)
        if not self.sparse:
            union_logits = probs @ self.transition.flatten(0, 1).T  # (B, M K): the union's softmax is over all M K
            block = torch.einsum("eij,ej->ei", self.transition.index_select(0, annotators), probs.index_select(0, rows))
            return block - torch.logsumexp(union_logits, dim=1).index_select(0, rows).unsqueeze(1)
        touched, inverse = torch.unique(annotators, return_inverse=True)
        t = _sparse.gather(self.transition, touched, True)  # (U, K, K)
        # the union over the batch's U annotators' blocks, standing for all M (see the class docstring)
        log_norm = torch.logsumexp(probs @ t.flatten(0, 1).T, dim=1) + math.log(self.n_annotators / touched.numel())
        block = torch.einsum("eij,ej->ei", t.index_select(0, inverse), probs.index_select(0, rows))
        return block - log_norm.index_select(0, rows).unsqueeze(1)

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
            log_tn, inverse = self._touched_log_transition(annotators)
            union = CF.annotator_log_probs(log_probs, log_tn, inverse)
        else:
            touched, inverse = torch.unique(annotators, return_inverse=True)
            t = _sparse.gather(self.transition, touched, self.sparse).index_select(0, inverse)
            union = torch.einsum("eij,ej->ei", t, log_probs.exp())
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
        return (
            f"n_annotators={self.n_annotators}, n_classes={self.n_classes}, variant={self.variant!r}, "
            f"sparse={self.sparse}"
        )


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
