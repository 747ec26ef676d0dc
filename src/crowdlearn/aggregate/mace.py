"""MACE: Multi-Annotator Competence Estimation (Hovy et al., 2013), by vectorized EM."""

from __future__ import annotations

import numpy as np
import pandas as pd

from crowdlearn.aggregate.base import (
    BaseAggregator,
    FloatArray,
    PriorSpec,
    check_em_params,
    check_number,
    check_priors,
    has_converged,
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

    This is the EM variant of the paper (its Beta / Dirichlet priors appear as the pseudo-counts
    ``a = b = competence_smoothing`` and ``s = smoothing``), started from the soft majority vote
    instead of random restarts, so it is deterministic.

    Reference: D. Hovy, T. Berg-Kirkpatrick, A. Vaswani, E. Hovy, "Learning Whom to Trust with
    MACE", NAACL-HLT 2013.

    Parameters
    ----------
    n_iter : int, default=100
        Maximum EM iterations.
    tol : float, default=1e-7
        Relative tolerance on the observed-data log-likelihood (``<= 0``: run all iterations).
    smoothing : float, default=0.01
        Pseudo-count (> 0) of each class in each spamming strategy.
    competence_smoothing : float, default=0.5
        Pseudo-count (> 0) of both outcomes (knew / spammed) in each competence. Both keep
        ``log((1 - theta) * xi)`` finite in the E-step.
    priors : "learn", "uniform" or array-like of shape (K,), default="learn"
        Class prior.

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
    ) -> None:
        self.n_iter = n_iter
        self.tol = tol
        self.smoothing = smoothing
        self.competence_smoothing = competence_smoothing
        self.priors = priors

    def _validate_params(self, ann: Annotations) -> None:
        owner = type(self).__name__
        check_em_params(self.n_iter, self.tol, 0.0, owner)
        # strictly positive: the E-step takes log((1 - theta) * xi), which must stay finite
        check_number(self.smoothing, "smoothing", owner, low=0, strict=True)
        check_number(self.competence_smoothing, "competence_smoothing", owner, low=0, strict=True)
        check_priors(self.priors, ann.n_classes, owner)

    def fit(self, annotations: Annotations | pd.DataFrame) -> MACE:
        """Run EM; see :meth:`BaseAggregator.fit`."""
        ann = self._start_fit(annotations)
        self._fit(ann)
        return self

    def _fit(self, ann: Annotations) -> None:
        M, K = ann.n_annotators, ann.n_classes
        fixed = check_priors(self.priors, K, type(self).__name__)
        it, an, lb = ann.items, ann.annotators, ann.labels
        labelled = items_labelled(ann)
        n_m = labels_per_annotator(ann).astype(np.float64)
        a = float(self.competence_smoothing)
        s = float(self.smoothing)
        theta = np.full(M, 0.5)
        xi = np.full((M, K), 1.0 / K)

        def m_step(T: FloatArray) -> None:
            nonlocal theta, xi
            th, x = theta[an], xi[an, lb]
            knew = T[it, lb] * th / (th + (1.0 - th) * x)
            denom = n_m + 2 * a
            theta = np.divide(
                np.bincount(an, weights=knew, minlength=M) + a, denom, out=np.full(M, 0.5), where=denom > 0
            )
            spam = np.bincount(an * K + lb, weights=1.0 - knew, minlength=M * K).reshape(M, K) + s
            tot = spam.sum(axis=1, keepdims=True)
            xi = np.divide(spam, tot, out=np.full((M, K), 1.0 / K), where=tot > 0)

        def e_step(pri: FloatArray) -> tuple[FloatArray, float]:
            th, x = theta[an], xi[an, lb]
            log_joint = per_label_log_joint(ann, safe_log(th + (1.0 - th) * x), safe_log((1.0 - th) * x))
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
            if has_converged(history, self.tol):
                break
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
