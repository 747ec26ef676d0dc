"""Partial pooling of the annotators' confusions: the crowd's shared logits plus per-annotator deviations.

With many annotators and few labels each (CIFAR-10N: 747 workers, 4 labels each on a
3,000-image subset), every per-annotator confusion ``A_m`` is weakly determined by its own
labels, and an optimizer that steps an annotator's logits only when a batch holds its labels
moves a sparse annotator a few steps in a whole training. :class:`PooledConfusionMatrices`
writes each annotator's confusion logits as the crowd's shared ``S`` (K, K) plus its own
deviation ``D_m`` (K, K), ``A_m = softmax(S + D_m)`` over the rows, and :class:`ConfusionPooling`
adds the Gaussian prior of this hierarchical model on the deviations:

    (1/L) sum_e -log P(y_e | x_e, m_e)  +  (pool / L) sum_m ||D_m||_F^2,

``L`` the number of training labels. ``S`` is stepped by every batch (it learns from all the
labels); an annotator with ``n_m`` labels departs from it against a prior worth about ``pool``
labels, so a sparse annotator stays near the shared confusion and a prolific one follows its
own labels: the deep analogue of ``DawidSkene(shrinkage="pooled")``.

Observed pairs only: a minibatch's term is its labels' share of the prior, ``sum_{e in batch}
(pool / (E n_{m_e})) ||D_{m_e}||^2`` over its ``E`` labels (a mean over the labels, as the NLL;
over the batches of an epoch it sums to the prior term above), on the batch's ``U`` annotators:
``O(E + U K^2)`` per step, the deviations' gradient sparse as
:class:`~crowdlearn.nn.ConfusionMatrices`' logits' is. TraceReg's term is over the batch's labels (the
inherited :meth:`~crowdlearn.nn.ConfusionMatrices.batch_confusions`). GeoCrowdNet(W)'s ``W^T W``
over all annotators cannot be cached here, since ``S`` moves every annotator's confusion at every
step: with this head it is formed from all ``M`` confusions at every step, ``O(M K^3)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from crowdlearn.nn import functional as CF
from crowdlearn.nn.confusion import DEFAULT_SMOOTHING, ConfusionMatrices
from crowdlearn.nn.losses import Regularizer
from crowdlearn.nn.model import CrowdModel

__all__ = ["ConfusionPooling", "PooledConfusionMatrices"]


class PooledConfusionMatrices(ConfusionMatrices):
    """:class:`~crowdlearn.nn.ConfusionMatrices` as shared logits plus per-annotator deviations.

    ``A_m = softmax(S + D_m)`` (softmax over the row index: every column sums to 1); the same
    model and forward pass as its base, on the batch's annotators only. ``S`` (``shared``) is a
    dense parameter stepped by every batch, ``D`` (``logits``, the per-annotator rows) is sparse
    as the base's logits are. :meth:`pooling_penalty` is the batch's share of the Gaussian prior
    on the deviations (what :class:`ConfusionPooling` adds to the loss; see
    :mod:`crowdlearn.nn.heads.pooled`).

    Initialisation as the base's (``init``, ``scale``, ``smoothing``) gives the per-annotator
    logits ``P_m``; then ``S = (1/M) sum_m P_m`` and ``D_m = P_m - S`` (``init="identity"``:
    ``S = scale * I``, ``D = 0``), so the initial confusions are the base's.

    Parameters
    ----------
    n_annotators : int
        ``M``.
    n_classes : int
        ``K``.
    label_counts : array-like of shape (M,) or None, default=None
        ``n_m``, the number of training labels of each annotator (``Annotations.annotator_counts``
        of the training labels); None: all ones. An annotator without labels counts 1 (its
        deviation enters the prior only through a batch holding its labels). Not saved in the
        state dict (a rebuilt head gets them from its training labels again).
    init, scale, smoothing, sparse
        As :class:`~crowdlearn.nn.ConfusionMatrices`.

    Attributes
    ----------
    shared : Parameter of shape (K, K)
        ``S``.
    logits : Parameter of shape (M, K, K)
        The deviations ``D_m`` (the annotator's logits are ``S + D_m``).
    label_counts : Tensor of shape (M,), float32
        ``n_m`` (at least 1).
    """

    label_counts: Tensor

    def __init__(
        self,
        n_annotators: int,
        n_classes: int,
        *,
        label_counts: np.ndarray[Any, Any] | Tensor | None = None,
        init: str | np.ndarray[Any, Any] | Tensor = "identity",
        scale: float = 1.0,
        smoothing: float = DEFAULT_SMOOTHING,
        sparse: bool | None = None,
    ) -> None:
        super().__init__(n_annotators, n_classes, init="uniform", sparse=sparse)
        self.shared = nn.Parameter(torch.zeros(self.n_classes, self.n_classes))
        if label_counts is None:
            counts = torch.ones(self.n_annotators, dtype=torch.float64)
        else:
            counts = torch.as_tensor(np.asarray(label_counts) if not isinstance(label_counts, Tensor) else label_counts)
            counts = counts.to(torch.float64)
            if counts.shape != (self.n_annotators,):
                raise ValueError(f"label_counts must have shape ({self.n_annotators},), got {tuple(counts.shape)}")
            if not torch.isfinite(counts).all() or (counts < 0).any():
                raise ValueError("label_counts must be finite and non-negative")
        self.register_buffer("label_counts", counts.clamp_min(1.0).to(torch.float32), persistent=False)
        #: (the batch's deviations D_u (U, K, K), each one's labels in the batch / (E n_u) (U,))
        self._pool: tuple[Tensor, Tensor] | None = None
        self.reset_parameters(init=init, scale=scale, smoothing=smoothing)

    def reset_parameters(
        self,
        *,
        init: str | np.ndarray[Any, Any] | Tensor = "identity",
        scale: float = 1.0,
        smoothing: float = DEFAULT_SMOOTHING,
    ) -> None:
        """(Re)initialize ``S`` and ``D`` from the base's initial logits (see the class docstring)."""
        super().reset_parameters(init=init, scale=scale, smoothing=smoothing)  # the logits P_m
        shared = getattr(self, "shared", None)
        if shared is None:  # the base's constructor: S does not exist yet
            return
        with torch.no_grad():
            mean = self.logits.mean(dim=0)
            shared.copy_(mean)
            self.logits.sub_(mean)
        self._pool = None

    def annotator_logits(self) -> Tensor:
        """``S + D_m``, shape (M, K, K)."""
        return self.shared + self.logits

    def _rows(self, annotators: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The batch's distinct annotators (U,), each label's position among them (E,) and their
        deviations (U, K, K) (a sparse gradient unless every annotator is in the batch)."""
        touched, inverse = self._batch_annotators(annotators)
        dev = CF.gather_rows(self.logits, touched, sparse_grad=self._sparse_rows(touched), distinct=True)
        counts = torch.bincount(inverse, minlength=touched.numel()).to(torch.float32)
        weights = counts / (float(annotators.numel()) * self.label_counts.index_select(0, touched))
        self._pool = (dev, weights)
        return touched, inverse, dev

    def forward(self, log_probs: Tensor, annotators: Tensor) -> Tensor:
        """Log distribution of each observed annotator's label, ``log (A_{m_e} f(x_e))``, shape (E, K).

        Parameters
        ----------
        log_probs : Tensor of shape (E, K)
        annotators : Tensor of int64 of shape (E,)
        """
        touched, inverse, dev = self._rows(annotators)
        log_conf = CF.log_confusions(self.shared + dev)  # (U, K, K)
        self._touched, self._inverse = (touched, log_conf), inverse
        return CF.annotator_log_probs(log_probs, log_conf, inverse)

    def label_log_probs(self, log_probs: Tensor, annotators: Tensor, labels: Tensor) -> Tensor:
        """``log (A_{m_e} f(x_e))_{y_e}``, shape (E,): :meth:`forward` at the labels only.

        Parameters
        ----------
        log_probs : Tensor of shape (E, K)
        annotators, labels : Tensor of int64 of shape (E,)
        """
        self._check_labels(log_probs, annotators, labels)
        touched, inverse, dev = self._rows(annotators)
        rows = self.shared + dev  # (U, K, K): the batch's annotators' logits
        local = torch.arange(touched.numel(), device=touched.device)
        out, log_conf = CF.label_log_probs_of_touched(rows, log_probs, local, inverse, labels)
        self._touched, self._inverse = (touched, log_conf), inverse
        return out

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """Two groups at ``lr`` without weight decay: ``S`` (dense) and the deviations
        (``"sparse": self.sparse``, as the base's logits)."""
        groups = super().param_groups(lr)
        if not groups:
            return []
        dense = {**groups[0], "params": [self.shared], "sparse": False}
        return [dense, *groups]

    def volume_gram(self) -> Tensor:
        """``W^T W = sum_m A_m^T A_m`` over all ``M`` annotators, shape (K, K), float64, from
        every confusion (``S`` moves them all at every step: no cache), ``O(M K^3)``."""
        return CF.gram_sum(self.confusions().double())

    def pooling_penalty(self) -> Tensor:
        """The last batch's share of the prior: ``sum_u w_u ||D_u||_F^2`` over its ``U``
        annotators, ``w_u`` = (its labels in the batch) / (E n_u); scalar, float32. The
        gradient reaches the batch's deviations only."""
        if self._pool is None:
            raise RuntimeError("PooledConfusionMatrices: no forward pass yet; the batch's annotators are unknown")
        dev, weights = self._pool
        return (weights * dev.float().square().sum(dim=(1, 2))).sum()

    def invalidate_cache(self) -> None:
        """As the base's; also forgets the last batch's deviations."""
        super().invalidate_cache()
        self._pool = None

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_pool"] = None  # holds part of a graph
        return state


class ConfusionPooling(Regularizer):
    """Partial pooling of the confusions: ``pool * PooledConfusionMatrices.pooling_penalty()``.

    The Gaussian prior of :mod:`crowdlearn.nn.heads.pooled` on each annotator's deviation from
    the crowd's shared logits (a prior worth about ``pool`` labels); needs a
    :class:`PooledConfusionMatrices` head. Its weight is the method parameter ``pool``
    (``weight_name``), so a schedule of ``lam`` does not move it.

    Parameters
    ----------
    weight : float
        ``pool`` (>= 0).
    """

    name = "pool"
    weight_name = "pool"

    def __init__(self, weight: float = 1.0) -> None:
        if not (np.isfinite(weight) and weight >= 0):
            raise ValueError(f"the pooling weight must be finite and >= 0, got {weight!r}")
        super().__init__(weight)

    def __call__(self, model: CrowdModel, logits: Tensor) -> Tensor:
        get = getattr(model.head, "pooling_penalty", None)
        if not callable(get):
            raise TypeError(f"ConfusionPooling needs a PooledConfusionMatrices head, got {type(model.head).__name__}")
        out: Tensor = get()
        return out
