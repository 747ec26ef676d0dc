"""MACE: Multi-Annotator Competence Estimation (Hovy et al., 2013), by vectorized EM or variational Bayes."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import digamma

from crowdlearn.aggregate.base import (
    BaseAggregator,
    FloatArray,
    IterationCallback,
    PriorSpec,
    check_em_params,
    check_in,
    check_number,
    check_priors,
    is_dask_frame,
    items_labelled,
    labels_per_annotator,
    learned_priors,
    per_label_log_joint,
    posterior_from_log,
    safe_log,
    soft_vote,
)
from crowdlearn.annotations import Annotations

__all__ = ["MACE"]


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
    ) -> None:
        self.n_iter = n_iter
        self.tol = tol
        self.smoothing = smoothing
        self.competence_smoothing = competence_smoothing
        self.priors = priors
        self.method = method
        self.competence_prior = competence_prior
        self.strategy_prior = strategy_prior

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

    def fit(self, annotations: Annotations | pd.DataFrame, *, callback: IterationCallback | None = None) -> MACE:
        """Run EM; see :meth:`BaseAggregator.fit` (a Dask DataFrame runs the Dask backend)."""
        if is_dask_frame(annotations):
            from crowdlearn.aggregate.dask_backend import fit_dask

            fit_dask(self, annotations, callback=callback)
            return self
        ann = self._start_fit(annotations, callback)
        self._fit(ann)
        return self

    def _fit(self, ann: Annotations) -> None:
        M, K = ann.n_annotators, ann.n_classes
        fixed = check_priors(self.priors, K, type(self).__name__)
        it, an, lb = ann.items, ann.annotators, ann.labels
        labelled = items_labelled(ann)
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
            T, log_norm = posterior_from_log(log_joint)
            return T, float(log_norm.sum())

        T = soft_vote(ann)
        # start the competences/strategies from the vote: two M-steps settle theta and xi jointly
        m_step(T)
        m_step(T)
        pri = learned_priors(T, labelled, fixed)
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
