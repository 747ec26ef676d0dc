"""Simulated crowds: stochasticity, reproducibility and each family's defining property."""

from __future__ import annotations

import numpy as np
import pytest

from crowdlearn.metrics import empirical_confusions, spammer_score
from crowdlearn.simulate import (
    CONFUSION_FAMILIES,
    ambiguous_posteriors,
    bernoulli_pattern,
    class_specialist_confusions,
    correlate_annotators,
    diagonally_dominant_confusions,
    fixed_per_item_pattern,
    hammer_spammer_confusions,
    heavy_tailed_pattern,
    make_confusions,
    pair_flip_confusions,
    sample_labels,
    separable_uniform_confusions,
    simulate_crowd,
    simulate_design,
    simulate_machine_annotators,
    soft_posteriors,
    symmetric_flip_confusions,
    wssc_confusions,
)

M, K = 6, 4


def _params(family: str) -> dict[str, object]:
    return {} if family in ("symmetric-flip", "pair-flip") else {"random_state": 0}


@pytest.mark.parametrize("family", sorted(CONFUSION_FAMILIES))
def test_families_are_column_stochastic_and_seeded(family: str) -> None:
    A = make_confusions(family, M, K, **_params(family))
    assert A.shape == (M, K, K)
    assert A.min() >= 0
    np.testing.assert_allclose(A.sum(axis=1), 1.0)
    np.testing.assert_array_equal(A, make_confusions(family, M, K, **_params(family)))


def test_unknown_family() -> None:
    with pytest.raises(ValueError, match="unknown confusion family 'nope'"):
        make_confusions("nope", M, K)


def test_separable_uniform() -> None:
    A = separable_uniform_confusions(M, K, gamma=0.01, noise=0.1, random_state=1)
    assert np.all(np.diagonal(A[0]) > 0.97)  # near-specialist
    assert np.all(np.abs(A[1:] - 1 / K) < 0.1)  # near-uniform


def test_hammer_spammer() -> None:
    A = hammer_spammer_confusions(10, K, hammer_fraction=0.3, hammer_accuracy=0.9, random_state=2)
    np.testing.assert_allclose(np.diagonal(A[:3], axis1=1, axis2=2), 0.9)
    np.testing.assert_allclose(spammer_score(A[3:]), 0.0, atol=1e-12)


def test_diagonally_dominant_positive() -> None:
    A = diagonally_dominant_confusions(20, 5, random_state=3)
    diag = np.diagonal(A, axis1=1, axis2=2)
    off = A + np.eye(5)[None] * -10
    assert np.all(diag[:, None, :] > off)
    assert A.min() > 0


def test_flip_families() -> None:
    S = symmetric_flip_confusions(2, 3, flip_rate=[0.0, 0.3])
    np.testing.assert_allclose(S[0], np.eye(3))
    np.testing.assert_allclose(S[1], [[0.7, 0.15, 0.15], [0.15, 0.7, 0.15], [0.15, 0.15, 0.7]])
    P = pair_flip_confusions(1, 3, flip_rate=0.25)[0]
    np.testing.assert_allclose(P, [[0.75, 0, 0.25], [0.25, 0.75, 0], [0, 0.25, 0.75]])
    with pytest.raises(ValueError, match="flip_rate must lie in"):
        symmetric_flip_confusions(2, 3, flip_rate=1.5)


def _is_specialist(A: np.ndarray, k: int) -> bool:
    return bool(np.all(np.delete(A[k], k) == 0) and A[k, k] > 0)


def test_class_specialist() -> None:
    A = class_specialist_confusions(5, K, specialist_classes=[0, 2], random_state=4)
    covered = {k for m in range(5) for k in range(K) if _is_specialist(A[m], k)}
    assert covered == {0, 2}
    full = class_specialist_confusions(K, K, random_state=4)
    assert all(_is_specialist(full[k], k) for k in range(K))
    with pytest.raises(ValueError, match="specialist_classes contains 7"):
        class_specialist_confusions(3, K, specialist_classes=[7])


def test_wssc_rows_have_zeros_and_no_specialist() -> None:
    A = wssc_confusions(8, 5, random_state=5)
    for m in range(8):
        for i in range(5):
            off = np.delete(A[m, i], i)
            assert 1 <= np.count_nonzero(off == 0) <= 2
            assert np.count_nonzero(off) >= 1  # not a specialist
    with pytest.raises(ValueError, match="zeros_per_row"):
        wssc_confusions(2, 3, zeros_per_row=(1, 2))


def test_bernoulli_fraction_and_no_duplicates() -> None:
    items, ann = bernoulli_pattern(2000, 30, 0.1, random_state=6)
    assert abs(items.size / (2000 * 30) - 0.1) < 0.01
    key = items * 30 + ann
    assert np.unique(key).size == key.size
    i2, a2 = bernoulli_pattern(2000, 30, 0.1, random_state=6)
    np.testing.assert_array_equal(items, i2)
    np.testing.assert_array_equal(ann, a2)


def test_fixed_per_item_and_heavy_tail() -> None:
    items, ann = fixed_per_item_pattern(500, 10, 3, random_state=7)
    assert np.all(np.bincount(items, minlength=500) == 3)
    assert np.unique(items * 10 + ann).size == items.size
    w = np.r_[np.ones(9), 0.0]
    _, ann_w = fixed_per_item_pattern(200, 10, 3, weights=w, random_state=7)
    assert 9 not in ann_w
    with pytest.raises(ValueError, match="per_item must be in"):
        fixed_per_item_pattern(5, 3, 4)
    it, an = heavy_tailed_pattern(3000, 200, 3.0, alpha=1.0, random_state=8)
    counts = np.bincount(an, minlength=200)
    assert counts.max() > 8 * np.median(counts)  # a few very active annotators
    assert 2.0 < it.size / 3000 <= 3.1


