"""Post-fit checks of a crowd-trained model: a collapsed model and a latent-class flip.

Without clean labels the usual signs of a broken model are missing: the held-out crowd-label
likelihood of a model whose classes are all permuted is exactly that of the right model (the
classifier and every confusion matrix permuted together), and a model that predicts one class
everywhere can still fit the crowd's label frequencies. :func:`check_model` compares the fitted
model with the crowd itself, on the training items that have labels:

Agreement is the mean over the items of ``v_n(pred_n)``, where ``v_n`` is the majority vote
with ties split evenly (``v_n(k) = 1/t`` for each of the ``t`` tied classes); chance is what a
predictor with the same predicted class shares, independent of the votes, would get:
``sum_k share_k * mean_n v_n(k)``; the best reachable is ``mean_n max_k v_n(k)``, and
``kappa = (agreement - chance) / (best - chance)`` (Cohen's kappa with split ties). A correct
model agrees far more than chance (kappa near 1), a model that predicts one class everywhere
exactly as much as chance (kappa 0), and a model whose classes are permuted far less (kappa < 0).

- **collapse** (either of two signs):

  1. *one class*: at least ``collapse_share`` (0.98) of the labelled items are predicted as
     one class ``k`` while the crowd's majority vote gives ``k`` to at most
     ``crowd_share_max`` (0.9) of them;
  2. *chance*: the predictions agree with the majority vote no better than chance,
     ``kappa < min_kappa`` (0.1), while the majority vote gives no class more than
     ``crowd_share_max`` of the items -- what is left of a model that collapsed partly (e.g. 90%
     one class, the rest noise); not counted when the model is flipped.

- **flip** (either of two signs):

  1. *agreement*: the predictions agree with the majority vote less than ``agreement_ratio``
     (0.5) times as often as chance;
  2. *confusions*: the predictions agree with the majority vote less than chance (``kappa <
     0``) and annotators whose learned confusion has its diagonal below its off-diagonal on
     the items they labelled give more than ``below_diagonal_max`` (0.5) of the labels. With
     ``w_m(j)`` the mean predicted probability of class ``j`` over annotator ``m``'s items, ``m``
     is below when ``sum_j w_m(j) A_m[j, j] < sum_j w_m(j) max_{i != j} A_m[i, j]``: on its own
     items it is modelled as saying some other class more often than the right one. Columns of
     classes that an annotator's items do not have are not looked at (nothing pins them), and
     the confusions alone never decide: spammers can give most of a real crowd's labels (on
     Music three annotators whose true confusions are below the diagonal give 34% of them).

Both rules read the crowd's majority as the reference, so they cannot see a flip of a crowd
whose majority is itself adversarial (nothing without truth can), and they look for a flip of
most of the classes, not a swap of two classes among ten.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import numpy.typing as npt

from crowdlearn.annotations import Annotations

__all__ = [
    "AGREEMENT_RATIO",
    "BELOW_DIAGONAL_MAX",
    "COLLAPSE_SHARE",
    "CROWD_SHARE_MAX",
    "MIN_KAPPA",
    "ModelCheck",
    "check_model",
    "majority_votes",
]

#: A class predicted for at least this share of the labelled items is a collapse ...
COLLAPSE_SHARE = 0.98
#: ... when the crowd's majority vote gives that class to at most this share of them.
CROWD_SHARE_MAX = 0.9
#: Predictions agreeing with the majority vote less than this many times chance are a flip.
AGREEMENT_RATIO = 0.5
#: Predictions agreeing with the majority vote with a kappa below this (and no flip) are a collapse.
MIN_KAPPA = 0.1
#: Annotators with their confusion diagonal below the off-diagonal giving more than this share
#: of the labels are a flip.
BELOW_DIAGONAL_MAX = 0.5


@dataclass(frozen=True)
class ModelCheck:
    """Findings of :func:`check_model`; ``str(check)`` gives the warning lines.

    Attributes
    ----------
    n_items : int
        Labelled items checked.
    n_classes : int
    classes : list of str
        Class ids as text, in the model's order.
    top_class : int
        Index of the most predicted class.
    top_share : float
        Share of the items predicted as ``top_class``.
    crowd_top_share : float
        Share of the items whose majority vote (ties split evenly) is ``top_class``.
    agreement : float
        Mean over the items of the majority-vote weight of the predicted class.
    chance_agreement : float
        The agreement of a predictor with the same class shares, independent of the votes.
    best_agreement : float
        The largest reachable agreement, ``mean_n max_k v_n(k)``.
    kappa : float
        ``(agreement - chance) / (best - chance)`` (0 when ``best == chance``).
    mean_diagonal : float or None
        Label-weighted mean over annotators of ``sum_j w_m(j) A_m[j, j]``, the modelled
        accuracy of each annotator on its own items (None without confusions).
    below_diagonal_share : float or None
        Share of the labels given by annotators with ``sum_j w_m(j) A_m[j, j] < sum_j w_m(j)
        max_{i != j} A_m[i, j]`` (None without confusions).
    collapsed : bool
    flipped : bool
    collapse_signs : list of str
        The collapse rules that fired: ``"one class"``, ``"chance"``.
    flip_signs : list of str
        The flip rules that fired: ``"agreement"``, ``"confusions"``.
    collapse_share, crowd_share_max, min_kappa, agreement_ratio, below_diagonal_max : float
        The thresholds used.
    """

    n_items: int
    n_classes: int
    classes: list[str]
    top_class: int
    top_share: float
    crowd_top_share: float
    agreement: float
    chance_agreement: float
    best_agreement: float
    kappa: float
    mean_diagonal: float | None
    below_diagonal_share: float | None
    collapsed: bool
    flipped: bool
    collapse_signs: list[str]
    flip_signs: list[str]
    collapse_share: float = COLLAPSE_SHARE
    crowd_share_max: float = CROWD_SHARE_MAX
    min_kappa: float = MIN_KAPPA
    agreement_ratio: float = AGREEMENT_RATIO
    below_diagonal_max: float = BELOW_DIAGONAL_MAX

    @property
    def untrusted(self) -> bool:
        """True when the model is collapsed or flipped."""
        return self.collapsed or self.flipped

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict (JSON-serialisable) form; :meth:`from_dict` reads it back."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCheck:
        """The record of a :meth:`to_dict` dict (unknown keys are an error)."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"model check record has unknown field {unknown[0]!r}")
        return cls(**data)

    def collapse_message(self, *, flags: bool = False) -> str:
        """Cause and advice of a collapse (``flags``: name the CLI's options, not Python's)."""
        name = self.classes[self.top_class]
        which = "every training item" if self.top_share >= 1.0 else f"{self.top_share:.1%} of the training items"
        lr, lam = ("--lr", "--lam") if flags else ("lr", "lam")
        if "one class" in self.collapse_signs:
            cause = (
                f"the model predicts class {name} for {which} while the crowd's majority vote gives it to "
                f"{self.crowd_top_share:.1%} of them"
            )
        else:
            cause = (
                f"the model's predictions agree with the crowd's majority vote on {self.agreement:.1%} of the "
                f"training items, no better than a guess with the same class shares ({self.chance_agreement:.1%}; "
                f"kappa {self.kappa:.2f}; class {name} is predicted for {self.top_share:.1%})"
            )
            epochs = "--epochs" if flags else "epochs"
            return f"{cause} (a collapsed model, at chance; try a smaller {lr} or {lam}, or more {epochs})"
        return f"{cause} (a collapsed model; try a smaller {lr} or {lam})"

    def flip_message(self, *, flags: bool = False) -> str:
        """Cause and advice of a flip (``flags``: name the CLI's options, not Python's)."""
        signs = []
        if "agreement" in self.flip_signs:
            signs.append(
                f"its predictions agree with the crowd's majority vote on {self.agreement:.1%} of the training "
                f"items where a guess with the same class shares would on {self.chance_agreement:.1%}"
            )
        if "confusions" in self.flip_signs:
            signs.append(
                f"annotators giving {self.below_diagonal_share:.0%} of the labels are modelled as saying another "
                f"class more often than the true one (mean confusion diagonal {self.mean_diagonal:.2f})"
            )
        if flags:
            advice = "try --init ds, a smaller --confusion-lr or --lam, or another --method"
        else:
            advice = "try init='ds', a smaller confusion_lr or lam, or another method"
        return f"the model's classes look permuted against the crowd's: {'; '.join(signs)} (flipped classes; {advice})"

    def messages(self, *, flags: bool = False) -> list[str]:
        """One line per finding (collapse first), empty for a model that passes."""
        out = []
        if self.collapsed:
            out.append(self.collapse_message(flags=flags))
        if self.flipped:
            out.append(self.flip_message(flags=flags))
        return out

    def __str__(self) -> str:
        return "\n".join(self.messages()) or "no collapse, no flip"


