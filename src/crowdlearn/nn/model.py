"""A classifier backbone plus a crowd head: the one model shape every method trains."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

if TYPE_CHECKING:  # pragma: no cover
    from crowdlearn.train.batching import AnnotatorMix

__all__ = ["CrowdModel"]


class CrowdModel(nn.Module):
    """``backbone`` maps inputs to ``K`` logits; ``head`` maps ``log f(x)`` to annotators' labels.

    Methods differ only by the head (``ConfusionMatrices``, ``IdentityHead``, ``CrowdLayer``, ...)
    and by the loss (:mod:`crowdlearn.nn.losses`); the trainer is shared.

    Parameters
    ----------
    backbone : nn.Module
        Any module mapping a batch of inputs to logits of shape (B, K).
    head : nn.Module
        Called as ``head(log_probs (E, K), annotators (E,)) -> (E, K)`` log distribution of each
        observed annotator's label; when the head needs the item representation it is called as
        ``head(log_probs, annotators, rows=rows (E,), representation=(E, H))``, the representation
        of each observed label's item from the backbone's ``forward_features``.
    needs_representation : bool or None, default=None
        Whether the head needs the representation (None: the head's own ``needs_representation``
        attribute, False without one). A method spec's ``needs_representation`` sets it.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, *, needs_representation: bool | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        if needs_representation is None:
            needs_representation = bool(getattr(head, "needs_representation", False))
        self._needs_representation = bool(needs_representation)

    def forward(self, x: Tensor) -> Tensor:
        """Classifier logits, shape (B, K)."""
        out: Tensor = self.backbone(x)
        return out

    @property
    def needs_representation(self) -> bool:
        """Whether the head is called with the item representation."""
        return self._needs_representation

    def forward_features(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """Logits (B, K) and the item representation (B, H), or None when the backbone has none.

        The representation comes from the backbone's ``forward_features(x) -> (logits, rep)``
        (the built-in backbones define it); a backbone returning only logits gives None.
        """
        get = getattr(self.backbone, "forward_features", None)
        if get is None:
            return self.forward(x), None
        logits, rep = get(x)
        return logits, rep

    def head_inputs(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """Logits (B, K) and, only when the head asks for it (:attr:`needs_representation`), the
        item representation (B, H); otherwise ``(logits, None)`` without computing one."""
        if self.needs_representation:
            return self.forward_features(x)
        return self.forward(x), None

    def crowd_log_probs(
        self,
        logits: Tensor,
        rows: Tensor,
        annotators: Tensor,
        representation: Tensor | None = None,
        *,
        annotator_mix: AnnotatorMix | None = None,
    ) -> Tensor:
        """Log distribution of each observed label, shape (E, K).

        Parameters
        ----------
        logits : Tensor of shape (B, K)
        rows : Tensor of int64 of shape (E,)
            Row of ``logits`` of each observed label.
        annotators : Tensor of int64 of shape (E,)
        representation : Tensor of shape (B, H), optional
            The batch's item representation; required when the head asks for it.
        annotator_mix : AnnotatorMix, optional
            Annotator mixtures of the records (Annot-Mix); passed to the head as
            ``annotator_mix=``, which only a head that mixes annotators accepts.
        """
        log_probs = logits.float().log_softmax(dim=1).index_select(0, rows)
        kwargs: dict[str, object] = {}
        if annotator_mix is not None:
            kwargs["annotator_mix"] = annotator_mix
        if not self.needs_representation:
            out: Tensor = self.head(log_probs, annotators, **kwargs)
            return out
        out = self.head(log_probs, annotators, rows=rows, representation=self._rows_of(representation, rows), **kwargs)
        return out

    def label_log_probs(
        self,
        logits: Tensor,
        rows: Tensor,
        annotators: Tensor,
        labels: Tensor,
        representation: Tensor | None = None,
    ) -> Tensor:
        """Log probability of each observed label, ``log P(annotator m_e says y_e | x_e)``, shape (E,).

        ``crowd_log_probs(...)`` at the labels. A head with ``label_log_probs(log_probs (E, K),
        annotators (E,), labels (E,)) -> (E,)`` (and no need for the representation) computes
        only the label's entry (:class:`~crowdlearn.nn.ConfusionMatrices`: ``O(E K)`` instead of
        ``O(E K^2)``).

        Parameters
        ----------
        logits : Tensor of shape (B, K)
        rows, annotators, labels : Tensor of int64 of shape (E,)
        representation : Tensor of shape (B, H), optional
        """
        own = getattr(self.head, "label_log_probs", None)
        if callable(own) and not self.needs_representation:
            out: Tensor = own(logits.float().log_softmax(dim=1).index_select(0, rows), annotators, labels)
            return out
        logp = self.crowd_log_probs(logits, rows, annotators, representation)  # (E, K)
        return logp.gather(1, labels.unsqueeze(1)).squeeze(1)

    def _rows_of(self, representation: Tensor | None, rows: Tensor) -> Tensor:
        if representation is None:
            raise ValueError(
                f"the head {type(self.head).__name__} needs the item representation, but the backbone "
                f"{type(self.backbone).__name__} returns only logits; "
                "give it forward_features(x) -> (logits, representation)"
            )
        return representation.float().index_select(0, rows)

    def pair_confusions(self, x: Tensor, annotators: Tensor) -> Tensor:
        """Confusion matrix of every (input, annotator) pair, shape (E, K, K), columns summing to 1.

        ``x`` (E, ...) holds the input of each pair. An instance-dependent head defines
        ``pair_confusions(annotators (E,), representation (E, H) or None) -> (E, K, K)``; for
        any other head with ``confusions()`` (M, K, K) this is those matrices, indexed.
        """
        own = getattr(self.head, "pair_confusions", None)
        if callable(own):
            rep = None
            if self.needs_representation:
                _, rep = self.forward_features(x)
                rep = self._rows_of(rep, torch.arange(x.shape[0], device=x.device))
            out: Tensor = own(annotators, rep)
            return out
        get = getattr(self.head, "confusions", None)
        if not callable(get):
            raise TypeError(f"the head {type(self.head).__name__} has neither pair_confusions() nor confusions()")
        conf: Tensor = get()
        return conf.index_select(0, annotators)
