"""Active learning: ActiveLab-like item scores, annotator choice, query suggestions, a tiny study."""

from __future__ import annotations

import numpy as np
import pytest

from crowdlearn import Annotations, CrowdClassifier
from crowdlearn.active import activelab_scores, best_annotators, crowd_posteriors, suggest_queries
from crowdlearn.aggregate import DawidSkene
from crowdlearn.simulate import diagonally_dominant_confusions, item_features, simulate_crowd

# items 0-2 labelled by annotators 0 and 1 (agree on 0 and 1, disagree on 2), item 3 unlabelled
ANN = Annotations([0, 0, 1, 1, 2, 2], [0, 1, 0, 1, 0, 1], [0, 0, 1, 1, 0, 1], n_items=4)
PROBA = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3]])


def test_activelab_scores_by_hand() -> None:
    # consensus [0, 1, 0] -> b = 2/3; w_0 = 1 - 0.1 / (1/3) = 0.7, w_1 = max(1 - 0.4 / (1/3), 1e-3);
    # the model agrees with every consensus: w_M = 1 * sqrt(2 labels per item)
    got = activelab_scores(ANN, PROBA, annotator_accuracy=[0.9, 0.6])
    wm, w0, w1 = np.sqrt(2.0), 0.7, 1e-3
    expected = [
        (wm * 0.9 + w0 + w1) / (wm + w0 + w1),
        (wm * 0.8 + w0 + w1) / (wm + w0 + w1),
        (wm * 0.6 + w0) / (wm + w0 + w1),
        (wm * 0.7 + (w0 + w1) / 2 / 2) / (wm + (w0 + w1) / 2),
    ]
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    np.testing.assert_allclose(got, [0.93314086, 0.86628172, 0.73209068, 0.66027684], atol=1e-8)
    # the doubtful labelled item comes before the agreed ones
    assert np.argsort(got)[:2].tolist() == [3, 2]


def test_activelab_scores_validate_inputs() -> None:
    with pytest.raises(ValueError, match=r"model_proba must have shape \(n_items, n_classes\) = \(4, 2\)"):
        activelab_scores(ANN, PROBA[:3])
    with pytest.raises(ValueError, match=r"model_proba rows must sum to 1; row 0 sums to 2"):
        activelab_scores(ANN, PROBA * 2)
    with pytest.raises(ValueError, match=r"model_proba\[0, 0\] = nan is not a probability"):
        activelab_scores(ANN, np.where(np.eye(4, 2) > 0, np.nan, PROBA))


def test_best_annotators_uses_the_confusions_availability_and_skips_done_pairs() -> None:
    conf = np.stack([np.eye(2) * 0.4 + 0.3, np.eye(2) * 0.8 + 0.1, [[0.95, 0.3], [0.05, 0.7]]])
    ann = Annotations(ANN.items, ANN.annotators, ANN.labels, n_items=4, n_annotators=3)
    q = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [1.0, 0.0]])
    who, p = best_annotators([3, 1, 2], q, conf, ann)
    # item 3 is class 0: annotator 2 (0.95); item 1 is class 1: annotator 1 (0.9) but it labelled
    # item 1 already, so annotator 2 (0.7); item 2: annotator 2 again (0.825 > 0.9? no: 1 labelled it)
    assert who.tolist() == [2, 2, 2]
    np.testing.assert_allclose(p, [0.95, 0.7, 0.825])
    who, p = best_annotators([3, 1], q, conf, ann, available=[0, 1])
    assert who.tolist() == [1, -1] and np.isnan(p[1])
    mask = np.array([True, False, False])
    assert best_annotators([3], q, conf, ann, available=mask)[0].tolist() == [0]
    with pytest.raises(ValueError, match=r"items contains 9, not an item index in \[0, 4\)"):
        best_annotators([9], q, conf, ann)


def test_crowd_posteriors_combine_model_and_labels() -> None:
    conf = np.stack([np.eye(2) * 0.8 + 0.1] * 2)
    q = crowd_posteriors(ANN, PROBA, conf)
    expected0 = np.array([0.9 * 0.9 * 0.9, 0.1 * 0.1 * 0.1])
    np.testing.assert_allclose(q[0], expected0 / expected0.sum())
    np.testing.assert_allclose(q[3], PROBA[3])


def _crowd(seed: int = 0) -> tuple[np.ndarray, np.ndarray, Annotations, np.ndarray]:
    conf = diagonally_dominant_confusions(10, 3, accuracy=(0.4, 0.9), random_state=seed)
    crowd = simulate_crowd(conf, n_items=300, per_item=1, random_state=seed)
    return conf, crowd.true_labels, crowd.annotations, crowd.true_posteriors


@pytest.mark.usefixtures("one_torch_thread")
def test_suggest_queries_from_an_aggregator_and_a_classifier() -> None:
    _, _, ann, post = _crowd()
    ds = DawidSkene().fit(ann)
    q = suggest_queries(ds, ann, 5, available=np.arange(5))
    assert list(q.columns) == ["item", "annotator", "item_id", "annotator_id", "score", "p_correct"]
    assert len(q) == 5 and q["annotator"].isin(range(5)).all() and q["score"].is_monotonic_increasing
    done = set(zip(ann.items.tolist(), ann.annotators.tolist(), strict=True))
    assert not any((i, a) in done for i, a in zip(q["item"], q["annotator"], strict=True))
    X = item_features(post, 5, random_state=0)
    clf = CrowdClassifier(method="ccem", epochs=2, validation="none").fit(X, ann)
    assert len(suggest_queries(clf, ann, 3, X=X)) == 3
    with pytest.raises(ValueError, match="a CrowdClassifier model needs X"):
        suggest_queries(clf, ann, 3)
    with pytest.raises(ValueError, match="n_queries must be a positive integer, got 0"):
        suggest_queries(ds, ann, 0)


def test_active_choice_beats_random_in_a_small_simulated_study() -> None:
    conf, truth, ann, _ = _crowd(1)
    rng = np.random.default_rng(0)

    def run(active: bool) -> float:
        cur = ann
        for _ in range(8):
            ds = DawidSkene(smoothing=0.01).fit(cur)
            if active:
                q = suggest_queries(ds, cur, 25)
                items, who = q["item"].to_numpy(), q["annotator"].to_numpy()
            else:
                items = rng.choice(cur.n_items, 25, replace=False)
                who = rng.integers(0, cur.n_annotators, 25)
                fresh = [
                    (i, a) not in set(zip(cur.items.tolist(), cur.annotators.tolist(), strict=True))
                    for i, a in zip(items, who, strict=True)
                ]
                items, who = items[fresh], who[fresh]
            # the oracle: annotator m answers item n from its true confusions
            cum = conf[who, :, truth[items]].cumsum(axis=1)
            said = np.minimum((rng.random(len(items))[:, None] > cum).sum(axis=1), 2)
            cur = Annotations(
                np.concatenate([cur.items, items]),
                np.concatenate([cur.annotators, who]),
                np.concatenate([cur.labels, said]),
                n_items=cur.n_items,
                n_annotators=cur.n_annotators,
                n_classes=3,
            )
        return float((DawidSkene(smoothing=0.01).fit(cur).labels_ == truth).mean())

    active, random = run(True), run(False)
    assert active > random + 0.03, (active, random)


def test_the_active_learning_functions_are_reexported_by_crowdlearn_quality() -> None:
    import crowdlearn.active as active
    import crowdlearn.quality as quality

    for name in ("activelab_scores", "best_annotators", "crowd_posteriors", "suggest_queries"):
        assert name in quality.__all__ and getattr(quality, name) is getattr(active, name)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        quality.nope  # noqa: B018
