"""MACE: Multi-Annotator Competence Estimation (Hovy et al., 2013), by vectorized EM or variational Bayes."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.special import digamma
from scipy.stats import uniform

from crowdlearn.aggregate.base import (
    BaseAggregator,
    FloatArray,
    PriorSpec,
    check_em_params,
    check_in,
    check_number,
    check_priors,
    check_random_state,
    clamp_rows,
    clamped_posterior,
    items_labelled,
    labels_per_annotator,
    learned_priors,
    per_label_log_joint,
    safe_log,
    soft_vote,
)
from crowdlearn.annotations import Annotations

__all__ = ["MACE", "random_start"]


class MACE(BaseAggregator):
    r"""MACE: each annotator either knows the answer or spams with a personal strategy.

    Annotator :math:`m` is competent on an item with probability :math:`\theta_m` and then
    reports the true class; otherwise it draws a label from its spamming strategy
    :math:`\xi_m \in \Delta^{K-1}`. So
    :math:`A_m = \theta_m I + (1 - \theta_m)\, \xi_m \mathbf{1}^\top` (column = true class).
    EM on the true classes and the hidden "spam" indicators:

    * E-step: :math:`\log T_{nk} = \log \pi_k + \sum_{(n, m, y)} \log A_m[y, k] - \log Z_n`
      (two scatter-adds over the labels).
    * M-step: with :math:`c = T_{ny}\, \theta_m / (\theta_m + (1 - \theta_m)\xi_{my})` the
      expected "knew it" indicator of a label,
      :math:`\theta_m = (a + \sum c) / (a + b + n_m)` and
      :math:`\xi_{my} \propto s + \sum_{\text{labels } y} (1 - c)`.

    ``method="em"`` (default) is the EM variant of the paper: its Beta / Dirichlet priors appear as
    the pseudo-counts ``a = b = competence_smoothing`` and ``s = smoothing``, and it starts from the
    soft majority vote instead of random restarts, so it is deterministic.

    ``method="vb"`` is the paper's variational-Bayes variant: symmetric priors
    :math:`\theta_m \sim \mathrm{Beta}(a, a)` and :math:`\xi_m \sim \mathrm{Dir}(s, \dots, s)`
    with the paper's defaults ``a = 0.5`` and ``s = 10`` (``competence_prior``, ``strategy_prior``),
    and the M-step replaced by the mean-field update
    :math:`\tilde\theta_m = \exp(\psi(a + \sum c) - \psi(2a + n_m))`,
    :math:`\widetilde{1 - \theta}_m = \exp(\psi(a + \sum (1 - c)) - \psi(2a + n_m))`,
    :math:`\tilde\xi_{my} = \exp(\psi(s + e_{my}) - \psi(K s + \sum_y e_{my}))`
    (:math:`\psi` the digamma function, :math:`e_{my}` the expected spam labels ``y``). These
    sub-normalised weights replace :math:`\theta_m, 1 - \theta_m, \xi_m` in the E-step. It is
    also started from the soft majority vote (deterministic); the paper uses a uniform class
    prior (``priors="uniform"``). Fitted ``competences_`` / ``strategies_`` are the weights
    renormalised. On the ten real datasets of ``docs/benchmarks.md`` this matches crowd-kit 1.4.2's
    variational MACE run on consistently coded labels; ``method="em"`` is better on Product and
    Bluebirds, ``"vb"`` on AdultContent2 (see there).

    ``init="random"`` starts instead from random competences and strategies
    (:func:`random_start`, the draws of crowd-kit's MACE), and ``init_competences`` /
    ``init_strategies`` from given ones; EM then begins with an E-step at them.

    Gold labels (``fit(..., known_labels=...)``) clamp the posteriors of gold items in every
    E-step, so they inform the competences and strategies. ``partial_fit`` continues EM from the
    fitted competences and strategies (new annotators start from the vote, as in ``fit``).

    Reference: D. Hovy, T. Berg-Kirkpatrick, A. Vaswani, E. Hovy, "Learning Whom to Trust with
    MACE", NAACL-HLT 2013.

    Parameters
    ----------
    n_iter : int, default=100
        Maximum EM iterations.
    tol : float, default=1e-7
        Relative tolerance on the observed-data log-likelihood (``<= 0``: run all iterations).
    smoothing : float, default=0.01
        ``method="em"`` only: pseudo-count (> 0) of each class in each spamming strategy.
    competence_smoothing : float, default=0.5
        ``method="em"`` only: pseudo-count (> 0) of both outcomes (knew / spammed) in each
        competence. Both keep ``log((1 - theta) * xi)`` finite in the E-step.
    priors : "learn", "uniform" or array-like of shape (K,), default="learn"
        Class prior.
    method : {"em", "vb"}, default="em"
        Maximum-a-posteriori EM, or the variational-Bayes variant of the paper.
    competence_prior : float, default=0.5
        ``method="vb"`` only: parameter ``a`` (> 0) of the symmetric Beta prior on each competence.
    strategy_prior : float, default=10.0
        ``method="vb"`` only: parameter ``s`` (> 0) of the symmetric Dirichlet prior on each
        spamming strategy.
    init : {"mv", "random"}, default="mv"
        Start from the soft majority vote (deterministic), or from :func:`random_start`
        (``init_noise``, ``random_state``). Ignored when ``init_competences`` is given.
    init_noise : float, default=0.5
        ``init="random"``: the weights are drawn uniform on ``[1, 2 + init_noise]``.
    random_state : int, Generator or None, default=None
        ``init="random"``: the seed, as :func:`random_start` takes it.
    init_competences : array-like of shape (n_annotators,), optional
        Starting competences in ``[0, 1]`` (with ``init_strategies``).
    init_strategies : array-like of shape (n_annotators, K), optional
        Starting spamming strategies (rows >= 0 summing to 1; with ``init_competences``).

    Attributes
    ----------
    competences_ : ndarray of shape (n_annotators,)
        :math:`\theta_m`, probability of answering from knowledge.
    strategies_ : ndarray of shape (n_annotators, K)
        Spamming distribution of each annotator.
    skills_ : ndarray of shape (n_annotators,)
        Same as ``competences_``.
    confusions_ : ndarray of shape (n_annotators, K, K)
        :math:`\theta_m I + (1 - \theta_m) \xi_m 1^T`; columns sum to 1.
    labels_, probas_, priors_, log_likelihood_, n_iter_
        As in :class:`~crowdlearn.aggregate.DawidSkene`.
    """

    competences_: FloatArray
    strategies_: FloatArray
    skills_: FloatArray
    confusions_: FloatArray
    log_likelihood_: list[float]
    n_iter_: int

    def __init__(
        self,
        *,
        n_iter: int = 100,
        tol: float = 1e-7,
        smoothing: float = 0.01,
        competence_smoothing: float = 0.5,
        priors: PriorSpec = "learn",
        method: str = "em",
        competence_prior: float = 0.5,
        strategy_prior: float = 10.0,
        init: str = "mv",
        init_noise: float = 0.5,
        random_state: int | np.random.Generator | None = None,
        init_competences: npt.ArrayLike | None = None,
        init_strategies: npt.ArrayLike | None = None,
    ) -> None:
        self.n_iter = n_iter
        self.tol = tol
        self.smoothing = smoothing
        self.competence_smoothing = competence_smoothing
        self.priors = priors
        self.method = method
        self.competence_prior = competence_prior
        self.strategy_prior = strategy_prior
        self.init = init
        self.init_noise = init_noise
        self.random_state = random_state
        self.init_competences = init_competences
        self.init_strategies = init_strategies

    def _validate_params(self, ann: Annotations) -> None:
        owner = type(self).__name__
        check_em_params(self.n_iter, self.tol, 0.0, owner)
        # strictly positive: the E-step takes log((1 - theta) * xi), which must stay finite
        check_number(self.smoothing, "smoothing", owner, low=0, strict=True)
        check_number(self.competence_smoothing, "competence_smoothing", owner, low=0, strict=True)
        check_priors(self.priors, ann.n_classes, owner)
        check_in(self.method, ("em", "vb"), "method", owner)
        check_number(self.competence_prior, "competence_prior", owner, low=0, strict=True)
        check_number(self.strategy_prior, "strategy_prior", owner, low=0, strict=True)
        check_in(self.init, ("mv", "random"), "init", owner)
        check_number(self.init_noise, "init_noise", owner, low=-1, strict=True)
        check_random_state(self.random_state, "random_state", owner)
        if (self.init_competences is None) != (self.init_strategies is None):
            raise ValueError(f"{owner}: init_competences and init_strategies go together; got only one of them")

    def _fit(self, ann: Annotations) -> None:
        self._fit_em(ann, None)

    def _partial_fit(self, ann: Annotations, n_old_items: int, n_old_annotators: int) -> None:
        # warm start: the fitted competences and strategies (renormalised to EM weights: under VB
        # the first M-step recomputes them) for the annotators seen before; new annotators start
        # as fit starts everyone, from the soft vote
        self._fit_em(ann, (self.competences_, self.strategies_, n_old_annotators))

    def _fit_em(self, ann: Annotations, warm: tuple[FloatArray, FloatArray, int] | None) -> None:
        M, K = ann.n_annotators, ann.n_classes
        fixed = check_priors(self.priors, K, type(self).__name__)
        it, an, lb = ann.items, ann.annotators, ann.labels
        known = self._known
        labelled = items_labelled(ann) | (known >= 0) if known is not None else items_labelled(ann)
        n_m = labels_per_annotator(ann).astype(np.float64)
        vb = self.method == "vb"
        # E-step weights: "knew it" (theta), "spammed" (1 - theta) and strategy (xi); under VB
        # they are the sub-normalised exp(E[log .]) of the mean-field posteriors
        know = np.full(M, 0.5)
        spam = np.full(M, 0.5)
        xi = np.full((M, K), 1.0 / K)

        def m_step(T: FloatArray) -> None:
            nonlocal know, spam, xi
            kn, sx = know[an], spam[an] * xi[an, lb]
            knew = T[it, lb] * kn / (kn + sx)
            n_knew = np.bincount(an, weights=knew, minlength=M)
            spam_counts = np.bincount(an * K + lb, weights=1.0 - knew, minlength=M * K).reshape(M, K)
            if vb:
                a, s = float(self.competence_prior), float(self.strategy_prior)
                log_tot = digamma(n_m + 2 * a)
                know = np.exp(digamma(n_knew + a) - log_tot)
                spam = np.exp(digamma(n_m - n_knew + a) - log_tot)
                xi = np.exp(digamma(spam_counts + s) - digamma(spam_counts.sum(axis=1, keepdims=True) + K * s))
                return
            a, s = float(self.competence_smoothing), float(self.smoothing)
            denom = n_m + 2 * a
            know = np.divide(n_knew + a, denom, out=np.full(M, 0.5), where=denom > 0)
            spam = 1.0 - know
            smoothed = np.asarray(spam_counts + s, dtype=np.float64)
            tot = smoothed.sum(axis=1, keepdims=True)
            xi = np.divide(smoothed, tot, out=np.full((M, K), 1.0 / K), where=tot > 0)

        def e_step(pri: FloatArray) -> tuple[FloatArray, float]:
            kn, sx = know[an], spam[an] * xi[an, lb]
            log_joint = per_label_log_joint(ann, safe_log(kn + sx), safe_log(sx))
            log_joint += safe_log(pri)
            return clamped_posterior(log_joint, known)  # gold items: clamped to their class

        start = self._start(ann) if warm is None else None
        if start is not None:
            # a given or random start: an E-step at it (under VB the weights are the values)
            know, xi = start
            spam = 1.0 - know
            pri = fixed if fixed is not None else np.full(K, 1.0 / K)
            T, _ = e_step(pri)
        else:
            T = soft_vote(ann)
            clamp_rows(T, known)
            # start the competences/strategies from the vote: two M-steps settle theta and xi jointly
            m_step(T)
            m_step(T)
            pri = learned_priors(T, labelled, fixed)
        if warm is not None:
            # the fitted annotators restart from their fitted values and EM from an E-step
            theta, strategies, n_old = warm
            know[:n_old], spam[:n_old], xi[:n_old] = theta, 1.0 - theta, strategies
            pri = learned_priors(T, labelled, fixed)
            T, _ = e_step(pri)
        history: list[float] = []
        n_done = 0
        for _ in range(self.n_iter):
            m_step(T)
            pri = learned_priors(T, labelled, fixed)
            T, ll = e_step(pri)
            history.append(ll)
            n_done += 1
            if self._iteration_done(n_done, history, self.tol):
                break
        theta = know / (know + spam)
        xi = xi / xi.sum(axis=1, keepdims=True)
        self.probas_ = T
        self.labels_ = np.argmax(T, axis=1).astype(np.int64)
        self.priors_ = np.asarray(pri, dtype=np.float64)
        self.competences_ = theta
        self.strategies_ = xi
        self.skills_ = theta
        conf = (1.0 - theta)[:, None, None] * xi[:, :, None] * np.ones((1, 1, K))
        idx = np.arange(K)
        conf[:, idx, idx] += theta[:, None]
        self.confusions_ = conf
        self.log_likelihood_ = history
        self.n_iter_ = n_done

    def _start(self, ann: Annotations) -> tuple[FloatArray, FloatArray] | None:
        """Starting (competences (M,), strategies (M, K)), or None to start from the vote."""
        owner = type(self).__name__
        M, K = ann.n_annotators, ann.n_classes
        if self.init_competences is not None:
            theta = np.asarray(self.init_competences, dtype=np.float64)
            xi = np.asarray(self.init_strategies, dtype=np.float64)
            if theta.shape != (M,) or xi.shape != (M, K):
                raise ValueError(
                    f"{owner}: init_competences / init_strategies must have shapes ({M},) / ({M}, {K}), "
                    f"got {theta.shape} / {xi.shape}"
                )
            if not (np.isfinite(theta).all() and ((theta >= 0) & (theta <= 1)).all()):
                raise ValueError(f"{owner}: init_competences must be in [0, 1]")
            if not (np.isfinite(xi).all() and (xi >= 0).all() and np.allclose(xi.sum(axis=1), 1.0, atol=1e-6)):
                raise ValueError(f"{owner}: init_strategies must be >= 0 with rows summing to 1")
            return theta, xi
        if self.init == "random":
            return random_start(M, K, float(self.init_noise), self.random_state)
        return None


def random_start(
    n_annotators: int, n_classes: int, noise: float = 0.5, random_state: Any = None
) -> tuple[FloatArray, FloatArray]:
    """MACE's random start, the draws crowd-kit's MACE makes.

    ``scipy.stats.uniform(1, 1 + noise).rvs`` (uniform on ``[1, 2 + noise]``) draws the
    (n_annotators, 2) "spammed / knew" weights and, with the same ``random_state``, the
    (n_annotators, n_classes) strategy weights; each row is normalised. An int seed gives both
    draws a fresh ``numpy.random.RandomState(seed)``, as crowd-kit does (so its restarts repeat).

    Returns
    -------
    competences : ndarray of shape (n_annotators,)
        The normalised "knew" weight of each annotator.
    strategies : ndarray of shape (n_annotators, n_classes)
    """
    dist = uniform(1.0, 1.0 + noise)
    spam_know = np.asarray(dist.rvs(size=(n_annotators, 2), random_state=random_state), dtype=np.float64)
    xi = np.asarray(dist.rvs(size=(n_annotators, n_classes), random_state=random_state), dtype=np.float64)
    theta = spam_know[:, 1] / spam_know.sum(axis=1)
    return theta, xi / xi.sum(axis=1, keepdims=True)
