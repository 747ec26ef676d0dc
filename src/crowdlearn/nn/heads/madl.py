"""MaDL (Herde, Huseljic & Sick, "Multi-annotator Deep Learning: A Probabilistic Framework for
Classification", TMLR 2023) as a crowd head and its loss.

The annotator-performance (AP) model maps an annotator embedding and the item representation to
an instance-dependent confusion matrix; the pieces it shares with Annot-Mix
(:mod:`crowdlearn.nn.heads.annot_mix`) live here too: the annotator embedding (a linear layer on
the one-hot annotator, looked up by index), the prior-``eta`` bias of the output layer and the
mixture ``P(z | x, m) = sum_y P(y | x) P(z | y, x, m)``.

Defaults follow the official code (github.com/ies-research/multi-annotator-deep-learning,
``evaluation/create_experiment_scripts.py`` and ``evaluation/architecture_utils.py``, the
"learned"/"full" variant): embedding size 16, AP hidden layer 128, ``eta = 0.8``, a
``Gamma(1.25, 0.25)`` prior on the RBF bandwidth of the annotator weights.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from crowdlearn.nn.heads import _sparse
from crowdlearn.nn.losses import label_nll
from crowdlearn.nn.model import CrowdModel

if TYPE_CHECKING:  # pragma: no cover
    from crowdlearn.train.batching import AnnotatorMix

__all__ = [
    "AnnotatorEmbedding",
    "MaDLHead",
    "MaDLLoss",
    "OuterProduct",
    "check_eta",
    "check_representation",
    "mixture_log_probs",
    "prior_bias",
]


def check_eta(eta: float) -> float:
    """``eta`` as a float; ValueError unless ``0 < eta < 1``."""
    if not (isinstance(eta, (int, float)) and 0.0 < float(eta) < 1.0):
        raise ValueError(f"eta (the prior probability of a correct label) must be in (0, 1), got {eta!r}")
    return float(eta)


def prior_bias(n_classes: int, eta: float) -> Tensor:
    """Bias of the AP output layer that makes every confusion ``eta`` on the diagonal.

    ``log(eta (K - 1) / (1 - eta)) * vec(I_K)``, shape (K * K,): with zero weights, row ``y`` of
    the logits gives ``P(z = y | y) = eta`` and ``(1 - eta) / (K - 1)`` to every other ``z``
    (Herde et al. 2023, the prior annotator performance).
    """
    eta = check_eta(eta)
    k = int(n_classes)
    return math.log(eta * (k - 1) / (1.0 - eta)) * torch.eye(k).flatten()


def mixture_log_probs(log_probs: Tensor, log_confusions: Tensor) -> Tensor:
    """``log P(z | x, m) = logsumexp_y (log P(y | x) + log P(z | y, x, m))``.

    Parameters
    ----------
    log_probs : Tensor of shape (E, K)
        ``log P(y | x)`` of the item of each record.
    log_confusions : Tensor of shape (E, K, K)
        ``[e, y, z] = log P(z | y, x_e, m_e)`` (rows are the true class).

    Returns
    -------
    Tensor of shape (E, K)
        ``[e, z]``.
    """
    return torch.logsumexp(log_probs.unsqueeze(2) + log_confusions, dim=1)


def check_representation(representation: Tensor | None, size: int, owner: str) -> Tensor:
    """The (E, H) representation, or a ValueError naming the fix when it is missing or ``H != size``."""
    if representation is None:
        raise ValueError(f"{owner} needs the item representation (E, H); the backbone gave none")
    if representation.ndim != 2 or representation.shape[1] != size:
        raise ValueError(
            f"{owner} was built for a {size}-d item representation but got shape {tuple(representation.shape)} "
            "(the estimator sizes the head from the backbone's forward_features: HeadContext.representation_dim)"
        )
    return representation


class AnnotatorEmbedding(nn.Module):
    """``emb(m) = W e_m + b``: a linear layer on the one-hot annotator, by lookup.

    The official MaDL and Annot-Mix code embed the one-hot annotator vector with
    ``nn.Linear(M, D)``; this is that layer (same parameters, same initialization, its weight
    stored transposed, one row per annotator) applied by gathering the rows of the batch's ``U``
    distinct annotators once (``O(E D + U D)``, never an (E, M) one-hot). A mixture of
    annotators (Annot-Mix) embeds to ``w emb(m) + (1 - w) emb(m')``, which is the linear layer
    applied to ``w e_m + (1 - w) e_m'``. With ``sparse=True`` (the default) the gradient of
    ``weight`` is sparse (those ``U`` rows), for a lazy Adam that leaves absent annotators'
    rows untouched (the owning head's ``param_groups`` marks it); ``sparse=False``: dense.

    Parameters
    ----------
    n_annotators : int
        ``M``.
    embed_size : int
        ``D``.
    sparse : bool or None, default=None
        None: :data:`crowdlearn.nn.confusion.SPARSE_BY_DEFAULT` (True).

    Attributes
    ----------
    weight : Parameter of shape (M, D)
        ``W^T``: row ``m`` is ``W e_m``; ``nn.Linear(M, D)``'s initialization
        ``U(-1/sqrt(M), 1/sqrt(M))``.
    bias : Parameter of shape (D,)
        ``b``, initialized as ``nn.Linear``'s.
    """

    def __init__(self, n_annotators: int, embed_size: int, *, sparse: bool | None = None) -> None:
        super().__init__()
        linear = nn.Linear(int(n_annotators), int(embed_size))  # its initialization, draw for draw
        self.weight = nn.Parameter(linear.weight.detach().t().contiguous())
        self.bias = nn.Parameter(linear.bias.detach().clone())
        self.sparse = _sparse.resolve_sparse(sparse)

    def table(self) -> Tensor:
        """Every annotator's embedding, shape (M, D)."""
        return self.weight + self.bias

    def forward(self, annotators: Tensor, mix: AnnotatorMix | None = None) -> Tensor:
        """Embeddings of the records' annotators (or annotator mixtures), shape (E, D).

        Parameters
        ----------
        annotators : Tensor of int64 of shape (E,)
        mix : AnnotatorMix, optional
            ``partners`` (E,) and ``weight`` (E,): the record embeds ``weight * emb(annotator) +
            (1 - weight) * emb(partner)``.
        """
        if mix is None:
            touched, inverse = torch.unique(annotators, return_inverse=True)
            return _sparse.gather(self.weight, touched, self.sparse).index_select(0, inverse) + self.bias
        touched, (own, partner) = _sparse.distinct(annotators, mix.partners)
        rows = _sparse.gather(self.weight, touched, self.sparse)  # (U, D)
        lam = mix.weight.to(rows.dtype).unsqueeze(1)
        return lam * rows.index_select(0, own) + (1.0 - lam) * rows.index_select(0, partner) + self.bias

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        # files written before the table was stored per annotator hold nn.Linear's (D, M) weight
        old = prefix + "linear.weight"
        if old in state_dict and prefix + "weight" not in state_dict:
            state_dict[prefix + "weight"] = state_dict.pop(old).t()
            state_dict[prefix + "bias"] = state_dict.pop(prefix + "linear.bias")
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        m, d = self.weight.shape
        return f"n_annotators={m}, embed_size={d}, sparse={self.sparse}"


class OuterProduct(nn.Module):
    """Outer-product layer of product-based networks (Qu et al., ICDM 2016), as MaDL uses it.

    ``o_k = sum_{i, j} U[k, i, j] f_i f_j`` with ``f`` the sum of the input fields (the annotator
    and item embeddings): ``o = U (f f^T)``.

    Parameters
    ----------
    embed_size : int
        ``D`` (the fields' size).
    output_size : int
        Size of ``o``.

    Attributes
    ----------
    weight : Parameter of shape (output_size, D, D)
        ``U``, Xavier-uniform initialized (as in the official code).
    """

    def __init__(self, embed_size: int, output_size: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(int(output_size), int(embed_size), int(embed_size)))
        nn.init.xavier_uniform_(self.weight)

    def forward(self, fields_sum: Tensor) -> Tensor:
        """``o`` (E, output_size) for ``f`` (E, D), the sum of the fields."""
        return torch.einsum("ei,kij,ej->ek", fields_sum, self.weight, fields_sum)


class MaDLHead(nn.Module):
    """MaDL's annotator-performance model: instance-dependent confusions from annotator embeddings.

    For a record (item ``x`` with representation ``h(x)``, annotator ``m``) with ``D`` the
    embedding size (Herde, Huseljic & Sick, TMLR 2023, the "learned"/"full" architecture of the
    official code)::

        a = W_a e_m + b_a                               annotator embedding (D)
        s = W_s sg(h(x)) + b_s                          item embedding (D), sg = stop-gradient
        o = U ((a + s)(a + s)^T)                        outer-product interactions (D)
        u = BN(L_2 ReLU(BN(L_1 [a; s; o])))             L_1: 3D -> 128, L_2: 128 -> D
        v = ReLU(u + a)                                 residual on the annotator embedding
        Λ = reshape(W_o v + b_o, K x K)                 b_o = log(eta (K-1) / (1-eta)) vec(I)
        P(z = i | y = j, x, m) = softmax_i(Λ[j, :])
        P(z | x, m) = sum_j P(y = j | x) P(z | y = j, x, m)

    The head returns ``log P(z | x, m)`` (E, K) for the observed records only; the stop-gradient
    on ``h(x)`` is the official code's (``ap_embed_x(x_learned.detach())``): the classifier is
    trained by the likelihood through ``P(y | x)``, not by the AP model's use of its features.
    The bias ``b_o`` makes every confusion start with ``eta`` on the diagonal (the prior
    annotator performance).

    Annotator weights (the paper's weighted loss against correlated annotators): with the
    detached embeddings ``ā_m`` of all ``M`` annotators and a learned RBF bandwidth ``γ > 0``,
    ``S_m = sum_{m'} exp(-γ ||ā_m - ā_{m'}||^2)`` and ``w_m = M (1/S_m) / sum_{m'} (1/S_{m'})``
    (mean 1; annotators in dense regions of the embedding space weigh less); ``γ`` has a
    ``Gamma(gamma_shape, gamma_rate)`` prior (:meth:`log_prior`) and starts at its mode
    (the mean when ``gamma_shape <= 1``). :class:`MaDLLoss` uses both. ``γ = exp(ρ)`` with ``ρ``
    the parameter (the official code clamps ``γ`` at 1e-3 instead).

    Cost: the batch's ``U`` distinct annotators' embeddings are gathered once; with
    ``sparse=True`` (the default) their gradient is sparse and :meth:`param_groups` asks the
    trainer for a lazy Adam on the embedding table, which leaves absent annotators untouched.
    The weights as defined need the ``M x M`` kernel of all annotators at every step (``γ``
    changes at every step): ``O(M^2 D)``. A sparse head estimates them from the batch's
    annotators instead (:meth:`record_weights`): ``S_m ~= 1 + (M - 1) / (U - 1) sum_{m' in
    batch, m' != m} exp(-γ ||ā_m - ā_{m'}||^2)`` (the batch's other annotators standing for all
    ``M - 1`` others) and the weights normalized to mean 1 over the batch's annotators,
    ``O(U^2 D)`` per step; exact when the batch holds every annotator. ``sparse=False``: dense
    gradients and Adam, and the weights over all ``M`` at every step.

    Parameters
    ----------
    n_annotators : int
        ``M``.
    n_classes : int
        ``K``.
    representation_size : int, default=128
        ``H`` of the backbone's representation (the built-in MLP's hidden layer is 128).
    embed_size : int, default=16
        ``D``.
    hidden_size : int, default=128
    eta : float, default=0.8
        Prior probability of a correct label, in (0, 1).
    gamma_shape, gamma_rate : float or None, default=1.25, 0.25
        The Gamma prior of ``γ``; None (both) disables the annotator weights.
    sparse : bool or None, default=None
        Sparse gradients and lazy Adam for the annotator embeddings, the weights from the batch's
        annotators (see above); None: :data:`crowdlearn.nn.confusion.SPARSE_BY_DEFAULT` (True).

    Attributes
    ----------
    annotator_embedding : AnnotatorEmbedding
    item_embedding : nn.Linear
        ``H -> D``.
    outer : OuterProduct
    hidden : nn.Sequential
    output : nn.Linear
        ``D -> K * K``.
    log_gamma : Parameter of shape () or None
        ``ρ = log γ``.
    """

    needs_representation = True

    def __init__(
        self,
        n_annotators: int,
        n_classes: int,
        *,
        representation_size: int = 128,
        embed_size: int = 16,
        hidden_size: int = 128,
        eta: float = 0.8,
        gamma_shape: float | None = 1.25,
        gamma_rate: float | None = 0.25,
        sparse: bool | None = None,
    ) -> None:
        super().__init__()
        if n_annotators < 1 or n_classes < 2:
            raise ValueError(f"need n_annotators >= 1 and n_classes >= 2, got {n_annotators} and {n_classes}")
        for name, value in (("representation_size", representation_size), ("embed_size", embed_size)):
            if int(value) < 1:
                raise ValueError(f"{name} must be >= 1, got {value!r}")
        if (gamma_shape is None) != (gamma_rate is None):
            raise ValueError("give both gamma_shape and gamma_rate, or neither (no annotator weights)")
        if gamma_shape is not None and gamma_rate is not None and not (gamma_shape > 0 and gamma_rate > 0):
            raise ValueError(f"gamma_shape and gamma_rate must be > 0, got {gamma_shape!r} and {gamma_rate!r}")
        self.n_annotators = int(n_annotators)
        self.n_classes = int(n_classes)
        self.representation_size = int(representation_size)
        self.embed_size = d = int(embed_size)
        self.eta = check_eta(eta)
        self.gamma_shape = None if gamma_shape is None else float(gamma_shape)
        self.gamma_rate = None if gamma_rate is None else float(gamma_rate)
        k = self.n_classes
        self.annotator_embedding = AnnotatorEmbedding(self.n_annotators, d, sparse=sparse)
        self.item_embedding = nn.Linear(self.representation_size, d)
        self.outer = OuterProduct(d, d)
        self.hidden = nn.Sequential(
            nn.Linear(3 * d, int(hidden_size)),
            nn.BatchNorm1d(int(hidden_size)),
            nn.ReLU(),
            nn.Linear(int(hidden_size), d),
            nn.BatchNorm1d(d),
        )
        self.output = nn.Linear(d, k * k)
        with torch.no_grad():
            self.output.bias.copy_(prior_bias(k, self.eta))
        self.log_gamma: nn.Parameter | None
        if self.gamma_shape is not None and self.gamma_rate is not None:
            a, b = self.gamma_shape, self.gamma_rate
            start = (a - 1.0) / b if a > 1.0 else a / b  # the mode, or the mean when there is none
            self.log_gamma = nn.Parameter(torch.tensor(math.log(start)))
        else:
            self.register_parameter("log_gamma", None)

    def log_confusions(self, annotators: Tensor, representation: Tensor | None) -> Tensor:
        """``[e, y, z] = log P(z | y, x_e, m_e)``, shape (E, K, K) (rows: the true class).

        Parameters
        ----------
        annotators : Tensor of int64 of shape (E,)
        representation : Tensor of shape (E, H)
        """
        rep = check_representation(representation, self.representation_size, type(self).__name__)
        a = self.annotator_embedding(annotators)
        s = self.item_embedding(rep.detach())
        o = self.outer(a + s)
        v = torch.relu(self.hidden(torch.cat([a, s, o], dim=1)) + a)
        k = self.n_classes
        return torch.log_softmax(self.output(v).view(-1, k, k), dim=2)

    def forward(
        self,
        log_probs: Tensor,
        annotators: Tensor,
        *,
        rows: Tensor | None = None,
        representation: Tensor | None = None,
    ) -> Tensor:
        """``log P(z | x, m)`` of each record, shape (E, K).

        Parameters
        ----------
        log_probs : Tensor of shape (E, K)
            ``log P(y | x)`` of each record's item.
        annotators : Tensor of int64 of shape (E,)
        rows : Tensor of int64 of shape (E,), optional
            Unused (the representation is already per record).
        representation : Tensor of shape (E, H)
        """
        return mixture_log_probs(log_probs, self.log_confusions(annotators, representation))

    def pair_confusions(self, annotators: Tensor, representation: Tensor | None) -> Tensor:
        """Column-stochastic ``[e, i, j] = P(z = i | y = j, x_e, m_e)``, shape (E, K, K)."""
        return self.log_confusions(annotators, representation).exp().transpose(1, 2)

    @property
    def sparse(self) -> bool:
        """Sparse gradients and lazy Adam for the annotator embeddings, batch-estimated weights."""
        return self.annotator_embedding.sparse

    @sparse.setter
    def sparse(self, value: bool) -> None:
        self.annotator_embedding.sparse = bool(value)

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """Optimizer groups: the annotator embedding table (``"sparse": self.sparse``) and the
        other parameters (dense), both at ``lr`` without weight decay, ``"base_lr": None``."""
        return _sparse.split_groups(self, [self.annotator_embedding.weight], lr, self.sparse)

    @property
    def gamma(self) -> Tensor | None:
        """The RBF bandwidth ``γ = exp(log_gamma)`` (scalar), or None without annotator weights."""
        return None if self.log_gamma is None else self.log_gamma.exp()

    def annotator_weights(self) -> Tensor:
        """``w`` (M,), mean 1 (see the class docstring); differentiable in ``γ`` only.

        Raises
        ------
        RuntimeError
            The head was built without annotator weights.
        """
        if self.log_gamma is None:
            raise RuntimeError("this MaDLHead has no annotator weights (gamma_shape=None)")
        emb = self.annotator_embedding.table().detach()
        sq = torch.cdist(emb, emb, compute_mode="donot_use_mm_for_euclid_dist").pow(2)
        density = torch.exp(-self.log_gamma.exp() * sq).sum(dim=0)
        inverse = density.reciprocal()
        return inverse * (self.n_annotators / inverse.sum())

    def record_weights(self, annotators: Tensor) -> Tensor:
        """The weight ``w_{m_e}`` of each record, shape (E,); differentiable in ``γ`` only.

        ``sparse=False``: :meth:`annotator_weights` (all ``M``, ``O(M^2 D)``). ``sparse=True``:
        estimated from the batch's ``U`` distinct annotators (see the class docstring),
        ``O(U^2 D)``; equal to :meth:`annotator_weights` when ``annotators`` holds every
        annotator; all 1 for a batch of one annotator.

        Parameters
        ----------
        annotators : Tensor of int64 of shape (E,)

        Raises
        ------
        RuntimeError
            The head was built without annotator weights.
        """
        if self.log_gamma is None:
            raise RuntimeError("this MaDLHead has no annotator weights (gamma_shape=None)")
        if not self.sparse:
            return self.annotator_weights().index_select(0, annotators)
        touched, inverse = torch.unique(annotators, return_inverse=True)
        u = touched.numel()
        with torch.no_grad():
            emb = self.annotator_embedding.weight.index_select(0, touched) + self.annotator_embedding.bias
            sq = torch.cdist(emb, emb, compute_mode="donot_use_mm_for_euclid_dist").pow(2)
        kernel = torch.exp(-self.log_gamma.exp() * sq)  # (U, U), ones on the diagonal
        if u > 1:  # the batch's U - 1 other annotators stand for all M - 1 others
            density = 1.0 + (kernel.sum(dim=0) - 1.0) * ((self.n_annotators - 1) / (u - 1))
        else:
            density = kernel.sum(dim=0)
        weights = density.reciprocal()
        out: Tensor = (weights * (u / weights.sum())).index_select(0, inverse)
        return out

    def log_prior(self) -> Tensor:
        """``log Gamma(γ; shape, rate)`` (scalar): ``a log b - lgamma(a) + (a - 1) log γ - b γ``."""
        if self.log_gamma is None or self.gamma_shape is None or self.gamma_rate is None:
            raise RuntimeError("this MaDLHead has no annotator weights (gamma_shape=None)")
        a, b = self.gamma_shape, self.gamma_rate
        return a * math.log(b) - math.lgamma(a) + (a - 1.0) * self.log_gamma - b * self.log_gamma.exp()

    def extra_repr(self) -> str:
        weights = "off" if self.gamma_shape is None else f"Gamma({self.gamma_shape:g}, {self.gamma_rate:g})"
        return (
            f"n_annotators={self.n_annotators}, n_classes={self.n_classes}, "
            f"representation_size={self.representation_size}, embed_size={self.embed_size}, "
            f"eta={self.eta:g}, annotator_weights={weights}, sparse={self.sparse}"
        )


class MaDLLoss(nn.Module):
    """MaDL's loss: annotator-weighted NLL of the observed labels minus the log prior of ``γ``.

    ``nll = (1/E) sum_e w_{m_e} (-log P(z_e | x_e, m_e))`` with the head's
    :meth:`MaDLHead.record_weights` (all 1 when the head has none; estimated from the batch's
    annotators with a sparse head) and
    ``loss = nll - log Gamma(γ; shape, rate)`` (Herde et al. 2023, the weighted loss; the prior
    term once per batch as in the official code). Called like
    :class:`~crowdlearn.nn.CrowdLoss`; parts: ``loss``, ``nll`` (weighted) and, with weights,
    ``reg`` = ``gamma_prior`` (``-log p(γ)``) and ``gamma`` (the bandwidth, for the history).
    """

    def forward(
        self,
        model: CrowdModel,
        logits: Tensor,
        rows: Tensor,
        annotators: Tensor,
        labels: Tensor,
        representation: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Loss parts.

        Parameters
        ----------
        model : CrowdModel
            Its head is a :class:`MaDLHead`.
        logits : Tensor of shape (B, K)
        rows, annotators, labels : Tensor of int64 of shape (E,)
        representation : Tensor of shape (B, H)
        """
        head = model.head
        if not isinstance(head, MaDLHead):
            raise TypeError(f"MaDLLoss needs a MaDLHead, got {type(head).__name__}")
        per_label = label_nll(model, logits, rows, annotators, labels, representation)
        if head.log_gamma is None:
            nll = per_label.mean()
            return {"loss": nll, "nll": nll}
        nll = (head.record_weights(annotators) * per_label).mean()
        prior = -head.log_prior()
        return {
            "loss": nll + prior,
            "nll": nll,
            "reg": prior,
            "gamma_prior": prior,
            "gamma": head.log_gamma.detach().exp(),
        }
