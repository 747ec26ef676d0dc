"""Losses as small modules: coupled cross-entropy plus a list of weighted regularizers.

Each loss is called as ``loss(model, logits, rows, annotators, labels)`` and returns a dict of
scalar tensors with at least ``"loss"`` (what is minimized) and ``"nll"`` (the mean negative log
likelihood of the observed labels). A loss with regularizers adds, for every regularizer, its
term under its ``name`` (unweighted, with its sign: what is added before the weight) and
``"reg"``, the weighted sum of the terms; so ``loss = nll + reg = nll + sum_i w_i * term_i``.
Each regularizer's weight is a plain attribute named by its ``weight_name`` (``lam`` for the
built-ins), so a callback may schedule it (:class:`~crowdlearn.train.LambdaSchedule` sets
``loss.lam``, i.e. every regularizer whose ``weight_name`` is ``"lam"``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from crowdlearn.nn import functional as CF
from crowdlearn.nn.model import CrowdModel

__all__ = [
    "CoupledCrossEntropy",
    "CrowdLoss",
    "GeoCrowdNetFLoss",
    "GeoCrowdNetWLoss",
    "LogDetVolumeF",
    "LogDetVolumeW",
    "RegularizedLoss",
    "Regularizer",
    "TraceRegLoss",
    "TraceRegularizer",
    "label_nll",
]


def label_nll(
    model: CrowdModel,
    logits: Tensor,
    rows: Tensor,
    annotators: Tensor,
    labels: Tensor,
    representation: Tensor | None = None,
) -> Tensor:
    """``-log P(annotator m_e says y_e | x_e)`` of each observed label under the model's head, shape (E,).

    Parameters
    ----------
    model : CrowdModel
    logits : Tensor of shape (B, K)
    rows, annotators, labels : Tensor of int64 of shape (E,)
    representation : Tensor of shape (B, H), optional

    Raises
    ------
    ValueError
        The batch has no observed labels.
    """
    if rows.shape[0] == 0:
        raise ValueError("the batch has no observed labels; cannot compute the loss")
    return -model.label_log_probs(logits, rows, annotators, labels, representation)


class Regularizer:
    """A term added to the crowd loss: ``weight * self(model, logits)``.

    Subclasses implement :meth:`__call__`, returning the (scalar) term *to add*: a quantity to
    maximize returns its negative, so there is no hidden sign. ``name`` keys the term in the
    loss parts (and ``train_<name>`` in the history); ``weight_name`` is the method parameter
    that sets ``weight`` (a schedule targets it by this name).

    Parameters
    ----------
    weight : float
        The term's weight ``w``.
    """

    #: key of the term in the loss parts
    name: str = "reg"
    #: the parameter that sets the weight (``lam`` for the built-ins)
    weight_name: str = "lam"

    def __init__(self, weight: float) -> None:
        self.weight = float(weight)

    def __call__(self, model: CrowdModel, logits: Tensor) -> Tensor:
        """The term to add (scalar), before the weight.

        Parameters
        ----------
        model : CrowdModel
            Its head holds the annotator model (e.g. ``model.head.confusions()``, (M, K, K)).
        logits : Tensor of shape (B, K)
            The batch's classifier logits (float32).
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.weight_name}={self.weight:g})"


def _confusions(model: CrowdModel) -> Tensor:
    get = getattr(model.head, "confusions", None)
    if get is None:
        raise TypeError(f"this loss needs a head with confusions() (e.g. ConfusionMatrices), got {type(model.head)}")
    out: Tensor = get()
    return out


def _cached(model: CrowdModel, what: str) -> Tensor | None:
    """The head's cached sum ``what`` (``volume_gram``) when it is sparse and
    has had a forward pass (exact value, gradient through the batch's annotators), else None.

    A batch holding every annotator takes the sum over all ``M`` instead (None here): exact as
    well, and cheaper than refreshing the cache; the cache is dropped (the step moves every
    annotator) and rebuilt by the next batch that needs it."""
    head = model.head
    get = getattr(head, what, None)
    touched = getattr(head, "_touched", None)
    if not (getattr(head, "sparse", False) and callable(get) and touched is not None):
        return None
    if touched[0].numel() == getattr(head, "n_annotators", -1):
        forget = getattr(head, "forget_sums", None)
        if callable(forget):
            forget()
        return None
    out: Tensor = get()
    return out


class _LogDetRegularizer(Regularizer):
    """A log-determinant term with its ridge ``eps`` (``log det(G + eps I)``)."""

    def __init__(self, weight: float = 0.01, *, eps: float = CF.DEFAULT_RIDGE) -> None:
        super().__init__(weight)
        self.eps = float(eps)


