"""Default recipes: MethodSpec.recipe, CrowdClassifier's None training parameters, training_params_."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crowdlearn import Annotations
from crowdlearn.estimators import CrowdClassifier
from crowdlearn.nn import available_methods, get_method
from crowdlearn.nn.methods._recipes import (
    COSINE_DS_RECIPE,
    COSINE_RECIPE,
    FAST_DS_MIXUP_RECIPE,
    FAST_MIXUP_RECIPE,
    SLOW_DS_CLR_RECIPE,
)
from crowdlearn.nn.registry import BASE_TRAINING, MethodSpec

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _head(ctx: object) -> None:  # never called: the specs below are only built
    raise AssertionError


def _crowd(n: int = 40, k: int = 3, m: int = 4) -> tuple[np.ndarray, Annotations]:
    rng = np.random.default_rng(3)
    y = rng.integers(0, k, n)
    X = (rng.normal(size=(n, 5)) + 2.0 * np.eye(k, 5)[y]).astype(np.float32)
    items = np.repeat(np.arange(n), 2)
    annotators = np.concatenate([rng.choice(m, size=2, replace=False) for _ in range(n)])
    labels = np.where(rng.random(2 * n) < 0.8, np.repeat(y, 2), rng.integers(0, k, 2 * n))
    return X, Annotations(items, annotators, labels, n_annotators=m, n_classes=k)


def test_training_resolves_given_then_recipe_then_base() -> None:
    spec = MethodSpec("r", "a recipe", _head, recipe={"lr": 0.05, "epochs": 7})  # type: ignore[arg-type]
    assert spec.training({}) == {**BASE_TRAINING, "lr": 0.05, "epochs": 7}
    got = spec.training({"lr": None, "epochs": 3, "batch_size": None, "mixup": 0.0})
    assert got == {**BASE_TRAINING, "lr": 0.05, "epochs": 3, "mixup": 0.0}  # 0.0 is a value, None is "not set"
    plain = MethodSpec("p", "no recipe", _head)  # type: ignore[arg-type]
    assert plain.training({}) == dict(BASE_TRAINING)


def test_recipe_is_checked_and_frozen() -> None:
    with pytest.raises(ValueError, match="recipe key 'momentum' is not a training parameter"):
        MethodSpec("r", "bad", _head, recipe={"momentum": 0.9})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="recipe init='ds' is not one of its inits"):
        MethodSpec("r", "bad", _head, inits=("identity",), recipe={"init": "ds"})  # type: ignore[arg-type]
    source = {"lr": 0.05}
    spec = MethodSpec("r", "ok", _head, recipe=source)  # type: ignore[arg-type]
    source["lr"] = 1.0  # the caller's dict is copied
    assert spec.recipe["lr"] == 0.05
    with pytest.raises(TypeError):
        spec.recipe["lr"] = 2.0  # type: ignore[index]


@pytest.mark.parametrize("method", ["union-net-b"])
def test_the_measured_methods_carry_the_cosine_ds_recipe(method: str) -> None:
    assert dict(get_method(method).recipe) == COSINE_DS_RECIPE


@pytest.mark.parametrize("method", ["ccem", "geocrowdnet-f", "geocrowdnet-w", "tracereg"])
def test_ccem_geocrowdnet_and_tracereg_carry_the_slow_ds_clr_recipe(method: str) -> None:
    # the winner of benchmarks/real.py --grid defaults for CCEM, GeoCrowdNet(F)/(W), TraceReg (docs/benchmarks.md,
    # "Default recipes", "Widened candidates"): the base lr with a 10x confusion step, DS init, input mixup
    assert dict(get_method(method).recipe) == SLOW_DS_CLR_RECIPE
    assert SLOW_DS_CLR_RECIPE == {"lr": 1e-3, "confusion_lr": 1e-2, "init": "ds", "mixup": 0.2}


def test_no_method_keeps_the_fast_ds_mixup_recipe() -> None:
    # TraceReg's first-round recipe; the second round picked slow-ds-clr for it
    assert all(dict(get_method(m).recipe) != FAST_DS_MIXUP_RECIPE for m in available_methods())


@pytest.mark.parametrize("method", ["madl", "conal", "crowdlayer-vb"])
def test_madl_and_conal_carry_the_fast_mixup_recipe(method: str) -> None:
    assert dict(get_method(method).recipe) == FAST_MIXUP_RECIPE


@pytest.mark.parametrize("method", ["annot-mix", "max-mig", "union-net-a", "mbem", "ds-train", "ce"])
def test_the_methods_whose_base_values_won_have_no_recipe(method: str) -> None:
    assert dict(get_method(method).recipe) == {}


@pytest.mark.parametrize("method", ["crowdlayer-mw", "crowdlayer-vw", "crowdar", "mv-train"])
def test_the_cosine_recipe_without_ds(method: str) -> None:
    assert dict(get_method(method).recipe) == COSINE_RECIPE
    assert "init" not in COSINE_RECIPE  # CrowdLayer accepts only the identity init


@pytest.mark.parametrize("method", ["ccem", "geocrowdnet-f", "geocrowdnet-w", "tracereg"])
def test_gold_labels_turn_the_recipe_s_mixup_off(method: str) -> None:
    """The recipe's input mixup cannot be combined with clamped gold labels: a fit with gold labels
    at the defaults trains without it (and says so in training_params_); a fit without gold keeps
    it; a mixup the user sets with gold labels is still a one-line error naming the fix."""
    X, ann = _crowd()
    known = np.full(ann.n_items, -1)
    known[:5] = 0
    assert get_method(method).recipe["mixup"] > 0
    gold = CrowdClassifier(method=method, epochs=1, validation="none").fit(X, ann, known_labels=known)
    assert gold.training_params_["mixup"] == 0.0 and gold.known_labels_[:5].tolist() == [0] * 5
    explicit = CrowdClassifier(method=method, epochs=1, validation="none", mixup=0.0).fit(X, ann, known_labels=known)
    np.testing.assert_allclose(gold.predict_proba(X), explicit.predict_proba(X), rtol=1e-6, atol=1e-7)
    plain = CrowdClassifier(method=method, epochs=1, validation="none").fit(X, ann)
    assert plain.training_params_["mixup"] == get_method(method).recipe["mixup"]
    with pytest.raises(ValueError, match="train with mixup=0"):
        CrowdClassifier(method=method, epochs=1, validation="none", mixup=0.2).fit(X, ann, known_labels=known)


def test_estimator_uses_the_recipe_where_a_parameter_is_none(tmp_path: Path) -> None:
    X, ann = _crowd()
    clf = CrowdClassifier(method="geocrowdnet-f", epochs=3, validation="none").fit(X, ann)
    expected = {**BASE_TRAINING, **SLOW_DS_CLR_RECIPE, "epochs": 3}
    assert clf.training_params_ == expected
    assert len(clf.history_.epochs) == 3
    assert clf.get_params()["lr"] is None  # the parameter stays as given (scikit-learn's clone contract)
    path = tmp_path / "m.safetensors"
    clf.save(path)
    assert CrowdClassifier.load(path).training_params_ == expected


def test_a_given_value_wins_over_the_recipe() -> None:
    X, ann = _crowd()
    clf = CrowdClassifier(
        method="ccem", epochs=2, lr=3e-3, init="identity", schedule="constant", validation="none"
    ).fit(X, ann)
    assert clf.training_params_ == {
        **BASE_TRAINING,
        **SLOW_DS_CLR_RECIPE,
        "epochs": 2,
        "lr": 3e-3,
        "init": "identity",
        "schedule": "constant",
    }


def test_the_recipe_changes_the_fit() -> None:
    """Leaving a parameter at None is not the same fit as giving the base value (the recipe acts)."""
    X, ann = _crowd()
    recipe = CrowdClassifier(method="ccem", epochs=2, validation="none").fit(X, ann)
    # confusion_lr given as the base lr: None would leave CCEM's recipe's 1e-2
    given = {**{k: v for k, v in BASE_TRAINING.items() if k != "epochs"}, "confusion_lr": BASE_TRAINING["lr"]}
    base = CrowdClassifier(method="ccem", epochs=2, validation="none", **given).fit(X, ann)
    assert base.training_params_ == {**BASE_TRAINING, "epochs": 2, "confusion_lr": BASE_TRAINING["lr"]}
    assert not np.allclose(recipe.predict_proba(X), base.predict_proba(X))


def test_a_method_without_recipe_trains_at_the_base_values() -> None:
    X, ann = _crowd()
    clf = CrowdClassifier(method="union-net-a", epochs=2, validation="none").fit(X, ann)
    assert clf.training_params_ == {**BASE_TRAINING, "epochs": 2}


def test_a_bad_value_is_named_whether_given_or_not() -> None:
    X, ann = _crowd()
    with pytest.raises(ValueError, match="lr"):
        CrowdClassifier(method="ccem", lr=-1.0).fit(X, ann)
    with pytest.raises(ValueError, match="init"):
        CrowdClassifier(method="crowdlayer-mw", init="ds").fit(X, ann)
