"""The annotators' confusion matrices as a small torch module (the "crowd head")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from crowdlearn.nn import functional as CF

__all__ = ["DEFAULT_SMOOTHING", "SPARSE_BY_DEFAULT", "ConfusionMatrices", "IdentityHead"]

#: Smoothing applied when initializing from given matrices: ``A <- (1 - s) A + s / K`` so that
#: exact zeros (e.g. a Dawid-Skene estimate) become finite logits ``log A``.
DEFAULT_SMOOTHING = 1e-2
#: What ``sparse=None`` means for :class:`ConfusionMatrices` and :class:`~crowdlearn.nn.CrowdLayer`
#: (read when a head is built): sparse gradients and lazy Adam for the annotators' parameters.
#: Set it to False before building the heads (e.g. before ``CrowdClassifier.fit``) for the dense
#: formulation; docs/training.md and docs/benchmarks.md ("Training cost") compare the two.
SPARSE_BY_DEFAULT = True


@dataclass
class _ConfusionCache:
    """Every annotator's confusions as last computed and their Gram sum (float64)."""

    conf: Tensor  # (M, K, K)
    gram: Tensor  # (K, K): sum_m conf_m^T conf_m
    pending: Tensor | None = None  # annotators an optimizer step may have changed since


class _WithGramGradient(torch.autograd.Function):
    """``gram`` (K, K) as the value and the gradient of ``sum_u A_u^T A_u`` toward ``A`` (U, K, K):
    ``dA_u = A_u (G + G^T)`` (float64, one product; the cached value needs no forward product)."""

    @staticmethod
    def forward(ctx: Any, conf: Tensor, gram: Tensor) -> Tensor:
        ctx.save_for_backward(conf)
        return gram.clone()

    @staticmethod
    @torch.autograd.function.once_differentiable  # type: ignore[misc]
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        (conf,) = ctx.saved_tensors
        a = conf.double()
        k = a.shape[-1]
        g_a = (a.reshape(-1, k) @ (grad + grad.transpose(0, 1))).view_as(a)
        return g_a.to(conf.dtype), None


