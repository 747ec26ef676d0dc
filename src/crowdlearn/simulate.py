"""Simulated crowds: annotator models, observation patterns, ground truth, machine annotators.

Everything here is seeded: every function that draws random numbers takes ``random_state`` (a
:class:`numpy.random.Generator`, an int seed, or ``None`` for fresh entropy) and the same seed
gives the same output. :func:`symmetric_flip_confusions` and :func:`pair_flip_confusions` are
deterministic and take no seed. :func:`make_confusions` passes its keyword arguments, a seed
included, on to the family.

Conventions: a confusion array has shape ``(n_annotators, n_classes, n_classes)`` with
``confusions[m, i, j] = P(annotator m says i | true class j)``; every column sums to one.
Labels follow the model of Ibrahim, Nguyen & Fu (ICLR 2023): for an observed pair (n, m),
``P(m says i | x_n) = (A_m f(x_n))_i``, sampled independently per pair.

Observation patterns never build an ``n_items x n_annotators`` array: their cost is
proportional to the number of labels drawn (plus ``O(n_items)`` per annotator for choosing
items without replacement).

Confusion families (the designs of Ibrahim, Nguyen & Fu, ICLR 2023, arXiv:2306.03288; see
docs/model.md):

- :func:`separable_uniform_confusions`: one near-specialist ``I + gamma U`` (column-normalised),
  the rest near-uniform;
- :func:`hammer_spammer_confusions`: near-perfect hammers and rank-one spammers;
- :func:`diagonally_dominant_confusions`: diagonal largest in every column, all entries > 0;
- :func:`symmetric_flip_confusions`: ``(1 - e) I + e / (K - 1) (1 1^T - I)``;
- :func:`pair_flip_confusions`: class j is reported as j + 1 (mod K) with probability e;
- :func:`random_confusions`: every column ~ Dirichlet;
- :func:`class_specialist_confusions`: exact specialists (row k = c e_k^T) for chosen classes;
- :func:`wssc_confusions`: every row has one or two zeros, spread out, no near-specialist (the
  W-SSC design).

Designs that separate CCEM and GeoCrowdNet: :func:`simulate_design`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from crowdlearn.annotations import Annotations

__all__ = [
    "CONFUSION_FAMILIES",
    "DESIGNS",
    "SimulatedCrowd",
    "ambiguous_posteriors",
    "bernoulli_pattern",
    "class_specialist_confusions",
    "correlate_annotators",
    "default_machines",
    "diagonally_dominant_confusions",
    "fixed_per_item_pattern",
    "hammer_spammer_confusions",
    "hard_truth",
    "heavy_tailed_pattern",
    "item_features",
    "make_confusions",
    "pair_flip_confusions",
    "random_confusions",
    "sample_labels",
    "separable_uniform_confusions",
    "simulate_crowd",
    "simulate_design",
    "simulate_machine_annotators",
    "soft_posteriors",
    "symmetric_flip_confusions",
    "wssc_confusions",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
RNGLike = np.random.Generator | int | None


@dataclass(frozen=True)
class SimulatedCrowd:
    """A simulated crowd with its known truth.

    Attributes
    ----------
    annotations : Annotations
        The observed labels.
    confusions : ndarray of shape (n_annotators, n_classes, n_classes)
        True confusion matrices, ``[m, i, j] = P(m says i | true class j)`` (columns sum to 1).
        For machine annotators: each machine's empirical confusion on the training items.
    true_labels : ndarray of int64 of shape (n_items,)
        True class of each item (the argmax of ``true_posteriors`` for soft truth).
    true_posteriors : ndarray of shape (n_items, n_classes)
        True class posterior ``f(x_n)`` of each item (one-hot for hard truth).
    features : ndarray of shape (n_items, ...) or None
        Item inputs when the crowd was simulated on data (machine annotators), else None.
    """

    annotations: Annotations
    confusions: FloatArray
    true_labels: IntArray
    true_posteriors: FloatArray
    features: npt.NDArray[Any] | None = None


# ---------------------------------------------------------------------------- helpers
def _rng(random_state: RNGLike) -> np.random.Generator:
    if isinstance(random_state, np.random.Generator):
        return random_state
    return np.random.default_rng(random_state)


def _check_sizes(n_annotators: int, n_classes: int) -> None:
    if int(n_annotators) != n_annotators or n_annotators < 1:
        raise ValueError(f"n_annotators must be a positive integer, got {n_annotators!r}")
    if int(n_classes) != n_classes or n_classes < 2:
        raise ValueError(f"n_classes must be an integer >= 2, got {n_classes!r}")


def _check_prob(value: float, name: str, *, low: float = 0.0, high: float = 1.0) -> None:
    if not (low <= value <= high):
        raise ValueError(f"{name} must be in [{low}, {high}], got {value!r}")


def _normalize_columns(A: FloatArray) -> FloatArray:
    return np.asarray(A / A.sum(axis=1, keepdims=True), dtype=np.float64)


def _per_annotator(value: float | npt.ArrayLike, n_annotators: int, name: str) -> FloatArray:
    arr = np.broadcast_to(np.asarray(value, dtype=np.float64), (n_annotators,)).copy()
    if np.any(~np.isfinite(arr)) or arr.min() < 0 or arr.max() > 1:
        raise ValueError(f"{name} must lie in [0, 1] (a scalar or one value per annotator), got {value!r}")
    return arr


# ---------------------------------------------------------------------------- confusion families
def separable_uniform_confusions(
    n_annotators: int,
    n_classes: int,
    *,
    gamma: float = 0.01,
    noise: float = 0.1,
    n_specialists: int = 1,
    random_state: RNGLike = None,
) -> FloatArray:
    """Separable-and-uniform: near-specialist annotators first, the rest near-uniform.

    Annotators ``0..n_specialists-1`` have ``A = I + gamma U`` (``U`` iid uniform on [0, 1]),
    column-normalised: every row is close to a multiple of ``e_k`` (a near-class-specialist for
    every class). The others have ``A = 1 1^T / K + noise U``, column-normalised (close to a
    spammer). This is the paper's CIFAR-10 synthetic design.

    Returns
    -------
    ndarray of shape (n_annotators, n_classes, n_classes)
    """
    _check_sizes(n_annotators, n_classes)
    if not 0 <= n_specialists <= n_annotators:
        raise ValueError(f"n_specialists must be in [0, {n_annotators}], got {n_specialists}")
    if gamma < 0 or noise < 0:
        raise ValueError(f"gamma and noise must be >= 0, got gamma={gamma}, noise={noise}")
    g = _rng(random_state)
    K = n_classes
    U = g.uniform(size=(n_annotators, K, K))
    A = np.empty((n_annotators, K, K))
    A[:n_specialists] = np.eye(K) + gamma * U[:n_specialists]
    A[n_specialists:] = 1.0 / K + noise * U[n_specialists:]
    return _normalize_columns(A)


def hammer_spammer_confusions(
    n_annotators: int,
    n_classes: int,
    *,
    hammer_fraction: float = 0.3,
    hammer_accuracy: float = 0.95,
    random_state: RNGLike = None,
) -> FloatArray:
    """Hammers (near-perfect) and spammers (answers independent of the true class).

    The first ``round(hammer_fraction * n_annotators)`` annotators are hammers: diagonal
    ``hammer_accuracy``, the rest of each column spread uniformly. The others are spammers: all
    columns equal one Dirichlet(1) vector (a rank-one matrix, spammer score 0).
    """
    _check_sizes(n_annotators, n_classes)
    _check_prob(hammer_fraction, "hammer_fraction")
    _check_prob(hammer_accuracy, "hammer_accuracy")
    g = _rng(random_state)
    K = n_classes
    n_h = round(hammer_fraction * n_annotators)
    A = np.empty((n_annotators, K, K))
    A[:n_h] = symmetric_flip_confusions(n_h, K, flip_rate=1.0 - hammer_accuracy) if n_h else 0.0
    for m in range(n_h, n_annotators):
        A[m] = g.dirichlet(np.ones(K))[:, None]
    return A


def diagonally_dominant_confusions(
    n_annotators: int,
    n_classes: int,
    *,
    accuracy: tuple[float, float] = (0.5, 0.8),
    min_entry: float = 0.01,
    max_closeness: float | None = None,
    random_state: RNGLike = None,
) -> FloatArray:
    """Diagonally dominant confusions with every entry positive (no specialist, no zero).

    Each column ``j`` has ``A[j, j] ~ Uniform(accuracy)`` and the rest ``1 - A[j, j]`` split by a
    Dirichlet(1) draw mixed with a uniform floor so every entry is at least ``min_entry``.
    Columns whose largest off-diagonal entry is not below the diagonal are redrawn, so the
    diagonal is strictly the largest entry of its column. With ``max_closeness``, the
    off-diagonal entries of rows whose specialist closeness ``A[i, i] / sum_j A[i, j]`` exceeds it
    are raised (columns renormalised) so no annotator is a near-specialist; the diagonal is then
    usually, not always, still the largest entry of its column. Used by the F-SSC design
    (``max_closeness=0.75``).
    """
    _check_sizes(n_annotators, n_classes)
    lo, hi = accuracy
    K = n_classes
    if not (1.0 / K < lo <= hi < 1.0):
        raise ValueError(f"accuracy must be a range (low, high) with 1/K < low <= high < 1, got {accuracy!r}")
    if not 0 <= min_entry * (K - 1) < 1 - hi:
        raise ValueError(f"min_entry={min_entry} leaves no room for a diagonal of {hi} with {K} classes")
    g = _rng(random_state)
    A = np.empty((n_annotators, K, K))
    for m in range(n_annotators):
        for j in range(K):
            for _ in range(1000):
                d = g.uniform(lo, hi)
                rest = 1.0 - d - min_entry * (K - 1)
                off = min_entry + rest * g.dirichlet(np.ones(K - 1))
                if off.max() < d:
                    break
            else:  # pragma: no cover - only with accuracy barely above 1/K
                off = np.full(K - 1, (1.0 - d) / (K - 1))
            col = np.insert(off, j, d)
            A[m, :, j] = col
    if max_closeness is not None:
        _check_prob(max_closeness, "max_closeness")
        return _cap_row_closeness(A, max_closeness)
    return A


def symmetric_flip_confusions(
    n_annotators: int, n_classes: int, *, flip_rate: float | npt.ArrayLike = 0.2
) -> FloatArray:
    """Symmetric flipping: the true class is kept with prob. ``1 - e``, else uniform over the others.

    ``flip_rate`` is a scalar or one value per annotator, in [0, 1].
    """
    _check_sizes(n_annotators, n_classes)
    e = _per_annotator(flip_rate, n_annotators, "flip_rate")
    K = n_classes
    off = (np.ones((K, K)) - np.eye(K)) / (K - 1)
    return np.asarray((1 - e)[:, None, None] * np.eye(K) + e[:, None, None] * off, dtype=np.float64)


def pair_flip_confusions(n_annotators: int, n_classes: int, *, flip_rate: float | npt.ArrayLike = 0.2) -> FloatArray:
    """Pair flipping: true class ``j`` is reported as ``(j + 1) mod K`` with prob. ``e``, else ``j``."""
    _check_sizes(n_annotators, n_classes)
    e = _per_annotator(flip_rate, n_annotators, "flip_rate")
    K = n_classes
    shift = np.roll(np.eye(K), 1, axis=0)  # shift[(j+1)%K, j] = 1
    return np.asarray((1 - e)[:, None, None] * np.eye(K) + e[:, None, None] * shift, dtype=np.float64)


def random_confusions(
    n_annotators: int, n_classes: int, *, concentration: float = 1.0, random_state: RNGLike = None
) -> FloatArray:
    """Every column an independent Dirichlet(``concentration``) draw (no structure at all)."""
    _check_sizes(n_annotators, n_classes)
    if concentration <= 0:
        raise ValueError(f"concentration must be > 0, got {concentration}")
    g = _rng(random_state)
    draws = g.dirichlet(np.full(n_classes, concentration), size=(n_annotators, n_classes))  # (M, j, i)
    return np.ascontiguousarray(draws.transpose(0, 2, 1))


def class_specialist_confusions(
    n_annotators: int,
    n_classes: int,
    *,
    specialist_classes: Sequence[int] | None = None,
    classes_per_annotator: int = 1,
    accuracy: tuple[float, float] = (0.5, 0.8),
    random_state: RNGLike = None,
) -> FloatArray:
    """Annotators that are exact class specialists for some classes.

    Annotator ``m`` is an exact specialist for class ``k`` when row ``k`` of ``A_m`` is a
    multiple of ``e_k^T``: when it says ``k``, the item really is ``k``. Each listed class in
    ``specialist_classes`` (default: all classes) gets specialist annotators, assigned round-robin
    so annotator ``m`` covers ``classes_per_annotator`` consecutive classes of that list. Classes
    not listed get no specialist. Every matrix starts diagonally dominant with positive entries
    (:func:`diagonally_dominant_confusions`); specialist rows have their off-diagonal entries set
    to 0 and the columns are renormalised.
    """
    _check_sizes(n_annotators, n_classes)
    K = n_classes
    spec = list(range(K)) if specialist_classes is None else [int(k) for k in specialist_classes]
    for k in spec:
        if not 0 <= k < K:
            raise ValueError(f"specialist_classes contains {k}: expected class indices in [0, {K})")
    if classes_per_annotator < 1:
        raise ValueError(f"classes_per_annotator must be >= 1, got {classes_per_annotator}")
    A = diagonally_dominant_confusions(n_annotators, K, accuracy=accuracy, random_state=random_state)
    if spec:
        for m in range(n_annotators):
            for t in range(classes_per_annotator):
                k = spec[(m * classes_per_annotator + t) % len(spec)]
                keep = A[m, k, k]
                A[m, k, :] = 0.0
                A[m, k, k] = keep
    return _normalize_columns(A)


def _cap_row_closeness(A: FloatArray, cap: float) -> FloatArray:
    """Raise the off-diagonal (non-zero) entries of rows whose specialist closeness
    ``A[i, i] / sum_j A[i, j]`` exceeds ``cap``, renormalising columns, until none does."""
    A = _normalize_columns(A.copy())
    K = A.shape[1]
    eye = np.eye(K, dtype=bool)
    for _ in range(200):
        diag = np.diagonal(A, axis1=1, axis2=2)
        off = A.sum(axis=2) - diag
        close = diag / np.maximum(diag + off, 1e-300)
        viol = (close > cap + 1e-9) & (off > 0)
        if not viol.any():
            break
        scale = np.where(viol, 1.02 * diag * (1 - cap) / (cap * np.maximum(off, 1e-300)), 1.0)
        A = np.where(eye[None], A, A * scale[:, :, None])
        A = _normalize_columns(A)
    return A


def wssc_confusions(
    n_annotators: int,
    n_classes: int,
    *,
    zeros_per_row: tuple[int, int] = (1, 2),
    accuracy: tuple[float, float] = (0.5, 0.8),
    max_closeness: float = 0.75,
    random_state: RNGLike = None,
) -> FloatArray:
    """The W-SSC design: every row has one or two zeros, at spread-out places, and no specialist.

    Starts from :func:`diagonally_dominant_confusions`; in every row ``i`` of every annotator a
    random number (in ``zeros_per_row``) of off-diagonal entries is set to 0 at random columns,
    always leaving at least one positive off-diagonal entry; then the remaining off-diagonal
    entries of any row whose specialist closeness ``A[i, i] / sum_j A[i, j]`` exceeds
    ``max_closeness`` are raised (columns renormalised) so no row is even a *near*-specialist.
    The stacked rows of all annotators spread over the faces of the simplex, which is what the
    sufficiently-scattered condition on ``W`` asks for.
    """
    _check_sizes(n_annotators, n_classes)
    K = n_classes
    lo, hi = zeros_per_row
    if not (1 <= lo <= hi <= K - 2):
        raise ValueError(
            f"zeros_per_row must be (low, high) with 1 <= low <= high <= n_classes - 2 = {K - 2}, got {zeros_per_row!r}"
        )
    _check_prob(max_closeness, "max_closeness")
    g = _rng(random_state)
    A = diagonally_dominant_confusions(n_annotators, K, accuracy=accuracy, random_state=g)
    for m in range(n_annotators):
        for i in range(K):
            others = np.delete(np.arange(K), i)
            z = g.choice(others, size=int(g.integers(lo, hi + 1)), replace=False)
            A[m, i, z] = 0.0
    return _cap_row_closeness(A, max_closeness)


CONFUSION_FAMILIES: dict[str, Callable[..., FloatArray]] = {
    "separable-uniform": separable_uniform_confusions,
    "hammer-spammer": hammer_spammer_confusions,
    "diagonally-dominant": diagonally_dominant_confusions,
    "symmetric-flip": symmetric_flip_confusions,
    "pair-flip": pair_flip_confusions,
    "random": random_confusions,
    "class-specialist": class_specialist_confusions,
    "w-ssc": wssc_confusions,
}


def make_confusions(family: str, n_annotators: int, n_classes: int, **params: Any) -> FloatArray:
    """Confusions of a named family (a key of :data:`CONFUSION_FAMILIES`); ``params`` go to it."""
    if family not in CONFUSION_FAMILIES:
        raise ValueError(f"unknown confusion family {family!r}; expected one of {sorted(CONFUSION_FAMILIES)}")
    return CONFUSION_FAMILIES[family](n_annotators, n_classes, **params)


# ---------------------------------------------------------------------------- observation patterns
def bernoulli_pattern(
    n_items: int, n_annotators: int, p: float | npt.ArrayLike, *, random_state: RNGLike = None
) -> tuple[IntArray, IntArray]:
    """Each (item, annotator) pair observed independently with probability ``p``.

    Sampled without an ``n_items x n_annotators`` array: annotator ``m`` labels
    ``Binomial(n_items, p_m)`` items chosen uniformly without replacement, which has exactly the
    distribution of independent Bernoulli(``p_m``) draws.

    Parameters
    ----------
    p : float or array-like of shape (n_annotators,)
        Observation probability (per annotator if an array).

    Returns
    -------
    items, annotators : ndarray of int64 of shape (n_labels,)
        Observed pairs, sorted by annotator then item.
    """
    g = _rng(random_state)
    probs = _per_annotator(p, n_annotators, "p")
    counts = g.binomial(n_items, probs)
    items = [np.sort(g.choice(n_items, size=int(c), replace=False)) for c in counts]
    ann = np.repeat(np.arange(n_annotators, dtype=np.int64), counts)
    it = np.concatenate(items).astype(np.int64) if items else np.zeros(0, dtype=np.int64)
    return it, ann


def _distinct_rows(
    n_rows: int, k: int, n_cols: int, weights: FloatArray | None, g: np.random.Generator
) -> npt.NDArray[np.int64]:
    """(n_rows, k) draws from range(n_cols), distinct within each row (rejection per row)."""
    out = g.choice(n_cols, size=(n_rows, k), p=weights).astype(np.int64)
    for _ in range(10_000):
        s = np.sort(out, axis=1)
        bad = np.flatnonzero((s[:, 1:] == s[:, :-1]).any(axis=1)) if k > 1 else np.zeros(0, dtype=np.int64)
        if bad.size == 0:
            return out
        out[bad] = g.choice(n_cols, size=(bad.size, k), p=weights)
    raise ValueError("could not draw distinct annotators per item; weights too concentrated for per_item")


def fixed_per_item_pattern(
    n_items: int,
    n_annotators: int,
    per_item: int,
    *,
    weights: npt.ArrayLike | None = None,
    random_state: RNGLike = None,
) -> tuple[IntArray, IntArray]:
    """Every item labelled by exactly ``per_item`` distinct annotators.

    Annotators are drawn uniformly, or proportionally to ``weights`` (shape (n_annotators,)),
    conditioned on being distinct within an item. Cost O(n_items * per_item).

    Returns
    -------
    items, annotators : ndarray of int64 of shape (n_items * per_item,)
    """
    if not 1 <= per_item <= n_annotators:
        raise ValueError(f"per_item must be in [1, n_annotators={n_annotators}], got {per_item}")
    w = None
    if weights is not None:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (n_annotators,) or w.min() < 0 or not np.isfinite(w).all() or w.sum() <= 0:
            raise ValueError(f"weights must be {n_annotators} non-negative finite numbers with a positive sum")
        if np.count_nonzero(w) < per_item:
            raise ValueError(f"only {np.count_nonzero(w)} annotators have positive weight but per_item={per_item}")
        w = w / w.sum()
    chosen = _distinct_rows(n_items, per_item, n_annotators, w, _rng(random_state))
    items = np.repeat(np.arange(n_items, dtype=np.int64), per_item)
    return items, chosen.ravel()


def heavy_tailed_pattern(
    n_items: int,
    n_annotators: int,
    labels_per_item: float,
    *,
    alpha: float = 1.2,
    random_state: RNGLike = None,
) -> tuple[IntArray, IntArray]:
    """Bernoulli pattern whose per-annotator rates follow a heavy-tailed (Pareto) activity.

    Activity ``w_m = 1 + Pareto(alpha)``; rate ``p_m = min(1, labels_per_item * w_m / sum(w))``,
    so a few annotators label a large share of the items and most label few, as on real
    platforms; the mean number of labels per item is ``labels_per_item`` (a bit less when rates
    are capped at 1).
    """
    if labels_per_item <= 0 or labels_per_item > n_annotators:
        raise ValueError(f"labels_per_item must be in (0, n_annotators={n_annotators}], got {labels_per_item}")
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    g = _rng(random_state)
    w = 1.0 + g.pareto(alpha, size=n_annotators)
    p = np.minimum(1.0, labels_per_item * w / w.sum())
    return bernoulli_pattern(n_items, n_annotators, p, random_state=g)


# ---------------------------------------------------------------------------- truth and labels
def hard_truth(
    n_items: int, n_classes: int, *, priors: npt.ArrayLike | None = None, random_state: RNGLike = None
) -> tuple[IntArray, FloatArray]:
    """Hard true labels drawn from ``priors`` (default uniform); posteriors are one-hot (anchors).

    Returns
    -------
    labels : ndarray of int64 of shape (n_items,)
    posteriors : ndarray of shape (n_items, n_classes)
    """
    pri = np.full(n_classes, 1.0 / n_classes) if priors is None else np.asarray(priors, dtype=np.float64)
    if pri.shape != (n_classes,) or pri.min() < 0 or not np.isclose(pri.sum(), 1.0):
        raise ValueError(f"priors must be {n_classes} non-negative numbers summing to 1, got {priors!r}")
    y = _rng(random_state).choice(n_classes, size=n_items, p=pri).astype(np.int64)
    return y, np.eye(n_classes)[y]


def ambiguous_posteriors(
    n_items: int,
    n_classes: int,
    *,
    support: tuple[int, int] = (2, 3),
    mix: float = 0.3,
    anchor_fraction: float = 0.0,
    random_state: RNGLike = None,
) -> tuple[IntArray, FloatArray]:
    """The F-SSC design: items ambiguous between two or three classes, no near-anchor item.

    Each item picks ``s`` classes (``s`` uniform in ``support``) and gets
    ``f = (1 - mix) * Dirichlet(1 on those classes) + mix * uniform(those classes)``, so no
    class has probability above ``1 - mix + mix / s`` (no anchors). Items with two classes lie
    near the edges of the simplex, whose midpoints the second-order cone touches: many such
    items make ``F`` sufficiently scattered. A share ``anchor_fraction`` of items is made
    one-hot instead (to add anchors to a control design).

    Returns
    -------
    labels : ndarray of int64 of shape (n_items,)
        ``argmax f`` of each item.
    posteriors : ndarray of shape (n_items, n_classes)
    """
    lo, hi = support
    if not 1 <= lo <= hi <= n_classes:
        raise ValueError(f"support must be (low, high) with 1 <= low <= high <= n_classes, got {support!r}")
    _check_prob(mix, "mix")
    _check_prob(anchor_fraction, "anchor_fraction")
    g = _rng(random_state)
    K = n_classes
    sizes = g.integers(lo, hi + 1, size=n_items)
    post = np.zeros((n_items, K))
    for s in np.unique(sizes):
        rows = np.flatnonzero(sizes == s)
        cls = np.argsort(g.random((rows.size, K)), axis=1)[:, :s]
        w = (1 - mix) * g.dirichlet(np.ones(s), size=rows.size) + mix / s
        post[rows[:, None], cls] = w
    anchors = g.random(n_items) < anchor_fraction
    if anchors.any():
        post[anchors] = np.eye(K)[post[anchors].argmax(axis=1)]
    return post.argmax(axis=1).astype(np.int64), post


def soft_posteriors(
    n_items: int, n_classes: int, *, spread: float = 0.5, random_state: RNGLike = None
) -> tuple[IntArray, FloatArray]:
    """Soft items well inside the simplex: ``f = (1 - spread) / K + spread * Dirichlet(1)``.

    With ``spread`` below 1 every class has probability at least ``(1 - spread) / K``: there is
    no anchor and (for small ``spread``) ``F`` is not sufficiently scattered — the W-SSC design
    uses these so that only the confusions can give identifiability.
    """
    _check_prob(spread, "spread")
    g = _rng(random_state)
    post = (1 - spread) / n_classes + spread * g.dirichlet(np.ones(n_classes), size=n_items)
    return post.argmax(axis=1).astype(np.int64), post


def sample_labels(
    items: npt.ArrayLike,
    annotators: npt.ArrayLike,
    confusions: npt.ArrayLike,
    posteriors: npt.ArrayLike,
    *,
    random_state: RNGLike = None,
) -> IntArray:
    """Draw a label for every observed pair: true class ``z ~ f(x_n)``, then ``y ~ A_m[:, z]``.

    Parameters
    ----------
    items, annotators : array-like of int of shape (n_labels,)
    confusions : array-like of shape (n_annotators, n_classes, n_classes)
    posteriors : array-like of shape (n_items, n_classes)

    Returns
    -------
    ndarray of int64 of shape (n_labels,)
    """
    g = _rng(random_state)
    it = np.asarray(items, dtype=np.int64)
    an = np.asarray(annotators, dtype=np.int64)
    A = np.asarray(confusions, dtype=np.float64)
    F = np.asarray(posteriors, dtype=np.float64)
    if A.ndim != 3 or A.shape[1] != A.shape[2] or F.ndim != 2 or F.shape[1] != A.shape[1]:
        raise ValueError(
            f"confusions must be (n_annotators, K, K) and posteriors (n_items, K), got {A.shape} and {F.shape}"
        )
    if not np.allclose(A.sum(axis=1), 1.0, atol=1e-6) or A.min() < 0:
        raise ValueError("confusions must be column-stochastic: non-negative with every column summing to 1")
    if not np.allclose(F.sum(axis=1), 1.0, atol=1e-6) or F.min() < 0:
        raise ValueError("posteriors must be non-negative with every row summing to 1")
    if it.size == 0:
        return np.zeros(0, dtype=np.int64)
    K = A.shape[1]

    def draw(prob_rows: FloatArray) -> IntArray:
        cdf = np.cumsum(prob_rows, axis=1)
        u = g.random(len(prob_rows))[:, None] * cdf[:, -1:]
        return np.asarray(np.minimum((u >= cdf).sum(axis=1), K - 1), dtype=np.int64)

    z = draw(F[it])
    return draw(A[an, :, z])


def correlate_annotators(
    annotations: Annotations, copier: int, source: int, prob: float, *, random_state: RNGLike = None
) -> Annotations:
    """Make ``copier`` copy ``source``: on each item ``source`` labelled, with probability ``prob``
    the copier gives the source's label (added if the copier had not labelled the item, replacing
    its own label otherwise). Models colluding or duplicated annotators.
    """
    _check_prob(prob, "prob")
    M = annotations.n_annotators
    for name, v in (("copier", copier), ("source", source)):
        if not 0 <= v < M:
            raise ValueError(f"{name}={v} is not an annotator index in [0, {M})")
    if copier == source:
        raise ValueError("copier and source must be different annotators")
    g = _rng(random_state)
    pos = annotations.by_annotator.positions([source])
    take = pos[g.random(pos.size) < prob]
    new = Annotations(
        annotations.items[take],
        np.full(take.size, copier, dtype=np.int64),
        annotations.labels[take],
        n_items=annotations.n_items,
        n_annotators=M,
        n_classes=annotations.n_classes,
        item_ids=annotations.item_ids,
        annotator_ids=annotations.annotator_ids,
        classes=annotations.classes,
    )
    return annotations.concat(new, on_duplicate="last")


# ---------------------------------------------------------------------------- whole crowds
TruthKind = Literal["hard", "ambiguous", "soft"]


def simulate_crowd(
    confusions: npt.ArrayLike,
    *,
    n_items: int,
    p: float | npt.ArrayLike | None = None,
    per_item: int | None = None,
    truth: TruthKind | npt.ArrayLike = "hard",
    priors: npt.ArrayLike | None = None,
    random_state: RNGLike = None,
) -> SimulatedCrowd:
    """Simulate labels of ``n_items`` items by annotators with the given confusions.

    Parameters
    ----------
    confusions : array-like of shape (n_annotators, n_classes, n_classes)
        Column-stochastic, ``[m, i, j] = P(m says i | true j)``.
    n_items : int
    p : float or array-like of shape (n_annotators,), optional
        Bernoulli observation probability (:func:`bernoulli_pattern`).
    per_item : int, optional
        Instead of ``p``: exactly this many annotators per item (:func:`fixed_per_item_pattern`).
    truth : {"hard", "ambiguous", "soft"} or array-like of shape (n_items, n_classes)
        Hard labels from ``priors`` (:func:`hard_truth`), F-SSC items
        (:func:`ambiguous_posteriors`), soft items (:func:`soft_posteriors`), or given posteriors.
    priors : array-like of shape (n_classes,), optional
        Class priors for ``truth="hard"``.
    random_state : int, Generator or None
        Seed (or generator) of every random draw; None draws fresh entropy.

    Returns
    -------
    SimulatedCrowd
    """
    A = np.asarray(confusions, dtype=np.float64)
    if A.ndim != 3 or A.shape[1] != A.shape[2]:
        raise ValueError(f"confusions must have shape (n_annotators, n_classes, n_classes), got {A.shape}")
    M, K = A.shape[0], A.shape[1]
    if (p is None) == (per_item is None):
        raise ValueError("give exactly one of p (Bernoulli observation) and per_item (annotators per item)")
    g = _rng(random_state)
    if isinstance(truth, str):
        if truth == "hard":
            y, F = hard_truth(n_items, K, priors=priors, random_state=g)
        elif truth == "ambiguous":
            y, F = ambiguous_posteriors(n_items, K, random_state=g)
        elif truth == "soft":
            y, F = soft_posteriors(n_items, K, random_state=g)
        else:
            raise ValueError(f"truth must be 'hard', 'ambiguous', 'soft' or an (n_items, K) array, got {truth!r}")
    else:
        F = np.asarray(truth, dtype=np.float64)
        if F.shape != (n_items, K):
            raise ValueError(f"truth posteriors must have shape ({n_items}, {K}), got {F.shape}")
        y = F.argmax(axis=1).astype(np.int64)
    if p is not None:
        items, ann = bernoulli_pattern(n_items, M, p, random_state=g)
    else:
        assert per_item is not None
        items, ann = fixed_per_item_pattern(n_items, M, per_item, random_state=g)
    labels = sample_labels(items, ann, A, F, random_state=g)
    annotations = Annotations(items, ann, labels, n_items=n_items, n_annotators=M, n_classes=K)
    return SimulatedCrowd(annotations, A, y, F)


DESIGNS = ("control", "f-ssc", "w-ssc", "separable-uniform")


def simulate_design(
    name: str,
    *,
    n_items: int,
    n_annotators: int,
    n_classes: int,
    p: float,
    random_state: RNGLike = None,
) -> SimulatedCrowd:
    """The matrix-level designs that separate CCEM and GeoCrowdNet (Ibrahim, Nguyen & Fu, ICLR 2023).

    - ``"control"``: class-specialist annotators for every class (:func:`class_specialist_confusions`)
      and hard (anchor) items: all methods should recover the confusions.
    - ``"f-ssc"``: diagonally dominant, all-positive confusions (no near-specialist: every row's
      closeness ``A[i, i] / sum_j A[i, j]`` is at most 0.75) and items
      ambiguous between 2-3 classes (no anchor; F sufficiently scattered): favours GeoCrowdNet(F).
    - ``"w-ssc"``: :func:`wssc_confusions` (rows with zeros, no specialist) and soft items (no
      anchor, F not scattered): favours GeoCrowdNet(W).
    - ``"separable-uniform"``: one near-specialist, the rest near-uniform, hard items.
    """
    g = _rng(random_state)
    M, K = n_annotators, n_classes
    if name == "control":
        A = class_specialist_confusions(M, K, random_state=g)
        truth: TruthKind = "hard"
    elif name == "f-ssc":
        A = diagonally_dominant_confusions(M, K, max_closeness=0.75, random_state=g)
        truth = "ambiguous"
    elif name == "w-ssc":
        A = wssc_confusions(M, K, random_state=g)
        truth = "soft"
    elif name == "separable-uniform":
        A = separable_uniform_confusions(M, K, random_state=g)
        truth = "hard"
    else:
        raise ValueError(f"unknown design {name!r}; expected one of {list(DESIGNS)}")
    return simulate_crowd(A, n_items=n_items, p=p, truth=truth, random_state=g)


def item_features(
    posteriors: npt.ArrayLike,
    n_features: int = 10,
    *,
    separation: float = 3.0,
    noise: float = 1.0,
    random_state: RNGLike = None,
) -> FloatArray:
    """Feature vectors that carry the items' true class posteriors, for training on a simulated crowd.

    ``x_n = F_n @ centers + noise * e_n``: ``centers`` has one row per class, drawn from
    ``N(0, I)`` and scaled to norm ``separation``, and ``e_n ~ N(0, I)``. Hard (one-hot)
    truth gives one Gaussian cluster per class; soft truth places an item between the centres
    of its classes.

    Parameters
    ----------
    posteriors : array-like of shape (n_items, n_classes)
        True class posteriors ``f(x_n)`` (``SimulatedCrowd.true_posteriors``).
    n_features : int, default=10
        Dimension ``D`` of the features.
    separation : float, default=3.0
        Norm of every class centre (larger: easier classes).
    noise : float, default=1.0
        Standard deviation of the isotropic noise.
    random_state : Generator, int or None

    Returns
    -------
    ndarray of shape (n_items, n_features)
    """
    F = np.asarray(posteriors, dtype=np.float64)
    if F.ndim != 2 or F.shape[1] < 1:
        raise ValueError(f"posteriors must have shape (n_items, n_classes), got {F.shape}")
    if int(n_features) != n_features or n_features < 1:
        raise ValueError(f"n_features must be a positive integer, got {n_features!r}")
    if not (np.isfinite(separation) and separation > 0):
        raise ValueError(f"separation must be a finite float > 0, got {separation!r}")
    if not (np.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be a finite float >= 0, got {noise!r}")
    g = _rng(random_state)
    centers = g.normal(size=(F.shape[1], int(n_features)))
    centers *= separation / np.linalg.norm(centers, axis=1, keepdims=True)
    out: FloatArray = F @ centers + noise * g.normal(size=(F.shape[0], int(n_features)))
    return out


# ---------------------------------------------------------------------------- machine annotators
def _require_sklearn() -> Any:
    try:
        import sklearn
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "machine annotators need scikit-learn: pip install 'crowdlearn[sklearn]' (or scikit-learn)"
        ) from exc
    return sklearn


def _convergence_warning() -> type[Warning]:
    from sklearn.exceptions import ConvergenceWarning

    return ConvergenceWarning  # type: ignore[no-any-return]


def default_machines(n_machines: int = 15, *, random_state: RNGLike = None) -> list[tuple[str, Any, int]]:
    """A zoo of scikit-learn classifiers of varied strength, as in the paper's MNIST setup.

    Returns ``(name, unfitted estimator, training-subset size)`` triples cycling through linear,
    RBF and polynomial SVMs, kNN, logistic regression, a small MLP trained for few iterations,
    Gaussian naive Bayes and a shallow decision tree, each with a random training-subset size
    between 100 and 2,000 (smaller = weaker). Needs scikit-learn.
    """
    _require_sklearn()
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.svm import SVC, LinearSVC
    from sklearn.tree import DecisionTreeClassifier

    g = _rng(random_state)

    def zoo(i: int, seed: int) -> tuple[str, Any]:
        kind = i % 9
        if kind == 0:
            return "linear-svm", LinearSVC(C=0.01, max_iter=200, random_state=seed)
        if kind == 1:
            return "rbf-svm", SVC(kernel="rbf", gamma="scale")
        if kind == 2:
            return "poly-svm", SVC(kernel="poly", degree=3)
        if kind == 3:
            return "knn", KNeighborsClassifier(n_neighbors=int(g.integers(1, 15)))
        if kind == 4:
            return "logreg", LogisticRegression(C=0.05, max_iter=100)
        if kind == 5:
            return "mlp", MLPClassifier(hidden_layer_sizes=(32,), max_iter=int(g.integers(3, 20)), random_state=seed)
        if kind == 6:
            return "gaussian-nb", GaussianNB()
        if kind == 7:
            return "tree", DecisionTreeClassifier(max_depth=int(g.integers(3, 8)), random_state=seed)
        return "knn", KNeighborsClassifier(n_neighbors=int(g.integers(15, 50)))

    out = []
    for i in range(n_machines):
        name, est = zoo(i, int(g.integers(2**31 - 1)))
        out.append((name, est, int(g.integers(100, 2001))))
    return out


def simulate_machine_annotators(
    X_train: npt.ArrayLike,
    y_train: npt.ArrayLike,
    X_pool: npt.ArrayLike,
    y_pool: npt.ArrayLike,
    *,
    n_classes: int | None = None,
    n_machines: int = 15,
    p: float = 0.1,
    machines: Sequence[tuple[str, Any, int]] | None = None,
    random_state: RNGLike = None,
) -> SimulatedCrowd:
    """Machine annotators (Ibrahim, Nguyen & Fu, ICLR 2023): classifiers as crowd workers.

    Each machine (an unfitted scikit-learn-style classifier with a training-subset size) is fit
    on a random subset of the held-out pool ``(X_pool, y_pool)``; each of its predictions on the
    training items is then observed with probability ``p``. Its "true" confusion matrix is its
    empirical confusion on *all* training items (predicted in one pass per machine; only the
    observed predictions are kept, and no ``n_items x n_machines`` array is formed).

    Parameters
    ----------
    X_train : array-like of shape (n_items, n_features)
        Inputs of the items to be labelled (flattened images are fine).
    y_train : array-like of int of shape (n_items,)
        Their true classes.
    X_pool, y_pool : array-like of shape (n_pool, n_features) and (n_pool,)
        Held-out labelled pool the machines are trained on (disjoint from the training items).
    n_classes : int, optional
        Default ``max(y) + 1``.
    n_machines : int, default=15
        Used when ``machines`` is None (:func:`default_machines`).
    p : float, default=0.1
        Observation probability of each (item, machine) pair.
    machines : sequence of (name, estimator, subset_size), optional
        Custom machines; each estimator needs ``fit(X, y)`` and ``predict(X)``.
    random_state : int, Generator or None
        Seed (or generator) of every random draw; None draws fresh entropy.

    Returns
    -------
    SimulatedCrowd
        ``features`` is ``X_train``; ``annotations.annotator_ids`` are ``"<index>-<name>"``.
    """
    g = _rng(random_state)
    Xt = np.asarray(X_train)
    yt = np.asarray(y_train).astype(np.int64)
    Xp = np.asarray(X_pool)
    yp = np.asarray(y_pool).astype(np.int64)
    if len(Xt) != len(yt) or len(Xp) != len(yp):
        raise ValueError(
            f"X_train/y_train have {len(Xt)}/{len(yt)} rows and X_pool/y_pool {len(Xp)}/{len(yp)}; each pair must match"
        )
    K = int(max(yt.max(), yp.max()) + 1) if n_classes is None else int(n_classes)
    if yt.min() < 0 or yt.max() >= K or yp.min() < 0 or yp.max() >= K:
        raise ValueError(f"y_train and y_pool must hold class indices in [0, {K})")
    _check_prob(p, "p")
    zoo = list(machines) if machines is not None else default_machines(n_machines, random_state=g)
    M, N = len(zoo), len(Xt)
    items, ann = bernoulli_pattern(N, M, p, random_state=g)
    labels = np.empty(items.size, dtype=np.int64)
    A = np.empty((M, K, K))
    bounds = np.searchsorted(ann, np.arange(M + 1))
    ids = []
    for m, (name, est, size) in enumerate(zoo):
        sub = g.choice(len(Xp), size=min(int(size), len(Xp)), replace=False)
        with warnings.catch_warnings():
            # the weak machines are under-trained on purpose (few iterations)
            warnings.simplefilter("ignore", category=_convergence_warning())
            est.fit(Xp[sub], yp[sub])
        pred = np.asarray(est.predict(Xt)).astype(np.int64)
        counts = np.zeros((K, K))
        np.add.at(counts, (pred, yt), 1.0)
        col = counts.sum(axis=0, keepdims=True)
        A[m] = np.where(col > 0, counts / np.where(col > 0, col, 1.0), 1.0 / K)
        lo, hi = bounds[m], bounds[m + 1]
        labels[lo:hi] = pred[items[lo:hi]]
        ids.append(f"{m}-{name}")
    annotations = Annotations(items, ann, labels, n_items=N, n_annotators=M, n_classes=K, annotator_ids=ids)
    return SimulatedCrowd(annotations, A, yt, np.eye(K)[yt], features=Xt)
