"""CrowdAR (Cao, Chen, Huang, Shen & Huang, SIGIR 2023): annotation reliability and soft annotations.

CrowdAR estimates, for every observed (item, annotator) pair, how reliable the annotation is,
and trains the annotator model on a *soft annotation* that moves an unreliable label towards the
uniform distribution. Notation (E observed labels, K classes, M annotators, H the size of the
backbone's item representation):

- the classifier ``q = f(x)`` (the backbone's softmax), ``(E, K)`` per observed label;
- instance difficulty ``d(x) = sigmoid(W_2 sigmoid(W_1 rep(x) + b_1) + b_2)`` in ``(0, 1)^K``
  from the item representation ``rep(x)`` (detached: the reliability network does not train the
  backbone's features);
- annotator expertise ``e_m = sigmoid(E_m)`` in ``(0, 1)^K`` (a factor vector per annotator);
- annotation reliability ``r_nm = sigmoid(w_3^T ((e_m - d(x_n)) * q_n) + b_3)`` with ``w_3 >= 0``
  (more expertise than difficulty, on the classes the item probably belongs to, means a more
  reliable label);
- soft annotation ``z~ = r onehot(z) + (1 - r) / K``;
- annotator model: ``P(label | x, m) = softmax(W_m q)`` with ``W_m`` (K, K) initialised to the
  identity (:class:`~crowdlearn.nn.CrowdLayer` ``"mw"``);
- loss over the E observed labels::

      (1/E) sum_e [ lam * CE(z~_e, softmax(W_m q)) + (1 - lam) * BCE(r_e, 1[argmax q_n = z_e]) ]

  the reliability learns whether the classifier currently agrees with the label.

The reference for these details is the re-implementation in the field's benchmark code base
(ies-research/multi-annotator-machine-learning, ``maml/classifiers/_crowd_ar.py``, written after
the paper and its code), whose defaults (``lam = 0.9``, a 128-unit difficulty layer, xavier-normal
expertise, identity ``W_m``) are the defaults here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from crowdlearn.nn.crowdlayer import CrowdLayer
from crowdlearn.nn.heads import _sparse

if TYPE_CHECKING:  # pragma: no cover
    from crowdlearn.nn.losses import Regularizer
    from crowdlearn.nn.model import CrowdModel
    from crowdlearn.train.batching import Batch

from crowdlearn.nn.losses import RegularizedLoss

__all__ = ["CrowdARHead", "CrowdARLoss", "predict_reliability"]

CITATION = (
    'Cao, Chen, Huang, Shen & Huang, "Learning from Crowds with Annotation Reliability", '
    "SIGIR 2023, doi 10.1145/3539618.3592007"
)


class CrowdARHead(nn.Module):
    """CrowdAR's annotator model and annotation-reliability network (Cao et al., SIGIR 2023).

    The forward pass is the annotator model ``log P(label | x, m) = log_softmax(W_m q)``
    (a :class:`~crowdlearn.nn.CrowdLayer` ``"mw"``; ``confusions()`` are its implied
    column-stochastic matrices ``C_m[:, j] = softmax(W_m e_j)``). :meth:`reliability_logits` gives
    each observed pair's reliability score ``s`` (``r = sigmoid(s)``, see the module docstring);
    :class:`CrowdARLoss` trains both.

    The constraint ``w_3 >= 0`` is kept by projection, as in the reference code, which clips the
    negative entries of ``w_3`` to 0 after every optimizer step. The registry's trainer has no
    after-step hook for a head, so the projection runs at the start of every reliability
    computation instead (in place, without gradient, only when an entry is negative): every
    forward pass sees exactly the projected iterate the reference code's forward sees, and so do
    the gradients and Adam's moments. The initial ``w_3`` is projected too (the reference code's
    first step uses its unprojected default initialisation).

    Cost: the batch's ``U`` distinct annotators' ``W_m`` and ``E_m`` are gathered once; with
    ``sparse=True`` (the default) their gradients are sparse and :meth:`param_groups` asks the
    trainer for a lazy Adam on them, which leaves absent annotators untouched (``O(E K^2 + U
    K^2)`` per step, whatever ``M``); ``sparse=False``: dense gradients and Adam over all ``M``.

    Parameters
    ----------
    n_annotators : int
        ``M``.
    n_classes : int
        ``K``.
    representation_dim : int, default=128
        ``H``, the size of the backbone's item representation (the built-in ``"mlp"``
        backbone's hidden layer has 128 units). The head cannot read it from the backbone: the
        registry's head context does not carry it.
    hidden : int, default=128
        Units of the difficulty network's hidden layer (the reference code's ``ap_embed_dim_x``).
    sparse : bool or None, default=None
        Sparse gradients and lazy Adam for ``W_m`` and ``E_m``; None:
        :data:`crowdlearn.nn.confusion.SPARSE_BY_DEFAULT` (True).

    Attributes
    ----------
    annotation : CrowdLayer
        ``W_m``, ``annotation.weight`` of shape (M, K, K), identity at initialisation.
    expertise : Parameter of shape (M, K)
        ``E_m`` (``e_m = sigmoid(E_m)``), xavier-normal at initialisation.
    difficulty_hidden : Linear (H -> hidden)
        ``W_1, b_1``.
    difficulty_out : Linear (hidden -> K)
        ``W_2, b_2``.
    combine : Linear (K -> 1)
        ``w_3`` (``combine.weight`` of shape (1, K), kept >= 0) and ``b_3``.
    """

    needs_representation = True

    def __init__(
        self,
        n_annotators: int,
        n_classes: int,
        *,
        representation_dim: int = 128,
        hidden: int = 128,
        sparse: bool | None = None,
    ) -> None:
        super().__init__()
        if representation_dim < 1 or hidden < 1:
            raise ValueError(f"need representation_dim >= 1 and hidden >= 1, got {representation_dim} and {hidden}")
        self.annotation = CrowdLayer(n_annotators, n_classes, kind="mw", sparse=_sparse.resolve_sparse(sparse))
        self.n_annotators = self.annotation.n_annotators
        self.n_classes = self.annotation.n_classes
        self.representation_dim = int(representation_dim)
        self.hidden = int(hidden)
        self.expertise = nn.Parameter(torch.empty(self.n_annotators, self.n_classes))
        self.difficulty_hidden = nn.Linear(self.representation_dim, self.hidden)
        self.difficulty_out = nn.Linear(self.hidden, self.n_classes)
        self.combine = nn.Linear(self.n_classes, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Identity ``W_m``, xavier-normal ``E_m``, torch's default ``Linear`` initialisation, ``w_3`` projected."""
        self.annotation.reset_parameters()
        nn.init.xavier_normal_(self.expertise)
        for layer in (self.difficulty_hidden, self.difficulty_out, self.combine):
            layer.reset_parameters()
        self._project()

    def _project(self) -> None:
        """Clip the negative entries of ``w_3`` to 0 (the constraint ``w_3 >= 0``)."""
        w = self.combine.weight
        with torch.no_grad():
            if bool((w < 0).any()):
                w.clamp_(min=0.0)

    @property
    def sparse(self) -> bool:
        """Sparse gradients and lazy Adam for ``W_m`` (``annotation.sparse``) and ``E_m``."""
        return self.annotation.sparse

    @sparse.setter
    def sparse(self, value: bool) -> None:
        self.annotation.sparse = bool(value)

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """Optimizer groups: ``W_m`` and ``E_m`` (``"sparse": self.sparse``) and the reliability
        network (dense), both at ``lr`` without weight decay, ``"base_lr": None``."""
        return _sparse.split_groups(self, [self.annotation.weight, self.expertise], lr, self.sparse)

    def confusions(self) -> Tensor:
        """Implied confusions of the annotator model, shape (M, K, K); columns sum to 1."""
        return self.annotation.confusions()

    def difficulty(self, representation: Tensor) -> Tensor:
        """``d(x) = sigmoid(W_2 sigmoid(W_1 rep + b_1) + b_2)``, shape (E, K), from ``rep`` (E, H) (detached)."""
        if representation.ndim != 2 or representation.shape[1] != self.representation_dim:
            raise ValueError(
                f"CrowdAR's reliability network was built for item representations of size "
                f"{self.representation_dim}, but the backbone gives shape {tuple(representation.shape)}; "
                "(the estimator sizes it from the backbone: HeadContext.representation_dim)"
            )
        hidden = torch.sigmoid(self.difficulty_hidden(representation.detach()))
        return torch.sigmoid(self.difficulty_out(hidden))

    def reliability_logits(self, probs: Tensor, annotators: Tensor, representation: Tensor) -> Tensor:
        """Reliability score ``s = w_3^T ((e_m - d(x)) * q) + b_3`` of every observed pair, shape (E,).

        ``r = sigmoid(s)`` is the reliability. Projects ``w_3`` first (see the class docstring).

        Parameters
        ----------
        probs : Tensor of shape (E, K)
            ``q = f(x)`` of the item of each pair.
        annotators : Tensor of int64 of shape (E,)
        representation : Tensor of shape (E, H)
            The item representation of each pair.
        """
        self._project()
        touched, inverse = torch.unique(annotators, return_inverse=True)
        expertise = torch.sigmoid(_sparse.gather(self.expertise, touched, self.sparse)).index_select(0, inverse)
        score: Tensor = self.combine((expertise - self.difficulty(representation)) * probs)
        return score.squeeze(1)

    def forward(
        self,
        log_probs: Tensor,
        annotators: Tensor,
        *,
        rows: Tensor | None = None,
        representation: Tensor | None = None,
    ) -> Tensor:
        """``log P(label | x, m) = log_softmax(W_m q)`` of every observed pair, shape (E, K).

        Parameters
        ----------
        log_probs : Tensor of shape (E, K)
            ``log q`` of the item of each pair.
        annotators : Tensor of int64 of shape (E,)
        rows : Tensor of int64 of shape (E,), optional
            Unused (the annotator model does not depend on the representation).
        representation : Tensor of shape (E, H), optional
            Unused.
        """
        out: Tensor = self.annotation(log_probs, annotators)
        return out

    def extra_repr(self) -> str:
        return (
            f"n_annotators={self.n_annotators}, n_classes={self.n_classes}, "
            f"representation_dim={self.representation_dim}, hidden={self.hidden}, sparse={self.sparse}"
        )


