"""Parameter validation of every aggregator, CrowdClassifier and Trainer: bad numbers are refused at fit."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from crowdlearn import Annotations
from crowdlearn.aggregate import GLAD, MACE, DawidSkene, MajorityVote, OneCoinDawidSkene, Wawa
from crowdlearn.aggregate.spectral import spectral_confusions

NAN, INF = math.nan, math.inf


@pytest.fixture
def ann() -> Annotations:
    rng = np.random.default_rng(0)
    n, m = 30, 4
    truth = rng.integers(0, 3, n)
    items = np.repeat(np.arange(n), m)
    annotators = np.tile(np.arange(m), n)
    labels = np.where(rng.random(n * m) < 0.8, truth[items], rng.integers(0, 3, n * m))
    return Annotations(items, annotators, labels, n_classes=3)


BAD_AGGREGATORS: list[tuple[Any, str, Any, str]] = [
    (DawidSkene, "tol", NAN, "a float >= 0 or -inf, got nan"),
    (DawidSkene, "tol", INF, "a float >= 0 or -inf, got inf"),
    (DawidSkene, "tol", -1.0, "a float >= 0 or -inf, got -1.0"),
    (DawidSkene, "tol", "0.1", "a float >= 0 or -inf, got '0.1'"),
    (DawidSkene, "n_iter", np.float64(2.0), "an int >= 0, got 2.0"),
    (DawidSkene, "n_iter", True, "an int >= 0, got True"),
    (DawidSkene, "smoothing", NAN, "a float >= 0, got nan"),
    (DawidSkene, "smoothing", INF, "a float >= 0, got inf"),
    (DawidSkene, "random_state", "x", "an int >= 0, a numpy Generator or None, got 'x'"),
    (DawidSkene, "random_state", -1, "an int >= 0, a numpy Generator or None, got -1"),
    (OneCoinDawidSkene, "tol", NAN, "a float >= 0 or -inf, got nan"),
    (OneCoinDawidSkene, "smoothing", -0.5, "a float >= 0, got -0.5"),
    (GLAD, "tol", NAN, "a float >= 0 or -inf, got nan"),
    (GLAD, "alpha_prior_mean", NAN, "a float, got nan"),
    (GLAD, "beta_prior_mean", INF, "a float, got inf"),
    (GLAD, "m_step_iter", 0, "an int >= 1, got 0"),
    (MACE, "tol", NAN, "a float >= 0 or -inf, got nan"),
    (MACE, "smoothing", NAN, "a float > 0, got nan"),
    (MACE, "competence_prior", INF, "a float > 0, got inf"),
    (MACE, "n_iter", -1, "an int >= 0, got -1"),
    (MajorityVote, "random_state", 1.5, "an int >= 0, a numpy Generator or None, got 1.5"),
    (MajorityVote, "tie_break", "coin", "one of 'random', 'first', got 'coin'"),
    (Wawa, "random_state", "seed", "an int >= 0, a numpy Generator or None, got 'seed'"),
]


@pytest.mark.parametrize(("cls", "name", "value", "expected"), BAD_AGGREGATORS)
def test_aggregator_rejects_bad_numbers(ann: Annotations, cls: Any, name: str, value: Any, expected: str) -> None:
    agg = cls(**{name: value})
    with pytest.raises(ValueError) as err:
        agg.fit(ann)
    assert str(err.value) == f"The {name!r} parameter of {cls.__name__} must be {expected}"


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"smoothing": NAN}, "The 'smoothing' parameter of spectral_confusions must be a float >= 0, got nan"),
        ({"n_restarts": 0}, "The 'n_restarts' parameter of spectral_confusions must be an int >= 1, got 0"),
        (
            {"random_state": "x"},
            "The 'random_state' parameter of spectral_confusions must be an int >= 0, a numpy Generator or None, "
            "got 'x'",
        ),
    ],
)
def test_spectral_rejects_bad_numbers(ann: Annotations, kwargs: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValueError) as err:
        spectral_confusions(ann, **kwargs)
    assert str(err.value) == expected


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("epochs", 0, "an int >= 1, got 0"),
        ("epochs", 2.0, "an int >= 1, got 2.0"),
        ("lr", NAN, "a float > 0, got nan"),
        ("lr", INF, "a float > 0, got inf"),
        ("lam", NAN, "a float >= 0, got nan"),
        ("batch_size", 0, "an int >= 1, got 0"),
        ("mixup", INF, "a float >= 0, got inf"),
        ("holdout_fraction", NAN, "a float > 0 and < 1, got nan"),
        ("confusion_lr", np.float64(NAN), "a float > 0 or None, got nan"),
    ],
)
def test_crowd_classifier_rejects_bad_numbers(ann: Annotations, name: str, value: Any, expected: str) -> None:
    from crowdlearn.estimators import CrowdClassifier

    x = np.zeros((ann.n_items, 2), dtype=np.float32)
    with pytest.raises(ValueError) as err:
        CrowdClassifier(**{name: value}).fit(x, ann)
    assert str(err.value) == f"The {name!r} parameter of CrowdClassifier must be {expected}"


def test_crowd_classifier_accepts_numpy_ints(ann: Annotations) -> None:
    from crowdlearn.estimators import CrowdClassifier

    x = np.random.default_rng(0).normal(size=(ann.n_items, 2)).astype(np.float32)
    clf = CrowdClassifier(method="ccem", epochs=np.int64(1), batch_size=np.int64(8), validation="none").fit(x, ann)
    assert len(clf.history_) == 1


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("epochs", 0, "an int >= 1, got 0"),
        ("epochs", NAN, "an int >= 1, got nan"),
        ("lr", NAN, "a float > 0, got nan"),
        ("confusion_lr", -1.0, "a float > 0 or None, got -1.0"),
        ("weight_decay", NAN, "a float >= 0, got nan"),
        ("batch_size", 0, "an int >= 1, got 0"),
        ("mixup", NAN, "a float >= 0, got nan"),
        ("random_state", -3, "an int >= 0, got -3"),
    ],
)
def test_trainer_rejects_bad_numbers(name: str, value: Any, expected: str) -> None:
    from crowdlearn.nn import CrowdModel
    from crowdlearn.nn.losses import CrowdLoss
    from crowdlearn.train import Trainer

    model = CrowdModel.__new__(CrowdModel)  # never reached: the check comes first
    with pytest.raises(ValueError) as err:
        Trainer(model, CrowdLoss(), device="cpu", **{name: value})
    assert str(err.value) == f"The {name!r} parameter of Trainer must be {expected}"
