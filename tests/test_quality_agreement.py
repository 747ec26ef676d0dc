"""Agreement measures of crowdlearn.quality against published worked examples."""

from __future__ import annotations

import numpy as np
import pytest

from crowdlearn import Annotations
from crowdlearn import quality as q

NAN = float("nan")

# Krippendorff, "Computing Krippendorff's Alpha-Reliability" (2011): 4 observers x 12 units,
# values 1-5, blank = not coded (the 12th unit has one value and is not pairable).
KRIPPENDORFF_2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
    [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
]

# Fleiss (1971) as tabulated on Wikipedia: 10 subjects, 14 raters each, counts per category.
FLEISS_1971 = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]


def _from_coder_rows(rows: list[list[float]], classes: list[int]) -> Annotations:
    it, an, lb = [], [], []
    for coder, row in enumerate(rows):
        for unit, v in enumerate(row):
            if v == v:
                it.append(unit)
                an.append(coder)
                lb.append(int(v))
    return Annotations.from_ids(it, an, lb, classes=classes)


def _from_counts(table: list[list[int]]) -> Annotations:
    it, an, lb = [], [], []
    for i, row in enumerate(table):
        r = 0
        for k, c in enumerate(row):
            for _ in range(c):
                it.append(i)
                an.append(r)
                lb.append(k)
                r += 1
    return Annotations(it, an, lb, n_classes=len(table[0]))


@pytest.mark.parametrize(
    ("level", "expected"), [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849), ("ratio", 0.797)]
)
def test_alpha_krippendorff_2011_example(level: str, expected: float) -> None:
    ann = _from_coder_rows(KRIPPENDORFF_2011, [1, 2, 3, 4, 5])
    assert round(q.alpha_krippendorff(ann, level=level), 3) == expected  # type: ignore[arg-type]


def test_alpha_wikipedia_three_coder_example() -> None:
    # Wikipedia's computational example (3 coders x 15 units): nominal 0.691, interval 0.811
    rows = [
        [NAN, NAN, NAN, NAN, NAN, 3, 4, 1, 2, 1, 1, 3, 3, NAN, 3],
        [1, NAN, 2, 1, 3, 3, 4, 3, NAN, NAN, NAN, NAN, NAN, NAN, NAN],
        [NAN, NAN, 2, 1, 3, 4, 4, NAN, 2, 1, 1, 3, 3, NAN, 4],
    ]
    ann = _from_coder_rows(rows, [1, 2, 3, 4])
    assert round(q.alpha_krippendorff(ann), 6) == 0.691358
    assert round(q.alpha_krippendorff(ann, level="interval"), 6) == 0.810845


def test_alpha_interval_values_and_string_classes() -> None:
    ann = _from_coder_rows(KRIPPENDORFF_2011, [1, 2, 3, 4, 5])
    named = Annotations(ann.items, ann.annotators, ann.labels, classes=["a", "b", "c", "d", "e"])
    # ordinal needs only the class order; interval needs numbers
    assert q.alpha_krippendorff(named, level="ordinal") == pytest.approx(q.alpha_krippendorff(ann, level="ordinal"))
    with pytest.raises(ValueError, match="class 'a' is not a number; pass values="):
        q.alpha_krippendorff(named, level="interval")
    got = q.alpha_krippendorff(named, level="interval", values=[1, 2, 3, 4, 5])
    assert got == pytest.approx(q.alpha_krippendorff(ann, level="interval"))
    with pytest.raises(ValueError, match=r"values must have shape \(5,\)"):
        q.alpha_krippendorff(named, level="interval", values=[1, 2])
    with pytest.raises(ValueError, match="level must be"):
        q.alpha_krippendorff(ann, level="circular")  # type: ignore[arg-type]


def test_alpha_matches_distance_matrix_form() -> None:
    ann = _from_coder_rows(KRIPPENDORFF_2011, [1, 2, 3, 4, 5])
    v = np.arange(1, 6, dtype=float)
    D = (v[:, None] - v[None, :]) ** 2
    assert q.alpha_krippendorff(ann, D) == pytest.approx(q.alpha_krippendorff(ann, level="interval"))


def test_fleiss_1971_example() -> None:
    ann = _from_counts(FLEISS_1971)
    assert round(q.fleiss_kappa(ann), 3) == 0.210
    assert round(float(q.percent_agreement(ann)), 3) == 0.378  # P-bar of the example


