"""GLAD, MACE and the spectral initialisation: behaviour on simulated and hand-made data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from _agg_sim import random_confusions, simulate
from crowdlearn.aggregate import (
    GLAD,
    MACE,
    METHODS,
    DawidSkene,
    MajorityVote,
    SpectralError,
    spectral_confusions,
)
from crowdlearn.annotations import Annotations


@pytest.fixture(scope="module")
def spammy() -> tuple[Annotations, np.ndarray]:
    A = random_confusions(np.random.default_rng(0), 30, 3, diag=0.6)
    A[:8] = 1 / 3  # eight uniform spammers
    return simulate(900, A, 5, seed=0)


def test_glad_and_mace_beat_majority_vote_with_spammers(spammy: tuple[Annotations, np.ndarray]) -> None:
    ann, truth = spammy
    mv = (MajorityVote().fit(ann).labels_ == truth).mean()
    for agg in (GLAD(), MACE()):
        acc = (agg.fit(ann).labels_ == truth).mean()
        assert acc > mv + 0.01, (type(agg).__name__, acc, mv)
        skills = agg.skills_
        assert skills[:8].mean() < skills[8:].mean() - 0.3
        np.testing.assert_allclose(agg.confusions_.sum(axis=1), 1.0)
        np.testing.assert_allclose(agg.probas_.sum(axis=1), 1.0)


def test_mace_spammers_have_low_competence(spammy: tuple[Annotations, np.ndarray]) -> None:
    ann, _ = spammy
    mace = MACE().fit(ann)
    assert mace.competences_[:8].max() < 0.3
    assert mace.competences_[8:].min() > 0.3
    np.testing.assert_allclose(mace.strategies_.sum(axis=1), 1.0)
    # confusions_ = theta I + (1 - theta) xi 1^T
    m = 10
    expected = mace.competences_[m] * np.eye(3) + (1 - mace.competences_[m]) * mace.strategies_[m][:, None]
    np.testing.assert_allclose(mace.confusions_[m], expected)


def test_glad_item_difficulty_and_likelihood() -> None:
    A = random_confusions(np.random.default_rng(1), 15, 2, diag=0.6)
    ann, truth = simulate(400, A, 5, seed=1)
    glad = GLAD(n_iter=40, tol=0).fit(ann)
    assert glad.betas_.shape == (400,) and (glad.betas_ > 0).all()
    assert glad.alphas_.shape == (15,) and len(glad.log_likelihood_) == 40
    # generalized EM: the likelihood settles (no divergence) after a few iterations
    assert glad.log_likelihood_[-1] >= glad.log_likelihood_[0]
    assert (glad.labels_ == truth).mean() > 0.85


def test_mace_hand_case_two_labels() -> None:
    ann = Annotations([0, 0, 1, 1, 2], [0, 1, 0, 1, 0], [0, 0, 1, 1, 1], n_classes=2)
    mace = MACE().fit(ann)
    assert mace.labels_.tolist() == [0, 1, 1]
    assert MACE(n_iter=1000).fit(ann).n_iter_ < 1000  # converges
    with pytest.raises(ValueError, match="'smoothing' parameter of MACE must be a float > 0"):
        MACE(smoothing=0).fit(ann)


def test_mace_variational_bayes(spammy: tuple[Annotations, np.ndarray]) -> None:
    ann, truth = spammy
    em = MACE().fit(ann)
    vb = MACE(method="vb", priors="uniform").fit(ann)
    assert (vb.labels_ == truth).mean() > (em.labels_ == truth).mean() - 0.01
    assert vb.competences_[:8].max() < 0.3 < vb.competences_[8:].min()
    np.testing.assert_allclose(vb.strategies_.sum(axis=1), 1.0)
    np.testing.assert_allclose(vb.confusions_.sum(axis=1), 1.0)
    np.testing.assert_allclose(vb.probas_.sum(axis=1), 1.0)
    # a stronger competence prior pulls every competence towards 1/2
    strong = MACE(method="vb", competence_prior=1000.0).fit(ann)
    assert np.abs(strong.competences_ - 0.5).max() < np.abs(vb.competences_ - 0.5).max()
    with pytest.raises(ValueError, match=r"'method' parameter of MACE must be one of 'em', 'vb', got 'gibbs'"):
        MACE(method="gibbs").fit(ann)
    with pytest.raises(ValueError, match="'strategy_prior' parameter of MACE must be a float > 0"):
        MACE(method="vb", strategy_prior=0).fit(ann)


def test_mace_vb_hand_case_two_labels() -> None:
    # item 2 has one label from annotator 0, who agrees with annotator 1 elsewhere
    ann = Annotations([0, 0, 1, 1, 2], [0, 1, 0, 1, 0], [0, 0, 1, 1, 1], n_classes=2)
    vb = MACE(method="vb", priors="uniform").fit(ann)
    assert vb.labels_.tolist() == [0, 1, 1]
    assert vb.n_iter_ < 100


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_handles_degenerate_inputs(name: str) -> None:
    cls = METHODS[name]
    # unlabeled item 3, an annotator with one label, only class 0 of K=3 used
    ann = Annotations([0, 0, 1, 2], [0, 1, 0, 2], [0, 0, 0, 0], n_items=4, n_classes=3)
    agg = cls().fit(ann)
    assert agg.labels_[:3].tolist() == [0, 0, 0]
    np.testing.assert_allclose(agg.probas_[3], agg.priors_)
    assert agg.confusions_.shape == (3, 3, 3)  # type: ignore[attr-defined]
    # one annotator: runs; the vote-based and confusion-based methods follow it (for GLAD and
    # MACE one annotator's accuracy is not identifiable, so they may lean on the class prior)
    one = Annotations([0, 1, 2], [0, 0, 0], [1, 0, 1])
    fitted = cls().fit(one)
    assert np.all(np.isfinite(fitted.probas_))
    if name not in ("glad", "mace"):
        assert fitted.labels_.tolist() == [1, 0, 1]
    # DataFrame round trip
    df = pd.DataFrame({"task": ["x", "x", "y", "y"], "worker": [1, 2, 1, 2], "label": ["a", "a", "b", "b"]})
    out = cls().fit_predict(df)
    assert out.to_dict() == {"x": "a", "y": "b"}


@pytest.mark.parametrize("K", [2, 20])
def test_every_method_two_and_twenty_classes(K: int) -> None:
    A = random_confusions(np.random.default_rng(K), 30, K, diag=0.75)
    ann, truth = simulate(500, A, 5, seed=K)
    for name, cls in METHODS.items():
        acc = (cls().fit(ann).labels_ == truth).mean()
        assert acc > 0.85, (name, acc)


def test_spectral_recovers_confusions_and_priors() -> None:
    A = random_confusions(np.random.default_rng(2), 30, 3, diag=0.5)
    priors = np.array([0.5, 0.3, 0.2])
    ann, _ = simulate(6000, A, 6, seed=2, priors=priors)
    conf, w = spectral_confusions(ann)
    np.testing.assert_allclose(conf.sum(axis=1), 1.0)
    assert np.linalg.norm(conf - A, axis=(1, 2)).mean() < 0.2
    np.testing.assert_allclose(w, priors, atol=0.05)
    # EM from the spectral start reaches the same optimum as from majority vote
    a = DawidSkene(init="spectral").fit(ann)
    b = DawidSkene(init="mv").fit(ann)
    assert a.log_likelihood_[-1] == pytest.approx(b.log_likelihood_[-1], rel=1e-6)
    assert (a.labels_ == b.labels_).mean() > 0.99


def test_spectral_beats_majority_start_when_the_majority_is_adversarial() -> None:
    # 12 of 20 annotators flip the two classes: the majority vote start is on the wrong side
    rng = np.random.default_rng(3)
    A = np.tile(np.array([[0.85, 0.15], [0.15, 0.85]]), (20, 1, 1))
    A[:12] = np.array([[0.3, 0.75], [0.7, 0.25]])
    ann, truth = simulate(3000, A, 8, seed=3, priors=np.array([0.5, 0.5]))
    del rng
    mv_acc = (DawidSkene(init="mv").fit(ann).labels_ == truth).mean()
    sp_acc = (DawidSkene(init="spectral").fit(ann).labels_ == truth).mean()
    assert sp_acc >= mv_acc


def test_spectral_failure_is_reported_and_falls_back() -> None:
    ann = Annotations([0, 1, 2], [0, 1, 0], [0, 1, 1])
    with pytest.raises(SpectralError, match="at least 3 annotators"):
        spectral_confusions(ann)
    with pytest.warns(RuntimeWarning, match="spectral initialisation failed"):
        ds = DawidSkene(init="spectral").fit(ann)
    assert ds.labels_.tolist() == [0, 1, 1]


@pytest.mark.parametrize("cls", [GLAD, MACE])
def test_bad_parameters(cls: type) -> None:
    ann = Annotations([0], [0], [0])
    with pytest.raises(ValueError, match="'n_iter' parameter"):
        cls(n_iter=-2).fit(ann)
    with pytest.raises(ValueError, match="'priors' parameter"):
        cls(priors="sometimes").fit(ann)