def majority_votes(annotations: Annotations) -> npt.NDArray[np.float64]:
    """Majority vote of every item, ties split evenly.

    Returns
    -------
    ndarray of shape (n_items, n_classes)
        Row ``n``: ``1/t`` on each of the ``t`` classes with the most labels of item ``n``,
        0 elsewhere; all zeros for an item without labels.
    """
    counts = annotations.vote_counts()
    top = (counts == counts.max(axis=1, keepdims=True)) & (counts > 0)
    ties = top.sum(axis=1, keepdims=True)
    votes: npt.NDArray[np.float64] = np.where(top, 1.0 / np.maximum(ties, 1), 0.0)
    return votes


def check_model(
    annotations: Annotations,
    proba: npt.ArrayLike,
    confusions: npt.ArrayLike | None = None,
    *,
    collapse_share: float = COLLAPSE_SHARE,
    crowd_share_max: float = CROWD_SHARE_MAX,
    min_kappa: float = MIN_KAPPA,
    agreement_ratio: float = AGREEMENT_RATIO,
    below_diagonal_max: float = BELOW_DIAGONAL_MAX,
) -> ModelCheck:
    """Check a fitted model against its crowd for a collapse and a latent-class flip.

    The rules and their thresholds are in the module's docstring (and docs/training.md,
    "Untrusted models"). :class:`~crowdlearn.CrowdClassifier` runs this at the end of ``fit``
    (``findings_``).

    Parameters
    ----------
    annotations : Annotations
        The labels the model was trained on.
    proba : array-like of shape (n_items, n_classes)
        The classifier's class probabilities of every item (row ``n``: item ``n``); only the
        items with labels are checked.
    confusions : array-like of shape (n_annotators, n_classes, n_classes), optional
        The learned ``A_m[i, j] = P(m says i | true j)``; for an instance-dependent model the
        mean per-pair confusion. None skips the confusion rule.
    collapse_share, crowd_share_max, min_kappa, agreement_ratio, below_diagonal_max : float
        The thresholds, in [0, 1] (defaults: the module constants).

    Returns
    -------
    ModelCheck
    """
    K, M = annotations.n_classes, annotations.n_annotators
    for name, v in (
        ("collapse_share", collapse_share),
        ("crowd_share_max", crowd_share_max),
        ("min_kappa", min_kappa),
        ("agreement_ratio", agreement_ratio),
        ("below_diagonal_max", below_diagonal_max),
    ):
        if not 0 <= v <= 1:
            raise ValueError(f"{name} must be in [0, 1], got {v!r}")
    P = np.asarray(proba, dtype=np.float64)
    if P.shape != (annotations.n_items, K):
        raise ValueError(f"proba must have shape ({annotations.n_items}, {K}) to match the annotations, got {P.shape}")
    if annotations.n_labels == 0:
        raise ValueError("the annotations hold no labels: nothing to check the model against")
    labelled = annotations.item_counts > 0
    pred = P[labelled].argmax(axis=1)
    votes = majority_votes(annotations)[labelled]
    n = len(pred)
    shares = np.bincount(pred, minlength=K) / n
    crowd_shares = votes.mean(axis=0)
    top = int(shares.argmax())
    agreement = float(votes[np.arange(n), pred].mean())
    chance = float(shares @ crowd_shares)
    best = float(votes.max(axis=1).mean())
    kappa = (agreement - chance) / (best - chance) if best > chance else 0.0
    signs = []
    if agreement < agreement_ratio * chance:
        signs.append("agreement")
    mean_diag = below = None
    if confusions is not None:
        A = np.asarray(confusions, dtype=np.float64)
        if A.shape != (M, K, K):
            raise ValueError(f"confusions must have shape ({M}, {K}, {K}) to match the annotations, got {A.shape}")
        diag = np.diagonal(A, axis1=1, axis2=2)  # (M, K)
        off = np.where(np.eye(K, dtype=bool), -np.inf, A).max(axis=1)  # (M, K): column j's largest off-diagonal
        w = np.zeros((M, K))  # (M, K): summed predicted class probabilities of each annotator's items
        np.add.at(w, annotations.annotators, P[annotations.items])
        w /= np.maximum(w.sum(axis=1, keepdims=True), 1e-300)
        own_diag, own_off = (w * diag).sum(axis=1), (w * off).sum(axis=1)
        weight = annotations.annotator_counts / annotations.n_labels
        mean_diag = float(weight @ own_diag)
        below = float(weight @ (own_diag < own_off))
        if below > below_diagonal_max and kappa < 0:
            signs.append("confusions")
    collapse_signs = []
    if shares[top] >= collapse_share and crowd_shares[top] <= crowd_share_max:
        collapse_signs.append("one class")
    if kappa < min_kappa and not signs and crowd_shares.max() <= crowd_share_max:
        collapse_signs.append("chance")
    return ModelCheck(
        n_items=n,
        n_classes=K,
        classes=[str(c) for c in annotations.classes.tolist()],
        top_class=top,
        top_share=float(shares[top]),
        crowd_top_share=float(crowd_shares[top]),
        agreement=agreement,
        chance_agreement=chance,
        best_agreement=best,
        kappa=kappa,
        mean_diagonal=mean_diag,
        below_diagonal_share=below,
        collapsed=bool(collapse_signs),
        flipped=bool(signs),
        collapse_signs=collapse_signs,
        flip_signs=signs,
        collapse_share=collapse_share,
        crowd_share_max=crowd_share_max,
        min_kappa=min_kappa,
        agreement_ratio=agreement_ratio,
        below_diagonal_max=below_diagonal_max,
    )