def test_fleiss_unequal_counts_definition() -> None:
    # item 0: 3 labels (2 agree -> P = 1/3), item 1: 2 labels agree (P = 1), item 2: one label (ignored)
    ann = Annotations([0, 0, 0, 1, 1, 2], [0, 1, 2, 0, 1, 0], [0, 0, 1, 1, 1, 0])
    p_bar = (1 / 3 + 1) / 2
    p = np.array([2, 3]) / 5
    pe = float((p**2).sum())
    assert q.fleiss_kappa(ann) == pytest.approx((p_bar - pe) / (1 - pe))
    assert float(q.percent_agreement(ann)) == pytest.approx(p_bar)
    per_item = q.percent_agreement(ann, by="item")
    assert np.isnan(per_item[2]) and per_item[:2] == pytest.approx([1 / 3, 1])
    # one class only: kappa undefined
    assert np.isnan(q.fleiss_kappa(Annotations([0, 0], [0, 1], [1, 1], n_classes=2)))
    assert np.isnan(q.fleiss_kappa(Annotations([0, 1], [0, 1], [1, 1])))  # no item with two labels


def test_cohen_kappa_textbook_example() -> None:
    # 50 proposals read by A and B: yes/yes 20, A yes B no 5, A no B yes 10, no/no 15 -> kappa 0.4
    pairs = [(1, 1)] * 20 + [(1, 0)] * 5 + [(0, 1)] * 10 + [(0, 0)] * 15
    it, an, lb = [], [], []
    for i, (a, b) in enumerate(pairs):
        it += [i, i]
        an += [0, 1]
        lb += [a, b]
    table = q.cohen_kappa_pairs(Annotations(it, an, lb, annotator_ids=["A", "B"]))
    assert table.shape[0] == 1
    row = table.iloc[0]
    assert (row["annotator_a"], row["annotator_b"], row["n_shared"]) == ("A", "B", 50)
    assert row["agreement"] == pytest.approx(0.7)
    assert row["expected"] == pytest.approx(0.5)
    assert row["kappa"] == pytest.approx(0.4)


def test_cohen_pairs_sparse_match_sklearn(rng: np.random.Generator) -> None:
    sk = pytest.importorskip("sklearn.metrics")
    n_items, n_ann, K = 60, 6, 3
    it, an, lb = [], [], []
    for i in range(n_items):
        for m in rng.choice(n_ann, size=3, replace=False):
            it.append(i)
            an.append(int(m))
            lb.append(int(rng.integers(K)) if rng.random() < 0.5 else i % K)
    ann = Annotations(it, an, lb)
    table = q.cohen_kappa_pairs(ann, min_overlap=4)
    assert (table["n_shared"] >= 4).all()
    labels = {(int(i), int(m)): int(y) for i, m, y in zip(ann.items, ann.annotators, ann.labels)}
    checked = 0
    for _, row in table.iterrows():
        a, b = int(row["annotator_a"]), int(row["annotator_b"])
        shared = sorted(i for (i, m) in labels if m == a and (i, b) in labels)
        assert len(shared) == row["n_shared"]
        ya = [labels[(i, a)] for i in shared]
        yb = [labels[(i, b)] for i in shared]
        assert row["kappa"] == pytest.approx(sk.cohen_kappa_score(ya, yb))
        checked += 1
    assert checked > 5
    with pytest.raises(ValueError, match="min_overlap must be an integer >= 1, got 0"):
        q.cohen_kappa_pairs(ann, min_overlap=0)


def test_label_pairs_and_annotator_agreement() -> None:
    ann = Annotations([0, 1, 0, 0, 1], [0, 0, 1, 2, 1], [1, 0, 1, 0, 0])
    first, second = q.label_pairs(ann)
    got = sorted(tuple(sorted((int(a), int(b)))) for a, b in zip(first, second))
    assert got == [(0, 2), (0, 3), (1, 4), (2, 3)]
    per_ann = q.percent_agreement(ann, by="annotator")
    # annotator 0: pairs (0,2) agree, (0,3) no, (1,4) agree; annotator 1: (0,2), (2,3), (1,4);
    # annotator 2: (0,3), (2,3), both disagree
    assert per_ann == pytest.approx([2 / 3, 2 / 3, 0.0])
    empty = q.label_pairs(Annotations([0, 1], [0, 0], [0, 1]))
    assert empty[0].size == 0 and np.isnan(q.percent_agreement(Annotations([0, 1], [0, 0], [0, 1])))


def test_agreement_summary() -> None:
    ann = _from_counts(FLEISS_1971)
    s = q.agreement_summary(ann, levels=("nominal", "ordinal"), min_overlap=1)
    assert set(s.alpha) == {"nominal", "ordinal"}
    assert s.fleiss_kappa == pytest.approx(q.fleiss_kappa(ann))
    assert s.n_items_scored == 10
    assert s.n_annotator_pairs > 0 and np.isfinite(s.mean_cohen_kappa)
    assert s.to_dict()["alpha"]["nominal"] == s.alpha["nominal"]
