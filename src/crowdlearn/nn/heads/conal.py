"""CoNAL (Chu, Ma & Wang, AAAI 2021): a common and per-annotator confusions, mixed per (item, annotator).

Chu, Ma & Wang, "Learning from Crowds by Modeling Common Confusions", AAAI 2021 (arXiv 2012.13052);
official code https://github.com/zdchu/CoNAL (``conal.py``, ``workflow.py``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from crowdlearn.nn.heads import _sparse
from crowdlearn.nn.losses import Regularizer
from crowdlearn.nn.model import CrowdModel

__all__ = ["CONAL_CITATION", "CoNAL", "CommonDistance"]

CONAL_CITATION = "Chu, Ma & Wang, AAAI 2021"


class CoNAL(nn.Module):
    """Common noise adaptation layers: a shared and an individual confusion per observed label.

    With ``p = f(x)`` the classifier's probabilities (K,) of an item, ``h(x)`` (H,) its
    representation from the backbone and ``m`` the annotator of the label, the head computes::

        v(x) = normalize(V h(x) + b_v)                 instance embedding, (d,)
        u_m  = normalize(U[m] + b_u)                   annotator embedding, (d,)
        w(x, m) = sigmoid(v(x) . u_m)                  the weight of the common confusion, in (0.27, 0.73)
        P(m says i | x) = softmax_i( w (W_c p)_i + (1 - w) (W_m p)_i )

    ``W_c`` (K, K) is shared by every annotator (the confusion all annotators make on hard
    items), ``W_m`` (K, K) is annotator ``m``'s own; both act on the probabilities and a softmax
    follows, as in the official code (the kernels are not constrained to be stochastic; the
    cross-entropy takes the mixture as logits). ``normalize`` is the L2 normalisation
    (``torch.nn.functional.normalize``, as the official code). The paper's regularizer
    ``-lam * sum_m ||W_m - W_c||_F`` is :class:`CommonDistance`.

    The per-pair confusion (:meth:`pair_confusions`) feeds one-hot probability vectors
    ``p = e_j`` through the head: ``C(x, m)[:, j] = softmax(w W_c[:, j] + (1 - w) W_m[:, j])``,
    ``P(m says i | true j, x)``; columns sum to 1. Only the observed pairs are touched: the
    batch's ``U`` distinct annotators' ``W_m`` and ``U[m]`` are gathered once
    (``O(E (K^2 + H d) + U (K^2 + d))``). With ``sparse=True`` (the default) their gradients are
    sparse (those ``U`` rows) and :meth:`param_groups` asks the trainer for a lazy Adam on them,
    which leaves absent annotators untouched, and :class:`CommonDistance` sums over the batch's
    annotators (see there); ``sparse=False``: dense gradients and Adam over all ``M``
    annotators, the distance over all ``M`` at every step (``O(M K^2)``).

    Defaults from the official code: kernels initialised to ``2 I``, embeddings of size ``d = 20``
    (its LabelMe model; its Music model uses 80), the annotator embedding a linear map of the
    one-hot annotator vector (here a table ``U`` (M, d) plus a bias ``b_u``, with ``nn.Linear``'s
    initialisation). Two differences, both forced by the head contract: the official ``V`` is two
    linear layers (without activation between them, so one linear map) on the flattened raw
    input, while here ``V`` is one linear map of the backbone's representation ``h(x)`` (as in the
    reimplementation of Herde et al.'s multi-annotator-machine-learning, whose benchmark numbers
    the issue compares with; the gradient of ``w`` reaches the backbone); and the official kernel
    is stored transposed (``p^T K``, rows the true class), the same model.

    Parameters
    ----------
    n_annotators : int
        ``M``.
    n_classes : int
        ``K``.
    rep_dim : int
        ``H``, the width of the backbone's representation (the built-in MLP: 128).
    emb_dim : int, default=20
        ``d``.
    init_diag : float, default=2.0
        ``W_c`` and every ``W_m`` start as ``init_diag * I``.
    sparse : bool or None, default=None
        Sparse gradients and lazy Adam for ``individual`` and ``annotator_emb``, the distance over
        the batch's annotators (see above); None: :data:`crowdlearn.nn.confusion.SPARSE_BY_DEFAULT`.

    Attributes
    ----------
    common : Parameter of shape (K, K)
        ``W_c``; ``[i, j]`` acts on true class ``j`` for label ``i``.
    individual : Parameter of shape (M, K, K)
        ``W_m``, oriented like ``common``.
    instance_proj : nn.Linear of H -> d
        ``V`` and ``b_v``.
    annotator_emb : Parameter of shape (M, d)
        ``U``.
    annotator_bias : Parameter of shape (d,)
        ``b_u``.
    """

    #: the head is called with the item representation (CrowdModel reads it)
    needs_representation = True

    def __init__(
        self,
        n_annotators: int,
        n_classes: int,
        *,
        rep_dim: int,
        emb_dim: int = 20,
        init_diag: float = 2.0,
        sparse: bool | None = None,
    ) -> None:
        super().__init__()
        if n_annotators < 1 or n_classes < 2:
            raise ValueError(f"need n_annotators >= 1 and n_classes >= 2, got {n_annotators} and {n_classes}")
        if rep_dim < 1 or emb_dim < 1:
            raise ValueError(f"need rep_dim >= 1 and emb_dim >= 1, got {rep_dim} and {emb_dim}")
        self.n_annotators = int(n_annotators)
        self.n_classes = int(n_classes)
        self.rep_dim = int(rep_dim)
        self.emb_dim = int(emb_dim)
        self.init_diag = float(init_diag)
        m, k, d = self.n_annotators, self.n_classes, self.emb_dim
        self.common = nn.Parameter(torch.empty(k, k))
        self.individual = nn.Parameter(torch.empty(m, k, k))
        self.instance_proj = nn.Linear(self.rep_dim, d)
        self.annotator_emb = nn.Parameter(torch.empty(m, d))
        self.annotator_bias = nn.Parameter(torch.empty(d))
        self.sparse = _sparse.resolve_sparse(sparse)
        #: (distinct annotators (U,), their W_m (U, K, K)) of the last forward
        self._touched: tuple[Tensor, Tensor] | None = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Kernels ``init_diag * I``; the embeddings as ``nn.Linear`` (uniform in ``+-1/sqrt(fan_in)``)."""
        k = self.n_classes
        with torch.no_grad():
            self.common.copy_(self.init_diag * torch.eye(k))
            self.individual.copy_(self.init_diag * torch.eye(k).expand_as(self.individual))
            self.instance_proj.reset_parameters()
            bound = 1.0 / math.sqrt(self.n_annotators)  # nn.Linear(M, d) on one-hot annotator vectors
            self.annotator_emb.uniform_(-bound, bound)
            self.annotator_bias.uniform_(-bound, bound)

    def _check(self, annotators: Tensor, representation: Tensor | None) -> Tensor:
        if representation is None:
            raise ValueError("CoNAL needs the item representation (called with representation=None)")
        if representation.ndim != 2 or representation.shape != (annotators.shape[0], self.rep_dim):
            raise ValueError(
                f"CoNAL: the item representation has shape {tuple(representation.shape)}, but the head was built "
                f"for ({annotators.shape[0]}, rep_dim={self.rep_dim}) (the estimator sizes it from the backbone's "
                "forward_features: HeadContext.representation_dim)"
            )
        return representation

    def common_weight(self, annotators: Tensor, representation: Tensor) -> Tensor:
        """``w(x_e, m_e)``, the weight of the common confusion of each pair, shape (E,).

        Parameters
        ----------
        annotators : Tensor of int64 of shape (E,)
        representation : Tensor of shape (E, H)
            ``h(x_e)`` of each pair's item.
        """
        rep = self._check(annotators, representation)
        touched, inverse = torch.unique(annotators, return_inverse=True)
        return self._common_weight(rep, _sparse.gather(self.annotator_emb, touched, self.sparse), inverse)

    def _common_weight(self, rep: Tensor, emb: Tensor, inverse: Tensor) -> Tensor:
        """``w`` (E,) from the representation (E, H), the distinct annotators' ``U[m]`` (U, d) and each pair's row."""
        v = F.normalize(self.instance_proj(rep), dim=1)
        u = F.normalize(emb + self.annotator_bias, dim=1).index_select(0, inverse)
        return torch.sigmoid((v * u).sum(dim=1))

    def mixed_kernels(self, annotators: Tensor, representation: Tensor) -> Tensor:
        """``w W_c + (1 - w) W_m`` of each pair, shape (E, K, K).

        Gathers the ``U`` distinct annotators' ``W_m`` and ``U[m]`` once (sparse gradients with
        ``sparse=True``) and remembers them for :class:`CommonDistance`.
        """
        rep = self._check(annotators, representation)
        if annotators.ndim != 1:
            raise ValueError(f"annotators must be 1-d, got shape {tuple(annotators.shape)}")
        touched, inverse = torch.unique(annotators, return_inverse=True)
        kernels = _sparse.gather(self.individual, touched, self.sparse)  # (U, K, K)
        self._touched = (touched, kernels)
        w = self._common_weight(rep, _sparse.gather(self.annotator_emb, touched, self.sparse), inverse)[:, None, None]
        return w * self.common + (1.0 - w) * kernels.index_select(0, inverse)

    def forward(
        self, log_probs: Tensor, annotators: Tensor, *, rows: Tensor | None = None, representation: Tensor | None = None
    ) -> Tensor:
        """Log distribution of each observed annotator's label.

        Parameters
        ----------
        log_probs : Tensor of shape (E, K)
            ``log f(x)`` of the item of each observed pair.
        annotators : Tensor of int64 of shape (E,)
        rows : Tensor of int64 of shape (E,), optional
            The pairs' rows in the batch (unused: the representation is already per pair).
        representation : Tensor of shape (E, H)
            ``h(x)`` of the item of each observed pair (required).

        Returns
        -------
        Tensor of shape (E, K)
            ``log softmax(w W_c p + (1 - w) W_m p)`` with ``p = exp(log_probs)``.
        """
        kernels = self.mixed_kernels(annotators, self._check(annotators, representation))  # (E, K, K)
        return torch.log_softmax(torch.einsum("eij,ej->ei", kernels, log_probs.exp()), dim=1)

    def pair_confusions(self, annotators: Tensor, representation: Tensor | None) -> Tensor:
        """Confusion of each pair, ``[e, i, j] = P(m_e says i | true j, x_e)``, shape (E, K, K).

        Columns sum to 1: column ``j`` is the head's label distribution for ``p = e_j``.

        Parameters
        ----------
        annotators : Tensor of int64 of shape (E,)
        representation : Tensor of shape (E, H)
        """
        rep = self._check(annotators, representation)
        return torch.softmax(self.mixed_kernels(annotators, rep), dim=1)

    def common_confusion(self) -> Tensor:
        """The common confusion alone (``w = 1``), ``softmax(W_c)`` over rows, shape (K, K)."""
        return torch.softmax(self.common, dim=0)

    def distances(self) -> Tensor:
        """``||W_m - W_c||_F`` of every annotator, shape (M,) (the regularizer's terms over all ``M``)."""
        out: Tensor = torch.linalg.vector_norm((self.individual - self.common).flatten(1), dim=1)
        return out

    def batch_distances(self) -> Tensor:
        """``||W_m - W_c||_F`` of the last forward's ``U`` distinct annotators, shape (U,).

        Computed from the rows that forward gathered, so the gradient reaches those annotators'
        ``W_m`` (sparse with ``sparse=True``) and ``W_c``; ``O(U K^2)``.

        Raises
        ------
        RuntimeError
            No forward pass yet.
        """
        if self._touched is None:
            raise RuntimeError("CoNAL: no forward pass yet; the batch's annotators are unknown")
        kernels = self._touched[1]
        out: Tensor = torch.linalg.vector_norm((kernels - self.common).flatten(1), dim=1)
        return out

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """Optimizer groups: ``individual`` and ``annotator_emb`` (``"sparse": self.sparse``) and the
        other parameters (dense), both at ``lr`` without weight decay, ``"base_lr": None``."""
        return _sparse.split_groups(self, [self.individual, self.annotator_emb], lr, self.sparse)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_touched"] = None  # holds part of a graph; not copied
        return state

    def extra_repr(self) -> str:
        return (
            f"n_annotators={self.n_annotators}, n_classes={self.n_classes}, rep_dim={self.rep_dim}, "
            f"emb_dim={self.emb_dim}, init_diag={self.init_diag:g}, sparse={self.sparse}"
        )