class LogDetVolumeF(_LogDetRegularizer):
    """GeoCrowdNet(F)'s term ``-log det(F F^T + eps I)``, ``F`` (K, B) the batch predictions.

    Ibrahim, Nguyen & Fu (ICLR 2023). See :func:`crowdlearn.nn.functional.logdet_volume_f`.
    """

    name = "logdet_f"

    def __call__(self, model: CrowdModel, logits: Tensor) -> Tensor:
        return -CF.logdet_volume_f(logits.float().softmax(dim=1), eps=self.eps)


class LogDetVolumeW(_LogDetRegularizer):
    """GeoCrowdNet(W)'s term ``-log det(W^T W + eps I)``, ``W`` (MK, K) the stacked confusions.

    Ibrahim, Nguyen & Fu (ICLR 2023). See :func:`crowdlearn.nn.functional.logdet_volume_w`.
    With a sparse head (:class:`~crowdlearn.nn.ConfusionMatrices` with ``sparse=True``) ``W^T W``
    is the head's cached :meth:`~crowdlearn.nn.ConfusionMatrices.volume_gram` (the same value;
    the gradient reaches the batch's annotators only, ``O(U K^3)`` per step); otherwise it is
    formed from all ``M`` confusions at every step.
    """

    name = "logdet_w"

    def __call__(self, model: CrowdModel, logits: Tensor) -> Tensor:
        gram = _cached(model, "volume_gram")
        if gram is not None:
            return -CF.logdet_gram(gram, eps=self.eps).to(torch.float32)
        return -CF.logdet_volume_w(_confusions(model), eps=self.eps)


class TraceRegularizer(Regularizer):
    """TraceReg's term (Tanno et al., CVPR 2019): each label's annotator's ``trace(A_m)``, averaged
    over the batch's labels.

    ``term = (1/E) sum_e trace(A_{m_e}) = sum_u (n_u / E) trace(A_u)`` over the batch's ``E``
    labels, ``n_u`` of them from annotator ``u``: the loss is ``(1/E) sum_e [-log P(y_e | x_e,
    m_e) + lam * trace(A_{m_e})]``, so every annotator's trace is weighed against its own
    likelihood at the ratio ``lam`` whatever the number of annotators ``M``. When every
    annotator labels every item (Tanno et al.'s design) this is ``lam`` times the mean of the
    ``M`` traces: their objective ``sum_m [CE_m + lam * trace(A_m)]`` (``CE_m`` the mean
    cross-entropy of annotator ``m``'s labels) divided by ``M``. A plain sum over
    all ``M`` (what this term was before) pulls each annotator by ``lam`` against a likelihood
    weight of about ``1/M`` (its share of the labels), so the pull grows with ``M``: on a crowd of
    300 annotators with 30 labels each it drove every diagonal to about 0.03 and the classifier
    to the flipped classes (docs/benchmarks.md, "Sanity checks on every method at its defaults").

    Cost ``O(U K^2)`` for the batch's ``U`` distinct annotators, whatever ``M``; the gradient
    reaches those annotators only. With a head that records them
    (:meth:`~crowdlearn.nn.ConfusionMatrices.batch_confusions`, the sparse and the dense
    formulation alike) the term uses the last forward's annotators; with another head that has
    ``confusions()`` (M, K, K) it is the mean of all ``M`` traces (equal when every annotator gives
    the batch as many labels). The value lies in ``[0, K]``.
    """

    name = "trace"

    def __call__(self, model: CrowdModel, logits: Tensor) -> Tensor:
        batch = getattr(model.head, "batch_confusions", None)
        if callable(batch):
            confusions, shares = batch()
            return CF.trace_regularizer(confusions, shares).to(torch.float32)
        confusions = _confusions(model)
        return CF.trace_regularizer(confusions) / confusions.shape[0]


