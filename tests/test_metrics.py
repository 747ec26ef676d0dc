"""Hand-computed cases for crowdlearn.metrics."""

from __future__ import annotations

import numpy as np
import pytest

from crowdlearn import Annotations
from crowdlearn.metrics import (
    accuracy,
    align_classes,
    annotator_accuracy,
    confusion_estimation_error,
    empirical_confusions,
    expected_calibration_error,
    spammer_score,
)

# two annotators, three classes, column-stochastic
A_TRUE = np.array(
    [
        [[0.8, 0.1, 0.0], [0.2, 0.7, 0.3], [0.0, 0.2, 0.7]],
        [[0.6, 0.0, 0.1], [0.3, 1.0, 0.0], [0.1, 0.0, 0.9]],
    ]
)


def test_accuracy_labels_and_scores() -> None:
    assert accuracy([0, 1, 2, 2], [0, 1, 1, 2]) == 0.75
    assert accuracy([1, 0], np.array([[0.2, 0.8], [0.4, 0.6]])) == 0.5


def test_accuracy_errors() -> None:
    with pytest.raises(ValueError, match="same length"):
        accuracy([0, 1], [0])
    with pytest.raises(ValueError, match=r"y_true\[1\] = -1"):
        accuracy([0, -1], [0, 0])
    with pytest.raises(ValueError, match="empty"):
        accuracy([], [])


def test_ece_hand_computed() -> None:
    # confidences 0.9 (correct), 0.9 (wrong), 0.6 (correct), 2 bins: (0,.5], (.5,1]
    proba = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6]])
    y = np.array([0, 1, 1])
    # one bin holds all three: acc 2/3, mean conf 0.8 -> |2/3 - 0.8| = 0.1333...
    assert expected_calibration_error(y, proba, n_bins=2) == pytest.approx(abs(2 / 3 - 0.8))
    # 10 bins: bin (0.8,0.9] acc 1/2 conf .9 -> 2/3*0.4; bin (0.5,0.6] acc 1 conf .6 -> 1/3*0.4
    assert expected_calibration_error(y, proba, n_bins=10) == pytest.approx(0.4)


def test_ece_perfect_is_zero_and_errors() -> None:
    proba = np.eye(3)
    assert expected_calibration_error([0, 1, 2], proba) == 0.0
    with pytest.raises(ValueError, match="n_bins"):
        expected_calibration_error([0], np.eye(2)[:1], n_bins=0)
    with pytest.raises(ValueError, match="2 items but proba has 3"):
        expected_calibration_error([0, 1], proba)


def test_permuted_estimate_scores_zero() -> None:
    perm = np.array([2, 0, 1])
    est = A_TRUE[:, :, perm]  # the same model with the latent classes relabelled
    found = align_classes(est, A_TRUE)
    np.testing.assert_array_equal(est[:, :, found], A_TRUE)
    assert confusion_estimation_error(est, A_TRUE) == 0.0
    assert confusion_estimation_error(est, A_TRUE, norm="l1") == 0.0
    # without alignment the same estimate is wrong
    assert confusion_estimation_error(est, A_TRUE, align=False) > 0.5


def test_estimation_error_hand_computed() -> None:
    true = np.array([[[1.0, 0.0], [0.0, 1.0]], [[0.5, 0.5], [0.5, 0.5]]])
    est = np.array([[[0.9, 0.0], [0.1, 1.0]], [[0.5, 0.5], [0.5, 0.5]]])
    # annotator 0: ||diff||_F = sqrt(0.02), ||I||_F = sqrt(2) -> 0.1; annotator 1: 0
    per = confusion_estimation_error(est, true, per_annotator=True)
    np.testing.assert_allclose(per, [0.1, 0.0])
    assert confusion_estimation_error(est, true) == pytest.approx(0.05)
    # L1: |diff| sums to 0.2, ||I||_1 = 2 -> 0.1
    np.testing.assert_allclose(confusion_estimation_error(est, true, "l1", True), [0.1, 0.0])


