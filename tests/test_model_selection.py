"""crowdlearn.model_selection: grid validation, the truth-free criteria, cv_results_, refit, ensembles."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from crowdlearn import Annotations  # noqa: E402
from crowdlearn.estimators import CrowdClassifier, NotFittedError  # noqa: E402
from crowdlearn.model_selection import (  # noqa: E402
    SEED_STRIDE,
    CrowdEnsemble,
    CrowdSearchCV,
    expand_param_grid,
    fit_seed_ensemble,
)
from crowdlearn.nn import available_methods  # noqa: E402
from crowdlearn.simulate import item_features, simulate_crowd, symmetric_flip_confusions  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

METHODS = available_methods(entry_points=False)


@pytest.fixture(scope="module")
def crowd() -> tuple[np.ndarray, np.ndarray, Annotations]:
    """120 items, 3 classes, 6 annotators right 75% of the time, 3 labels per item; separable features."""
    conf = symmetric_flip_confusions(6, 3, flip_rate=0.25)
    sim = simulate_crowd(conf, n_items=120, per_item=3, random_state=0)
    x = item_features(sim.true_posteriors, 5, separation=4.0, random_state=1).astype(np.float32)
    return x, sim.true_labels, sim.annotations


def base(**kw: Any) -> CrowdClassifier:
    # a constant schedule: under ccem's cosine recipe a refit stopped early is not a shorter fit
    # (test_a_cosine_refit_follows_the_point_s_schedule)
    params: dict[str, Any] = {"method": "ccem", "epochs": 4, "batch_size": 32, "lr": 1e-2, "schedule": "constant"}
    params.update(kw)
    return CrowdClassifier(**params)


# ------------------------------------------------------------------ grid validation (no training)
@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ({"lrr": [1e-3]}, r"param_grid\['lrr'\]: 'lrr' is not a parameter of CrowdClassifier"),
        ({"lr": []}, r"param_grid\['lr'\] is an empty list"),
        ({"lr": 1e-3}, r"param_grid\['lr'\] must be a list of values, got 0.001"),
        ({"init": "ds"}, r"param_grid\['init'\] must be a list of values, got 'ds'"),
        ({"validation": ["none"]}, r"param_grid\['validation'\]: 'validation' cannot be searched"),
        ({"lr": [1e-3, -1.0]}, r"grid point 2 of 2 \(param_grid\['lr'\]=-1.0\): The 'lr' parameter of CrowdClassifier"),
        (
            {"method": ["crowdlayer-mw"], "init": ["ds"]},
            r"grid point 1 of 1 \(param_grid\['method'\]='crowdlayer-mw', param_grid\['init'\]='ds'\): The 'init'",
        ),
        ({"method": ["nope"]}, r"The 'method' parameter of CrowdClassifier must be one of"),
        ({"method_params__lam": [0.1]}, r"param_grid\['method_params__lam'\]=0.1\): .*lam"),
        ({}, "empty grid"),
        ([], "non-empty list"),
    ],
)
def test_a_bad_grid_is_refused_in_one_line_before_any_training(grid: Any, message: str) -> None:
    search = CrowdSearchCV(base(), grid)
    with pytest.raises(ValueError, match=message) as info:
        search.fit(np.zeros((3, 2)), Annotations([0, 1, 2], [0, 0, 0], [0, 1, 0]))
    assert "\n" not in str(info.value)
    assert not hasattr(search, "cv_results_")


def test_expand_param_grid_orders_points_and_merges_method_params() -> None:
    grid = [{"method": ["geocrowdnet-f"], "method_params__lam": [0.1, 0.01], "lr": [1e-3]}, {"method": ["ccem"]}]
    points = expand_param_grid(base(), grid)
    assert points == [
        {"method": "geocrowdnet-f", "method_params__lam": 0.1, "lr": 1e-3},
        {"method": "geocrowdnet-f", "method_params__lam": 0.01, "lr": 1e-3},
        {"method": "ccem"},
    ]


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"criterion": "truth"}, "The 'criterion' parameter of CrowdSearchCV"),
        ({"cv": 1}, "The 'cv' parameter of CrowdSearchCV must be an int >= 2, got 1"),
        ({"ensemble": 3}, "The 'ensemble' parameter of CrowdSearchCV must be at most the 2 grid points, got 3"),
        ({"ensemble": 2, "refit": False}, "ensemble needs refit=True"),
    ],
)
def test_bad_search_parameters_are_refused(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CrowdSearchCV(base(), {"lr": [1e-3, 1e-2]}, **kw).fit(np.zeros((3, 2)), Annotations([0, 1], [0, 0], [0, 1]))


# ------------------------------------------------------------------ the search
def test_kfold_cv_results_have_one_row_per_point_and_pick_the_point_that_trains(crowd) -> None:
    x, _, ann = crowd
    grid = {"lr": [1e-7, 1e-2], "init": ["identity", "ds"]}  # lr 1e-7: nothing trains
    search = CrowdSearchCV(base(epochs=5), grid, criterion="kfold", cv=3, random_state=2, refit=False).fit(x, ann)
    res = search.cv_results_
    assert search.n_splits_ == 3
    for key in (
        "params",
        "param_lr",
        "param_init",
        "split0_test_score",
        "split2_test_score",
        "mean_test_score",
        "std_test_score",
        "rank_test_score",
        "split0_best_epoch",
        "refit_epochs",
        "mean_fit_time",
        "std_fit_time",
        "diverged",
        "fit_warnings",
    ):
        assert len(res[key]) == 4, key
    assert [p["lr"] for p in res["params"]] == [1e-7, 1e-7, 1e-2, 1e-2]
    folds = np.stack([res[f"split{f}_test_score"] for f in range(3)], axis=1)
    np.testing.assert_allclose(res["mean_test_score"], folds.mean(axis=1))
    assert (res["mean_test_score"] < 0).all()  # scores are -NLL
    assert sorted(res["rank_test_score"].tolist()) == [1, 2, 3, 4]
    order = np.argsort(-res["mean_test_score"])
    assert res["rank_test_score"][order].tolist() == [1, 2, 3, 4]
    assert search.best_params_["lr"] == 1e-2
    assert search.best_score_ == res["mean_test_score"].max()
    assert res["rank_test_score"][search.best_index_] == 1
    epochs = np.stack([res[f"split{f}_best_epoch"] for f in range(3)], axis=1)
    assert ((epochs >= 0) & (epochs < 5)).all()
    assert res["refit_epochs"].tolist() == [int(np.floor((e + 1).mean() + 0.5)) for e in epochs]
    assert len(search.results_frame()) == 4


def test_the_refit_is_a_plain_fit_on_all_labels_for_the_chosen_epochs(crowd) -> None:
    x, _, ann = crowd
    search = CrowdSearchCV(base(epochs=8), {"lr": [1e-2, 3e-2]}).fit(x, ann)
    best = search.best_estimator_
    assert len(best.history_) == search.refit_epochs_ <= 8
    np.testing.assert_array_equal(best.annotator_counts_, ann.annotator_counts)  # every label, none held out
    again = base(epochs=search.refit_epochs_, validation="none", **search.best_params_).fit(x, ann)
    np.testing.assert_allclose(search.predict_proba(x), again.predict_proba(x), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(search.predict(x), again.predict(x))
    assert best.callbacks is None and best.validation == "none"


def test_a_cosine_refit_follows_the_point_s_schedule(crowd) -> None:
    """With a schedule over ``epochs``, the refit is the point's fit stopped after ``refit_epochs_``."""
    from crowdlearn.model_selection import StopAfter

    x, _, ann = crowd
    search = CrowdSearchCV(base(epochs=8, schedule="cosine"), {"lr": [1e-2, 3e-2]}, criterion="holdout").fit(x, ann)
    n = search.refit_epochs_
    assert 1 < n < 8  # a shorter cosine fit differs from epoch 2 on (its first epoch runs at the same lr)
    stopped = base(epochs=8, schedule="cosine", validation="none", callbacks=[StopAfter(n)], **search.best_params_)
    stopped.fit(x, ann)
    np.testing.assert_allclose(search.predict_proba(x), stopped.predict_proba(x), rtol=1e-6, atol=1e-7)
    if n < 8:
        shorter = base(epochs=n, schedule="cosine", validation="none", **search.best_params_).fit(x, ann)
        assert not np.allclose(search.predict_proba(x), shorter.predict_proba(x))


