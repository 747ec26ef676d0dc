"""crowdlearn.aggregate.segmentation: majority vote, EM and RASA over binary masks."""

from __future__ import annotations

import numpy as np
import pytest

from crowdlearn.aggregate.segmentation import SegmentationEM, SegmentationMajorityVote, SegmentationRASA


def _noisy(truth: np.ndarray, n: int, flip: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``n`` copies of ``truth``, answer ``i`` with each pixel flipped with probability ``flip[i]``."""
    flips = rng.random((n, *truth.shape)) < flip[:, None, None]
    out: np.ndarray = truth[None] ^ flips
    return out


def test_majority_vote_matches_a_per_task_loop_with_weights_and_two_shapes() -> None:
    rng = np.random.default_rng(0)
    shapes = [(4, 5), (3, 3), (4, 5)]
    masks, tasks = [], []
    for t, shape in enumerate(shapes):
        for _ in range(3 + t):
            masks.append(rng.random(shape) < 0.5)
            tasks.append(t)
    order = rng.permutation(len(masks))  # answers of a task need not be contiguous
    masks, tasks = [masks[i] for i in order], np.array(tasks)[order]
    weights = rng.random(len(masks)) * 3
    got = SegmentationMajorityVote().fit_predict(masks, tasks, weights)
    for t, shape in enumerate(shapes):
        rows = np.flatnonzero(tasks == t)
        score = sum(weights[r] * masks[r] for r in rows) - 0.5 * weights[rows].sum()
        assert got[t].shape == shape and got[t].dtype == bool
        np.testing.assert_array_equal(got[t], score >= 0)


def test_majority_vote_ties_are_in_and_stacked_input_works() -> None:
    masks = np.array([[[1, 0]], [[0, 0]]], dtype=np.int64)
    np.testing.assert_array_equal(SegmentationMajorityVote().fit_predict(masks, [0, 0])[0], [[True, False]])


@pytest.mark.parametrize("cls", [SegmentationEM, SegmentationRASA])
def test_iterative_methods_recover_the_truth_past_a_bad_majority(cls: type) -> None:
    # two good answers and two noisy ones: the weighting must not do worse than the vote
    rng = np.random.default_rng(1)
    truth = np.zeros((20, 20), dtype=bool)
    truth[5:15, 4:12] = True
    masks = _noisy(truth, 5, np.array([0.02, 0.02, 0.03, 0.3, 0.35]), rng)
    mv = SegmentationMajorityVote().fit_predict(masks, np.zeros(5, dtype=np.int64))[0]
    got = cls(n_iter=20, tol=0).fit_predict(masks, np.zeros(5, dtype=np.int64))[0]
    assert np.count_nonzero(got != truth) <= np.count_nonzero(mv != truth)
    assert np.count_nonzero(got != truth) <= 2


def test_em_empty_answers_give_an_empty_mask_and_zero_iterations_the_strict_majority() -> None:
    empty = np.zeros((3, 2, 2), dtype=bool)
    assert not SegmentationEM().fit_predict(empty, [0, 0, 0])[0].any()
    masks = np.array([[1, 1], [1, 0], [0, 0], [0, 1]], dtype=bool)
    np.testing.assert_array_equal(SegmentationEM(n_iter=0).fit_predict(masks, [0] * 4)[0], [False, False])
    np.testing.assert_array_equal(SegmentationRASA(n_iter=0).fit_predict(masks, [0] * 4)[0], [True, True])


def test_em_bound_is_recorded_and_stops_at_tol() -> None:
    rng = np.random.default_rng(2)
    truth = rng.random((10, 10)) < 0.4
    masks = _noisy(truth, 4, np.array([0.05, 0.1, 0.1, 0.2]), rng)
    est = SegmentationEM(n_iter=50, tol=1e-5).fit(masks, np.zeros(4, dtype=np.int64))
    hist = est.loss_histories_[0]
    assert 1 < len(hist) < 50
    assert all(np.isfinite(hist))


def test_bad_input_names_the_answer_and_what_was_expected() -> None:
    mv = SegmentationMajorityVote()
    with pytest.raises(
        ValueError, match=r"answer 1 has shape \(2, 3\).*answer 0 of the same task 0 has shape \(2, 2\)"
    ):
        mv.fit([np.zeros((2, 2)), np.zeros((2, 3))], [0, 0])
    with pytest.raises(ValueError, match=r"answer 1: expected 0 / 1 \(or bool\) pixels, got 2"):
        mv.fit([np.zeros((2, 2)), np.array([[0, 2], [1, 1]])], [0, 0])
    with pytest.raises(ValueError, match="task 1 has no segmentation"):
        mv.fit([np.zeros((2, 2))], [0], n_tasks=2)
    with pytest.raises(ValueError, match=r"tasks\[0\] = -1"):
        mv.fit([np.zeros((2, 2))], [-1])
    with pytest.raises(ValueError, match=r"weights\[0\] = nan"):
        mv.fit([np.zeros((2, 2))], [0], [np.nan])
    with pytest.raises(ValueError, match="'n_iter' parameter of SegmentationEM"):
        SegmentationEM(n_iter=-1).fit([np.zeros((2, 2))], [0])
