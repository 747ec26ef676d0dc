"""Gold labels (``known_labels``) in every aggregator, and ``partial_fit`` (incremental updates)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from tests._agg_sim import random_confusions, simulate

from crowdlearn import Annotations
from crowdlearn.aggregate import (
    GLAD,
    KOS,
    MACE,
    MMSR,
    BaseAggregator,
    DawidSkene,
    GoldMajorityVote,
    MajorityVote,
    OneCoinDawidSkene,
    Wawa,
    ZeroBasedSkill,
)
from crowdlearn.annotations import AnnotationsError

ALL = [DawidSkene, OneCoinDawidSkene, GLAD, MACE, MajorityVote, Wawa, ZeroBasedSkill, MMSR, KOS, GoldMajorityVote]
WARM = [DawidSkene, OneCoinDawidSkene, GLAD, MACE]


def _crowd(n_classes: int = 3, seed: int = 0) -> tuple[Annotations, np.ndarray]:
    rng = np.random.default_rng(seed)
    return simulate(120, random_confusions(rng, 8, n_classes, diag=0.6), 3, seed=seed)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_every_aggregator_returns_the_gold_class_on_gold_items(cls: type[BaseAggregator]) -> None:
    ann, truth = _crowd(n_classes=2 if cls is KOS else 3)
    known = np.full(ann.n_items, -1)
    gold = np.arange(0, ann.n_items, 4)
    known[gold] = (truth[gold] + 1) % ann.n_classes  # deliberately not the crowd's answer
    agg = cls().fit(ann, known_labels=known)
    assert agg.labels_[gold].tolist() == known[gold].tolist()
    np.testing.assert_array_equal(agg.probas_[gold], np.eye(ann.n_classes)[known[gold]])
    assert agg.known_labels_.tolist() == known.tolist()
    np.testing.assert_allclose(agg.probas_.sum(axis=1), 1.0)


def test_gold_labels_by_item_id_and_errors() -> None:
    ann = Annotations.from_ids(["a", "a", "b", "b"], ["x", "y", "x", "y"], ["cat", "dog", "dog", "dog"])
    agg = MajorityVote().fit(ann, known_labels={"a": "cat"})
    assert agg.labels_.tolist() == [0, 1]
    with pytest.raises(AnnotationsError, match=r"known_labels\[1\] = 5 is not a class index in \[0, 2\)"):
        DawidSkene().fit(ann, known_labels=[0, 5])
    with pytest.raises(AnnotationsError, match=r"known_labels must be an int array of shape \(2,\)"):
        GLAD().fit(ann, known_labels=[0.5, 1.0])


def test_gold_informs_the_em_confusions() -> None:
    # a crowd whose majority is wrong on classes 0 and 1 (4 of 6 annotators swap them): without gold
    # Dawid-Skene follows the majority; 20% gold items teach it the swap
    rng = np.random.default_rng(3)
    M, K = 6, 3
    conf = random_confusions(rng, M, K, diag=0.8)
    swap = conf[:4][:, [1, 0, 2]]
    conf[:4] = swap
    ann, truth = simulate(400, conf, 4, seed=3)
    known = np.full(ann.n_items, -1)
    gold = np.arange(0, ann.n_items, 5)
    known[gold] = truth[gold]
    rest = known < 0
    plain = (DawidSkene().fit(ann).labels_[rest] == truth[rest]).mean()
    with_gold = DawidSkene().fit(ann, known_labels=known)
    assert plain < 0.4 and (with_gold.labels_[rest] == truth[rest]).mean() > 0.95
    assert np.abs(with_gold.confusions_ - conf).max() < 0.15


def test_wawa_skills_are_accuracies_on_gold_items() -> None:
    ann = Annotations([0, 0, 0, 1, 1, 1], [0, 1, 2, 0, 1, 2], [1, 1, 0, 0, 0, 0])
    agg = Wawa(tie_break="first").fit(ann, known_labels=[0, -1])
    # gold item 0 is class 0: annotator 2 agrees on both items, annotators 0 and 1 on item 1 only
    assert agg.skills_.tolist() == [0.5, 0.5, 1.0]
    assert GoldMajorityVote().fit(ann, known_labels=[0, -1]).skills_.tolist() == [0.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="not both"):
        GoldMajorityVote().fit(ann, known_labels=[0, -1], true_labels=[0, -1])


# ---------------------------------------------------------------------------- partial_fit
def _split(seed: int, frac: float = 0.8, new_annotator: bool = True) -> tuple[Annotations, Annotations, Annotations]:
    """(all labels, the first ``frac`` of them, the rest) by id; the rest holds new items (and a new annotator)."""
    rng = np.random.default_rng(seed)
    ann, _ = simulate(3000, random_confusions(rng, 8, 3, diag=0.7), 3, seed=seed)
    df = ann.to_frame(ids=False)
    late = (df["item"] >= 3000 - int(750 * (1 - frac))) | ((df["annotator"] == 7) & new_annotator)
    first = (~late) & (rng.random(len(df)) < frac / (1 - late.mean()))
    df["item"] = "i" + df["item"].astype(str)
    df["annotator"] = "w" + df["annotator"].astype(str)

    def make(d: pd.DataFrame) -> Annotations:
        return Annotations.from_ids(d["item"], d["annotator"], d["label"], classes=[0, 1, 2])

    return make(df), make(df[first]), make(df[~first])


def _by_id(values: np.ndarray, ids: np.ndarray, order: np.ndarray) -> np.ndarray:
    return np.asarray(pd.DataFrame(values.reshape(len(ids), -1), index=ids).loc[order].to_numpy())


@pytest.mark.parametrize("cls", WARM, ids=lambda c: c.__name__)
def test_partial_fit_reaches_the_full_fit(cls: type[BaseAggregator]) -> None:
    full_ann, first, rest = _split(0)
    assert rest.item_ids[~np.isin(rest.item_ids, first.item_ids)].size > 0  # new items
    assert not np.isin("w7", first.annotator_ids) and np.isin("w7", rest.annotator_ids)  # a new annotator
    params = {"tol": 1e-11, "n_iter": 3000}
    full = cls(**params).fit(full_ann)  # type: ignore[call-arg]
    inc = cls(**params).fit(first)  # type: ignore[call-arg]
    n_first = len(inc.item_ids_)
    inc.partial_fit(rest)
    assert len(inc.item_ids_) == full_ann.n_items > n_first
    assert inc.item_ids_[:n_first].tolist() == first.item_ids.tolist()  # old ids keep their indices
    assert inc.annotations_.n_labels == full_ann.n_labels
    np.testing.assert_allclose(_by_id(inc.probas_, inc.item_ids_, full.item_ids_), full.probas_, atol=2e-3)
    conf = _by_id(inc.confusions_, inc.annotator_ids_, full.annotator_ids_).reshape(full.confusions_.shape)
    np.testing.assert_allclose(conf, full.confusions_, atol=2e-3)


@pytest.mark.parametrize("seed", [0, 1])
def test_partial_fit_takes_fewer_iterations_than_a_fit_from_scratch(seed: int) -> None:
    # a small update (5% new labels, some on new items): the warm start needs fewer EM iterations
    # than a fit from scratch on all labels (with 20% new labels and a new annotator it is about
    # even: docs/benchmarks.md, "Gold labels, incremental updates, active learning")
    full_ann, first, rest = _split(seed, frac=0.95, new_annotator=False)
    for cls in WARM:
        full = cls().fit(full_ann)
        inc = cls().fit(first).partial_fit(rest)
        assert inc.n_iter_ < full.n_iter_, (cls.__name__, inc.n_iter_, full.n_iter_)


@pytest.mark.parametrize("cls", [MajorityVote, Wawa, ZeroBasedSkill, MMSR], ids=lambda c: c.__name__)
def test_partial_fit_of_one_pass_aggregators_equals_fit(cls: type[BaseAggregator]) -> None:
    _, first, rest = _split(1)
    full = cls().fit(first.concat(rest))
    inc = cls().fit(first).partial_fit(rest)
    np.testing.assert_array_equal(inc.labels_, full.labels_)
    np.testing.assert_allclose(inc.probas_, full.probas_)


def test_partial_fit_keeps_and_adds_gold_labels() -> None:
    _, first, rest = _split(2)
    agg = DawidSkene().fit(first, known_labels={"i0": 2})
    new_item = rest.item_ids[~np.isin(rest.item_ids, first.item_ids)][0]
    agg.partial_fit(rest, known_labels={new_item: 1})
    pos = {k: i for i, k in enumerate(agg.item_ids_.tolist())}
    assert agg.labels_[pos["i0"]] == 2 and agg.labels_[pos[new_item]] == 1
    assert int((agg.known_labels_ >= 0).sum()) == 2


def test_partial_fit_errors_and_first_call() -> None:
    ann = Annotations.from_ids(["a", "a", "b"], ["x", "y", "x"], [0, 1, 1])
    agg = DawidSkene().partial_fit(ann)  # unfitted: a plain fit
    assert agg.annotations_ is ann
    with pytest.raises(AnnotationsError, match=r"duplicate \(item, annotator\) pair \('a', 'x'\)"):
        agg.partial_fit(Annotations.from_ids(["a"], ["x"], [1]))
    with pytest.raises(AnnotationsError, match=r"partial_fit got class id\(s\) \[7\] not seen by fit"):
        agg.partial_fit(Annotations.from_ids(["c"], ["x"], [7]))
    frame = pd.DataFrame({"task": ["a", "b"], "worker": ["x", "x"], "label": [0, 1]})
    mv = MajorityVote().fit(frame)
    out = mv.partial_fit(pd.DataFrame({"task": ["c"], "worker": ["y"], "label": [1]}))
    assert out._labels_output().index.tolist() == ["a", "b", "c"]


def test_binary_relevance_takes_gold_label_sets() -> None:
    from crowdlearn.aggregate import BinaryRelevance

    items, workers = ["t1", "t1", "t1", "t2", "t2"], ["a", "b", "c", "a", "b"]
    sets = [["x", "y"], ["x"], ["x", "y"], ["y"], ["y"]]
    assert BinaryRelevance().fit(items, workers, sets).label_sets() == [["x", "y"], ["y"]]
    br = BinaryRelevance(DawidSkene()).fit(items, workers, sets, known_labels={"t1": ["x"]})
    assert br.label_sets() == [["x"], ["y"]]
    with pytest.raises(AnnotationsError, match=r"known_labels\['t1'\] holds class 'z', which no answer uses"):
        BinaryRelevance().fit(items, workers, sets, known_labels={"t1": ["z"]})