def test_the_holdout_score_is_the_estimators_own_held_out_nll(crowd) -> None:
    x, _, ann = crowd
    search = CrowdSearchCV(base(), {"lr": [1e-2]}, criterion="holdout", random_state=0, refit=False).fit(x, ann)
    clf = base(validation="holdout", holdout_fraction=0.1, random_state=0).fit(x, ann)
    losses = [e["valid_loss"] for e in clf.history_]
    assert search.n_splits_ == 1
    assert search.best_score_ == pytest.approx(-min(losses), rel=1e-6)
    assert search.cv_results_["split0_best_epoch"][0] == clf.best_epoch_
    with pytest.raises(NotFittedError):
        search.predict(x)


def test_the_default_search_is_kfold_over_three_folds(crowd) -> None:
    x, _, ann = crowd
    search = CrowdSearchCV(base(), {"lr": [1e-2]}, refit=False).fit(x, ann)
    assert search.criterion == "kfold" and search.n_splits_ == 3
    again = CrowdSearchCV(base(), {"lr": [1e-2]}, criterion="kfold", cv=3, refit=False).fit(x, ann)
    assert search.best_score_ == again.best_score_


def test_the_item_criteria_score_whole_held_out_items(crowd) -> None:
    """``holdout-items`` is the NLL of the labels of items the fit never saw (all their labels held out)."""
    from crowdlearn.model_selection import HeldOutNLL

    x, _, ann = crowd
    search = CrowdSearchCV(base(), {"lr": [1e-2]}, criterion="holdout-items", random_state=3, refit=False).fit(x, ann)
    assert search.n_splits_ == 1
    train, held = ann.split_holdout(0.1, random_state=3, by="item")
    assert (train.item_counts[held.item_counts > 0] == 0).all()
    rec = HeldOutNLL(x, held)
    clf = base(validation="none", random_state=0, callbacks=[rec]).fit(x, train)
    np.testing.assert_array_equal(clf.annotator_counts_, train.annotator_counts)  # the held items' labels unseen
    assert search.best_score_ == pytest.approx(-min(rec.losses_), rel=1e-6)
    assert search.cv_results_["split0_best_epoch"][0] == int(np.argmin(rec.losses_))
    # the label-level split of the same fraction scores other labels
    label_level = CrowdSearchCV(base(), {"lr": [1e-2]}, criterion="holdout", random_state=3, refit=False).fit(x, ann)
    assert label_level.best_score_ != search.best_score_
    kf = CrowdSearchCV(base(), {"lr": [1e-2]}, criterion="kfold-items", cv=3, random_state=3, refit=False).fit(x, ann)
    assert kf.n_splits_ == 3
    scores = [kf.cv_results_[f"split{f}_test_score"][0] for f in range(3)]
    assert all(np.isfinite(scores)) and kf.best_score_ == pytest.approx(float(np.mean(scores)))