def test_alignment_is_shared_across_annotators() -> None:
    # annotator 0 alone prefers swapping, annotator 1 strongly prefers identity
    true = np.array([[[0.6, 0.4], [0.4, 0.6]], [[1.0, 0.0], [0.0, 1.0]]])
    est = np.array([[[0.4, 0.6], [0.6, 0.4]], [[1.0, 0.0], [0.0, 1.0]]])
    np.testing.assert_array_equal(align_classes(est, true), [0, 1])
    per = confusion_estimation_error(est, true, per_annotator=True)
    assert per[1] == 0.0
    assert per[0] == pytest.approx(np.sqrt(4 * 0.04) / np.sqrt(2 * 0.36 + 2 * 0.16))


def test_estimation_error_errors() -> None:
    with pytest.raises(ValueError, match="shape"):
        confusion_estimation_error(A_TRUE[:1], A_TRUE)
    with pytest.raises(ValueError, match="norm must be 'fro' or 'l1'"):
        confusion_estimation_error(A_TRUE, A_TRUE, norm="l2")  # type: ignore[call-overload]
    bad = A_TRUE.copy()
    bad[1, 0, 2] = np.nan
    with pytest.raises(ValueError, match=r"estimated\[1, 0, 2\] is NaN"):
        confusion_estimation_error(bad, A_TRUE)


def test_empirical_confusions_hard_truth() -> None:
    # items 0..3 with truth 0,0,1,-1 ; annotator 0 labels all, annotator 1 labels item 0 only
    ann = Annotations([0, 1, 2, 3, 0], [0, 0, 0, 0, 1], [0, 1, 1, 0, 0], n_classes=3)
    C = empirical_confusions(ann, np.array([0, 0, 1, -1]))
    np.testing.assert_allclose(C[0, :, 0], [0.5, 0.5, 0.0])
    np.testing.assert_allclose(C[0, :, 1], [0.0, 1.0, 0.0])
    np.testing.assert_allclose(C[0, :, 2], [1 / 3] * 3)  # no class-2 items: uniform
    np.testing.assert_allclose(C[1, :, 0], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(C.sum(axis=1), 1.0)


def test_empirical_confusions_soft_truth() -> None:
    ann = Annotations([0, 1], [0, 0], [0, 1], n_classes=2)
    C = empirical_confusions(ann, np.array([[0.5, 0.5], [0.0, 1.0]]))
    # column 0: only item 0 (weight .5) said 0; column 1: item0 .5 said 0, item1 1.0 said 1
    np.testing.assert_allclose(C[0], [[1.0, 0.5 / 1.5], [0.0, 1.0 / 1.5]])


def test_empirical_confusions_errors() -> None:
    ann = Annotations([0, 1], [0, 0], [0, 1], n_classes=2)
    with pytest.raises(ValueError, match="truth has 3 entries"):
        empirical_confusions(ann, np.array([0, 1, 1]))
    with pytest.raises(ValueError, match=r"truth\[1\] = 5"):
        empirical_confusions(ann, np.array([0, 5]))


def test_annotator_accuracy_and_spammer_score() -> None:
    np.testing.assert_allclose(annotator_accuracy(A_TRUE), [2.2 / 3, 2.5 / 3])
    np.testing.assert_allclose(annotator_accuracy(A_TRUE, [0.5, 0.5, 0.0]), [0.75, 0.8])
    spam = np.tile(np.array([0.2, 0.3, 0.5])[:, None], (1, 3))[None]
    perm = np.eye(3)[[1, 2, 0]][None]
    np.testing.assert_allclose(
        spammer_score(np.concatenate([spam, perm, np.eye(3)[None]])), [0.0, 1.0, 1.0], atol=1e-12
    )
    with pytest.raises(ValueError, match="priors must have shape"):
        annotator_accuracy(A_TRUE, [1.0])
