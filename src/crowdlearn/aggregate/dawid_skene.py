"""Dawid-Skene (full confusion matrices) and one-coin Dawid-Skene, by vectorized EM."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from crowdlearn.aggregate.base import (
    BaseAggregator,
    FloatArray,
    IntArray,
    PriorSpec,
    check_em_params,
    check_in,
    check_number,
    check_priors,
    check_random_state,
    clamp_rows,
    clamped_posterior,
    items_labelled,
    known_label_array,
    label_matrix,
    posterior_from_log,
    safe_log,
    shrink_counts,
    spmm,
)
from crowdlearn.aggregate.spectral import SpectralError, spectral_confusions
from crowdlearn.annotations import Annotations

__all__ = [
    "DEFAULT_CONFUSION_BUDGET",
    "SMOOTHED_DS_PARAMS",
    "ClusteredDawidSkene",
    "ConfusionBudgetError",
    "DawidSkene",
    "OneCoinDawidSkene",
    "check_confusion_budget",
    "ds_e_step",
    "ds_m_step",
    "known_label_array",
    "one_coin_log_lik",
    "one_coin_skills",
    "shrink_counts",
]


def ds_e_step(X: Any, confusions: FloatArray, log_priors: FloatArray) -> tuple[FloatArray, FloatArray]:
    """E-step of Dawid-Skene on the one-hot label matrix.

    Parameters
    ----------
    X : sparse matrix of shape (n_items, n_annotators * K)
        One-hot labels (see :func:`~crowdlearn.aggregate.base.label_matrix`).
    confusions : ndarray of shape (n_annotators, K, K)
        ``confusions[m, i, j] = P(annotator m says i | true class j)``.
    log_priors : ndarray of shape (K,)

    Returns
    -------
    posteriors : ndarray of shape (n_items, K)
    log_joint_norm : ndarray of shape (n_items,)
        Log-likelihood of each item's labels (``logsumexp_j`` of the log joint).
    """
    M, K, _ = confusions.shape
    log_joint = spmm(X, safe_log(confusions).reshape(M * K, K))
    log_joint += log_priors
    return posterior_from_log(log_joint)


def ds_m_step(
    XT: Any, posteriors: FloatArray, n_annotators: int, smoothing: float, shrinkage: str = "uniform"
) -> FloatArray:
    """M-step of Dawid-Skene: expected counts plus ``smoothing``, columns normalised.

    Parameters
    ----------
    XT : sparse matrix of shape (n_annotators * K, n_items)
        Transpose of the one-hot label matrix.
    posteriors : ndarray of shape (n_items, K)
    shrinkage : {"uniform", "pooled"}
        Where the pseudo-counts go: ``smoothing`` in every cell, or ``K * smoothing`` per
        column spread as the pooled confusion (:func:`shrink_counts`).

    Returns
    -------
    confusions : ndarray of shape (n_annotators, K, K), column = true class, columns sum to 1.
    """
    K = posteriors.shape[1]
    counts = spmm(XT, posteriors).reshape(n_annotators, K, K)
    return shrink_counts(counts, smoothing, shrinkage)


class ConfusionBudgetError(MemoryError, ValueError):
    """Raised before allocating per-annotator confusions (M, K, K) over the memory budget."""


#: Default ``max_confusion_bytes``: 1 GiB of float64 confusions.
DEFAULT_CONFUSION_BUDGET = 2**30

#: The smoothed Dawid-Skene behind the deep methods' ``init="ds"`` and ``ds-train``'s targets
#: (``DawidSkene(**SMOOTHED_DS_PARAMS)``): a pseudo-count of 0.01 per cell, so annotators with a
#: handful of labels get no hard zeros (they would become the most extreme logits), spread as the
#: crowd's pooled confusion, so that such annotators do not collapse the fit to one class
#: (:func:`shrink_counts`).
SMOOTHED_DS_PARAMS: Mapping[str, Any] = MappingProxyType({"smoothing": 0.01, "shrinkage": "pooled"})


def _size(n: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError  # pragma: no cover


def check_confusion_budget(
    n_annotators: int,
    n_classes: int,
    budget: int | None,
    owner: str,
    *,
    who: str = "annotators",
    what: str = "confusions",
) -> None:
    """Raise :class:`ConfusionBudgetError` when ``n_annotators x K x K`` float64 exceed ``budget``.

    The message names M, K, the bytes needed and the alternatives (one-coin, clusters).
    """
    if budget is None:
        return
    need = 8 * int(n_annotators) * int(n_classes) ** 2
    if need <= budget:
        return
    K = int(n_classes)
    raise ConfusionBudgetError(
        f"{owner} {what} need {n_annotators} {who} x {K} classes x {K} classes float64 = {_size(need)} "
        f"({need} bytes), over max_confusion_bytes={budget} ({_size(budget)}); use OneCoinDawidSkene "
        f"(one accuracy per annotator: {_size(8 * n_annotators)}), ClusteredDawidSkene(n_clusters=C) "
        f"(C x {K} x {K} shared confusions: {_size(8 * K * K)} per cluster), or raise max_confusion_bytes"
    )


class _DawidSkeneEM(BaseAggregator):
    """EM loop shared by :class:`DawidSkene`, :class:`OneCoinDawidSkene` and :class:`ClusteredDawidSkene`."""

    confusions_: FloatArray
    skills_: FloatArray
    log_likelihood_: list[float]
    n_iter_: int

    n_iter: int
    tol: float
    priors: PriorSpec
    smoothing: float
    max_confusion_bytes: int | None

    def _fit(self, ann: Annotations) -> None:
        # known_labels (gold): their posteriors are clamped to the known class in every E-step (so
        # they inform the confusions and priors), and they contribute the complete-data term
        # log prior_y + log p(labels | y) to log_likelihood_. A Dask DataFrame never gets here:
        # BaseAggregator.fit sends it to the Dask backend.
        self._fit_em(ann, self._known)

    def _partial_fit(self, ann: Annotations, n_old_items: int, n_old_annotators: int) -> None:
        # warm start from the fitted posteriors (new items: their soft vote, as fit starts them);
        # EM's first M-step then gives every annotator, new ones included, its parameters against
        # them. Starting from the fitted confusions instead is slower: entries fitted near 0 move
        # away from 0 only geometrically slowly under EM's multiplicative updates.
        T0 = _soft_vote(ann)
        T0[:n_old_items] = self.probas_
        self._fit_em(ann, self._known, start=T0)

    def _validate_params(self, ann: Annotations) -> None:
        """The parameters every Dawid-Skene variant has (EM, prior, confusion budget)."""
        owner = type(self).__name__
        check_em_params(self.n_iter, self.tol, self.smoothing, owner)
        check_priors(self.priors, ann.n_classes, owner)
        check_number(self.max_confusion_bytes, "max_confusion_bytes", owner, low=1, integer=True, allow_none=True)

    # hooks ----------------------------------------------------------------
    def _initial_posteriors(self, ann: Annotations) -> FloatArray | None:
        """Posteriors to start from, or None when initial confusions are given."""
        return _soft_vote(ann)

    def _initial_confusions(self, ann: Annotations) -> tuple[FloatArray, FloatArray | None] | None:
        """Starting (confusions, priors or None) for an initial E-step, or None to start from posteriors."""
        return None

    def _label_matrix(self, ann: Annotations) -> Any:
        """The one-hot label matrix the E/M steps use (None when they work on the triples)."""
        return label_matrix(ann)

    def _m_params(self, ann: Annotations, XT: Any, posteriors: FloatArray) -> Any:
        """M-step: the confusion parameters from the posteriors (n_items, K)."""
        raise NotImplementedError

    def _log_lik(self, ann: Annotations, X: Any, params: Any) -> FloatArray:
        """E-step: ``log p(labels of item n | true class j)``, shape (n_items, K)."""
        raise NotImplementedError

    def _store_params(self, params: Any) -> None:
        """Set the fitted confusion attributes from the final parameters (``priors_`` is set)."""
        raise NotImplementedError

    # loop -----------------------------------------------------------------
    def _fit_em(self, ann: Annotations, known: IntArray | None, start: FloatArray | None = None) -> None:
        K = ann.n_classes
        fixed_priors = check_priors(self.priors, K, type(self).__name__)
        X = self._label_matrix(ann)
        XT = X.T if X is not None else None  # CSC view, no copy; CSC @ dense is as fast as CSR @ dense
        labelled = items_labelled(ann)
        known_idx = np.flatnonzero(known >= 0) if known is not None else np.zeros(0, dtype=np.int64)
        if known_idx.size:
            labelled = labelled.copy()
            labelled[known_idx] = True
        # prior = mean posterior over labelled items, as a mat-vec (boolean indexing copies)
        n_labelled = int(labelled.sum())
        prior_weights = labelled.astype(np.float64) / max(n_labelled, 1)

        def m_step(T: FloatArray) -> tuple[Any, FloatArray]:
            conf = self._m_params(ann, XT, T)
            if fixed_priors is not None:
                pri = fixed_priors
            elif n_labelled:
                pri = prior_weights @ T
            else:
                pri = np.full(K, 1.0 / K)
            return conf, pri

        def e_step(conf: Any, pri: FloatArray) -> tuple[FloatArray, float]:
            log_joint = self._log_lik(ann, X, conf)
            log_joint += safe_log(pri)
            return clamped_posterior(log_joint, known)

        history: list[float] = []
        init = self._initial_confusions(ann) if start is None else None
        if init is not None:
            conf, init_pri = init
            if fixed_priors is not None:
                pri = fixed_priors
            else:
                pri = init_pri if init_pri is not None else np.full(K, 1.0 / K)
            T, ll = e_step(conf, pri)
            history.append(ll)
        else:
            T0 = self._initial_posteriors(ann) if start is None else start
            assert T0 is not None
            T = T0
            clamp_rows(T, known)
            conf, pri = m_step(T)
        n_done = 0
        for _ in range(self.n_iter):
            conf, pri = m_step(T)
            T, ll = e_step(conf, pri)
            history.append(ll)
            n_done += 1
            if self._iteration_done(n_done, history, self.tol):
                break
        self.probas_ = T
        self.labels_ = np.argmax(T, axis=1).astype(np.int64)
        self.priors_ = np.asarray(pri, dtype=np.float64)
        self._store_params(conf)
        self.log_likelihood_ = history
        self.n_iter_ = n_done


class DawidSkene(_DawidSkeneEM):
    r"""Dawid-Skene: one full confusion matrix per annotator, fitted by EM.

    Model: the true class :math:`z_n \sim \text{Cat}(\pi)`; annotator :math:`m` reports
    :math:`y \sim \text{Cat}(A_m[:, z_n])` independently, so
    :math:`A_m[i, j] = P(m \text{ says } i \mid z = j)` (column = true class).

    * E-step: :math:`\log T_{nj} = \log \pi_j + \sum_{(n, m, y)} \log A_m[y, j] - \log Z_n`,
      one sparse-dense product over the observed labels (log space with a max shift).
    * M-step: :math:`A_m[i, j] \propto s + \sum_{(n, m, y = i)} T_{nj}` (``s`` = ``smoothing``),
      :math:`\pi_j = \text{mean}_n T_{nj}` over labelled items.

    Each iteration is one M-step followed by one E-step; after it ``log_likelihood_`` records
    the true observed-data log-likelihood :math:`\sum_n \log Z_n` of the current parameters
    (not a lower bound), and fitting stops when its relative change is at most ``tol``.

    Gold labels (``fit(..., known_labels=...)``): the posteriors of gold items are clamped to
    their gold class in every E-step (so they inform the confusions and the prior), and they
    contribute the complete-data term :math:`\log \pi_y + \log p(\text{labels} \mid y)` to
    ``log_likelihood_``. ``partial_fit`` continues EM from the fitted posteriors (new items
    start from their soft vote; every annotator, new ones included, gets its confusions from the
    first M-step) until ``tol`` stops it.

    Reference: A. P. Dawid and A. M. Skene, "Maximum likelihood estimation of observer
    error-rates using the EM algorithm", Applied Statistics 28(1), 1979, doi:10.2307/2346806.

    Parameters
    ----------
    n_iter : int, default=100
        Maximum number of EM iterations (``0`` returns the initialisation).
    tol : float, default=1e-7
        Stop when ``|LL_t - LL_{t-1}| <= tol * max(1, |LL_t|)``. ``tol <= 0`` (e.g. 0 or
        ``-inf``) disables the check: exactly ``n_iter`` iterations run.
    init : {"mv", "spectral"}, default="mv"
        Start from the soft majority vote (normalised vote counts), or from confusions
        estimated by the spectral method (:func:`~crowdlearn.aggregate.spectral.spectral_confusions`;
        its class weights start the prior). If the moment matrices are singular (e.g. a class is
        absent or fewer than 3 annotators) a ``RuntimeWarning`` is issued and the majority vote is
        used. Ignored when ``init_confusions`` is given.
    init_confusions : array-like of shape (n_annotators, K, K), optional
        Column-stochastic starting confusions; EM then starts with an E-step.
    priors : "learn", "uniform" or array-like of shape (K,), default="learn"
        Learn the class prior (mean posterior over labelled items), or keep it fixed.
    smoothing : float, default=1e-6
        Pseudo-count added to every cell of each annotator's expected count matrix before
        normalising (a symmetric Dirichlet(1 + smoothing) MAP estimate). Keeps log(0) out of the
        E-step for annotators who never used a class; 0 gives plain maximum likelihood. The
        default is practically maximum likelihood (crowd-kit clips at 1e-10): on the real
        datasets of docs/benchmarks.md it reproduces crowd-kit's converged EM labels, while
        0.01-0.1 move accuracies by up to +-0.01 either way (e.g. AdultContent2 0.7477 -> 0.7387,
        LabelMe 0.789 -> 0.790, Music 0.767 -> 0.750 at 0.1).
    shrinkage : {"uniform", "pooled"}, default="uniform"
        Where the ``smoothing`` pseudo-counts go (:func:`shrink_counts`): ``"uniform"``, the same
        in every cell; ``"pooled"``, ``K * smoothing`` per column spread as the crowd's pooled
        confusion, so an annotator with few labels of a class is pulled towards how the crowd
        labels that class rather than towards a uniform column. With a large ``smoothing`` and
        annotators who each give a handful of labels, ``"uniform"`` can collapse: a uniform
        column makes every label equally likely under every class the annotator has not been
        seen on, the learned prior then decides, and EM runs to one class (CIFAR-10N's worst
        label on 3,000 images, 747 workers: ``smoothing=0.01`` predicts one class for 100% of
        the items, ``"pooled"`` stays at the majority vote, 58.0% accurate; docs/benchmarks.md,
        "Dawid-Skene's pseudo-counts on sparse crowds"). Even at the default ``smoothing`` a
        uniform column lets an annotator's label stand for any class it was never seen on,
        which moves one-label-per-item crowds away from the vote (55.5% there); on Music and
        LabelMe the two give the same labels to within 0.1% of the items.
    random_state : int, Generator or None, default=0
        Seed (or generator) of the spectral initialisation.
    max_confusion_bytes : int or None, default=2**30 (1 GiB)
        Memory budget of the ``n_annotators x K x K`` float64 confusions; ``fit`` raises a
        :class:`ConfusionBudgetError` naming the sizes and the alternatives
        (:class:`OneCoinDawidSkene`, :class:`ClusteredDawidSkene`) before allocating more. EM
        holds about four arrays of that size at once (counts, confusions, their log). ``None``:
        no limit.

    Attributes
    ----------
    labels_ : ndarray of shape (n_items,)
        ``argmax`` of ``probas_`` (the smallest index on exact ties).
    probas_ : ndarray of shape (n_items, K)
        Posterior of the true class under ``confusions_`` and ``priors_``; items without labels
        get ``priors_``.
    confusions_ : ndarray of shape (n_annotators, K, K)
        Column-stochastic confusions, ``confusions_[m, i, j] = P(m says i | true j)``.
    priors_ : ndarray of shape (K,)
        Class prior.
    skills_ : ndarray of shape (n_annotators,)
        Expected accuracy ``sum_j priors_[j] * confusions_[m, j, j]``.
    log_likelihood_ : list of float
        Observed-data log-likelihood after each iteration.
    n_iter_ : int
        Iterations run.

    Examples
    --------
    >>> from crowdlearn import Annotations
    >>> ann = Annotations([0, 0, 0, 1, 1, 1], [0, 1, 2, 0, 1, 2], [1, 1, 0, 0, 0, 0])
    >>> DawidSkene(n_iter=10).fit_predict(ann).tolist()
    [1, 0]
    """

    confusions_: FloatArray

    def __init__(
        self,
        *,
        n_iter: int = 100,
        tol: float = 1e-7,
        init: str = "mv",
        init_confusions: npt.ArrayLike | None = None,
        priors: PriorSpec = "learn",
        smoothing: float = 1e-6,
        shrinkage: str = "uniform",
        random_state: int | np.random.Generator | None = 0,
        max_confusion_bytes: int | None = DEFAULT_CONFUSION_BUDGET,
    ) -> None:
        self.n_iter = n_iter
        self.tol = tol
        self.init = init
        self.init_confusions = init_confusions
        self.priors = priors
        self.smoothing = smoothing
        self.shrinkage = shrinkage
        self.random_state = random_state
        self.max_confusion_bytes = max_confusion_bytes

    def _validate_params(self, ann: Annotations) -> None:
        super()._validate_params(ann)
        owner = type(self).__name__
        check_in(self.init, ("mv", "spectral"), "init", owner)
        check_in(self.shrinkage, ("uniform", "pooled"), "shrinkage", owner)
        check_random_state(self.random_state, "random_state", owner)
        check_confusion_budget(ann.n_annotators, ann.n_classes, self.max_confusion_bytes, owner)

    def _m_params(self, ann: Annotations, XT: Any, posteriors: FloatArray) -> Any:
        return ds_m_step(XT, posteriors, ann.n_annotators, float(self.smoothing), self.shrinkage)

    def _log_lik(self, ann: Annotations, X: Any, params: Any) -> FloatArray:
        M, K = ann.n_annotators, ann.n_classes
        return spmm(X, safe_log(params).reshape(M * K, K))

    def _store_params(self, params: Any) -> None:
        self.confusions_ = params
        self.skills_ = np.einsum("mjj,j->m", params, self.priors_)

    def _initial_confusions(self, ann: Annotations) -> tuple[FloatArray, FloatArray | None] | None:
        if self.init_confusions is not None:
            return _check_confusions(self.init_confusions, ann, type(self).__name__), None
        if self.init == "spectral":
            try:
                return spectral_confusions(
                    ann, smoothing=max(float(self.smoothing), 1e-3), random_state=self.random_state
                )
            except SpectralError as exc:
                warnings.warn(
                    f"spectral initialisation failed ({exc}); starting from the majority vote instead",
                    RuntimeWarning,
                    stacklevel=3,
                )
        return None


class OneCoinDawidSkene(_DawidSkeneEM):
    r"""One-coin Dawid-Skene: each annotator has a single accuracy; errors are uniform.

    ``confusions_[m] = p_m I + (1 - p_m) / (K - 1) (1 - I)``. The EM is that of
    :class:`DawidSkene` with the M-step
    :math:`p_m = (s + \sum_{(n, m, y)} T_{ny}) / (K s + n_m)` (``s`` = ``smoothing``,
    :math:`n_m` = labels of annotator :math:`m`).

    Only the accuracies are stored (``skills_``, shape (n_annotators,)) and both EM steps work on
    the observed labels, O(n_labels + n_items * K) per iteration: the choice for many classes and
    annotators, where :class:`DawidSkene`'s ``n_annotators x K x K`` confusions do not fit
    (K = 1,000 with 100,000 annotators: 800 kB here against 800 GB).

    Parameters
    ----------
    n_iter, tol, priors, smoothing
        As in :class:`DawidSkene`. Initialisation is the soft majority vote.
    max_confusion_bytes : int or None, default=2**30 (1 GiB)
        Budget of the dense ``confusions_`` (M, K, K), built only when that attribute is read;
        beyond it reading ``confusions_`` raises :class:`ConfusionBudgetError`. ``None``: no limit.

    Attributes
    ----------
    skills_ : ndarray of shape (n_annotators,)
        Accuracy ``p_m`` of each annotator (``1/K`` + smoothing effect for annotators without labels).
    confusions_ : ndarray of shape (n_annotators, K, K)
        The dense one-coin matrices, built from ``skills_`` when read.
    labels_, probas_, priors_, log_likelihood_, n_iter_
        As in :class:`DawidSkene`.
    """

    def __init__(
        self,
        *,
        n_iter: int = 100,
        tol: float = 1e-7,
        priors: PriorSpec = "learn",
        smoothing: float = 1e-6,
        max_confusion_bytes: int | None = DEFAULT_CONFUSION_BUDGET,
    ) -> None:
        self.n_iter = n_iter
        self.tol = tol
        self.priors = priors
        self.smoothing = smoothing
        self.max_confusion_bytes = max_confusion_bytes

    def _label_matrix(self, ann: Annotations) -> Any:
        return None

    def _m_params(self, ann: Annotations, XT: Any, posteriors: FloatArray) -> Any:
        M, K = ann.n_annotators, ann.n_classes
        agree = np.bincount(ann.annotators, weights=posteriors[ann.items, ann.labels], minlength=M).astype(np.float64)
        total = np.bincount(ann.annotators, weights=posteriors.sum(axis=1)[ann.items], minlength=M).astype(np.float64)
        return one_coin_skills(agree, total, K, float(self.smoothing))

    def _log_lik(self, ann: Annotations, X: Any, params: Any) -> FloatArray:
        return one_coin_log_lik(ann.items, ann.annotators, ann.labels, ann.n_items, ann.n_classes, params)

    def _store_params(self, params: Any) -> None:
        self.skills_ = np.asarray(params, dtype=np.float64)

    @property
    def confusions_(self) -> FloatArray:
        """Dense one-coin confusions (n_annotators, K, K), built from ``skills_`` on each read."""
        if "skills_" not in self.__dict__:
            raise AttributeError("confusions_ is set by fit")
        K = len(self.classes_)
        owner = type(self).__name__
        check_confusion_budget(len(self.skills_), K, self.max_confusion_bytes, owner, what="confusions_")
        return one_coin_confusions(self.skills_, K)

    @confusions_.setter
    def confusions_(self, value: FloatArray) -> None:
        raise AttributeError("confusions_ of OneCoinDawidSkene is derived from skills_; set skills_")


class ClusteredDawidSkene(_DawidSkeneEM):
    r"""Dawid-Skene with confusions shared by clusters of annotators: C x K x K parameters.

    Annotator :math:`m` belongs to cluster :math:`c(m)` and reports
    :math:`y \sim \text{Cat}(A_{c(m)}[:, z_n])`. EM is that of :class:`DawidSkene` on the label
    matrix whose columns are (cluster, label) pairs (several labels of one item by annotators
    of one cluster add up), so its cost is that of DS with C annotators: O(n_labels * K) per
    iteration and C x K x K memory instead of M x K x K; the alternative to
    :class:`DawidSkene` for many classes and annotators when errors are not uniform
    (:class:`OneCoinDawidSkene`).

    The clusters are fixed before EM: given by ``clusters`` (e.g. annotator type or source), or
    ``n_clusters`` tiers of skill: annotators sorted by their smoothed agreement with the soft
    majority vote (``(1 + sum of the vote's probability of their labels) / (2 + n_labels)``) and
    cut into equal-size groups (ties by annotator index). The tiers are a heuristic, not learned
    jointly with EM.

    Parameters
    ----------
    n_clusters : int, default=10
        Number of skill tiers when ``clusters`` is not given (capped at ``n_annotators``).
    clusters : array-like of int of shape (n_annotators,), Series or mapping, optional
        Cluster index (0 .. C-1) of each annotator (by annotator index, or keyed by annotator id).
    n_iter, tol, priors, smoothing, max_confusion_bytes
        As in :class:`DawidSkene` (the budget applies to the C x K x K cluster confusions).

    Attributes
    ----------
    clusters_ : ndarray of shape (n_annotators,)
        Cluster of each annotator.
    cluster_confusions_ : ndarray of shape (n_clusters, K, K)
        Column-stochastic confusions of each cluster, ``[c, i, j] = P(says i | true j)``.
    confusions_ : ndarray of shape (n_annotators, K, K)
        ``cluster_confusions_[clusters_]``, built when read (under ``max_confusion_bytes``).
    skills_ : ndarray of shape (n_annotators,)
        Expected accuracy of each annotator's cluster.
    labels_, probas_, priors_, log_likelihood_, n_iter_
        As in :class:`DawidSkene`.

    Examples
    --------
    >>> from crowdlearn import Annotations
    >>> ann = Annotations([0, 0, 0, 1, 1, 1], [0, 1, 2, 0, 1, 2], [1, 1, 0, 0, 0, 0])
    >>> ClusteredDawidSkene(n_clusters=2, n_iter=10).fit_predict(ann).tolist()
    [1, 0]
    """

    clusters_: IntArray
    cluster_confusions_: FloatArray
    _n_groups: int

    def __init__(
        self,
        *,
        n_clusters: int = 10,
        clusters: Any = None,
        n_iter: int = 100,
        tol: float = 1e-7,
        priors: PriorSpec = "learn",
        smoothing: float = 1e-6,
        max_confusion_bytes: int | None = DEFAULT_CONFUSION_BUDGET,
    ) -> None:
        self.n_clusters = n_clusters
        self.clusters = clusters
        self.n_iter = n_iter
        self.tol = tol
        self.priors = priors
        self.smoothing = smoothing
        self.max_confusion_bytes = max_confusion_bytes

    def _validate_params(self, ann: Annotations) -> None:
        check_number(self.n_clusters, "n_clusters", type(self).__name__, low=1, integer=True)
        super()._validate_params(ann)

    def _assign(self, ann: Annotations) -> IntArray:
        M = ann.n_annotators
        if self.clusters is not None:
            c = self._per_annotator(self.clusters, "clusters", M)
            if not np.all(np.isfinite(c)) or (c < 0).any() or (c != np.round(c)).any():
                pos = int(np.flatnonzero(~(np.isfinite(c) & (c >= 0) & (c == np.round(c))))[0])
                raise ValueError(
                    f"The 'clusters' parameter must hold cluster indices (integers >= 0); annotator "
                    f"{self.annotator_ids_.tolist()[pos]!r} has {float(c[pos])!r}"
                )
            return c.astype(np.int64)
        C = min(int(self.n_clusters), max(M, 1))
        soft = self._initial_posteriors(ann)
        assert soft is not None
        hits = np.bincount(ann.annotators, weights=soft[ann.items, ann.labels], minlength=M)
        n = np.bincount(ann.annotators, minlength=M)
        skill = (1.0 + hits) / (2.0 + n)
        order = np.argsort(-skill, kind="stable")
        out = np.empty(M, dtype=np.int64)
        for tier, members in enumerate(np.array_split(order, C)):
            out[members] = tier
        return out

    def _fit_em(self, ann: Annotations, known: IntArray | None, start: FloatArray | None = None) -> None:
        self.clusters_ = self._assign(ann)
        self._n_groups = int(self.clusters_.max()) + 1 if self.clusters_.size else 1
        check_confusion_budget(
            self._n_groups, ann.n_classes, self.max_confusion_bytes, type(self).__name__, who="clusters"
        )
        super()._fit_em(ann, known, start)

    def _label_matrix(self, ann: Annotations) -> Any:
        K, C = ann.n_classes, self._n_groups
        cols = self.clusters_[ann.annotators] * K + ann.labels
        # coo -> csr sums repeated (item, cluster, label) entries: counts, not one-hot
        return sp.csr_matrix((np.ones(ann.n_labels, dtype=np.float64), (ann.items, cols)), shape=(ann.n_items, C * K))

    def _m_params(self, ann: Annotations, XT: Any, posteriors: FloatArray) -> Any:
        return ds_m_step(XT, posteriors, self._n_groups, float(self.smoothing))

    def _log_lik(self, ann: Annotations, X: Any, params: Any) -> FloatArray:
        K = ann.n_classes
        return spmm(X, safe_log(params).reshape(self._n_groups * K, K))

    def _store_params(self, params: Any) -> None:
        self.cluster_confusions_ = params
        self.skills_ = np.einsum("cjj,j->c", params, self.priors_)[self.clusters_]

    @property
    def confusions_(self) -> FloatArray:
        """Per-annotator confusions (n_annotators, K, K) = ``cluster_confusions_[clusters_]``, built on read."""
        if "cluster_confusions_" not in self.__dict__:
            raise AttributeError("confusions_ is set by fit")
        K = self.cluster_confusions_.shape[1]
        check_confusion_budget(
            len(self.clusters_), K, self.max_confusion_bytes, type(self).__name__, what="confusions_"
        )
        out: FloatArray = self.cluster_confusions_[self.clusters_]
        return out

    @confusions_.setter
    def confusions_(self, value: FloatArray) -> None:
        raise AttributeError("confusions_ of ClusteredDawidSkene is derived; set cluster_confusions_ and clusters_")


def _soft_vote(ann: Annotations) -> FloatArray:
    votes = ann.vote_counts()
    tot = votes.sum(axis=1, keepdims=True)
    soft: FloatArray = np.divide(votes, tot, out=np.full_like(votes, 1.0 / ann.n_classes), where=tot > 0)
    return soft


def one_coin_skills(agree: FloatArray, total: FloatArray, K: int, smoothing: float) -> FloatArray:
    """One-coin M-step: ``p_m = (s + agree_m) / (K s + total_m)``; ``1/K`` where the denominator is 0.

    ``agree`` (M,): expected number of each annotator's labels equal to the true class;
    ``total`` (M,): expected number of its labels (the sum of its posteriors' rows).
    """
    denom = total + K * smoothing
    out: FloatArray = np.divide(agree + smoothing, denom, out=np.full(len(agree), 1.0 / K), where=denom > 0)
    return out


def one_coin_log_lik(
    items: IntArray, annotators: IntArray, labels: IntArray, n_items: int, K: int, p: FloatArray
) -> FloatArray:
    """``log p(labels of n | true j)`` (n_items, K) under one-coin accuracies ``p`` (M,), from the triples.

    Each label ``(n, m, y)`` adds ``log p_m`` at ``j = y`` and ``log((1 - p_m) / (K - 1))``
    elsewhere: two scatter-adds, O(n_labels + n_items * K), no (M, K, K) array. A label with
    ``p_m = 1`` makes every other class impossible (-inf), kept apart so that -inf + inf
    never yields NaN.
    """
    if K == 1:
        return np.zeros((n_items, 1))
    log_match = safe_log(p)[annotators]
    log_other = safe_log((1.0 - p) / (K - 1))[annotators]
    sure = ~np.isfinite(log_other)
    out = per_label_log_joint_arrays(items[~sure], labels[~sure], log_match[~sure], log_other[~sure], n_items, K)
    if sure.any():
        # items with a label of a perfect annotator: every class but that label is impossible
        it, lb = items[sure], labels[sure]
        n_sure = np.bincount(it, minlength=n_items)
        hit = np.bincount(it * K + lb, minlength=n_items * K).reshape(n_items, K)
        out[hit < n_sure[:, None]] = -np.inf
        out += np.bincount(it * K + lb, weights=log_match[sure], minlength=n_items * K).reshape(n_items, K)
    return out


def per_label_log_joint_arrays(
    items: IntArray, labels: IntArray, log_match: FloatArray, log_other: FloatArray, n_items: int, K: int
) -> FloatArray:
    """``sum over n's labels`` of ``log_match`` at the named class and ``log_other`` elsewhere, (n_items, K)."""
    base = np.bincount(items, weights=log_other, minlength=n_items)
    extra = np.bincount(items * K + labels, weights=log_match - log_other, minlength=n_items * K)
    out: FloatArray = np.asarray(extra.reshape(n_items, K) + base[:, None], dtype=np.float64)
    return out


def one_coin_confusions(p: FloatArray, K: int) -> FloatArray:
    """Confusions (M, K, K) with ``p[m]`` on the diagonal and ``(1 - p[m]) / (K - 1)`` elsewhere."""
    M = p.shape[0]
    if K == 1:
        return np.ones((M, 1, 1))
    off = (1.0 - p) / (K - 1)
    conf = np.broadcast_to(off[:, None, None], (M, K, K)).copy()
    idx = np.arange(K)
    conf[:, idx, idx] = p[:, None]
    return conf


def _check_confusions(value: npt.ArrayLike, ann: Annotations, owner: str) -> FloatArray:
    A = np.asarray(value, dtype=np.float64)
    M, K = ann.n_annotators, ann.n_classes
    if A.shape != (M, K, K):
        raise ValueError(f"The 'init_confusions' parameter of {owner} must have shape ({M}, {K}, {K}), got {A.shape}")
    if not np.all(np.isfinite(A)) or (A < 0).any():
        raise ValueError(f"The 'init_confusions' parameter of {owner} must be finite and >= 0")
    sums = A.sum(axis=1)
    if not np.allclose(sums, 1.0, atol=1e-6):
        m, j = np.argwhere(~np.isclose(sums, 1.0, atol=1e-6))[0]
        raise ValueError(
            f"The 'init_confusions' parameter of {owner} must have columns summing to 1 "
            f"(column = true class); annotator {int(m)}, column {int(j)} sums to {sums[m, j]:.6g}"
        )
    return A