class CommonDistance(Regularizer):
    """CoNAL's term ``-sum_m ||W_m - W_c||_F``: pushes each annotator's kernel away from the common one.

    Added as ``lam_diff * term`` (so the distances are maximised), with ``lam_diff = 1e-5`` in the
    official code (``workflow.py``: ``loss -= 0.00001 * sum(norm(kernel - common_kernel))``). Chu,
    Ma & Wang, AAAI 2021. At the initialisation (``W_m = W_c``) the norm's gradient is the zero
    subgradient (torch's), as in the official code.

    The paper's sum runs over all ``M`` annotators at every step. With a sparse head (the
    default) the sum runs over the ``U`` distinct annotators of the step's batch
    (:meth:`CoNAL.batch_distances`, ``O(U K^2)``): an annotator's term and its gradient are the
    paper's whenever the annotator is in the batch, and absent annotators (which the lazy Adam
    step leaves untouched anyway) neither add to the value nor push ``W_c``. This is an
    approximation of the paper's term, exact when every batch touches every annotator; the value
    is the sum over the batch's annotators, not over ``M`` (docs/benchmarks.md, "Instance-dependent
    heads: cost against the number of annotators", measures its effect). A dense head
    (``sparse=False``) keeps the sum over all ``M`` (``O(M K^2)`` per step).

    Parameters
    ----------
    weight : float
        ``lam_diff``.
    """

    name = "conal_distance"
    weight_name = "lam_diff"

    def __call__(self, model: CrowdModel, logits: Tensor) -> Tensor:
        head = model.head
        if not isinstance(head, CoNAL):
            raise TypeError(f"CommonDistance needs a CoNAL head, got {type(head).__name__}")
        if head.sparse:
            return -head.batch_distances().sum()
        return -head.distances().sum()