class CrowdARLoss(RegularizedLoss):
    """CrowdAR's loss: soft-annotation cross-entropy and reliability cross-entropy (+ regularizers).

    ``loss = lam * annotation + (1 - lam) * reliability`` with, over the E observed labels,
    ``annotation = -(1/E) sum_e [r_e log s_e[z_e] + (1 - r_e) (1/K) sum_c log s_e[c]]`` (the
    cross-entropy of the soft annotation ``r onehot(z) + (1 - r)/K`` against the annotator model
    ``s = softmax(W_m q)``) and ``reliability = (1/E) sum_e BCE(r_e, 1[argmax q = z_e])``
    (computed from the score, ``binary_cross_entropy_with_logits``). Gradients flow into ``r``
    from both terms and into ``q`` through the annotator model and the reliability (as in the
    reference code); the target ``1[argmax q = z]`` carries none. Called with the whole batch
    (``takes_batch = True``).

    Parameters
    ----------
    annotation_weight : float, default=0.9
        ``lam`` in ``[0, 1]``.
    regularizers : sequence of Regularizer, default=()
        Terms added with their weights.
    """

    takes_batch = True

    def __init__(self, annotation_weight: float = 0.9, *, regularizers: Sequence[Regularizer] = ()) -> None:
        super().__init__(regularizers=regularizers)
        if not 0.0 <= annotation_weight <= 1.0:
            raise ValueError(f"annotation_weight must be in [0, 1], got {annotation_weight!r}")
        self.annotation_weight = float(annotation_weight)

    def forward(
        self, model: CrowdModel, logits: Tensor, batch: Batch, representation: Tensor | None = None
    ) -> dict[str, Tensor]:
        """Loss parts of one batch.

        Parameters
        ----------
        model : CrowdModel
            Its head must be a :class:`CrowdARHead`.
        logits : Tensor of shape (B, K)
            Classifier logits of the batch's rows.
        batch : Batch
            ``rows``, ``annotators``, ``labels`` (E,): every observed label of the rows.
        representation : Tensor of shape (B, H)
            The rows' item representation.

        Returns
        -------
        dict of str to Tensor
            ``"loss"``, ``"annotation"``, ``"reliability"``, ``"nll"`` (the mean negative
            log-likelihood of the hard labels under the annotator model, for monitoring) and,
            with regularizers, ``"reg"`` and each term under its name.
        """
        head = model.head
        if not isinstance(head, CrowdARHead):
            raise TypeError(f"CrowdARLoss needs a CrowdARHead head, got {type(head).__name__}")
        if representation is None:
            raise ValueError("CrowdARLoss needs the item representation (the method's needs_representation)")
        rows, annotators, labels = batch.rows, batch.annotators, batch.labels
        if labels.numel() == 0:
            raise ValueError("the batch has no observed labels; cannot compute the loss")
        log_q = logits.log_softmax(dim=1)
        log_s = model.crowd_log_probs(logits, rows, annotators, representation)  # (E, K)
        score = head.reliability_logits(
            log_q.index_select(0, rows).exp(), annotators, representation.float().index_select(0, rows)
        )
        r = torch.sigmoid(score)
        log_s_label = log_s.gather(1, labels.unsqueeze(1)).squeeze(1)
        annotation = -(r * log_s_label + (1.0 - r) * log_s.mean(dim=1)).mean()
        agrees = (log_q.argmax(dim=1).index_select(0, rows) == labels).to(score.dtype)
        reliability = F.binary_cross_entropy_with_logits(score, agrees)
        lam = self.annotation_weight
        loss = lam * annotation + (1.0 - lam) * reliability
        parts = {"loss": loss, "annotation": annotation, "reliability": reliability, "nll": -log_s_label.mean()}
        return self.add_regularizers(model, logits, parts)

    def extra_repr(self) -> str:
        return f"annotation_weight={self.annotation_weight}, regularizers={self.regularizers}"


@torch.no_grad()
def predict_reliability(model: CrowdModel, x: Tensor, annotators: Tensor) -> Tensor:
    """Annotation reliability ``r`` of every (input, annotator) pair, shape (E,), in eval mode.

    Parameters
    ----------
    model : CrowdModel
        A model with a :class:`CrowdARHead` (``CrowdClassifier(method="crowdar").model_``).
    x : Tensor of shape (E, ...)
        The input of each pair.
    annotators : Tensor of int64 of shape (E,)
        Annotator index of each pair (``0..M-1``).
    """
    head = model.head
    if not isinstance(head, CrowdARHead):
        raise TypeError(f"predict_reliability needs a model with a CrowdARHead, got {type(head).__name__}")
    was = model.training
    model.eval()
    try:
        logits, rep = model.forward_features(x)
        if rep is None:
            raise ValueError(f"the backbone {type(model.backbone).__name__} gives no item representation")
        score = head.reliability_logits(logits.float().softmax(dim=1), annotators, rep.float())
    finally:
        model.train(was)
    return torch.sigmoid(score)