class ConfusionMatrices(nn.Module):
    """``M`` column-stochastic ``K x K`` confusion matrices, one per annotator.

    ``A_m = softmax(P_m)`` over the row index, so every column sums to 1 by construction and
    ``A_m[i, j] = P(annotator m says i | true class j)``. The forward pass works on the observed
    (item, annotator) pairs only: it takes the logits of the batch's ``U`` distinct annotators,
    softmaxes those and indexes them per label, ``O(E K^2 + U K^2)`` for ``E`` pairs, whatever
    ``M``.

    With ``sparse=True`` (the default, :data:`SPARSE_BY_DEFAULT`) the gradient of the logits is a
    sparse tensor holding the ``U`` rows only, and :meth:`param_groups` asks the
    :class:`~crowdlearn.train.Trainer` for :class:`~crowdlearn.train.optim.LazyAdam` (Adam's
    update on the rows of the gradient only: the moments and the logits of annotators absent
    from a batch are not touched by its step). A batch holding every annotator gives a dense
    gradient (the same step, without index operations). The training loss
    (:meth:`label_log_probs`) is one autograd node with a hand-written backward
    (:func:`crowdlearn.nn.functional.label_log_probs_of_touched`). A regularizer over all annotators
    (GeoCrowdNet(W)'s ``W^T W``) then reads a cached sum whose value is exact and whose gradient
    reaches the batch's annotators only (:meth:`volume_gram`);
    TraceReg's term is over the batch's annotators on either path (:meth:`batch_confusions`).
    ``sparse=False`` gives dense gradients, dense Adam (which moves every annotator at every step
    through its momentum) and GeoCrowdNet(W)'s term over all ``M`` annotators at every step,
    ``O(M K^2)``: the formulation before the sparse path.

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
    sparse : bool or None, default=None
        Sparse gradients, lazy Adam and cached regularizer sums (see above); False: dense;
        None: :data:`SPARSE_BY_DEFAULT` (True).

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
        sparse: bool | None = None,
    ) -> None:
        super().__init__()
        if n_annotators < 1 or n_classes < 2:
            raise ValueError(f"need n_annotators >= 1 and n_classes >= 2, got {n_annotators} and {n_classes}")
        self.n_annotators = int(n_annotators)
        self.n_classes = int(n_classes)
        self.sparse = bool(SPARSE_BY_DEFAULT if sparse is None else sparse)
        self.logits = nn.Parameter(torch.empty(self.n_annotators, self.n_classes, self.n_classes))
        #: (distinct annotators (U,), their log confusions (U, K, K)) of the last forward
        self._touched: tuple[Tensor, Tensor] | None = None
        #: each label's position in ``_touched[0]`` (E,), of the last forward
        self._inverse: Tensor | None = None
        #: (log A, A) of the touched annotators when the label likelihood formed ``A`` (big batches)
        self._conf: tuple[Tensor, Tensor] | None = None
        self._cache: _ConfusionCache | None = None
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
        self.invalidate_cache()
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

    def annotator_logits(self) -> Tensor:
        """Every annotator's confusion logits, shape (M, K, K): ``logits`` (a subclass may
        compose them from other parameters)."""
        return self.logits

    def log_confusions(self) -> Tensor:
        """``log A``, shape (M, K, K)."""
        return CF.log_confusions(self.annotator_logits())

    def confusions(self) -> Tensor:
        """``A``, shape (M, K, K); columns sum to 1."""
        return torch.softmax(self.annotator_logits(), dim=1)

    def forward(self, log_probs: Tensor, annotators: Tensor) -> Tensor:
        """Log distribution of each observed annotator's label.

        Only the ``U`` distinct annotators of ``annotators`` are softmaxed (``O(E K^2 + U K^2)``);
        the values are those of the dense formulation ``log_confusions()[annotators]``.

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
        log_conf, inverse = self._gather(annotators)
        return CF.annotator_log_probs(log_probs, log_conf, inverse)

    def label_log_probs(self, log_probs: Tensor, annotators: Tensor, labels: Tensor) -> Tensor:
        """``log (A_{m_e} f(x_e))_{y_e}``: :meth:`forward` at the labels only, ``O(E K + U K^2)``.

        Parameters
        ----------
        log_probs : Tensor of shape (E, K)
        annotators, labels : Tensor of int64 of shape (E,)

        Returns
        -------
        Tensor of shape (E,)
        """
        self._check_labels(log_probs, annotators, labels)
        touched, inverse = self._batch_annotators(annotators)
        out, log_conf, conf = CF.label_log_probs_and_confusions(
            self.logits, log_probs, touched, inverse, labels, sparse_grad=self._sparse_rows(touched)
        )  # (E,), (U, K, K), (U, K, K) or None
        self._touched, self._inverse = (touched, log_conf), inverse
        self._conf = None if conf is None else (log_conf, conf)
        return out

    @staticmethod
    def _check_labels(log_probs: Tensor, annotators: Tensor, labels: Tensor) -> None:
        """ValueError unless ``log_probs`` is (E, K) and ``annotators`` and ``labels`` are (E,)."""
        if labels.shape != annotators.shape or log_probs.shape[:1] != annotators.shape:
            raise ValueError(
                f"log_probs (E, K), annotators (E,) and labels (E,) must agree, got {tuple(log_probs.shape)}, "
                f"{tuple(annotators.shape)} and {tuple(labels.shape)}"
            )

    @staticmethod
    def _batch_annotators(annotators: Tensor) -> tuple[Tensor, Tensor]:
        """The batch's distinct annotators (U,), sorted, and each label's position among them (E,)."""
        if annotators.ndim != 1:
            raise ValueError(f"annotators must be 1-d, got shape {tuple(annotators.shape)}")
        return CF.unique_annotators(annotators)

    def _sparse_rows(self, touched: Tensor) -> bool:
        """Whether the gradient of the batch's rows ``touched`` (U,) is sparse in the training loss.

        A batch holding every annotator gets a dense gradient, which the lazy optimizer steps as
        Adam (the same update as the sparse one with every row, without the index operations).
        """
        return (
            self.sparse
            and torch.is_grad_enabled()
            and self.logits.requires_grad
            and touched.numel() < self.n_annotators
        )

    def _gather(self, annotators: Tensor) -> tuple[Tensor, Tensor]:
        """Log confusions of the distinct annotators (U, K, K) and each label's row among them (E,)."""
        touched, inverse = self._batch_annotators(annotators)
        sparse = self.sparse and torch.is_grad_enabled() and self.logits.requires_grad
        log_conf = CF.log_confusions(
            CF.gather_rows(self.logits, touched, sparse_grad=sparse, distinct=True)
        )  # (U, K, K)
        self._touched, self._inverse = (touched, log_conf), inverse
        return log_conf, inverse

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """The optimizer group of the logits: ``lr``, no weight decay, ``"sparse": self.sparse``,
        ``"base_lr": None`` (the trainer's schedule follows its ``confusion_lr``).

        The :class:`~crowdlearn.train.Trainer` steps a group with ``"sparse": True`` with
        :class:`~crowdlearn.train.optim.LazyAdam` (which has no weight decay; the logits are not
        decayed either way, decay would pull them toward uniform columns).
        """
        if not self.logits.requires_grad:  # frozen (e.g. the two-stage methods' fixed confusions)
            return []
        return [{"params": [self.logits], "lr": float(lr), "weight_decay": 0.0, "sparse": self.sparse, "base_lr": None}]

    def invalidate_cache(self) -> None:
        """Forget the cached confusions behind :meth:`volume_gram`.

        Called on (re)initialization and when a state dict is loaded; call it after editing
        ``logits`` in place outside an optimizer step.
        """
        self._cache = None
        self._touched = self._inverse = None
        self._conf = None

    def forget_sums(self) -> None:
        """Drop the cached sum only (the next :meth:`volume_gram` rebuilds it, ``O(M K^3)``): what a
        step that moves every annotator needs."""
        self._cache = None

    def _synced_cache(self) -> _ConfusionCache:
        """The cache, rebuilt (``O(M K^3)``) when missing or refreshed for the annotators the last
        optimizer step may have changed (those of the last call; ``O(U K^3)``)."""
        cache = self._cache
        with torch.no_grad():
            if cache is None or cache.conf.device != self.logits.device:
                conf = CF.column_softmax(self.logits.detach()).double()
                cache = self._cache = _ConfusionCache(conf, CF.gram_sum(conf))
            elif cache.pending is not None:
                ids = cache.pending
                new = CF.column_softmax(self.logits.detach().index_select(0, ids)).double()
                old = cache.conf.index_select(0, ids)
                # sum n^T n - o^T o over the rows, as the symmetric part of one product (n - o)^T (n + o)
                cross = (new - old).reshape(-1, self.n_classes).transpose(0, 1) @ (new + old).reshape(
                    -1, self.n_classes
                )
                cache.gram += 0.5 * (cross + cross.transpose(0, 1))
                cache.conf.index_copy_(0, ids, new)
            cache.pending = None
        return cache

    def _last_touched(self) -> tuple[Tensor, Tensor]:
        if self._touched is None:
            raise RuntimeError("ConfusionMatrices: no forward pass yet; the batch's annotators are unknown")
        return self._touched

    def _touched_confusions(self, log_conf: Tensor) -> Tensor:
        """``A = exp(log_conf)`` (U, K, K) of the last forward, differentiable: the one its label
        likelihood formed when it did (the same forward: ``log_conf`` is its output), else ``exp``."""
        known: tuple[Tensor, Tensor] | None = getattr(self, "_conf", None)  # absent on a head pickled before it
        if known is not None and known[0] is log_conf:
            return known[1]
        return log_conf.exp()

    def volume_gram(self) -> Tensor:
        """``W^T W = sum_m A_m^T A_m`` over all ``M`` annotators, shape (K, K), float64.

        The value is exact: every annotator's ``A_m`` is cached and refreshed for those a
        sparse (lazy) optimizer step may have changed, the annotators of the previous call. The
        gradient flows through the annotators of the last forward only (those a lazy optimizer
        updates); ``O(U K^3)`` per call instead of ``O(M K^3)``. Exact only when the logits of
        absent annotators do not change between calls (``sparse=True`` with a lazy optimizer);
        the dense formulation is :func:`crowdlearn.nn.functional.logdet_volume_w` of
        :meth:`confusions`.
        """
        touched, log_conf = self._last_touched()
        cache = self._synced_cache()
        cache.pending = touched
        out: Tensor = _WithGramGradient.apply(self._touched_confusions(log_conf), cache.gram)  # type: ignore[no-untyped-call]
        return out

    def batch_confusions(self) -> tuple[Tensor, Tensor]:
        """The last forward's ``U`` distinct annotators' confusions and their shares of its labels.

        What :class:`~crowdlearn.nn.TraceRegularizer` weighs each annotator's trace by: ``O(U K^2)``,
        whatever ``M``; the gradient reaches those annotators' logits only (sparse with
        ``sparse=True``, through the forward's autograd node).

        Returns
        -------
        confusions : Tensor of shape (U, K, K)
            ``A_u`` of the forward's distinct annotators (sorted by index), differentiable.
        shares : Tensor of shape (U,)
            ``n_u / E``: annotator ``u``'s number of the forward's ``E`` labels over ``E``
            (sums to 1; no gradient).
        """
        touched, log_conf = self._last_touched()
        assert self._inverse is not None
        counts = torch.bincount(self._inverse, minlength=touched.numel())
        return self._touched_confusions(log_conf), counts.to(log_conf.dtype) / self._inverse.numel()

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        self.invalidate_cache()
        super()._load_from_state_dict(*args, **kwargs)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_touched"] = state["_inverse"] = state["_conf"] = None  # holds part of a graph; not copied
        state["_cache"] = None
        return state

    def extra_repr(self) -> str:
        return f"n_annotators={self.n_annotators}, n_classes={self.n_classes}, sparse={self.sparse}"


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