def test_the_ensemble_averages_the_probabilities_of_the_top_points(crowd) -> None:
    x, _, ann = crowd
    grid = {"lr": [1e-7, 1e-2, 3e-2]}
    search = CrowdSearchCV(base(), grid, criterion="kfold", cv=2, ensemble=2).fit(x, ann)
    ranks = search.cv_results_["rank_test_score"]
    assert search.ensemble_indices_ == sorted(range(3), key=lambda j: (ranks[j], j))[:2]
    assert 0 not in search.ensemble_indices_  # the point that does not train is left out
    members = search.ensemble_.estimators_
    assert members[0] is search.best_estimator_
    expected = (members[0].predict_proba(x) + members[1].predict_proba(x)) / 2
    np.testing.assert_allclose(search.predict_proba(x), expected)
    np.testing.assert_array_equal(search.predict(x), search.ensemble_.classes_[expected.argmax(axis=1)])
    assert isinstance(search.ensemble_, CrowdEnsemble)


def test_a_callable_criterion_scores_each_fold_on_its_held_out_labels(crowd) -> None:
    x, _, ann = crowd
    calls: list[tuple[int, int]] = []

    def agreement(est: CrowdClassifier, X: Any, held: Annotations) -> float:
        assert len(est.history_) == 3  # all epochs: no epoch selection with a callable
        assert est.annotator_counts_.sum() + held.n_labels == ann.n_labels
        calls.append((held.n_labels, len(calls)))
        return float(np.mean(est.predict(X)[held.items] == held.labels))

    search = CrowdSearchCV(base(epochs=3), {"lr": [1e-7, 1e-2]}, criterion=agreement, cv=3).fit(x, ann)
    assert len(calls) == 6
    assert sum(n for n, _ in calls[:3]) == ann.n_labels
    assert search.best_params_ == {"lr": 1e-2}
    assert (search.cv_results_["split0_best_epoch"] == -1).all()
    assert search.refit_epochs_ == 3


