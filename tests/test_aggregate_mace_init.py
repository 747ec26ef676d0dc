"""crowdlearn.aggregate.MACE's starts: the vote (default), crowd-kit's random start, given values."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import uniform

from _agg_sim import random_confusions, simulate
from crowdlearn.aggregate import MACE
from crowdlearn.aggregate.mace import random_start


def test_random_start_is_scipys_uniform_draws_seeded_per_draw() -> None:
    theta, xi = random_start(4, 3, 0.5, 7)
    spam_know = uniform(1, 1.5).rvs(size=(4, 2), random_state=7)
    strat = uniform(1, 1.5).rvs(size=(4, 3), random_state=7)
    np.testing.assert_allclose(theta, spam_know[:, 1] / spam_know.sum(axis=1))
    np.testing.assert_allclose(xi, strat / strat.sum(axis=1, keepdims=True))


@pytest.mark.parametrize("method", ["em", "vb"])
def test_random_start_is_seeded_and_given_values_start_there(method: str) -> None:
    ann, truth = simulate(300, random_confusions(np.random.default_rng(0), 8, 3), 4, seed=0)
    a = MACE(method=method, init="random", random_state=3, n_iter=30).fit(ann)
    b = MACE(method=method, init="random", random_state=3, n_iter=30).fit(ann)
    np.testing.assert_array_equal(a.probas_, b.probas_)
    theta, xi = random_start(ann.n_annotators, 3, 0.5, 3)
    c = MACE(method=method, init_competences=theta, init_strategies=xi, n_iter=30).fit(ann)
    np.testing.assert_array_equal(a.probas_, c.probas_)
    assert (a.labels_ == truth).mean() > 0.8


def test_bad_starts_are_one_clear_error() -> None:
    ann, _ = simulate(50, random_confusions(np.random.default_rng(1), 4, 2), 3, seed=1)
    with pytest.raises(ValueError, match="'init' parameter of MACE"):
        MACE(init="spectral").fit(ann)
    with pytest.raises(ValueError, match="go together"):
        MACE(init_competences=np.full(4, 0.5)).fit(ann)
    with pytest.raises(ValueError, match=r"shapes \(4,\) / \(4, 2\), got \(3,\) / \(4, 2\)"):
        MACE(init_competences=np.full(3, 0.5), init_strategies=np.full((4, 2), 0.5)).fit(ann)
    with pytest.raises(ValueError, match="rows summing to 1"):
        MACE(init_competences=np.full(4, 0.5), init_strategies=np.full((4, 2), 0.7)).fit(ann)
