"""M-MSR: worker skills by robust rank-one completion of the worker agreement matrix."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from crowdlearn.aggregate.base import BaseAggregator, FloatArray, IntArray, break_ties, check_number, check_random_state
from crowdlearn.annotations import Annotations, AnnotationsError

__all__ = ["MMSR", "agreement_matrix", "signed_vote"]


def agreement_matrix(ann: Annotations) -> tuple[sp.coo_matrix, IntArray]:
    r"""The centred agreement :math:`\tilde C` of worker pairs that share items, and the overlap.

    :math:`\tilde C_{ij} = \frac{K}{K-1} \frac{a_{ij}}{c_{ij}} - \frac{1}{K-1}` for ``i != j``
    with :math:`c_{ij}` items labelled by both and :math:`a_{ij}` of them with equal labels
    (:math:`E[\tilde C_{ij}] = s_i s_j` under the one-coin model with
    :math:`s = (K p - 1) / (K - 1)`). Both come from two sparse products over the labels
    (``O^T O`` and ``Z^T Z`` with ``O`` items x annotators and ``Z`` (items x classes) x annotators
    indicators), so the cost follows the co-labelled pairs, never items x annotators.

    Returns
    -------
    C : coo_matrix of shape (n_annotators, n_annotators)
        Observed off-diagonal entries only (pairs with ``c_ij > 0``).
    counts : ndarray of shape (nnz,)
        ``c_ij`` of each stored entry.
    """
    M, K = ann.n_annotators, ann.n_classes
    ones = np.ones(ann.n_labels)
    O = sp.csr_matrix((ones, (ann.items, ann.annotators)), shape=(ann.n_items, M))
    Z = sp.csr_matrix((ones, (ann.items * K + ann.labels, ann.annotators)), shape=(ann.n_items * K, M))
    common = sp.coo_matrix(O.T @ O)
    agree = sp.csr_matrix(Z.T @ Z)
    off = common.row != common.col
    r, c, n = common.row[off], common.col[off], common.data[off]
    a = np.asarray(agree[r, c]).ravel()
    vals = K / (K - 1) * a / n - 1.0 / (K - 1)
    return sp.coo_matrix((vals, (r, c)), shape=(M, M)), n.astype(np.int64)


def signed_vote(
    ann: Annotations, weights: FloatArray, tie_break: str = "first", rng: np.random.Generator | None = None
) -> tuple[FloatArray, IntArray]:
    """Vote weighted by ``weights`` (n_annotators,), which may be negative (a vote against).

    Returns the scores (n_items, K), each row divided by its sum as crowd-kit does (so a row of
    negative sum is flipped; a zero sum gives inf / nan), and the most-scored class of each item
    (ties by ``tie_break``).
    """
    votes = ann.vote_counts(weights)
    with np.errstate(divide="ignore", invalid="ignore"):
        scores: FloatArray = votes / votes.sum(axis=1, keepdims=True)
    gen = rng if rng is not None else np.random.default_rng(0)
    labels = break_ties(np.nan_to_num(scores, nan=-np.inf), tie_break, gen)
    return scores, labels


def _trimmed_means(keys: IntArray, values: FloatArray, current: FloatArray, F: int, n_items: int) -> FloatArray:
    """For each key ``j``: the mean of its values after the mean-subsequence-reduced trimming.

    Values below ``current[j]`` lose their ``F`` smallest (all of them if fewer than ``F``);
    values above lose their ``F`` largest likewise. A key left with nothing keeps
    ``current[j]``; one left with a single 0 takes ``1 / sqrt(n_items)``.
    """
    n = current.shape[0]
    order = np.lexsort((values, keys))
    k, v = keys[order], values[order]
    a = current[k]
    size = np.bincount(k, minlength=n)
    start = np.concatenate([[0], np.cumsum(size)[:-1]])
    rank = np.arange(k.size) - start[k]
    below = np.bincount(k, weights=(v < a).astype(np.float64), minlength=n)
    above = np.bincount(k, weights=(v > a).astype(np.float64), minlength=n)
    keep_lo = np.where(below[k] < F, v >= a, rank >= F)
    keep_hi = np.where(above[k] < F, v <= a, rank < size[k] - F)
    keep = keep_lo & keep_hi
    cnt = np.bincount(k[keep], minlength=n)
    tot = np.bincount(k[keep], weights=v[keep], minlength=n)
    out = np.where(cnt > 0, tot / np.maximum(cnt, 1), current)
    lone_zero = (cnt == 1) & (tot == 0)
    out[lone_zero] = 1.0 / np.sqrt(n_items)
    result: FloatArray = out
    return result


class MMSR(BaseAggregator):
    r"""M-MSR: Matrix Mean-Subsequence-Reduced estimation of worker skills, then a weighted vote.

    Under the one-coin model the centred agreement of two workers has expectation
    :math:`E[\tilde C_{ij}] = s_i s_j` (:func:`agreement_matrix`), so the skills are a rank-one
    completion of the observed entries. M-MSR alternates, for every worker at once,
    :math:`v_j \leftarrow \mathrm{MSR}_F\{|\tilde C_{ij}| / u_i\}` and
    :math:`u_i \leftarrow \mathrm{MSR}_F\{|\tilde C_{ij}| / v_j\}` over the observed pairs, where
    :math:`\mathrm{MSR}_F` is the mean after removing up to ``F`` values on each side of the
    current estimate (robust to ``F`` adversarial workers; :math:`F = \lfloor d/2 \rfloor - 1`,
    ``d`` the smallest number of co-workers of a worker). It stops when
    :math:`\|u v^\top - u' v'^\top\|_F < \mathrm{tol}` (computed from four inner products, never
    the dense matrix). Then :math:`|s| = u / \sqrt{|u| / |v|}`; the signs are the signs of the
    leading eigenvector of :math:`\tilde C \circ |s||s|^\top` (oriented so most workers are
    positive); :math:`s` is clipped to :math:`[-1/(K-1) + 1/\sqrt N, 1 - 1/\sqrt N]`, turned into
    an accuracy :math:`p = s (K-1)/K + 1/K` and a log-odds weight
    :math:`w = \log\frac{(K-1) p}{1-p}`, and the items get the vote weighted by :math:`w`
    (negative weights vote against).

    Each sweep is a sort and a few ``bincount`` passes over the observed worker pairs.

    Gold labels (``fit(..., known_labels=...)``) fix the result of gold items only (their class
    and a one-hot ``probas_`` row); the skills come from agreement alone. ``partial_fit`` refits
    on all labels seen so far.

    Reference: Q. Ma, A. Olshevsky, "Adversarial crowdsourcing through robust rank-one matrix
    completion", NeurIPS 2020, arXiv:2010.12181. The sign step here is a plain eigenvector of the
    signed agreement (crowd-kit builds an auxiliary graph for it), so results can differ from
    crowd-kit's ``MMSR`` where the signs are ambiguous.

    Parameters
    ----------
    n_iter : int, default=10000
        Maximum sweeps.
    tol : float, default=1e-10
        Stop when the rank-one estimate moves less than this (Frobenius norm).
    tie_break : {"random", "first"}, default="first"
        Rule of the final weighted vote.
    random_state : int, Generator or None, default=0
        Seed of the starting ``u = v`` (uniform on [0, 1), drawn as crowd-kit does, by a legacy
        ``RandomState(seed)``, so the same seed gives the same start) and of the random tie-break.

    Attributes
    ----------
    skills_ : ndarray of shape (n_annotators,)
        Log-odds weight :math:`w` of each annotator.
    scores_ : ndarray of shape (n_items, K)
        Weighted votes, each row divided by its sum (rows of negative sum are flipped by it).
    probas_ : ndarray of shape (n_items, K)
        One-hot ``labels_`` (M-MSR gives no calibrated probabilities).
    labels_, priors_ : ndarray
        Most-scored class; mean of ``probas_``.
    loss_history_ : list of float
        :math:`\|u v^\top - u' v'^\top\|_F` after each sweep.
    n_iter_ : int
        Sweeps run.
    """

    skills_: FloatArray
    scores_: FloatArray
    loss_history_: list[float]
    n_iter_: int

    def __init__(
        self,
        *,
        n_iter: int = 10000,
        tol: float = 1e-10,
        tie_break: str = "first",
        random_state: int | np.random.Generator | None = 0,
    ) -> None:
        self.n_iter = n_iter
        self.tol = tol
        self.tie_break = tie_break
        self.random_state = random_state

    def _validate_params(self, ann: Annotations) -> None:
        owner = type(self).__name__
        check_number(self.n_iter, "n_iter", owner, low=0, integer=True)
        check_number(self.tol, "tol", owner, low=0)
        check_random_state(self.random_state, "random_state", owner)
        if ann.n_classes < 2:
            raise AnnotationsError(f"MMSR needs at least 2 classes; the annotations have {ann.n_classes}")

    def _fit(self, ann: Annotations) -> None:
        rng = (
            self.random_state
            if isinstance(self.random_state, np.random.Generator)
            else np.random.default_rng(self.random_state)
        )
        M, K, N = ann.n_annotators, ann.n_classes, ann.n_items
        C, _ = agreement_matrix(ann)
        r, c, x = C.row.astype(np.int64), C.col.astype(np.int64), np.abs(C.data)
        degree = np.bincount(c, minlength=M)
        F = int(np.floor(degree.min() / 2)) - 1 if M else -1
        # the start of crowd-kit's MMSR: u = v = uniform draws of a legacy RandomState(seed)
        seed = self.random_state if isinstance(self.random_state, int) else int(rng.integers(2**31))
        u = np.random.RandomState(seed).random_sample(M)
        v = u.copy()
        history: list[float] = []
        n_done = 0
        for _ in range(int(self.n_iter)):
            u0, v0 = u, v
            with np.errstate(divide="ignore", invalid="ignore"):
                v = _trimmed_means(c, x / u[r], v, F, N)
                u = _trimmed_means(r, x / v[c], u, F, N)
            # ||u v^T - u0 v0^T||_F^2 from inner products (no M x M matrix)
            sq = float((u @ u) * (v @ v) + (u0 @ u0) * (v0 @ v0) - 2.0 * (u @ u0) * (v @ v0))
            loss = float(np.sqrt(max(sq, 0.0)))
            history.append(loss)
            n_done += 1
            if loss < float(self.tol):
                break
        k = np.sqrt(np.linalg.norm(u) / np.linalg.norm(v)) if np.linalg.norm(v) > 0 else 1.0
        s_abs = u / k
        s = s_abs * self._signs(C, s_abs)
        s = np.minimum(s, 1.0 - 1.0 / np.sqrt(N))
        s = np.maximum(s, -1.0 / (K - 1) + 1.0 / np.sqrt(N))
        p = s * (K - 1) / K + 1.0 / K
        w = np.log(p * (K - 1) / (1.0 - p))
        scores, labels = signed_vote(ann, w, self.tie_break, rng)
        self.skills_ = w
        self.scores_ = scores
        self.labels_ = labels
        self.probas_ = np.eye(K)[self.labels_]
        self.priors_ = self.probas_.mean(axis=0) if N else np.full(K, 1.0 / K)
        self.loss_history_ = history
        self.n_iter_ = n_done

    @staticmethod
    def _signs(C: sp.coo_matrix, s_abs: FloatArray) -> FloatArray:
        """Signs (+1 / -1) of the skills: the leading eigenvector of ``C * |s| |s|^T``."""
        M = s_abs.shape[0]
        if M == 0:
            return np.ones(0)
        A = sp.coo_matrix((C.data * s_abs[C.row] * s_abs[C.col], (C.row, C.col)), shape=(M, M)).tocsr()
        A = (A + A.T) * 0.5
        if M <= 2000:
            _, vecs = np.linalg.eigh(A.toarray())
            vec = vecs[:, -1]
        else:
            from scipy.sparse.linalg import eigsh

            _, vecs = eigsh(A, k=1, which="LA")
            vec = vecs[:, 0]
        sign = np.where(vec >= 0, 1.0, -1.0)
        if sign.sum() < 0:
            sign = -sign
        out: FloatArray = sign
        return out