class RegularizedLoss(nn.Module):
    """Base of the losses with a list of weighted regularizers (CCEM's and the methods' own).

    Holds ``regularizers`` (distinct names, none of loss/nll/reg), the ``lam`` weight and
    :meth:`set_weight` (what :class:`~crowdlearn.train.LambdaSchedule` and schedules target), and
    :meth:`add_regularizers`, which adds ``sum_i w_i r_i`` to a loss's parts.

    Parameters
    ----------
    lam : float or None, default=None
        When given, the weight of every regularizer whose ``weight_name`` is ``"lam"``; None keeps
        the regularizers' own weights (``lam`` then reads the first ``lam``-weighted one's, or 0.0).
    regularizers : sequence of Regularizer, default=()
        The terms to add; their ``name`` must differ.
    """

    def __init__(self, lam: float | None = None, *, regularizers: Sequence[Regularizer] = ()) -> None:
        super().__init__()
        self.regularizers = list(regularizers)
        names = [r.name for r in self.regularizers]
        if len(set(names)) != len(names) or {"loss", "nll", "reg"} & set(names):
            raise ValueError(f"regularizer names must be distinct and not loss/nll/reg, got {names}")
        own = [r.weight for r in self.regularizers if r.weight_name == "lam"]
        self._lam = float(own[0]) if own else 0.0
        if lam is not None:
            self.lam = float(lam)

    @property
    def lam(self) -> float:
        """The weight named ``lam``; setting it sets every regularizer weighted by ``lam``."""
        return self._lam

    @lam.setter
    def lam(self, value: float) -> None:
        self.set_weight("lam", value)

    def set_weight(self, weight_name: str, value: float) -> None:
        """Set the weight of every regularizer whose ``weight_name`` is ``weight_name``."""
        if weight_name == "lam":
            self._lam = float(value)
        for reg in self.regularizers:
            if reg.weight_name == weight_name:
                reg.weight = float(value)

    def add_regularizers(self, model: CrowdModel, logits: Tensor, parts: dict[str, Tensor]) -> dict[str, Tensor]:
        """``parts`` with ``loss + sum_i w_i r_i(model, logits)``, ``reg`` (that sum) and each term.

        Without regularizers ``parts`` is returned as it is. ``parts`` must hold ``"loss"``.
        """
        if not self.regularizers:
            return parts
        terms: dict[str, Tensor] = {}
        total: Tensor | None = None
        for reg in self.regularizers:
            term = reg(model, logits)
            terms[reg.name] = term
            weighted = reg.weight * term
            total = weighted if total is None else total + weighted
        assert total is not None
        return {**parts, "loss": parts["loss"] + total, "reg": total, **terms}

    def extra_repr(self) -> str:
        return ", ".join(repr(r) for r in self.regularizers) if self.regularizers else f"lam={self.lam:g}"


class CrowdLoss(RegularizedLoss):
    """Coupled cross-entropy (CCEM) on the observed labels plus weighted regularizers.

    ``nll = -(1/E) sum_e log P(annotator m_e says y_e | x_e)`` with the model's head; with a
    :class:`~crowdlearn.nn.ConfusionMatrices` head this is CCEM (Ibrahim, Nguyen & Fu, ICLR 2023).
    ``loss = nll + sum_i w_i * r_i(model, logits)`` over ``regularizers``.

    Parameters
    ----------
    lam : float or None, default=None
        When given, the weight of every regularizer whose ``weight_name`` is ``"lam"`` (the
        built-ins); None keeps the regularizers' own weights (``loss.lam`` then reads the first
        ``lam``-weighted one's, or 0.0). Unused by plain CCEM.
    regularizers : sequence of Regularizer, default=()
        The terms to add; their ``name`` must differ.
    """

    def nll(
        self,
        model: CrowdModel,
        logits: Tensor,
        rows: Tensor,
        annotators: Tensor,
        labels: Tensor,
        representation: Tensor | None = None,
    ) -> Tensor:
        """Mean negative log-likelihood of the observed labels (scalar)."""
        return label_nll(model, logits, rows, annotators, labels, representation).mean()

    def forward(
        self,
        model: CrowdModel,
        logits: Tensor,
        rows: Tensor,
        annotators: Tensor,
        labels: Tensor,
        representation: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Loss parts; see the module docstring.

        Parameters
        ----------
        model : CrowdModel
        logits : Tensor of shape (B, K)
        rows, annotators, labels : Tensor of int64 of shape (E,)
        representation : Tensor of shape (B, H), optional
            The batch's item representation, for a head that asks for it.
        """
        nll = self.nll(model, logits, rows, annotators, labels, representation)
        return self.add_regularizers(model, logits, {"loss": nll, "nll": nll})


#: CCEM is the base loss itself.
CoupledCrossEntropy = CrowdLoss


class GeoCrowdNetFLoss(CrowdLoss):
    """GeoCrowdNet(F): ``CCEM - lam * log det(F F^T + eps I)`` (a :class:`LogDetVolumeF` regularizer)."""

    def __init__(self, lam: float = 0.01, *, eps: float = CF.DEFAULT_RIDGE) -> None:
        super().__init__(lam, regularizers=[LogDetVolumeF(lam, eps=eps)])


class GeoCrowdNetWLoss(CrowdLoss):
    """GeoCrowdNet(W): ``CCEM - lam * log det(W^T W + eps I)`` (a :class:`LogDetVolumeW` regularizer)."""

    def __init__(self, lam: float = 0.01, *, eps: float = CF.DEFAULT_RIDGE) -> None:
        super().__init__(lam, regularizers=[LogDetVolumeW(lam, eps=eps)])


class TraceRegLoss(CrowdLoss):
    """TraceReg (Tanno et al., CVPR 2019): ``CCEM + lam * (1/E) sum_e trace(A_{m_e})`` (a :class:`TraceRegularizer`)."""

    def __init__(self, lam: float = 0.0) -> None:
        super().__init__(lam, regularizers=[TraceRegularizer(lam)])
