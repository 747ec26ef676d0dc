"""Identifiability diagnostics: does your crowd let CCEM (or GeoCrowdNet) recover the truth?

The theory (Ibrahim, Nguyen & Fu, "Deep Learning From Crowdsourced Labels: Coupled
Cross-Entropy Minimization, Identifiability, and Regularization", ICLR 2023) says:

- plain CCEM identifies the classifier ``f`` and every confusion matrix ``A_m`` (up to one
  class permutation) when, for every class ``k``, some annotator is a near-class-specialist
  (row ``k`` of ``A_m`` close to a multiple of ``e_k^T``: when it says ``k`` the item is ``k``)
  and some item is a near-anchor (``f(x_n)`` close to ``e_k``);
- GeoCrowdNet(F) (``- lambda log det(F F^T)``) drops both conditions when the predicted
  posteriors ``F`` are sufficiently scattered (SSC) in the simplex;
- GeoCrowdNet(W) (``- lambda log det(W^T W)``) drops them when the stacked confusion rows ``W``
  are sufficiently scattered.

:func:`diagnose` measures proxies of these conditions from estimated confusions (given, or
Dawid-Skene by default) and optionally from predicted posteriors of a fitted model, plus the
data checks every estimate depends on: label coverage per class, annotators with too few labels,
and the connectivity of the item-annotator graph. These are *proxies*: the conditions are on the
unknown true quantities, and estimates of them can look better or worse than the truth.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy.optimize import linprog
from scipy.sparse.csgraph import connected_components

from crowdlearn.annotations import Annotations

__all__ = ["ClassDiagnosis", "DiagnosisReport", "ScatterProxy", "diagnose", "scatter_proxy"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ClassDiagnosis:
    """Per-class findings.

    Attributes
    ----------
    index : int
        Class index.
    name : str
        Class id as text.
    n_labels : int
        Labels that say this class.
    best_specialist : str or None
        Id of the annotator (with enough labels) whose row for this class is closest to a
        multiple of ``e_k^T``; None when no annotator qualifies.
    specialist_closeness : float
        ``A[m, k, k] / sum_j A[m, k, j]`` for that annotator, in [0, 1]: 1 is an exact
        specialist (it says ``k`` only for true ``k``).
    specialist_n_labels : int
        Labels of this class given by that annotator.
    specialist_rate : float
        ``A[m, k, k]``: how often that annotator says ``k`` for a true ``k`` item (a specialist
        that rarely says ``k`` gives little information).
    best_anchor : str or None
        Id of the item with the largest predicted probability of this class (needs
        ``posteriors``).
    anchor_closeness : float or None
        That probability ``f_k(x_n)``: 1 is an exact anchor. None without ``posteriors``.
    """

    index: int
    name: str
    n_labels: int
    best_specialist: str | None
    specialist_closeness: float
    specialist_rate: float
    specialist_n_labels: int
    best_anchor: str | None
    anchor_closeness: float | None


@dataclass(frozen=True)
class ScatterProxy:
    """How much of the second-order cone the conic hull of some vectors covers (sampled).

    Attributes
    ----------
    min_radius : float
        Over sampled directions ``u`` (unit, orthogonal to the all-ones vector), the smallest
        ``t`` in [0, 1] with ``1/K + t r u`` in the convex hull of the normalised vectors, where
        ``r = 1 / sqrt(K (K - 1))`` is the radius of the cone's cross-section with the simplex.
        1 means every sampled boundary direction of the cone is covered.
    coverage : float
        Share of sampled directions fully covered (``t >= 1 - 1e-6``).
    n_vectors : int
        Number of vectors used (after subsampling and dropping zero vectors).
    n_directions : int
    """

    min_radius: float
    coverage: float
    n_vectors: int
    n_directions: int


@dataclass(frozen=True)
class DiagnosisReport:
    """Result of :func:`diagnose`; ``str(report)`` is the human-readable form.

    Attributes
    ----------
    n_items, n_annotators, n_classes, n_labels : int
    confusions_source : str
        ``"given"`` or ``"dawid-skene"``.
    classes : list of ClassDiagnosis
    w_scatter : ScatterProxy
        Scatter proxy of the rows of the stacked confusions ``W`` (annotators with enough labels).
    f_scatter : ScatterProxy or None
        Scatter proxy of the predicted posteriors (None without ``posteriors``).
    min_labels : int
        Threshold below which an annotator is listed in ``few_label_annotators``.
    few_label_annotators : dict of str to int
        Annotator id -> number of labels, for annotators with fewer than ``min_labels`` labels.
    n_components : int
        Connected components of the item-annotator graph (items and annotators with labels).
    largest_component_share : float
        Share of labels inside the largest component.
    n_items_without_labels : int
    specialist_threshold, anchor_threshold : float
    missing_specialists, missing_anchors : list of int
        Classes whose best closeness is below the threshold (anchors: empty without posteriors).
    recommendation : str
    """

    n_items: int
    n_annotators: int
    n_classes: int
    n_labels: int
    confusions_source: str
    classes: list[ClassDiagnosis]
    w_scatter: ScatterProxy
    f_scatter: ScatterProxy | None
    min_labels: int
    few_label_annotators: dict[str, int]
    n_components: int
    largest_component_share: float
    n_items_without_labels: int
    specialist_threshold: float
    anchor_threshold: float
    missing_specialists: list[int] = field(default_factory=list)
    missing_anchors: list[int] = field(default_factory=list)
    recommendation: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict (JSON-serialisable) form."""
        return asdict(self)

    def __str__(self) -> str:
        lines = [
            f"items {self.n_items} ({self.n_items_without_labels} without labels), annotators {self.n_annotators}, "
            f"classes {self.n_classes}, labels {self.n_labels}; confusions: {self.confusions_source}",
            f"item-annotator graph: {self.n_components} connected component(s), "
            f"largest holds {self.largest_component_share:.1%} of the labels",
        ]
        if self.few_label_annotators:
            few = ", ".join(f"{k} ({v})" for k, v in list(self.few_label_annotators.items())[:10])
            more = "" if len(self.few_label_annotators) <= 10 else f", ... {len(self.few_label_annotators)} in all"
            lines.append(f"annotators with fewer than {self.min_labels} labels (not used as specialists): {few}{more}")
        lines.append(
            "class | labels | best specialist (closeness, rate, its labels of the class) | best anchor (closeness)"
        )
        for c in self.classes:
            spec = "-"
            if c.best_specialist is not None:
                spec = (
                    f"{c.best_specialist} ({c.specialist_closeness:.3f}, {c.specialist_rate:.2f}, "
                    f"{c.specialist_n_labels} labels)"
                )
            anc = "n/a" if c.anchor_closeness is None else f"{c.best_anchor} ({c.anchor_closeness:.3f})"
            lines.append(f"{c.name} | {c.n_labels} | {spec} | {anc}")
        w = self.w_scatter
        lines.append(
            f"W scatter proxy: min radius {w.min_radius:.3f}, coverage {w.coverage:.1%} "
            f"({w.n_vectors} confusion rows, {w.n_directions} directions)"
        )
        if self.f_scatter is not None:
            f = self.f_scatter
            lines.append(
                f"F scatter proxy: min radius {f.min_radius:.3f}, coverage {f.coverage:.1%} "
                f"({f.n_vectors} items, {f.n_directions} directions)"
            )
        lines.append(f"recommendation: {self.recommendation}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------- scatter proxy
def scatter_proxy(
    vectors: npt.ArrayLike,
    *,
    n_directions: int = 64,
    max_vectors: int = 2000,
    random_state: int | np.random.Generator | None = 0,
) -> ScatterProxy:
    """Sampled check of how much of the second-order cone the vectors' conic hull covers.

    The sufficiently-scattered condition asks that the conic hull of the vectors contain the
    cone ``C = {x : 1^T x >= sqrt(K - 1) ||x||_2}`` (and touch its boundary only along the
    rays of ``e_k``-type). Cutting with the simplex, ``C`` becomes the ball of radius
    ``r = 1/sqrt(K(K-1))`` around ``1/K`` that touches the edge midpoints, and the conic hull
    becomes the convex hull of the vectors rescaled to sum 1. For each of ``n_directions``
    random unit directions ``u`` in the simplex plane, one linear program finds the largest
    ``t <= 1`` such that ``1/K + t r u`` is in that hull.

    Limits: directions are sampled, so ``coverage = 1`` is evidence, not proof, that ``C`` is
    covered; the boundary-touching part of SSC is not checked; at most ``max_vectors`` vectors
    (a random subset) are used; the vectors are estimates, not the truth.

    Parameters
    ----------
    vectors : array-like of shape (n_vectors, n_classes)
        Non-negative vectors (posterior rows of ``F`` or confusion rows of ``W``); all-zero rows
        are ignored.
    n_directions : int, default=64
    max_vectors : int, default=2000
    random_state : int, Generator or None, default=0
        Seed (or generator) of the sampled directions and of the vector subset.

    Returns
    -------
    ScatterProxy
    """
    V = np.asarray(vectors, dtype=np.float64)
    if V.ndim != 2 or V.shape[1] < 2:
        raise ValueError(f"vectors must have shape (n_vectors, n_classes >= 2), got {V.shape}")
    if not np.all(np.isfinite(V)) or (V.size and V.min() < 0):
        raise ValueError("vectors must be finite and non-negative")
    if n_directions < 1:
        raise ValueError(f"n_directions must be >= 1, got {n_directions}")
    g = random_state if isinstance(random_state, np.random.Generator) else np.random.default_rng(random_state)
    s = V.sum(axis=1)
    V = V[s > 0] / s[s > 0, None]
    if len(V) > max_vectors:
        V = V[g.choice(len(V), size=max_vectors, replace=False)]
    K = V.shape[1]
    n = len(V)
    if n == 0:
        return ScatterProxy(0.0, 0.0, 0, n_directions)
    r = 1.0 / np.sqrt(K * (K - 1))
    centre = np.full(K, 1.0 / K)
    radii = np.empty(n_directions)
    # variables (lambda_1..lambda_n, t): maximise t s.t. V^T lambda - t r u = 1/K, sum lambda = 1
    c = np.zeros(n + 1)
    c[-1] = -1.0
    bounds = [(0.0, None)] * n + [(0.0, 1.0)]
    for d in range(n_directions):
        u = g.standard_normal(K)
        u -= u.mean()
        u /= np.linalg.norm(u)
        A_eq = np.vstack([np.hstack([V.T, -r * u[:, None]]), np.r_[np.ones(n), 0.0][None, :]])
        b_eq = np.r_[centre, 1.0]
        res = linprog(c, A_eq=A_eq, b_eq=b_eq, bounds=bounds, method="highs")
        radii[d] = float(np.asarray(res.x)[-1]) if res.status == 0 else 0.0  # infeasible: centre not in the hull
    return ScatterProxy(
        min_radius=float(radii.min()),
        coverage=float(np.mean(radii >= 1 - 1e-6)),
        n_vectors=n,
        n_directions=n_directions,
    )


# ---------------------------------------------------------------------------- diagnose
def _dawid_skene_confusions(annotations: Annotations) -> FloatArray:
    from crowdlearn.aggregate import DawidSkene

    model = DawidSkene().fit(annotations)
    return np.asarray(model.confusions_, dtype=np.float64)


def _components(annotations: Annotations) -> tuple[int, float]:
    N, M = annotations.n_items, annotations.n_annotators
    if annotations.n_labels == 0:
        return 0, 0.0
    graph = sp.coo_matrix(
        (np.ones(annotations.n_labels), (annotations.items, N + annotations.annotators)), shape=(N + M, N + M)
    ).tocsr()
    _, comp = connected_components(graph, directed=False)
    label_comp = comp[annotations.items]
    used = np.unique(np.concatenate([comp[annotations.items], comp[N + annotations.annotators]]))
    share = np.bincount(label_comp).max() / annotations.n_labels
    return int(used.size), float(share)


def diagnose(
    annotations: Annotations,
    *,
    confusions: npt.ArrayLike | None = None,
    posteriors: npt.ArrayLike | None = None,
    min_labels: int | None = None,
    min_class_labels: int = 5,
    specialist_threshold: float = 0.9,
    anchor_threshold: float = 0.9,
    n_directions: int = 64,
    random_state: int | np.random.Generator | None = 0,
) -> DiagnosisReport:
    """Check the identifiability conditions of CCEM / GeoCrowdNet on a crowd.

    Parameters
    ----------
    annotations : Annotations
        The observed labels.
    confusions : array-like of shape (n_annotators, n_classes, n_classes), optional
        Estimated confusions (``[m, i, j] = P(m says i | true j)``), e.g. ``model.confusions_`` of
        a fitted :class:`~crowdlearn.estimators.CrowdClassifier` or aggregator. Default: fit
        :class:`~crowdlearn.aggregate.DawidSkene` on ``annotations``.
    posteriors : array-like of shape (n_items, n_classes), optional
        Predicted class posteriors ``f(x_n)`` of the items (e.g. ``model.predict_proba(X)``) for the
        near-anchor and F-scatter checks. Crowd-vote posteriors (Dawid-Skene's ``probas_``) are
        *not* a substitute: they measure agreement of labels, not ambiguity of the items.
    min_labels : int, optional
        Annotators with fewer labels are listed and not used as specialists or in ``W``
        (their matrix cannot be estimated). Default ``max(10, 2 * n_classes)``.
    min_class_labels : int, default=5
        An annotator is a specialist candidate for class ``k`` only if it said ``k`` at least this
        many times (a row estimated from a few labels looks exact by chance).
    specialist_threshold, anchor_threshold : float, default=0.9
        Closeness below which a class counts as lacking a near-specialist / near-anchor.
    n_directions : int, default=64
        Directions sampled by :func:`scatter_proxy`.
    random_state : int, Generator or None, default=0
        Seed (or generator) of :func:`scatter_proxy`'s directions.

    Returns
    -------
    DiagnosisReport
    """
    K, M, N = annotations.n_classes, annotations.n_annotators, annotations.n_items
    if K < 2:
        raise ValueError(f"diagnostics need at least 2 classes, got n_classes={K}")
    for name, v in (("specialist_threshold", specialist_threshold), ("anchor_threshold", anchor_threshold)):
        if not 0 < v <= 1:
            raise ValueError(f"{name} must be in (0, 1], got {v!r}")
    min_lab = max(10, 2 * K) if min_labels is None else int(min_labels)
    if min_lab < 0:
        raise ValueError(f"min_labels must be >= 0, got {min_labels!r}")
    if min_class_labels < 0:
        raise ValueError(f"min_class_labels must be >= 0, got {min_class_labels!r}")
    if confusions is None:
        A = _dawid_skene_confusions(annotations)
        source = "dawid-skene"
    else:
        A = np.asarray(confusions, dtype=np.float64)
        source = "given"
    if A.shape != (M, K, K):
        raise ValueError(f"confusions must have shape ({M}, {K}, {K}) to match the annotations, got {A.shape}")
    if not np.all(np.isfinite(A)) or A.min() < 0:
        raise ValueError("confusions must be finite and non-negative")
    P: FloatArray | None = None
    if posteriors is not None:
        P = np.asarray(posteriors, dtype=np.float64)
        if P.shape != (N, K):
            raise ValueError(f"posteriors must have shape ({N}, {K}) to match the annotations, got {P.shape}")
        if not np.all(np.isfinite(P)) or P.min() < 0:
            raise ValueError("posteriors must be finite and non-negative")

    counts = annotations.annotator_counts
    enough = counts >= min_lab
    few = {str(annotations.annotator_ids[m]): int(counts[m]) for m in np.flatnonzero(~enough)}
    row_sums = A.sum(axis=2)  # (M, K): mass of row k
    diag = np.diagonal(A, axis1=1, axis2=2)  # (M, K)
    closeness = np.where(row_sums > 0, diag / np.where(row_sums > 0, row_sums, 1.0), 0.0)
    # labels of class k given by annotator m: a "specialist" row estimated from a handful of
    # labels is exact by chance, so it needs min_class_labels of them
    said = np.bincount(annotations.annotators * K + annotations.labels, minlength=M * K).reshape(M, K)
    closeness[~enough] = -1.0
    closeness[said < min_class_labels] = -1.0

    classes = []
    class_counts = annotations.class_counts
    missing_spec, missing_anchor = [], []
    for k in range(K):
        # best closeness, ties broken by more labels of class k
        m = int(np.lexsort((-said[:, k], -closeness[:, k]))[0]) if M else -1
        has = M > 0 and closeness[m, k] >= 0
        spec_close = float(closeness[m, k]) if has else 0.0
        if spec_close < specialist_threshold:
            missing_spec.append(k)
        anchor_id, anchor_close = None, None
        if P is not None and N > 0:
            n = int(np.argmax(P[:, k]))
            anchor_id, anchor_close = str(annotations.item_ids[n]), float(P[n, k] / max(P[n].sum(), 1e-300))
            if anchor_close < anchor_threshold:
                missing_anchor.append(k)
        classes.append(
            ClassDiagnosis(
                index=k,
                name=str(annotations.classes[k]),
                n_labels=int(class_counts[k]),
                best_specialist=str(annotations.annotator_ids[m]) if has else None,
                specialist_closeness=spec_close,
                specialist_rate=float(diag[m, k]) if has else 0.0,
                specialist_n_labels=int(said[m, k]) if has else 0,
                best_anchor=anchor_id,
                anchor_closeness=anchor_close,
            )
        )

    w_rows = A[enough].reshape(-1, K)
    w_scatter = scatter_proxy(w_rows, n_directions=n_directions, random_state=random_state)
    f_scatter = None if P is None else scatter_proxy(P, n_directions=n_directions, random_state=random_state)
    n_comp, share = _components(annotations)
    report = DiagnosisReport(
        n_items=N,
        n_annotators=M,
        n_classes=K,
        n_labels=annotations.n_labels,
        confusions_source=source,
        classes=classes,
        w_scatter=w_scatter,
        f_scatter=f_scatter,
        min_labels=min_lab,
        few_label_annotators=few,
        n_components=n_comp,
        largest_component_share=share,
        n_items_without_labels=int(np.count_nonzero(annotations.item_counts == 0)),
        specialist_threshold=specialist_threshold,
        anchor_threshold=anchor_threshold,
        missing_specialists=missing_spec,
        missing_anchors=missing_anchor,
    )
    return _with_recommendation(report)


def _names(report: DiagnosisReport, ks: list[int]) -> str:
    return ", ".join(report.classes[k].name for k in ks)


def _with_recommendation(r: DiagnosisReport) -> DiagnosisReport:
    parts = []
    if r.n_components > 1:
        parts.append(
            f"the item-annotator graph has {r.n_components} components: confusions in different components "
            "are tied only through the classifier, so estimate with features (CCEM/GeoCrowdNet), not labels alone"
        )
    if r.missing_specialists or r.missing_anchors:
        f_better = r.f_scatter is not None and r.f_scatter.min_radius > r.w_scatter.min_radius
        if r.f_scatter is None:
            first = "GeoCrowdNet(W) first (the F scatter proxy needs posteriors of a fitted model)"
        elif f_better:
            first = "GeoCrowdNet(F) first (its F scatter proxy is higher)"
        else:
            first = "GeoCrowdNet(W) first (its W scatter proxy is higher)"
        gaps = []
        if r.missing_specialists:
            gaps.append(
                f"no near-specialist for class {_names(r, r.missing_specialists)} "
                f"(closeness < {r.specialist_threshold})"
            )
        if r.missing_anchors:
            gaps.append(
                f"no near-anchor item for class {_names(r, r.missing_anchors)} (closeness < {r.anchor_threshold})"
            )
        parts.append(
            "; ".join(gaps) + f": CCEM alone may not identify the confusions; GeoCrowdNet(W) or (F) is advised, {first}"
        )
    else:
        tail = "" if r.f_scatter is not None else " (near-anchor items not checked: pass posteriors of a fitted model)"
        parts.append(f"every class has a near-specialist annotator: CCEM suffices{tail}")
    if r.few_label_annotators:
        parts.append(
            f"{len(r.few_label_annotators)} annotator(s) have fewer than {r.min_labels} labels: "
            "their confusion matrices are poorly determined"
        )
    return DiagnosisReport(**{**{f: getattr(r, f) for f in r.__dataclass_fields__}, "recommendation": "; ".join(parts)})
