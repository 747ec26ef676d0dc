"""Dawid-Skene and one-coin Dawid-Skene: hand-checked EM step, recovery, degenerate cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from _agg_sim import empirical_confusions, random_confusions, simulate
from crowdlearn.aggregate import DawidSkene, OneCoinDawidSkene
from crowdlearn.annotations import Annotations, AnnotationsError


@pytest.fixture
def tiny() -> Annotations:
    # item 0: (a0 -> 0, a1 -> 0); item 1: (a0 -> 0, a1 -> 1); item 2: (a0 -> 1)
    return Annotations([0, 0, 1, 1, 2], [0, 1, 0, 1, 0], [0, 0, 0, 1, 1])


def test_zero_iterations_is_soft_majority_vote(tiny: Annotations) -> None:
    ds = DawidSkene(n_iter=0, smoothing=0).fit(tiny)
    np.testing.assert_allclose(ds.probas_, [[1, 0], [0.5, 0.5], [0, 1]])
    np.testing.assert_allclose(ds.priors_, [0.5, 0.5])
    assert ds.log_likelihood_ == [] and ds.n_iter_ == 0


def test_one_em_step_by_hand(tiny: Annotations) -> None:
    ds = DawidSkene(n_iter=1, smoothing=0, tol=0).fit(tiny)
    # M-step from the soft MV [[1,0],[.5,.5],[0,1]]:
    # a0 counts (said i, true j): said 0 <- [1.5, .5], said 1 <- [0, 1]   -> columns normalised
    # a1 counts: said 0 <- [1, 0], said 1 <- [.5, .5]
    np.testing.assert_allclose(ds.confusions_[0], [[1, 1 / 3], [0, 2 / 3]])
    np.testing.assert_allclose(ds.confusions_[1], [[2 / 3, 0], [1 / 3, 1]])
    np.testing.assert_allclose(ds.priors_, [0.5, 0.5])
    # E-step: item 0 joint = [.5*1*2/3, .5*1/3*0], item 1 = [.5*1*1/3, .5*1/3*1], item 2 = [0, .5*2/3]
    np.testing.assert_allclose(ds.probas_, [[1, 0], [0.5, 0.5], [0, 1]])
    np.testing.assert_allclose(ds.log_likelihood_, [3 * np.log(1 / 3)])
    assert ds.labels_.tolist() == [0, 0, 1]


def test_smoothing_is_a_pseudo_count(tiny: Annotations) -> None:
    ds = DawidSkene(n_iter=0, smoothing=1.0).fit(tiny)
    # a0 said-0 counts [1.5, .5] + 1, said-1 [0, 1] + 1 -> columns [2.5, 1] / 3.5 and [1.5, 2] / 3.5
    np.testing.assert_allclose(ds.confusions_[0], [[2.5 / 3.5, 1.5 / 3.5], [1 / 3.5, 2 / 3.5]])


def test_log_likelihood_is_true_observed_data_likelihood() -> None:
    A = random_confusions(np.random.default_rng(1), 6, 3)
    ann, _ = simulate(200, A, 3, seed=1)
    ds = DawidSkene(n_iter=5, tol=0).fit(ann)
    # brute force: sum_n log sum_j prior_j prod_labels A[m, y, j], python loop over labels
    lik = np.tile(ds.priors_, (ann.n_items, 1))
    for n, m, y in zip(ann.items, ann.annotators, ann.labels, strict=True):
        lik[n] *= ds.confusions_[m, y]
    assert ds.log_likelihood_[-1] == pytest.approx(np.log(lik.sum(axis=1)).sum(), rel=1e-10)
    np.testing.assert_allclose(ds.probas_, lik / lik.sum(axis=1, keepdims=True), atol=1e-12)
    # without smoothing EM never decreases the likelihood
    ml = DawidSkene(n_iter=30, tol=0, smoothing=0).fit(ann)
    assert np.all(np.diff(ml.log_likelihood_) >= -1e-9)


def test_recovers_confusions() -> None:
    rng = np.random.default_rng(0)
    K, M = 3, 8
    A = random_confusions(rng, M, K, diag=0.6)
    # 240 items, each labelled by all 8 annotators: about 80 labels per annotator per class
    ann, truth = simulate(240, A, 8, seed=2)
    per_class = np.bincount(ann.annotators * K + truth[ann.items], minlength=M * K)
    assert per_class.min() >= 50
    ds = DawidSkene().fit(ann)
    emp = empirical_confusions(ann, truth)
    # EM recovers what the labels reveal (sampling noise of the data itself excluded)
    err = np.linalg.norm(ds.confusions_ - emp, axis=(1, 2))
    assert err.mean() < 0.05
    # and, with more labels (about 1,900 per annotator per class), the true matrices
    ann_big, _ = simulate(9000, A, 5, seed=3)
    big = DawidSkene().fit(ann_big)
    assert np.linalg.norm(big.confusions_ - A, axis=(1, 2)).mean() < 0.05


def test_beats_majority_vote_on_simulated_data() -> None:
    A = random_confusions(np.random.default_rng(4), 20, 4, diag=0.5)
    ann, truth = simulate(1000, A, 4, seed=4)
    ds = DawidSkene().fit(ann)
    mv = ann.vote_counts().argmax(axis=1)
    assert (ds.labels_ == truth).mean() > (mv == truth).mean() + 0.02


def test_confusion_convention() -> None:
    A = random_confusions(np.random.default_rng(5), 5, 4)
    ann, _ = simulate(300, A, 3, seed=5)
    for agg in (DawidSkene(), OneCoinDawidSkene()):
        agg.fit(ann)
        assert agg.confusions_.shape == (5, 4, 4)
        np.testing.assert_allclose(agg.confusions_.sum(axis=1), 1.0)
        np.testing.assert_allclose(agg.probas_.sum(axis=1), 1.0)
        assert agg.priors_.shape == (4,) and agg.skills_.shape == (5,)


def test_tol_stops_early_and_nonpositive_tol_runs_all() -> None:
    A = random_confusions(np.random.default_rng(6), 10, 3)
    ann, _ = simulate(300, A, 3, seed=6)
    assert DawidSkene(n_iter=500, tol=1e-6).fit(ann).n_iter_ < 500
    for tol in (0.0, -np.inf):
        ds = DawidSkene(n_iter=40, tol=tol).fit(ann)
        assert ds.n_iter_ == 40 and len(ds.log_likelihood_) == 40


def test_known_labels_are_clamped(tiny: Annotations) -> None:
    ds = DawidSkene(n_iter=3).fit(tiny, known_labels=np.array([-1, 1, -1]))
    np.testing.assert_allclose(ds.probas_[1], [0, 1])
    by_id = DawidSkene(n_iter=3).fit(tiny, known_labels=pd.Series({1: 1}))
    np.testing.assert_allclose(by_id.probas_, ds.probas_)
    with pytest.raises(AnnotationsError, match=r"known_labels\[0\] = 5 is not a class index"):
        DawidSkene().fit(tiny, known_labels=np.array([5, -1, -1]))
    with pytest.raises(AnnotationsError, match="shape \\(3,\\)"):
        DawidSkene().fit(tiny, known_labels=np.array([0, 1]))


def test_init_confusions_and_fixed_priors(tiny: Annotations) -> None:
    A0 = np.tile(np.array([[0.9, 0.2], [0.1, 0.8]]), (2, 1, 1))
    ds = DawidSkene(n_iter=0, init_confusions=A0, priors=[0.3, 0.7]).fit(tiny)
    np.testing.assert_allclose(ds.confusions_, A0)
    np.testing.assert_allclose(ds.priors_, [0.3, 0.7])
    joint0 = np.array([0.3 * 0.9 * 0.9, 0.7 * 0.2 * 0.2])
    np.testing.assert_allclose(ds.probas_[0], joint0 / joint0.sum())
    assert len(ds.log_likelihood_) == 1
    with pytest.raises(ValueError, match="columns summing to 1"):
        DawidSkene(init_confusions=A0.transpose(0, 2, 1) * 0.5).fit(tiny)
    with pytest.raises(ValueError, match=r"shape \(2, 2, 2\)"):
        DawidSkene(init_confusions=np.ones((3, 2, 2)) / 2).fit(tiny)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"n_iter": -1}, "'n_iter' parameter of DawidSkene must be an int >= 0, got -1"),
        ({"n_iter": 2.5}, "'n_iter' parameter of DawidSkene must be an int"),
        ({"smoothing": -0.1}, "'smoothing' parameter of DawidSkene must be a float >= 0, got -0.1"),
        ({"init": "random"}, "'init' parameter of DawidSkene must be one of"),
        ({"priors": [0.2, 0.2]}, "non-negative and sum to 1"),
        ({"priors": "flat"}, "'priors' parameter of DawidSkene must be 'learn'"),
        ({"tol": np.inf}, "must be a float >= 0 or -inf, got inf"),
    ],
)
def test_bad_parameters(tiny: Annotations, params: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        DawidSkene(**params).fit(tiny)  # type: ignore[arg-type]


def test_degenerate_cases() -> None:
    # one annotator
    one = Annotations([0, 1, 2], [0, 0, 0], [0, 1, 1])
    ds = DawidSkene().fit(one)
    assert ds.labels_.tolist() == [0, 1, 1]
    # only one class present among K=2, an unlabeled item (index 3) and a one-label annotator
    ann = Annotations([0, 0, 1, 2], [0, 1, 0, 2], [0, 0, 0, 0], n_items=4, n_classes=2)
    for agg in (DawidSkene(), OneCoinDawidSkene()):
        agg.fit(ann)
        assert agg.labels_[:3].tolist() == [0, 0, 0]
        np.testing.assert_allclose(agg.probas_[3], agg.priors_)
        assert np.all(np.isfinite(agg.confusions_))
    # a constant annotator (always says 1) among good ones: learned as uninformative
    A = random_confusions(np.random.default_rng(7), 6, 2, diag=0.8)
    A[0] = [[0, 0], [1, 1]]
    sim_ann, truth = simulate(400, A, 4, seed=7)
    ds = DawidSkene().fit(sim_ann)
    np.testing.assert_allclose(ds.confusions_[0, 1], [1, 1], atol=0.02)
    assert (ds.labels_ == truth).mean() > 0.9


@pytest.mark.parametrize("K", [2, 20])
def test_two_and_twenty_classes(K: int) -> None:
    A = random_confusions(np.random.default_rng(K), 30, K, diag=0.7)
    ann, truth = simulate(600, A, 5, seed=K)
    for agg in (DawidSkene(), OneCoinDawidSkene()):
        acc = (agg.fit(ann).labels_ == truth).mean()
        assert acc > 0.9, (type(agg).__name__, acc)


def test_items_with_one_label_and_empty_input() -> None:
    A = random_confusions(np.random.default_rng(10), 8, 3, diag=0.8)
    ann, _ = simulate(300, A, 4, seed=10)
    # 30 extra items with a single label each, from the annotators' own confusions
    rng = np.random.default_rng(11)
    extra_truth = rng.integers(0, 3, 30)
    extra_ann = rng.integers(0, 8, 30)
    extra_lab = np.array([rng.choice(3, p=A[m, :, t]) for m, t in zip(extra_ann, extra_truth, strict=True)])
    both = Annotations(
        np.concatenate([ann.items, 300 + np.arange(30)]),
        np.concatenate([ann.annotators, extra_ann]),
        np.concatenate([ann.labels, extra_lab]),
        n_classes=3,
    )
    ds = DawidSkene().fit(both)
    # a single label from a good annotator decides its item
    assert ds.labels_[300:].tolist() == extra_lab.tolist()
    # annotators with a single label each: the model is not identifiable, but EM runs and stays finite
    lone = DawidSkene().fit(Annotations([0, 1, 2], [0, 1, 2], [2, 0, 1], n_classes=3))
    assert np.all(np.isfinite(lone.probas_)) and np.all(np.isfinite(lone.log_likelihood_))
    empty = Annotations([], [], [], n_items=2, n_annotators=1, n_classes=2)
    ds = DawidSkene().fit(empty)
    np.testing.assert_allclose(ds.probas_, 0.5)
    assert ds.log_likelihood_[-1] == 0.0


def test_one_coin_has_one_skill_per_annotator() -> None:
    A = random_confusions(np.random.default_rng(8), 10, 3, diag=0.75)
    ann, truth = simulate(800, A, 5, seed=8)
    oc = OneCoinDawidSkene().fit(ann)
    diag = np.einsum("mjj->mj", oc.confusions_)
    np.testing.assert_allclose(diag, oc.skills_[:, None] * np.ones(3))
    true_acc = np.einsum("mjj->m", A) / 3
    assert np.abs(oc.skills_ - true_acc).mean() < 0.05
    assert (oc.labels_ == truth).mean() > 0.9


def test_dataframe_input_returns_pandas() -> None:
    df = pd.DataFrame(
        {
            "task": ["t1", "t1", "t1", "t2", "t2"],
            "worker": ["a", "b", "c", "a", "b"],
            "label": ["x", "x", "y", "y", "y"],
        }
    )
    ds = DawidSkene()
    labels = ds.fit_predict(df)
    assert isinstance(labels, pd.Series) and labels.name == "agg_label"
    assert labels.to_dict() == {"t1": "x", "t2": "y"}
    proba = ds.fit_predict_proba(df)
    assert list(proba.columns) == ["x", "y"] and list(proba.index) == ["t1", "t2"]
    np.testing.assert_allclose(proba.to_numpy(), ds.probas_)
    with pytest.raises(AnnotationsError, match=r"missing column\(s\) \['worker'\]"):
        DawidSkene().fit(df.rename(columns={"worker": "annotator"}))
    with pytest.raises(TypeError, match="expected an Annotations object"):
        DawidSkene().fit([1, 2, 3])  # type: ignore[arg-type]


def test_relabeling_annotators_is_invariant() -> None:
    A = random_confusions(np.random.default_rng(9), 7, 3)
    ann, _ = simulate(200, A, 3, seed=9)
    perm = np.random.default_rng(0).permutation(7)
    shuffled = Annotations(ann.items, perm[ann.annotators], ann.labels, n_items=200, n_annotators=7, n_classes=3)
    a, b = DawidSkene().fit(ann), DawidSkene().fit(shuffled)
    np.testing.assert_allclose(a.probas_, b.probas_, atol=1e-10)
    np.testing.assert_allclose(a.confusions_, b.confusions_[perm], atol=1e-10)


def test_params_roundtrip() -> None:
    ds = DawidSkene(n_iter=3)
    assert ds.get_params()["n_iter"] == 3
    assert ds.set_params(tol=0.5).tol == 0.5
    with pytest.raises(ValueError, match="Invalid parameter 'bogus'"):
        ds.set_params(bogus=1)
    assert "DawidSkene(" in repr(ds)


def test_functional_steps_match_the_estimator(tiny: Annotations) -> None:
    from crowdlearn.aggregate.base import label_matrix
    from crowdlearn.aggregate.dawid_skene import ds_e_step, ds_m_step

    X = label_matrix(tiny)
    assert X.shape == (3, 4) and X.nnz == 5 and X[1, 1 * 2 + 1] == 1.0  # item 1, annotator 1, label 1
    soft_mv = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    conf = ds_m_step(X.T, soft_mv, 2, 0.0)
    ds = DawidSkene(n_iter=1, smoothing=0, tol=0).fit(tiny)
    np.testing.assert_allclose(conf, ds.confusions_)
    post, log_norm = ds_e_step(X, conf, np.log(ds.priors_))
    np.testing.assert_allclose(post, ds.probas_)
    assert log_norm.sum() == pytest.approx(ds.log_likelihood_[-1])


def _sparse_one_label_crowd() -> tuple[Annotations, np.ndarray]:
    """3,000 items with one label each from 750 annotators (4 labels each on average), 60% correct."""
    rng = np.random.default_rng(0)
    n, K, M = 3000, 10, 750
    truth = rng.integers(0, K, n)
    lab = np.where(rng.random(n) < 0.6, truth, rng.integers(0, K, n))
    return Annotations(np.arange(n), rng.integers(0, M, n), lab, n_classes=K), truth


def test_pooled_shrinkage_keeps_sparse_annotators_from_collapsing() -> None:
    ann, truth = _sparse_one_label_crowd()
    votes = ann.vote_counts().argmax(axis=1)
    uniform = DawidSkene(smoothing=0.01).fit(ann)
    assert np.bincount(uniform.labels_).max() / ann.n_items > 0.99  # the documented collapse
    pooled = DawidSkene(smoothing=0.01, shrinkage="pooled").fit(ann)
    assert np.bincount(pooled.labels_).max() / ann.n_items < 0.2
    assert (pooled.labels_ == votes).mean() > 0.99  # one label per item: nothing beyond the vote to learn
    assert (pooled.labels_ == truth).mean() > 0.6


def test_pooled_shrinkage_prior_is_the_crowd_confusion() -> None:
    from crowdlearn.aggregate.dawid_skene import shrink_counts

    counts = np.zeros((3, 2, 2))
    counts[0] = [[8.0, 1.0], [2.0, 9.0]]
    counts[1] = [[4.0, 0.0], [0.0, 1.0]]  # annotator 2 has no counts at all
    pooled = counts.sum(axis=0) / counts.sum(axis=0).sum(axis=0, keepdims=True)
    out = shrink_counts(counts, 0.5, "pooled")
    np.testing.assert_allclose(out.sum(axis=1), 1.0)
    np.testing.assert_allclose(out[2], pooled)  # no labels: the crowd's confusion
    np.testing.assert_allclose(out[0], (counts[0] + 1.0 * pooled) / (counts[0] + 1.0 * pooled).sum(axis=0))
    np.testing.assert_allclose(shrink_counts(counts, 0.0, "pooled"), shrink_counts(counts, 0.0, "uniform"))
    np.testing.assert_allclose(shrink_counts(counts, 0.5, "uniform")[2], 0.5)
    with pytest.raises(ValueError, match="shrinkage"):
        DawidSkene(shrinkage="crowd").fit(_sparse_one_label_crowd()[0])