def test_posterior_designs() -> None:
    y, F = ambiguous_posteriors(300, 5, support=(2, 2), mix=0.2, random_state=9)
    np.testing.assert_allclose(F.sum(axis=1), 1.0)
    assert np.all((F > 0).sum(axis=1) == 2)
    assert F.max() <= 0.9 + 1e-12  # no anchors
    np.testing.assert_array_equal(y, F.argmax(axis=1))
    _, S = soft_posteriors(300, 5, spread=0.5, random_state=9)
    assert S.min() >= 0.1 - 1e-12


def test_sample_labels_follow_model() -> None:
    A = symmetric_flip_confusions(1, 3, flip_rate=0.3)
    F = np.tile([0.0, 1.0, 0.0], (20000, 1))
    y = sample_labels(np.arange(20000), np.zeros(20000, dtype=np.int64), A, F, random_state=10)
    np.testing.assert_allclose(np.bincount(y, minlength=3) / 20000, [0.15, 0.7, 0.15], atol=0.015)
    with pytest.raises(ValueError, match="column-stochastic"):
        sample_labels([0], [0], A * 2, F[:1])


def test_simulate_crowd_recovers_confusions_empirically() -> None:
    A = class_specialist_confusions(4, 3, random_state=11)
    crowd = simulate_crowd(A, n_items=3000, p=0.5, random_state=11)
    C = empirical_confusions(crowd.annotations, crowd.true_labels)
    np.testing.assert_allclose(C, A, atol=0.05)
    again = simulate_crowd(A, n_items=3000, p=0.5, random_state=11)
    assert crowd.annotations == again.annotations
    with pytest.raises(ValueError, match="exactly one of p"):
        simulate_crowd(A, n_items=10)


@pytest.mark.parametrize("design", ["control", "f-ssc", "w-ssc", "separable-uniform"])
def test_designs(design: str) -> None:
    crowd = simulate_design(design, n_items=200, n_annotators=5, n_classes=4, p=0.3, random_state=12)
    assert crowd.confusions.shape == (5, 4, 4)
    assert crowd.true_posteriors.shape == (200, 4)
    assert crowd.annotations.n_items == 200
    assert abs(crowd.annotations.n_labels / 1000 - 0.3) < 0.06


def test_correlated_annotators() -> None:
    crowd = simulate_crowd(
        random_A := symmetric_flip_confusions(3, 3, flip_rate=0.5), n_items=400, p=0.5, random_state=13
    )
    assert random_A.shape == (3, 3, 3)
    out = correlate_annotators(crowd.annotations, copier=1, source=0, prob=1.0, random_state=13)
    src = dict(zip(*out.to_frame(ids=False).query("annotator == 0")[["item", "label"]].to_numpy().T, strict=True))
    cop = dict(zip(*out.to_frame(ids=False).query("annotator == 1")[["item", "label"]].to_numpy().T, strict=True))
    assert all(cop[i] == lab for i, lab in src.items())
    with pytest.raises(ValueError, match="copier and source must be different"):
        correlate_annotators(crowd.annotations, 1, 1, 0.5)


def test_machine_annotators_small() -> None:
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier

    X, y = load_digits(return_X_y=True)
    machines = [("knn", KNeighborsClassifier(3), 300), ("logreg", LogisticRegression(max_iter=20), 100)]
    crowd = simulate_machine_annotators(X[:800], y[:800], X[800:], y[800:], machines=machines, p=0.2, random_state=14)
    ann = crowd.annotations
    assert ann.n_annotators == 2 and ann.n_classes == 10
    assert abs(ann.n_labels / 1600 - 0.2) < 0.05
    np.testing.assert_allclose(crowd.confusions.sum(axis=1), 1.0)
    assert np.trace(crowd.confusions[0]) / 10 > 0.8  # 3-NN on 300 digits is strong
    assert list(ann.annotator_ids) == ["0-knn", "1-logreg"]


def test_wssc_and_fssc_designs_have_no_near_specialist() -> None:
    for A in (
        wssc_confusions(10, 4, random_state=15),
        simulate_design("f-ssc", n_items=10, n_annotators=10, n_classes=4, p=0.5, random_state=15).confusions,
    ):
        diag = np.diagonal(A, axis1=1, axis2=2)
        assert np.all(diag / A.sum(axis=2) <= 0.75 + 1e-6)
        np.testing.assert_allclose(A.sum(axis=1), 1.0)


def test_docs_name_exactly_the_simulate_functions_that_take_no_seed() -> None:
    """simulate's module docstring and docs/identifiability.md say which functions take no seed."""
    import inspect
    import re
    from pathlib import Path

    import crowdlearn.simulate as sim

    public = [getattr(sim, n) for n in sim.__all__ if inspect.isfunction(getattr(sim, n))]
    # make_confusions forwards its keyword arguments (the seed included) to the family
    no_seed = {f.__name__ for f in public if "random_state" not in inspect.signature(f).parameters} - {
        "make_confusions"
    }
    assert no_seed == {"symmetric_flip_confusions", "pair_flip_confusions"}
    docs = (Path(__file__).resolve().parents[1] / "docs" / "identifiability.md").read_text(encoding="utf-8")
    for text in (sim.__doc__ or "", docs):
        sentences = [s for s in re.split(r"(?<=[.;])\s", " ".join(text.split())) if "no seed" in s]
        assert len(sentences) == 1, sentences
        named = {w for w in re.findall(r"[a-z]+(?:_[a-z]+)+", sentences[0]) if w in sim.__all__}
        assert named == no_seed, sentences[0]
