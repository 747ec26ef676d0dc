"""crowdlearn.aggregate.glad's step functions: E-step, Q and its gradient (used by GLAD and the crowd-kit adapters)."""

from __future__ import annotations

import numpy as np
from scipy.optimize import approx_fprime

from _agg_sim import random_confusions, simulate
from crowdlearn.aggregate import GLAD
from crowdlearn.aggregate.glad import glad_e_step, glad_q, glad_q_gradient


def test_q_gradient_matches_finite_differences_with_per_parameter_prior_means() -> None:
    ann, _ = simulate(60, random_confusions(np.random.default_rng(3), 7, 3), 4, seed=3)
    rng = np.random.default_rng(4)
    alpha, b = rng.normal(1, 0.5, ann.n_annotators), rng.normal(0.5, 0.5, ann.n_items)
    mu_a, mu_b = rng.normal(1, 0.2, ann.n_annotators), 0.7
    T, _ = glad_e_step(ann, alpha, b, np.full(3, 1 / 3))
    match = T[ann.items, ann.labels]
    M = ann.n_annotators

    def q(x: np.ndarray) -> float:
        return glad_q(ann, match, x[:M], x[M:], mu_a, mu_b)

    x0 = np.concatenate([alpha, b])
    numeric = approx_fprime(x0, q, 1e-7)
    g_a, g_b = glad_q_gradient(ann, match, alpha, b, mu_a, mu_b)
    np.testing.assert_allclose(np.concatenate([g_a, g_b]), numeric, rtol=1e-4, atol=1e-4)


def test_e_step_at_the_fitted_parameters_gives_the_fitted_posteriors() -> None:
    ann, _ = simulate(80, random_confusions(np.random.default_rng(5), 6, 2), 3, seed=5)
    glad = GLAD(n_iter=15, tol=0).fit(ann)
    T, ll = glad_e_step(ann, glad.alphas_, np.log(glad.betas_), glad.priors_)
    np.testing.assert_allclose(T, glad.probas_, rtol=1e-12, atol=1e-12)
    assert ll == glad.log_likelihood_[-1]
