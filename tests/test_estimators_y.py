"""CrowdClassifier's ``y``: Annotations, an (n_items, n_annotators) crowd array, 1-d labels; and score()."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from crowdlearn import Annotations
from crowdlearn.estimators import CrowdClassifier

pytestmark = pytest.mark.usefixtures("one_torch_thread")

N, M, K = 60, 4, 3


@pytest.fixture(scope="module")
def crowd() -> dict[str, Any]:
    """60 items, 4 annotators (70% right), 3 classes, about 35% of the cells missing."""
    rng = np.random.default_rng(3)
    truth = rng.integers(0, K, N)
    X = rng.normal(size=(N, 4)) + 2.5 * np.eye(K, 4)[truth]
    Y = np.where(rng.random((N, M)) < 0.7, truth[:, None], rng.integers(0, K, (N, M))).astype(np.float64)
    Y[rng.random((N, M)) < 0.35] = np.nan
    Y[0, 0] = 0.0  # every annotator labels something
    rows, cols = np.nonzero(~np.isnan(Y))
    ann = Annotations(rows, cols, Y[rows, cols].astype(np.int64), n_items=N, n_annotators=M, n_classes=K)
    return {"X": X, "truth": truth, "Y": Y, "ann": ann}


def small(**kwargs: Any) -> CrowdClassifier:
    params: dict[str, Any] = {"method": "ccem", "epochs": 3, "batch_size": 16, "validation": "none"}
    return CrowdClassifier(**(params | kwargs))


def test_every_y_encoding_fits_the_same_model(crowd: dict[str, Any]) -> None:
    X, Y = crowd["X"], crowd["Y"]
    ref = small().fit(X, crowd["ann"])
    as_int = np.where(np.isnan(Y), -1, Y).astype(np.int64)
    frame = pd.DataFrame(Y, columns=["w0", "w1", "w2", "w3"])
    for y in (Y, as_int, as_int.tolist(), frame):
        clf = small().fit(X, y)
        np.testing.assert_allclose(clf.predict_proba(X), ref.predict_proba(X), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(clf.confusions_, ref.confusions_, rtol=1e-6, atol=1e-7)
        assert clf.annotator_counts_.tolist() == ref.annotator_counts_.tolist()
    assert clf.annotator_ids_.tolist() == ["w0", "w1", "w2", "w3"]  # a DataFrame's columns name the annotators


def test_classes_are_the_observed_values_and_empty_annotators_are_kept(crowd: dict[str, Any]) -> None:
    X = crowd["X"]
    Y = np.where(np.isnan(crowd["Y"]), -1, np.array([2, 5, 9])[np.nan_to_num(crowd["Y"]).astype(int)])
    Y = np.column_stack([Y, np.full(N, -1)])  # a fifth annotator with no label
    clf = small(validation="holdout").fit(X, Y)
    assert clf.classes_.tolist() == [2, 5, 9]
    assert set(clf.predict(X).tolist()) <= {2, 5, 9}
    assert clf.n_annotators_ == 5 and clf.annotator_counts_[4] == 0
    assert clf.annotator_counts_.sum() == int((Y != -1).sum())


def test_one_d_y_is_one_annotator(crowd: dict[str, Any]) -> None:
    X, truth = crowd["X"], crowd["truth"]
    names = np.array(["cat", "dog", "eel"])[truth]
    clf = small().fit(X, names)
    assert clf.n_annotators_ == 1 and clf.classes_.tolist() == ["cat", "dog", "eel"]
    assert clf.annotator_counts_.tolist() == [N]
    signs = np.where(truth == 0, -1, 1)  # in 1-d, -1 is a class, not a missing label
    assert small().fit(X, signs).classes_.tolist() == [-1, 1]


@pytest.mark.parametrize(
    ("y", "message"),
    [
        (np.full((N, M), np.nan), r"^y holds no labels: every cell is missing \(NaN or -1\)$"),
        (np.full((N, M), -1), r"^y holds no labels"),
        (np.zeros((N, M, 2)), r"^y must be an Annotations, .* got an array of shape \(60, 4, 2\)$"),
        (np.array([[0, 1.5]] * N), r"^y\[0, 1\] = 1.5 is not a class id: .*NaN or -1 marking a missing label$"),
        (np.array([[0, -2]] * N), r"^y\[0, 1\] = -2 is not a class id"),
        (np.array([[0, np.inf]] * N), r"^y\[0, 1\] = inf is not a class id"),
        (np.array([["a", "b"]] * N), r"^y must hold integer class ids .*got dtype <U1; .*Annotations"),
        (np.array([[0, 1]] * N, dtype=bool), r"^y must hold integer class ids .*got dtype bool$"),
        (np.where(np.arange(N) == 7, np.nan, 1.0), r"^y\[7\] is missing: a 1-d y holds one label per item"),
        (np.linspace(0, 1, N), r"^y\[1\] = 0.01694915254237288 is not a class label: .*not continuous values$"),
        (np.zeros((N, M)), r"^the labels in y have 1 class\(es\); need at least 2$"),
        (np.array([[0, 1]] * (N - 1)), r"^X has 60 rows but y has 59; row n of X must hold the input"),
        (None, r"^CrowdClassifier requires y to be passed, but the target y is None; y must be an Annotations"),
    ],
)
def test_bad_y_gets_one_line(crowd: dict[str, Any], y: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message) as err:
        small().fit(crowd["X"], y)
    assert "\n" not in str(err.value) and "np." not in str(err.value)


def test_score_is_accuracy_on_truth_and_the_crowd_log_likelihood_on_crowd_labels(crowd: dict[str, Any]) -> None:
    X, Y, truth = crowd["X"], crowd["Y"], crowd["truth"]
    clf = small().fit(X, Y)
    assert clf.score(X, truth) == pytest.approx(float(np.mean(clf.predict(X) == truth)))
    # by hand: the mean over observed cells of log sum_j A_m[y, j] f_j(x) (CCEM's head)
    rows, cols = np.nonzero(~np.isnan(Y))
    labels = Y[rows, cols].astype(int)
    p = np.einsum("ej,ej->e", clf.confusions_[cols, labels, :], clf.predict_proba(X)[rows])
    expected = float(np.mean(np.log(p)))
    assert expected < 0
    as_int = np.where(np.isnan(Y), -1, Y).astype(np.int64)
    for y in (Y, as_int, crowd["ann"], pd.DataFrame(Y)):
        assert clf.score(X, y) == pytest.approx(expected, rel=1e-5)
    part = np.arange(10, 30)  # a row subset (what a cross-validation split scores)
    sub = np.isin(rows, part)
    p_sub = p[sub]
    assert clf.score(X[part], Y[part]) == pytest.approx(float(np.mean(np.log(p_sub))), rel=1e-5)


def test_score_errors(crowd: dict[str, Any]) -> None:
    X, Y = crowd["X"], crowd["Y"]
    clf = small().fit(X, Y)
    with pytest.raises(ValueError, match=r"^y has 3 columns but CrowdClassifier was fitted on 4 annotators"):
        clf.score(X, Y[:, :3])
    with pytest.raises(ValueError, match=r"^y holds class 7, not one of the classes the model was fitted on"):
        clf.score(X, np.where(np.isnan(Y), np.nan, 7.0))
    with pytest.raises(ValueError, match=r"^X has 60 rows but y has 59 items$"):
        clf.score(X, Y[:-1])
    with pytest.raises(ValueError, match=r"^y holds no labels"):
        clf.score(X, np.full((N, M), -1))
    other = Annotations.from_ids([0], ["stranger"], [1], item_ids=list(range(N)))
    with pytest.raises(ValueError, match=r"^y holds labels of annotator 'stranger', not an annotator of the fitted"):
        clf.score(X, other)
