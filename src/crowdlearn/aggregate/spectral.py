"""Spectral (third-order moment) initialisation of Dawid-Skene (Zhang, Chen, Zhou & Jordan, 2014)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

from crowdlearn._checks import check_number, check_random_state
from crowdlearn.aggregate.base import FloatArray, label_matrix, labels_per_annotator, normalise_columns, spmm
from crowdlearn.annotations import Annotations

__all__ = ["SpectralError", "spectral_confusions"]


class SpectralError(ValueError):
    """The moment method cannot run on these labels (a rank-deficient moment matrix)."""


def _group_votes(ann: Annotations, group_of: npt.NDArray[np.int64], g: int) -> FloatArray:
    """Vote counts of the annotators of group ``g``, shape (n_items, K)."""
    w = (group_of[ann.annotators] == g).astype(np.float64)
    flat = np.bincount(ann.items * ann.n_classes + ann.labels, weights=w, minlength=ann.n_items * ann.n_classes)
    return np.asarray(flat.reshape(ann.n_items, ann.n_classes), dtype=np.float64)


def _solve_right(A: FloatArray, B: FloatArray, what: str) -> FloatArray:
    """``A @ inv(B)``, raising SpectralError when B is (numerically) singular."""
    if np.linalg.cond(B) > 1e12:
        raise SpectralError(f"the {what} moment matrix is singular (a class or a group has too few labels)")
    out: FloatArray = np.asarray(np.linalg.solve(B.T, A.T).T, dtype=np.float64)
    return out


def _tensor_power(
    T: FloatArray, K: int, rng: np.random.Generator, n_restarts: int, n_power: int
) -> tuple[FloatArray, FloatArray]:
    """Robust tensor power method with deflation on a symmetric (K, K, K) tensor.

    Returns eigenvalues (K,) and eigenvectors (K, K) (one per column).
    """
    T = T.copy()
    lams = np.empty(K)
    vecs = np.empty((K, K))
    for h in range(K):
        best, best_v = -np.inf, np.zeros(K)
        for _ in range(n_restarts):
            v = rng.standard_normal(K)
            v /= np.linalg.norm(v)
            for _ in range(n_power):
                u = np.einsum("ijk,j,k->i", T, v, v)
                nrm = np.linalg.norm(u)
                if nrm == 0:
                    break
                v = u / nrm
            lam = float(np.einsum("ijk,i,j,k->", T, v, v, v))
            if lam > best:
                best, best_v = lam, v
        for _ in range(n_power):  # polish the winner
            u = np.einsum("ijk,j,k->i", T, best_v, best_v)
            best_v = u / np.linalg.norm(u)
        best = float(np.einsum("ijk,i,j,k->", T, best_v, best_v, best_v))
        lams[h], vecs[:, h] = best, best_v
        T -= best * np.einsum("i,j,k->ijk", best_v, best_v, best_v)
    return lams, vecs


def _group_confusions(
    Za: FloatArray, Zb: FloatArray, Zc: FloatArray, rng: np.random.Generator, n_restarts: int
) -> tuple[FloatArray, FloatArray]:
    """Conditional means of group ``c``'s votes, ``C_c[:, h] = E[Z_c | true h]``, and class weights."""
    N, K = Za.shape
    M_ab, M_cb = Za.T @ Zb / N, Zc.T @ Zb / N
    M_ba, M_ca = Zb.T @ Za / N, Zc.T @ Za / N
    # symmetrise the views of groups a and b onto group c (the paper's Z'_a, Z'_b)
    Pa = _solve_right(M_cb, M_ab, "second-order")
    Pb = _solve_right(M_ca, M_ba, "second-order")
    Za2, Zb2 = Za @ Pa.T, Zb @ Pb.T
    M2 = Za2.T @ Zb2 / N
    M2 = (M2 + M2.T) / 2
    s, U = np.linalg.eigh(M2)
    if s.min() <= 1e-12 * max(s.max(), 1e-300):
        raise SpectralError("the whitened second moment is not positive definite (too few labels per class)")
    Wh = U / np.sqrt(s)  # whitening: Wh.T @ M2 @ Wh = I
    A, B, C = Za2 @ Wh, Zb2 @ Wh, Zc @ Wh
    T = np.einsum("ni,nj,nk->ijk", A, B, C) / N
    # the population tensor is symmetric; symmetrise the sample one over all 6 axis orders
    T = sum(T.transpose(p) for p in ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0))) / 6
    lams, vecs = _tensor_power(T, K, rng, n_restarts, 50)
    if (lams <= 0).any():
        raise SpectralError("the tensor decomposition found a non-positive eigenvalue")
    # un-whiten: mu_h = lam_h * pinv(Wh.T) v_h; weights w_h = 1 / lam_h^2
    mu = (U * np.sqrt(s)) @ vecs * lams
    weights = 1.0 / lams**2
    return mu, weights / weights.sum()


