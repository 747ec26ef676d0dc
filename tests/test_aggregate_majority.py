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


# ---------------------------------------------------------------- the vote's fast path (issue 13)
def _reference_vote(ann: Annotations, weights: np.ndarray | None, known: np.ndarray | None) -> tuple:
    """The vote written plainly: normalised (weighted) counts, prior = mean over labelled items."""
    votes = np.zeros((ann.n_items, ann.n_classes))
    w = np.ones(ann.n_labels) if weights is None else weights[ann.annotators]
    np.add.at(votes, (ann.items, ann.labels), w)
    total = votes.sum(axis=1)
    labelled = total > 0
    probas = np.zeros_like(votes)
    probas[labelled] = votes[labelled] / total[labelled, None]
    if known is not None:
        probas[known >= 0] = np.eye(ann.n_classes)[known[known >= 0]]
        labelled |= known >= 0
    priors = probas[labelled].mean(axis=0)
    probas[~labelled] = priors
    mx = probas.max(axis=1, keepdims=True)
    tied = probas >= mx - 1e-12 * np.maximum(1.0, np.abs(mx))
    return probas, priors, tied


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("n_classes", [2, 5, 12])
def test_vote_equals_the_plain_vote(weighted: bool, n_classes: int) -> None:
    rng = np.random.default_rng(n_classes)
    A = random_confusions(rng, 9, n_classes, diag=0.5)
    ann, truth = simulate(400, A, 3, seed=n_classes)
    ann = ann.subset_items(np.arange(380), reindex=False)  # 20 items without labels
    weights = rng.uniform(0.1, 2.0, size=9) if weighted else None
    known = np.where(rng.random(400) < 0.1, truth, -1)
    for gold in (None, known):
        probas, priors, tied = _reference_vote(ann, weights, gold)
        first = MajorityVote(weights=weights, tie_break="first").fit(ann, known_labels=gold)
        np.testing.assert_array_equal(first.probas_, probas)
        np.testing.assert_array_equal(first.priors_, priors)
        assert first.labels_.tolist() == np.argmax(tied, axis=1).tolist()
        rand = MajorityVote(weights=weights, random_state=1).fit(ann, known_labels=gold)
        np.testing.assert_array_equal(rand.probas_, probas)
        assert tied[np.arange(400), rand.labels_].all()  # a tied maximum, and the only one when untied
        untied = tied.sum(axis=1) == 1
        assert (rand.labels_[untied] == first.labels_[untied]).all()
        assert weighted or n_classes == 2 or (~untied).any()  # unweighted, K > 2: ties to break


def test_random_tie_break_draws_only_for_tied_items(ties: Annotations) -> None:
    # two tied items (1 and 2): one draw of shape (2, K), in item order
    keys = np.random.default_rng(5).random((2, 3))
    keys[0, 2] = keys[1, 0] = -1.0  # item 1 ties classes 0 and 1, item 2 classes 1 and 2
    assert MajorityVote(random_state=5).fit(ties).labels_.tolist() == [1, *np.argmax(keys, axis=1).tolist(), 1]


@pytest.mark.parametrize("cls", [MajorityVote, Wawa])
def test_confusions_are_computed_on_first_access_and_forgotten_by_refit(cls: type) -> None:
    from crowdlearn.aggregate.majority import vote_confusions

    A = random_confusions(np.random.default_rng(2), 6, 3, diag=0.6)
    ann, truth = simulate(200, A, 4, seed=2)
    agg = cls()
    assert not hasattr(agg, "confusions_")
    agg.fit(ann, known_labels=np.where(np.arange(200) < 20, truth, -1))
    assert "confusions_" not in agg.__dict__  # not estimated by fit
    conf = agg.confusions_
    np.testing.assert_array_equal(conf, vote_confusions(ann, agg.probas_))  # the eager estimate
    assert conf.shape == (6, 3, 3) and agg.confusions_ is conf  # kept
    np.testing.assert_allclose(conf.sum(axis=1), 1.0)
    other, _ = simulate(200, A, 2, seed=3)
    agg.fit(other)
    assert "confusions_" not in agg.__dict__
    np.testing.assert_array_equal(agg.confusions_, vote_confusions(other, agg.probas_))
    more, _ = simulate(10, A, 2, seed=4)
    extra = Annotations(more.items + 200, more.annotators, more.labels, n_classes=3)
    agg.partial_fit(extra)
    np.testing.assert_array_equal(agg.confusions_, vote_confusions(agg.annotations_, agg.probas_))
