"""Annotations: construction, id maps, CSR views, operations."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crowdlearn import Annotations, AnnotationsError


@pytest.fixture
def small() -> Annotations:
    return Annotations.from_ids(
        ["a", "a", "b", "c", "c", "c"],
        ["w1", "w2", "w1", "w1", "w2", "w3"],
        ["cat", "dog", "dog", "cat", "cat", "bird"],
    )


def test_from_ids_maps_and_counts(small: Annotations) -> None:
    assert (small.n_items, small.n_annotators, small.n_classes, small.n_labels) == (3, 3, 3, 6)
    assert small.item_ids.tolist() == ["a", "b", "c"]
    assert small.annotator_ids.tolist() == ["w1", "w2", "w3"]
    assert small.classes.tolist() == ["bird", "cat", "dog"]  # sorted by default
    assert small.item_counts.tolist() == [2, 1, 3]
    assert small.annotator_counts.tolist() == [3, 2, 1]
    assert small.class_counts.tolist() == [1, 3, 2]
    assert small.item_index(["c", "a"]).tolist() == [2, 0]
    assert small.class_index(["dog"]).tolist() == [2]
    with pytest.raises(AnnotationsError, match="unknown annotator id 'zz'"):
        small.annotator_index(["zz"])


def test_declared_classes_fix_order_and_reject_unknown() -> None:
    ann = Annotations.from_ids([1, 2], [1, 1], ["dog", "cat"], classes=["dog", "cat", "fox"])
    assert ann.classes.tolist() == ["dog", "cat", "fox"]
    assert ann.labels.tolist() == [0, 1]
    assert ann.n_classes == 3
    with pytest.raises(AnnotationsError, match=r"row 1: label 'owl' is not one of the declared classes"):
        Annotations.from_ids([1, 2], [1, 1], ["dog", "owl"], classes=["dog", "cat"])


def test_arrays_are_readonly(small: Annotations) -> None:
    with pytest.raises(ValueError):
        small.labels[0] = 1


def test_unlabeled_items_and_annotators_are_kept() -> None:
    ann = Annotations([0, 2], [1, 1], [0, 1], n_items=5, n_annotators=3)
    s = ann.summary()
    assert s.n_items_unlabeled == 3
    assert s.n_annotators_without_labels == 2
    assert ann.item_counts.tolist() == [1, 0, 1, 0, 0]
    assert "3 without labels" in str(s)


def test_out_of_range_index_names_position() -> None:
    with pytest.raises(
        AnnotationsError, match=r"label index 4 at position 1 is out of range: expected indices in \[0, 3\)"
    ):
        Annotations([0, 1], [0, 0], [0, 4], n_classes=3)
    with pytest.raises(AnnotationsError, match=r"labels\[1\] = -2 is negative"):
        Annotations([0, 1], [0, 0], [0, -2])
    with pytest.raises(AnnotationsError, match="same length"):
        Annotations([0, 1], [0], [0, 1])
    with pytest.raises(AnnotationsError, match=r"items\[1\] = 0.5 is not an integer index"):
        Annotations([0, 0.5], [0, 0], [0, 1])


def test_duplicates_error_first_last() -> None:
    items, anns, labs = [0, 0, 1, 0], [0, 0, 0, 1], [1, 2, 0, 0]
    with pytest.raises(AnnotationsError, match=r"duplicate \(item, annotator\) pair \(0, 0\) at rows 0 and 1"):
        Annotations(items, anns, labs)
    first = Annotations(items, anns, labs, on_duplicate="first")
    last = Annotations(items, anns, labs, on_duplicate="last")
    assert first.labels.tolist() == [1, 0, 0]
    assert last.labels.tolist() == [2, 0, 0]
    assert first.n_duplicates_dropped == 1
    assert "1 repeated" in str(first.summary())


def test_from_ids_duplicate_message_names_ids_and_rows() -> None:
    with pytest.raises(
        AnnotationsError, match=r"row 2: duplicate \(item, annotator\) pair \('x', 'w'\), first seen at row 0"
    ):
        Annotations.from_ids(["x", "y", "x"], ["w", "w", "w"], [0, 1, 1])


def test_missing_ids_and_mixed_labels() -> None:
    with pytest.raises(AnnotationsError, match="row 1: missing annotator id"):
        Annotations.from_ids(["a", "b"], ["w", None], [0, 1])
    with pytest.raises(AnnotationsError, match="labels mix types"):
        Annotations.from_ids(["a", "b"], ["w", "w"], [0, "cat"])


def test_labels_of_batch_matches_loop(small: Annotations) -> None:
    batch = [2, 0]
    rows, anns, labs = small.labels_of(batch)
    expected = []
    for r, it in enumerate(batch):
        for k in range(small.n_labels):
            if small.items[k] == it:
                expected.append((r, small.annotators[k], small.labels[k]))
    assert sorted(zip(rows.tolist(), anns.tolist(), labs.tolist())) == sorted(
        (int(a), int(b), int(c)) for a, b, c in expected
    )


def test_vote_counts(small: Annotations) -> None:
    v = small.vote_counts()
    assert v.shape == (3, 3)
    assert v.tolist() == [[0, 1, 1], [0, 0, 1], [1, 2, 0]]
    w = small.vote_counts(weights=[2.0, 1.0, 0.5])
    assert w[2].tolist() == [0.5, 3.0, 0.0]


def test_subset_items_reindex_and_keep(small: Annotations) -> None:
    sub = small.subset_items([2, 1])
    assert sub.item_ids.tolist() == ["c", "b"]
    assert sub.n_labels == 4
    assert sorted(sub.to_frame()["item"].tolist()) == ["b", "c", "c", "c"]
    kept = small.subset_items([2, 1], reindex=False)
    assert kept.n_items == 3 and kept.item_counts.tolist() == [0, 1, 3]
    with pytest.raises(AnnotationsError, match="repeated indices"):
        small.subset_items([1, 1])


def test_subset_annotators(small: Annotations) -> None:
    sub = small.subset_annotators(np.array([False, True, True]))
    assert sub.annotator_ids.tolist() == ["w2", "w3"]
    assert sub.n_labels == 3
    assert sub.n_items == 3  # items keep their indices, some lose all labels


def test_split_holdout_partitions_each_annotator(rng: np.random.Generator) -> None:
    n = 400
    ann = Annotations(rng.integers(0, 200, n) * 0 + np.arange(n), rng.integers(0, 7, n), rng.integers(0, 3, n))
    train, held = ann.split_holdout(0.25, random_state=3)
    assert train.n_labels + held.n_labels == ann.n_labels
    assert train.same_content(train) and not train.same_content(held)
    both = train.concat(held)
    assert both.same_content(ann)
    for m in range(7):
        c = int(ann.annotator_counts[m])
        assert int(held.annotator_counts[m]) == min(int(np.floor(c * 0.25)), max(c - 1, 0))
    again, _ = ann.split_holdout(0.25, random_state=3)
    assert again == train


def test_split_kfold_holds_out_every_label_exactly_once(rng: np.random.Generator) -> None:
    n = 500
    ann = Annotations(np.arange(n), rng.integers(0, 9, n), rng.integers(0, 3, n), n_annotators=10)
    folds = ann.split_kfold(4, random_state=5)
    assert len(folds) == 4
    held_rows = [set(map(tuple, h.to_frame(ids=False).to_numpy().tolist())) for _, h in folds]
    assert sum(len(r) for r in held_rows) == ann.n_labels  # disjoint ...
    assert set().union(*held_rows) == set(map(tuple, ann.to_frame(ids=False).to_numpy().tolist()))  # ... and complete
    for train, held in folds:
        assert train.n_items == ann.n_items and train.n_annotators == ann.n_annotators
        assert train.concat(held).same_content(ann)  # every label once within a pair
        # each annotator's labels are spread evenly over the folds
        c = ann.annotator_counts
        assert np.all((held.annotator_counts == c // 4) | (held.annotator_counts == c // 4 + 1))
    assert ann.annotator_counts[9] == 0
    again = ann.kfold_labels(4, random_state=5)
    assert again.tolist() == ann.kfold_labels(4, random_state=5).tolist()
    assert again.tolist() != ann.kfold_labels(4, random_state=6).tolist()
    assert folds[0][1] == ann.subset_labels(again == 0)


def test_split_kfold_spreads_annotators_with_few_labels_over_the_folds() -> None:
    # 30 annotators with one label each: a random starting fold per annotator, not all in fold 0
    ann = Annotations(np.arange(30), np.arange(30), np.zeros(30, dtype=np.int64), n_classes=2)
    sizes = np.bincount(ann.kfold_labels(3, random_state=0), minlength=3)
    assert sizes.sum() == 30 and sizes.min() >= 5


@pytest.mark.parametrize("bad", [1, 0, 2.0, True, "3"])
def test_split_kfold_rejects_a_bad_number_of_folds(bad: object) -> None:
    ann = Annotations([0, 1], [0, 1], [0, 1])
    with pytest.raises(AnnotationsError, match="n_splits must be an integer >= 2, got"):
        ann.split_kfold(bad)  # type: ignore[arg-type]


def test_split_holdout_by_item_moves_every_label_of_the_held_items(rng: np.random.Generator) -> None:
    n_items = 200
    items = np.repeat(np.arange(n_items), 3)
    annotators = (items + np.tile([0, 1, 2], n_items)) % 8  # three distinct annotators per item
    ann = Annotations(items, annotators, rng.integers(0, 3, len(items)), n_items=n_items + 5)
    train, held = ann.split_holdout(0.2, random_state=4, by="item")
    assert train.n_items == held.n_items == ann.n_items and train.n_annotators == ann.n_annotators
    assert train.concat(held).same_content(ann)
    held_items = np.flatnonzero(held.item_counts)
    assert len(held_items) == 40  # floor(0.2 * 200 labelled items); the 5 unlabelled ones never count
    assert (held.item_counts[held_items] == 3).all()  # all of an item's labels, never part of them
    assert (train.item_counts[held_items] == 0).all()
    assert np.flatnonzero(train.item_counts).size == 160
    again, _ = ann.split_holdout(0.2, random_state=4, by="item")
    assert again == train
    other, _ = ann.split_holdout(0.2, random_state=5, by="item")
    assert other != train
    with pytest.raises(AnnotationsError, match="min_keep applies to by='annotator' only"):
        ann.split_holdout(0.2, by="item", min_keep=2)
    with pytest.raises(AnnotationsError, match="by must be 'annotator' or 'item', got 'items'"):
        ann.split_holdout(0.2, by="items")  # type: ignore[arg-type]


def test_split_kfold_by_item_never_splits_an_item(rng: np.random.Generator) -> None:
    n_items = 100
    per_item = rng.integers(1, 5, n_items)
    items = np.repeat(np.arange(n_items), per_item)
    rank = np.arange(len(items)) - np.repeat(np.cumsum(per_item) - per_item, per_item)  # 0.. within an item
    ann = Annotations(items, (items + rank) % 6, rng.integers(0, 3, len(items)))
    folds = ann.split_kfold(3, random_state=1, by="item")
    assert len(folds) == 3
    owner = np.zeros(n_items, dtype=np.int64)
    for train, held in folds:
        assert train.concat(held).same_content(ann)
        mine = held.item_counts > 0
        assert (held.item_counts[mine] == ann.item_counts[mine]).all()  # whole items
        assert (train.item_counts[mine] == 0).all()
        owner[mine] += 1
    assert (owner == 1).all()  # every item held out in exactly one fold
    sizes = [int((h.item_counts > 0).sum()) for _, h in folds]
    assert max(sizes) - min(sizes) <= 1
    assert ann.kfold_items(3, random_state=1).tolist() == ann.kfold_items(3, random_state=1).tolist()
    with pytest.raises(AnnotationsError, match="n_splits must be an integer >= 2"):
        ann.kfold_items(1)


def test_concat_matches_ids() -> None:
    a = Annotations.from_ids(["x", "y"], ["w1", "w2"], ["p", "q"])
    b = Annotations.from_ids(["y", "z"], ["w1", "w3"], ["q", "r"])
    c = a.concat(b)
    assert c.item_ids.tolist() == ["x", "y", "z"]
    assert c.annotator_ids.tolist() == ["w1", "w2", "w3"]
    assert c.classes.tolist() == ["p", "q", "r"]
    assert c.n_labels == 4
    with pytest.raises(AnnotationsError, match="duplicate"):
        a.concat(a)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 30), st.integers(0, 8), st.integers(0, 4)),
        min_size=1,
        max_size=120,
        unique_by=lambda t: t[:2],
    )
)
def test_csr_views_cover_every_label_once(triples: list[tuple[int, int, int]]) -> None:
    it, an, lb = map(np.asarray, zip(*triples))
    ann = Annotations(it, an, lb)
    for view, key in ((ann.by_item, ann.items), (ann.by_annotator, ann.annotators)):
        assert sorted(view.order.tolist()) == list(range(ann.n_labels))
        for r in range(len(view.indptr) - 1):
            pos = view.positions([r])
            assert np.all(key[pos] == r)
            assert len(pos) == int((key == r).sum())


def test_item_class_indices_checks_one_class_index_per_item() -> None:
    ann = Annotations([0, 1, 2], [0, 0, 1], [0, 1, 1], n_classes=3)
    out = ann.item_class_indices(np.array([2, -1, 0], dtype=np.int32), "gold")
    assert out.dtype == np.int64 and out.tolist() == [2, -1, 0]
    with pytest.raises(
        AnnotationsError, match=r"gold must be an int array of shape \(3,\) with -1 for unknown items; or"
    ):
        ann.item_class_indices([0, 1], "gold", hint="; or")
    with pytest.raises(AnnotationsError, match=r"got dtype float64"):
        ann.item_class_indices([0.0, 1.0, 2.0], "gold")
    with pytest.raises(AnnotationsError, match=r"gold\[1\] = 3 is not a class index in \[0, 3\) or -1 \(unknown\)"):
        ann.item_class_indices([0, 3, -2], "gold")