def spectral_confusions(
    annotations: Annotations,
    *,
    smoothing: float = 0.01,
    random_state: int | np.random.Generator | None = 0,
    n_restarts: int = 10,
) -> tuple[FloatArray, FloatArray]:
    """Dawid-Skene confusions and class prior from the method of moments (spectral step of [1]).

    Implements Stage 1 of "Spectral methods meet EM" [1] in this simplified form:

    1. Split annotators into 3 groups, round-robin in decreasing order of label count (balanced
       label mass; the paper splits at random).
    2. For each group ``c`` (with ``a``, ``b`` the other two), with ``Z_g`` the (n_items, K)
       vote counts of group ``g``: symmetrise ``Z_a``, ``Z_b`` onto ``c`` with second-order
       moments, whiten the second moment ``M2``, decompose the whitened third moment
       ``M3 = E[Z_a' (x) Z_b' (x) Z_c]`` by the robust tensor power method (``n_restarts``
       random starts, deflation), and un-whiten: columns ``E[Z_c | true h]`` and class weights.
       The class order of the components is fixed by a Hungarian assignment that maximises the
       diagonal (the groups vote for the true class more often than for any other: the usual
       identifiability convention).
    3. For annotator ``m`` of group ``g``, with the reference group ``c = g + 1 (mod 3)``:
       ``E[z_m (x) Z_c] = C_m diag(w) C_c^T`` gives ``C_m``; negative entries are set to 0,
       ``smoothing`` is added, columns are normalised.

    The paper additionally projects each column onto the simplex and uses a sample split;
    we do neither. The output is meant as an EM starting point (``DawidSkene(init="spectral")``).

    Parameters
    ----------
    annotations : Annotations
        Crowd labels.
    smoothing : float, default=0.01
        Pseudo-count added to each confusion entry before normalising.
    random_state : int, Generator or None, default=0
        Seed of the tensor power method's starting points.
    n_restarts : int, default=10
        Random starts per component.

    Returns
    -------
    confusions : ndarray of shape (n_annotators, K, K)
        Column-stochastic, column = true class.
    priors : ndarray of shape (K,)
        Estimated class weights.

    Raises
    ------
    SpectralError
        When a moment matrix is singular (e.g. a class is absent, or fewer than 3 annotators).

    References
    ----------
    .. [1] Y. Zhang, X. Chen, D. Zhou, M. I. Jordan, "Spectral methods meet EM: A provably
       optimal algorithm for crowdsourcing", NeurIPS 2014 / JMLR 17(102), 2016.
    """
    owner = "spectral_confusions"
    check_number(smoothing, "smoothing", owner, low=0)
    check_random_state(random_state, "random_state", owner)
    check_number(n_restarts, "n_restarts", owner, low=1, integer=True)
    ann = annotations
    M, K = ann.n_annotators, ann.n_classes
    if K < 2:
        raise SpectralError(f"the spectral method needs at least 2 classes, got {K}")
    counts = labels_per_annotator(ann)
    active = np.flatnonzero(counts > 0)
    if active.size < 3:
        raise SpectralError(f"the spectral method needs at least 3 annotators with labels, got {active.size}")
    rng = random_state if isinstance(random_state, np.random.Generator) else np.random.default_rng(random_state)
    order = active[np.argsort(-counts[active], kind="stable")]
    group_of = np.full(M, -1, dtype=np.int64)
    group_of[order] = np.arange(order.size) % 3
    Z = [_group_votes(ann, group_of, g) for g in range(3)]
    C: list[FloatArray] = []
    weights = np.zeros(K)
    for c in range(3):
        a, b = (c + 1) % 3, (c + 2) % 3
        mu, w = _group_confusions(Z[a], Z[b], Z[c], rng, n_restarts)
        # class order: maximise the share of each component's votes on its own class
        share = mu / np.maximum(mu.sum(axis=0, keepdims=True), 1e-300)
        rows, cols = linear_sum_assignment(-share)
        perm = np.empty(K, dtype=np.int64)
        perm[rows] = cols  # class rows[i] <- component cols[i]
        C.append(mu[:, perm])
        weights += w[perm] / 3
    X = label_matrix(ann)
    conf = np.zeros((M, K, K))
    for g in range(3):
        c = (g + 1) % 3
        S = spmm(X.T, Z[c]).reshape(M, K, K) / ann.n_items  # S_m = C_m diag(w) C_c^T
        WCt = weights[:, None] * C[c].T
        if np.linalg.cond(WCt) > 1e12:
            raise SpectralError("the estimated group confusion is singular")
        members = group_of == g
        conf[members] = np.linalg.solve(WCt.T[None], S[members].transpose(0, 2, 1)).transpose(0, 2, 1)
    conf = normalise_columns(np.maximum(conf, 0.0), smoothing)
    return conf, weights
