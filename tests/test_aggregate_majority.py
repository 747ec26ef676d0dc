"""Majority vote and Wawa: exact tie-breaks, weights, degenerate inputs, DataFrame I/O."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from _agg_sim import random_confusions, simulate
from crowdlearn.aggregate import MajorityVote, Wawa
from crowdlearn.annotations import Annotations


@pytest.fixture
def ties() -> Annotations:
    # item 0: 1,1,0 -> 1; item 1: 0,1 tie; item 2: 2,1 tie; item 3: no labels
    return Annotations([0, 0, 0, 1, 1, 2, 2], [0, 1, 2, 0, 1, 0, 2], [1, 1, 0, 0, 1, 2, 1], n_items=4, n_classes=3)


def test_probas_are_normalised_votes_and_unlabeled_get_prior(ties: Annotations) -> None:
    mv = MajorityVote().fit(ties)
    np.testing.assert_allclose(mv.probas_[:3], [[1 / 3, 2 / 3, 0], [0.5, 0.5, 0], [0, 0.5, 0.5]])
    np.testing.assert_allclose(mv.priors_, mv.probas_[:3].mean(axis=0))
    np.testing.assert_allclose(mv.probas_[3], mv.priors_)
    assert mv.labels_[0] == 1 and mv.labels_[3] == 1  # prior's mode is class 1


def test_first_tie_break_takes_smallest_class(ties: Annotations) -> None:
    assert MajorityVote(tie_break="first").fit(ties).labels_.tolist() == [1, 0, 1, 1]


def test_random_tie_break_is_seeded_and_fair(ties: Annotations) -> None:
    a = MajorityVote(random_state=3).fit(ties).labels_
    b = MajorityVote(random_state=3).fit(ties).labels_
    assert a.tolist() == b.tolist()
    # over many seeds both tied classes of item 1 win about half the time; untied items never move
    wins = np.array([MajorityVote(random_state=s).fit(ties).labels_ for s in range(400)])
    assert set(wins[:, 0]) == {1}
    assert set(wins[:, 1]) == {0, 1} and 0.4 < (wins[:, 1] == 0).mean() < 0.6
    assert set(wins[:, 2]) == {1, 2}


def test_weights_by_index_and_by_id(ties: Annotations) -> None:
    mv = MajorityVote(weights=[1.0, 3.0, 1.0]).fit(ties)
    np.testing.assert_allclose(mv.probas_[1], [0.25, 0.75, 0])
    by_id = MajorityVote(weights=pd.Series({0: 1.0, 1: 3.0, 2: 1.0})).fit(ties)
    np.testing.assert_allclose(by_id.probas_, mv.probas_)
    with pytest.raises(ValueError, match=r"weight -1\.0"):
        MajorityVote(weights=[1.0, -1.0, 1.0]).fit(ties)
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        MajorityVote(weights=[1.0, 1.0]).fit(ties)
    with pytest.raises(ValueError, match=r"no value for annotator id\(s\) \[2\]"):
        MajorityVote(weights={0: 1.0, 1: 1.0}).fit(ties)


def test_bad_tie_break(ties: Annotations) -> None:
    with pytest.raises(ValueError, match="'tie_break' parameter of MajorityVote must be one of"):
        MajorityVote(tie_break="last").fit(ties)


def test_wawa_skills_and_labels() -> None:
    A = random_confusions(np.random.default_rng(0), 12, 3, diag=0.6)
    A[0] = 1 / 3  # a spammer
    ann, truth = simulate(600, A, 5, seed=0)
    wawa = Wawa().fit(ann)
    assert wawa.skills_.shape == (12,)
    assert wawa.skills_[0] == wawa.skills_.min()
    mv = MajorityVote().fit(ann)
    mv_labels = mv.labels_
    agree = np.bincount(ann.annotators, weights=ann.labels == mv_labels[ann.items], minlength=12)
    np.testing.assert_allclose(wawa.skills_, agree / ann.annotator_counts)
    assert (wawa.labels_ == truth).mean() >= (mv_labels == truth).mean() - 0.01


def test_degenerate_inputs() -> None:
    one = Annotations([0, 1], [0, 0], [1, 0])
    assert MajorityVote().fit(one).labels_.tolist() == [1, 0]
    assert Wawa().fit(one).labels_.tolist() == [1, 0]
    empty = Annotations([], [], [], n_items=2, n_annotators=1, n_classes=2)
    mv = MajorityVote().fit(empty)
    np.testing.assert_allclose(mv.probas_, 0.5)


def test_dataframe_io_like_crowd_kit() -> None:
    df = pd.DataFrame({"task": [10, 10, 10, 20], "worker": ["a", "b", "c", "a"], "label": ["n", "p", "p", "n"]})
    labels = MajorityVote().fit_predict(df)
    assert labels.index.name == "task" and labels.to_dict() == {10: "p", 20: "n"}
    proba = Wawa().fit_predict_proba(df)
    assert list(proba.columns) == ["n", "p"] and proba.index.tolist() == [10, 20]
    arr = MajorityVote().fit_predict(Annotations.from_ids(df["task"], df["worker"], df["label"]))
    assert isinstance(arr, np.ndarray) and arr.tolist() == [1, 0]
