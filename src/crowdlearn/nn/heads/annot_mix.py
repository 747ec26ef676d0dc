"""Annot-Mix (Herde, Lührs, Huseljic & Sick, "Annot-Mix: Learning with Noisy Class Labels from
Multiple Annotators via a Mixup Extension", ECAI 2024): its head, batch transform and loss.

Mixup over records: each observed (item, annotator, label) triple is mixed with another record
of the batch, inputs, annotators and labels alike, with its own ``t ~ Beta(alpha, alpha)``. The
head (a MaDL-like annotator-performance model, :mod:`crowdlearn.nn.heads.madl`) embeds the
annotator mixture; the loss is the cross-entropy against the mixed one-hot labels.

Defaults follow the official code (github.com/ies-research/multi-annotator-machine-learning,
branch ``annot-mix``: ``conf/classifier/annot_mix.yaml`` and ``maml/architectures/_base.py``):
``alpha = 1``, ``eta = 0.9``, embedding size 128, dropout 0.5 in the AP model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from crowdlearn.nn.heads import _sparse
from crowdlearn.nn.heads.madl import AnnotatorEmbedding, check_eta, check_representation, mixture_log_probs, prior_bias
from crowdlearn.nn.model import CrowdModel
from crowdlearn.train.batching import AnnotatorMix, Batch
from crowdlearn.train.transforms import BatchTransform, View

__all__ = ["AnnotMixHead", "AnnotMixLoss", "AnnotatorLabelMix", "RecordMixup"]


@dataclass
class AnnotatorLabelMix(AnnotatorMix):
    """An :class:`~crowdlearn.train.batching.AnnotatorMix` whose records mix labels too.

    Record ``e`` of the batch holds ``weight[e]`` of its own (annotator, label) and ``1 -
    weight[e]`` of its partner's: the annotator mixture the head embeds, and the label mixture
    ``weight e_{labels[e]} + (1 - weight) e_{partner_labels[e]}`` the loss is the cross-entropy
    against.

    Attributes
    ----------
    partners : Tensor of int64 of shape (E,)
    weight : Tensor of shape (E,)
    partner_labels : Tensor of int64 of shape (E,)
        The partner record's label.
    """

    partner_labels: Tensor

    def to(self, device: torch.device) -> AnnotatorLabelMix:
        """A copy on ``device`` (partner labels included)."""
        return AnnotatorLabelMix(self.partners.to(device), self.weight.to(device), self.partner_labels.to(device))


class RecordMixup(BatchTransform):
    """Annot-Mix's mixup of the batch's records (inputs, annotators and labels).

    With the ``E`` observed records ``(x_e, m_e, z_e)`` of the batch (``x_e`` the input of the
    record's item), a permutation ``p`` of the records and ``t_e ~ Beta(alpha, alpha)`` drawn per
    record (as the official code does), the transform feeds ``E`` mixed inputs
    ``x̃_e = t_e x_e + (1 - t_e) x_{p(e)}`` and gives one view (weight 1) whose record ``e`` is fed
    row ``e``, annotator ``m_e`` and label ``z_e``, with
    ``annotator_mix = AnnotatorLabelMix(partners=m_{p(e)}, weight=t_e, partner_labels=z_{p(e)})``:
    the head embeds ``t_e emb(m_e) + (1 - t_e) emb(m_{p(e)})`` and :class:`AnnotMixLoss` takes
    the cross-entropy against ``t_e e_{z_e} + (1 - t_e) e_{z_{p(e)}}``. Records of the same item
    are mixed like any other pair (the official ``mix_only_annotators=False``).

    Draws come from the trainer's ``generator`` (one permutation and one integer seeding the
    numpy Beta draws per batch), so a seeded run is reproducible.

    Parameters
    ----------
    alpha : float
        The Beta parameter (> 0).
    """

    def __init__(self, alpha: float) -> None:
        if not alpha > 0:
            raise ValueError(f"RecordMixup: alpha must be > 0, got {alpha!r}")
        self.alpha = float(alpha)

    def __call__(self, batch: Batch, generator: torch.Generator) -> tuple[Tensor, list[View]]:
        """The mixed inputs (E, ...) and the one view of the mixed records."""
        if batch.targets is not None or batch.annotator_mix is not None:
            raise TypeError("RecordMixup mixes plain batches (no soft targets, no annotator mixtures)")
        e = int(batch.rows.numel())
        device = batch.x.device
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        t = np.random.default_rng(seed).beta(self.alpha, self.alpha, size=e)
        perm = torch.randperm(e, generator=generator).to(device)
        x = batch.x.index_select(0, batch.rows)
        lam = torch.from_numpy(t).to(device=device, dtype=x.dtype if x.is_floating_point() else torch.float32)
        shaped = lam.view(-1, *([1] * (x.dim() - 1)))
        mixed = shaped * x + (1.0 - shaped) * x.index_select(0, perm)
        mix = AnnotatorLabelMix(batch.annotators[perm], lam.float(), batch.labels[perm])
        view = Batch(
            items=batch.items[batch.rows.cpu().numpy()],
            x=mixed,
            rows=torch.arange(e, device=device),
            annotators=batch.annotators,
            labels=batch.labels,
            annotator_mix=mix,
        )
        return mixed, [(1.0, view)]


class AnnotMixHead(nn.Module):
    """Annot-Mix's annotator-performance model: confusions of (item, annotator mixture) records.

    For a record with item representation ``h(x)`` and annotator mixture ``t e_m + (1 - t) e_m'``
    (``t = 1`` for an unmixed record), ``D`` the embedding size (Herde et al., ECAI 2024, the
    architecture of the official code)::

        a = t (W_a e_m + b_a) + (1 - t)(W_a e_m' + b_a)      annotator (mixture) embedding (D)
        s = W_s sg(h(x)) + b_s                               item embedding (D), sg = stop-gradient
        u = ReLU(BN(L [s; a] after Dropout(p)))              L: 2D -> D
        Λ = reshape(W_o u + b_o, K x K)                      b_o = log(eta (K-1) / (1-eta)) vec(I)
        P(z = i | y = j, x, a) = softmax_i(Λ[j, :])
        P(z | x, a) = sum_j P(y = j | x) P(z | y = j, x, a)

    The stop-gradient is the official code's (``ap_embed_x(x_learned.detach())``); the bias
    starts every confusion at ``eta`` on its diagonal. Returns ``log P(z | x, a)`` (E, K) of the
    observed records only. The embeddings of the batch's ``U`` distinct annotators (partners
    included) are gathered once; with ``sparse=True`` (the default) their gradient is sparse and
    :meth:`param_groups` asks the trainer for a lazy Adam on the embedding table, which leaves
    absent annotators untouched (``O(E D + U D)`` per step, whatever ``M``); ``sparse=False``:
    dense gradients and Adam over all ``M`` rows.

    Parameters
    ----------
    n_annotators : int
        ``M``.
    n_classes : int
        ``K``.
    representation_size : int, default=128
        ``H`` of the backbone's representation (the built-in MLP's hidden layer is 128).
    embed_size : int, default=128
        ``D``.
    dropout : float, default=0.5
        Dropout on ``[s; a]``.
    eta : float, default=0.9
        Prior probability of a correct label, in (0, 1).
    sparse : bool or None, default=None
        Sparse gradients and lazy Adam for the annotator embeddings; None:
        :data:`crowdlearn.nn.confusion.SPARSE_BY_DEFAULT` (True).

    Attributes
    ----------
    annotator_embedding : AnnotatorEmbedding
    item_embedding : nn.Linear
        ``H -> D``.
    hidden : nn.Sequential
    output : nn.Linear
        ``D -> K * K``.
    """

    needs_representation = True

    def __init__(
        self,
        n_annotators: int,
        n_classes: int,
        *,
        representation_size: int = 128,
        embed_size: int = 128,
        dropout: float = 0.5,
        eta: float = 0.9,
        sparse: bool | None = None,
    ) -> None:
        super().__init__()
        if n_annotators < 1 or n_classes < 2:
            raise ValueError(f"need n_annotators >= 1 and n_classes >= 2, got {n_annotators} and {n_classes}")
        for name, value in (("representation_size", representation_size), ("embed_size", embed_size)):
            if int(value) < 1:
                raise ValueError(f"{name} must be >= 1, got {value!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.n_annotators = int(n_annotators)
        self.n_classes = k = int(n_classes)
        self.representation_size = int(representation_size)
        self.embed_size = d = int(embed_size)
        self.eta = check_eta(eta)
        self.annotator_embedding = AnnotatorEmbedding(self.n_annotators, d, sparse=sparse)
        self.item_embedding = nn.Linear(self.representation_size, d)
        self.hidden = nn.Sequential(nn.Dropout(float(dropout)), nn.Linear(2 * d, d), nn.BatchNorm1d(d), nn.ReLU())
        self.output = nn.Linear(d, k * k)
        with torch.no_grad():
            self.output.bias.copy_(prior_bias(k, self.eta))

    def log_confusions(
        self, annotators: Tensor, representation: Tensor | None, annotator_mix: AnnotatorMix | None = None
    ) -> Tensor:
        """``[e, y, z] = log P(z | y, x_e, a_e)``, shape (E, K, K) (rows: the true class).

        Parameters
        ----------
        annotators : Tensor of int64 of shape (E,)
        representation : Tensor of shape (E, H)
        annotator_mix : AnnotatorMix, optional
            The records' annotator mixtures (training under :class:`RecordMixup`).
        """
        rep = check_representation(representation, self.representation_size, type(self).__name__)
        a = self.annotator_embedding(annotators, annotator_mix)
        s = self.item_embedding(rep.detach())
        u = self.hidden(torch.cat([s, a], dim=1))
        k = self.n_classes
        return torch.log_softmax(self.output(u).view(-1, k, k), dim=2)

    def forward(
        self,
        log_probs: Tensor,
        annotators: Tensor,
        *,
        rows: Tensor | None = None,
        representation: Tensor | None = None,
        annotator_mix: AnnotatorMix | None = None,
    ) -> Tensor:
        """``log P(z | x, a)`` of each record, shape (E, K).

        Parameters
        ----------
        log_probs : Tensor of shape (E, K)
            ``log P(y | x)`` of each record's (fed) input.
        annotators : Tensor of int64 of shape (E,)
        rows : Tensor of int64 of shape (E,), optional
            Unused (the representation is already per record).
        representation : Tensor of shape (E, H)
        annotator_mix : AnnotatorMix, optional
        """
        return mixture_log_probs(log_probs, self.log_confusions(annotators, representation, annotator_mix))

    def pair_confusions(self, annotators: Tensor, representation: Tensor | None) -> Tensor:
        """Column-stochastic ``[e, i, j] = P(z = i | y = j, x_e, m_e)``, shape (E, K, K)."""
        return self.log_confusions(annotators, representation).exp().transpose(1, 2)

    @property
    def sparse(self) -> bool:
        """Sparse gradients and lazy Adam for the annotator embeddings."""
        return self.annotator_embedding.sparse

    @sparse.setter
    def sparse(self, value: bool) -> None:
        self.annotator_embedding.sparse = bool(value)

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """Optimizer groups: the annotator embedding table (``"sparse": self.sparse``) and the
        other parameters (dense), both at ``lr`` without weight decay, ``"base_lr": None``."""
        return _sparse.split_groups(self, [self.annotator_embedding.weight], lr, self.sparse)

    def extra_repr(self) -> str:
        return (
            f"n_annotators={self.n_annotators}, n_classes={self.n_classes}, "
            f"representation_size={self.representation_size}, embed_size={self.embed_size}, eta={self.eta:g}, "
            f"sparse={self.sparse}"
        )


class AnnotMixLoss(nn.Module):
    """Annot-Mix's loss: cross-entropy of the head against the (mixed) one-hot labels.

    ``loss = -(1/E) sum_e [t_e log P(z_e | x̃_e, ã_e) + (1 - t_e) log P(z'_e | x̃_e, ã_e)]`` over the
    ``E`` records of the batch, with ``t_e``, the partner label ``z'_e`` and the annotator mixture
    ``ã_e`` from the batch's :class:`AnnotatorLabelMix` (:class:`RecordMixup`); ``= -(1/E) sum_e
    sum_k z̃_ek log P(z = k | x̃_e, ã_e)`` with ``z̃_e = t_e e_{z_e} + (1 - t_e) e_{z'_e}``, the
    official code's loss. A batch without a mixture (``alpha = 0``) gives the mean NLL of its
    labels; an :class:`~crowdlearn.train.batching.AnnotatorMix` without labels mixes annotators
    only (each record's own label). ``takes_batch``: called as ``criterion(model, logits, batch,
    representation)``. Parts: ``loss`` and ``nll`` (equal).
    """

    takes_batch = True

    def forward(
        self, model: CrowdModel, logits: Tensor, batch: Batch, representation: Tensor | None = None
    ) -> dict[str, Tensor]:
        """Loss parts.

        Parameters
        ----------
        model : CrowdModel
        logits : Tensor of shape (B', K)
            Of the fed inputs.
        batch : Batch
            Its ``rows`` index the fed inputs.
        representation : Tensor of shape (B', H)
        """
        if batch.targets is not None:
            raise TypeError("AnnotMixLoss trains on the crowd labels; the batch carries per-item soft targets")
        mix = batch.annotator_mix
        logp = model.crowd_log_probs(logits, batch.rows, batch.annotators, representation, annotator_mix=mix)
        if logp.shape[0] == 0:
            raise ValueError("the batch has no observed labels; cannot compute the loss")
        own = logp.gather(1, batch.labels.unsqueeze(1)).squeeze(1)
        if isinstance(mix, AnnotatorLabelMix):
            t = mix.weight.to(logp.dtype)
            other = logp.gather(1, mix.partner_labels.unsqueeze(1)).squeeze(1)
            ce = -(t * own + (1.0 - t) * other).mean()
        else:
            ce = -own.mean()
        return {"loss": ce, "nll": ce}