def test_a_diverging_point_ranks_last_with_nan_scores(crowd) -> None:
    x, _, ann = crowd
    search = CrowdSearchCV(base(method="ce", epochs=3), {"lr": [1e-2, 1e4]}, refit=False).fit(x, ann)
    res = search.cv_results_
    assert res["diverged"].tolist() == [False, True]
    assert np.isnan(res["mean_test_score"][1]) and res["rank_test_score"].tolist() == [1, 2]
    assert search.best_index_ == 0


def test_the_search_is_deterministic(crowd) -> None:
    x, _, ann = crowd
    a = CrowdSearchCV(base(epochs=3), {"lr": [1e-2]}, criterion="kfold", cv=2, refit=False).fit(x, ann)
    b = CrowdSearchCV(base(epochs=3), {"lr": [1e-2]}, criterion="kfold", cv=2, refit=False).fit(x, ann)
    assert a.cv_results_["split1_test_score"].tolist() == b.cv_results_["split1_test_score"].tolist()


@pytest.mark.parametrize("method", METHODS)
def test_every_registered_method_runs_through_the_search(method: str, crowd) -> None:
    x, _, ann = crowd
    search = CrowdSearchCV(CrowdClassifier(epochs=2, batch_size=64), {"method": [method]}).fit(x[:60], _first(ann, 60))
    assert np.isfinite(search.best_score_) and search.best_score_ < 0
    assert search.best_estimator_.method == method
    assert search.predict_proba(x[:5]).shape == (5, 3)


def _first(ann: Annotations, n: int) -> Annotations:
    keep = ann.items < n
    return Annotations(ann.items[keep], ann.annotators[keep], ann.labels[keep], n_items=n, n_classes=ann.n_classes)


# ------------------------------------------------------------------ seed ensembles
def test_a_seed_ensemble_averages_members_that_differ_only_in_their_seed(crowd: Any) -> None:
    x, truth, ann = crowd
    ens = fit_seed_ensemble(base(random_state=3), x, ann, n_members=3)
    assert [m.random_state for m in ens.estimators_] == [3, 3 + SEED_STRIDE, 3 + 2 * SEED_STRIDE]
    assert all(m.get_params()["lr"] == 1e-2 and m.method == "ccem" for m in ens.estimators_)
    single = base(random_state=3).fit(x, ann)  # member 0 is the estimator's own fit
    np.testing.assert_allclose(ens.estimators_[0].predict_proba(x), single.predict_proba(x), atol=1e-6)
    probs = [m.predict_proba(x) for m in ens.estimators_]
    assert not np.allclose(probs[0], probs[1])
    np.testing.assert_allclose(ens.predict_proba(x), np.mean(probs, axis=0), atol=1e-12)
    assert ens.score(x, truth) == pytest.approx(float(np.mean(ens.predict(x) == truth)))


@pytest.mark.parametrize("reset", [True, False])
def test_a_seed_ensemble_reinitialises_a_given_backbone_per_member(crowd: Any, reset: bool) -> None:
    from crowdlearn.nn import MLP

    x, _, ann = crowd
    torch.manual_seed(0)
    module = MLP(x.shape[1], ann.n_classes, hidden=(8,))
    start = {k: v.clone() for k, v in module.state_dict().items()}
    # a learning rate so small that the fitted weights are the initial ones
    ens = fit_seed_ensemble(base(backbone=module, lr=1e-12, epochs=1), x, ann, n_members=2, reset_backbone=reset)
    weights = [m.model_.backbone.state_dict() for m in ens.estimators_]
    key = next(k for k in start if k.endswith("weight") and start[k].ndim == 2)
    same_as_given = [torch.allclose(w[key], start[key], atol=1e-6) for w in weights]
    assert same_as_given == ([True, False] if reset else [True, True])  # member 0 is the estimator's own fit
    assert all(torch.equal(v, start[k]) for k, v in module.state_dict().items())  # the given module is untouched


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_a_seed_ensemble_needs_a_positive_member_count(crowd: Any, bad: Any) -> None:
    x, _, ann = crowd
    with pytest.raises(ValueError, match="The 'n_members' parameter of fit_seed_ensemble must be an int >= 1"):
        fit_seed_ensemble(base(), x, ann, n_members=bad)
