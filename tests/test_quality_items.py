"""Item and annotator quality (crowdlearn.quality): consensus scores, CROWDLAB, WAUM, filtering."""

from __future__ import annotations

import numpy as np
import pytest

from crowdlearn import Annotations
from crowdlearn import quality as q
from crowdlearn.aggregate import DawidSkene
from crowdlearn.simulate import hammer_spammer_confusions, simulate_crowd
from crowdlearn.train.callbacks import label_margins


def _tiny() -> Annotations:
    # item a: x, x, y ; item b: y ; item c: no label
    return Annotations.from_ids(
        ["a", "a", "a", "b"], ["w1", "w2", "w3", "w1"], ["x", "x", "y", "y"], item_ids=["a", "b", "c"]
    )


def test_item_scores_exact() -> None:
    ann = _tiny()
    post = np.array([[0.8, 0.2], [0.1, 0.9], [0.5, 0.5]])
    t = q.item_scores(ann, post)
    assert list(t.index) == ["a", "b", "c"]
    assert t["n_labels"].tolist() == [3, 1, 0]
    assert t["consensus"].tolist() == ["x", "y", "x"]
    assert t["confidence"].tolist() == pytest.approx([0.8, 0.9, 0.5])
    ent = -(0.8 * np.log(0.8) + 0.2 * np.log(0.2))
    assert t["entropy"].iloc[0] == pytest.approx(ent)
    assert t["entropy"].iloc[2] == pytest.approx(np.log(2))
    assert t["agreement"].iloc[:2].tolist() == pytest.approx([2 / 3, 1.0])
    assert np.isnan(t["agreement"].iloc[2])


def test_item_scores_validation() -> None:
    ann = _tiny()
    with pytest.raises(ValueError, match=r"posteriors must have shape \(n_items, n_classes\) = \(3, 2\), got \(2, 2\)"):
        q.item_scores(ann, np.full((2, 2), 0.5))
    with pytest.raises(ValueError, match=r"rows must sum to 1; row 0 sums to 2"):
        q.item_scores(ann, np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"posteriors\[1, 0\] = nan is not a probability"):
        q.item_scores(ann, np.array([[0.5, 0.5], [np.nan, 0.5], [0.5, 0.5]]))


def test_relabel_ranking_orders_and_skips_unlabelled() -> None:
    ann = _tiny()
    t = q.item_scores(ann, np.array([[0.8, 0.2], [0.4, 0.6], [0.5, 0.5]]), ambiguity=[0.3, -0.2, np.nan])
    r = q.relabel_ranking(t)  # default: ambiguity, lowest first; item c (no labels) is not ranked
    assert list(r.index) == ["b", "a"] and r["rank"].tolist() == [1, 2]
    r = q.relabel_ranking(t, by="confidence", n=1)
    assert list(r.index) == ["b"]
    assert list(q.relabel_ranking(t, by="entropy").index) == ["b", "a"]
    with pytest.raises(ValueError, match="by='nope' is not a column"):
        q.relabel_ranking(t, by="nope")
    t.loc["a", "ambiguity"] = np.nan
    with pytest.raises(ValueError, match="column 'ambiguity' is NaN for the labelled item 'a'"):
        q.relabel_ranking(t)


def test_filter_ambiguous() -> None:
    ann = Annotations([0, 1, 2, 3, 3, 4], [0, 0, 0, 0, 1, 1], [0, 1, 0, 1, 1, 0], n_items=6)
    scores = np.array([0.5, -1.0, 0.2, -0.5, 0.9, np.nan])  # item 5 has no label: NaN is fine
    res = q.filter_ambiguous(ann, scores, fraction=0.4)  # floor(0.4 * 5) = 2 lowest: items 1 and 3
    assert res.dropped.tolist() == [1, 3]
    assert res.kept.tolist() == [0, 2, 4, 5]
    assert res.threshold == -0.5
    assert res.annotations.n_items == 4 and res.annotations.n_labels == 3
    assert res.annotations.item_ids.tolist() == [0, 2, 4, 5]
    none = q.filter_ambiguous(ann, scores, fraction=0.0)
    assert none.dropped.size == 0 and none.threshold == float("-inf") and none.annotations.n_labels == 6
    with pytest.raises(ValueError, match="fraction must be a number in"):
        q.filter_ambiguous(ann, scores, fraction=1.0)
    bad = scores.copy()
    bad[2] = np.nan
    with pytest.raises(ValueError, match=r"scores\[2\] = nan \(item 2\) is not finite"):
        q.filter_ambiguous(ann, bad)


def test_label_margins_exact() -> None:
    p = np.array([[0.6, 0.3, 0.1], [0.4, 0.4, 0.2]])
    assert label_margins(p) == pytest.approx(np.array([[0.3, -0.3, -0.5], [0.0, 0.0, -0.2]]))


def test_waum_hand_example() -> None:
    ann = Annotations([0, 0, 1], [0, 1, 0], [0, 1, 1], n_items=3)
    margins = np.array([[0.5, -0.5], [-0.2, 0.2], [0.0, 0.0]])
    proba = np.array([[0.9, 0.1], [0.3, 0.7], [0.5, 0.5]])
    A = np.array([[[0.8, 0.4], [0.2, 0.6]], [[0.5, 0.5], [0.5, 0.5]]])
    w = q.waum(ann, margins, proba, A)
    s0 = 0.8 * 0.9 + 0.6 * 0.1  # annotator 0 on item 0
    s1 = 0.5 * 0.9 + 0.5 * 0.1
    assert w[0] == pytest.approx((s0 * 0.5 + s1 * -0.5) / (s0 + s1))
    assert w[1] == pytest.approx(0.2)
    assert np.isnan(w[2])
    with pytest.raises(ValueError, match=r"margins must have shape \(n_items, n_classes\) = \(3, 2\)"):
        q.waum(ann, margins[:2], proba, A)


def _spam_crowd() -> tuple[Annotations, np.ndarray, np.ndarray]:
    A = hammer_spammer_confusions(12, 3, hammer_fraction=0.5, hammer_accuracy=0.9, random_state=0)
    crowd = simulate_crowd(A, n_items=400, per_item=4, random_state=1)
    return crowd.annotations, crowd.true_labels, A


def test_crowdlab_on_simulated_crowd() -> None:
    ann, truth, _ = _spam_crowd()
    mv = ann.vote_counts().argmax(axis=1)
    # an uninformative model gets the smallest weight: the consensus is the annotator-weighted
    # vote, which discounts the spammers and beats the plain majority vote
    flat = q.crowdlab(ann, np.full((ann.n_items, 3), 1 / 3))
    assert flat.model_weight < 0.01
    assert (flat.consensus == truth).mean() > (mv == truth).mean() + 0.03
    rng = np.random.default_rng(0)
    # a good model (90% of its argmaxes right) with confident probabilities outweighs 4 labels
    right = rng.random(ann.n_items) < 0.9
    guess = np.where(right, truth, (truth + 1) % 3)
    proba = np.full((ann.n_items, 3), 0.15)
    proba[np.arange(ann.n_items), guess] = 0.7
    res = q.crowdlab(ann, proba)
    assert (res.consensus == truth).mean() > (mv == truth).mean()
    assert res.probas.sum(axis=1) == pytest.approx(np.ones(ann.n_items))
    assert res.consensus_quality.shape == (ann.n_items,) and res.label_quality.shape == (ann.n_labels,)
    assert ((res.label_quality > 0) & (res.label_quality < 1)).all()
    # hammers (first 6) rank above spammers (last 6)
    assert res.annotator_quality[:6].min() > res.annotator_quality[6:].max()
    assert res.annotator_weights[:6].min() > res.annotator_weights[6:].max()
    # the consensus quality ranks wrong consensus labels first
    wrong = res.consensus != truth
    assert res.consensus_quality[wrong].mean() < res.consensus_quality[~wrong].mean()


def test_crowdlab_tiny_exact() -> None:
    # two items, two annotators who always agree; a model that agrees with them
    ann = Annotations([0, 0, 1, 1], [0, 1, 0, 1], [0, 0, 1, 1])
    proba = np.array([[0.9, 0.1], [0.2, 0.8]])
    res = q.crowdlab(ann, proba)
    assert res.consensus.tolist() == [0, 1]
    # a_bar = 1 - 1e-6 (clipped), baseline 0.5, model accuracy 1 -> w_f = sqrt(2), w_m = 1 - 2e-6
    assert res.model_weight == pytest.approx(np.sqrt(2))
    assert res.annotator_weights == pytest.approx([1.0, 1.0], abs=1e-5)
    expected = (np.sqrt(2) * 0.9 + 2 * (1 - 1e-6)) / (np.sqrt(2) + 2 * (1 - 2e-6))
    assert res.consensus_quality[0] == pytest.approx(expected, rel=1e-5)
    assert res.agreement_with_consensus.tolist() == [1.0, 1.0]


def test_soft_confusions_exact() -> None:
    ann = Annotations([0, 1], [0, 0], [1, 0], n_annotators=2)
    post = np.array([[0.75, 0.25], [1.0, 0.0]])
    A = q.soft_confusions(ann, post, smoothing=0.0)
    # true class 0 mass: 0.75 said 1, 1.0 said 0; true 1: 0.25 said 1
    assert A[0] == pytest.approx(np.array([[1 / 1.75, 0.0], [0.75 / 1.75, 1.0]]))
    assert A[1] == pytest.approx(np.full((2, 2), 0.5))  # no labels: uniform


def test_annotator_scores_find_spammers_and_worst_class() -> None:
    ann, _, A_true = _spam_crowd()
    agg = DawidSkene().fit(ann)
    t = q.annotator_scores(ann, agg.probas_, confusions=agg.confusions_)
    assert list(t.columns) == [
        "n_labels",
        "agreement",
        "accuracy",
        "spammer_score",
        "worst_class",
        "worst_class_accuracy",
    ]
    spam = t["spammer_score"].to_numpy()
    assert spam[:6].min() > 0.6 and spam[6:].max() < 0.35
    acc = t["accuracy"].to_numpy()
    assert acc[:6].min() > acc[6:].max()
    # a spammer's worst class is the true class it names least
    m = 7
    assert t["worst_class"].iloc[m] == int(np.argmin(np.diagonal(A_true[m])))
    assert t["worst_class_accuracy"].iloc[m] == pytest.approx(agg.confusions_[m].diagonal().min())
    # default confusions from the posteriors; with a model: the CROWDLAB quality column
    t2 = q.annotator_scores(ann, agg.probas_, proba=agg.probas_)
    assert "quality" in t2.columns and t2["quality"].iloc[:6].min() > t2["quality"].iloc[6:].max()


def test_annotator_without_labels() -> None:
    ann = Annotations([0, 1], [0, 0], [0, 1], n_annotators=2, annotator_ids=["a", "b"])
    t = q.annotator_scores(ann, np.array([[1.0, 0.0], [0.0, 1.0]]))
    assert t.loc["b", "n_labels"] == 0
    assert np.isnan(t.loc["b", "agreement"]) and t.loc["b", "worst_class"] is None


def test_margin_recorder_with_crowd_classifier(one_torch_thread: None) -> None:
    from crowdlearn.estimators import CrowdClassifier
    from crowdlearn.simulate import item_features
    from crowdlearn.train import MarginRecorder

    A = hammer_spammer_confusions(8, 3, hammer_fraction=0.5, random_state=0)
    crowd = simulate_crowd(A, n_items=120, per_item=3, random_state=2)
    X = item_features(crowd.true_posteriors, 5, random_state=3).astype(np.float32)
    rec = MarginRecorder(X)
    with pytest.raises(ValueError, match="has recorded no epoch yet"):
        _ = rec.aum_
    clf = CrowdClassifier(epochs=1, validation="none", callbacks=[rec], random_state=0).fit(X, crowd.annotations)
    assert rec.n_epochs_ == 1
    # one epoch: the recorded margins are those of the final model
    assert rec.aum_ == pytest.approx(label_margins(clf.predict_proba(X)), abs=1e-5)
    every = MarginRecorder(X, every=2)
    clf = CrowdClassifier(epochs=3, validation="none", callbacks=[every], random_state=0).fit(X, crowd.annotations)
    assert every.n_epochs_ == 1 and every.aum_.shape == (120, 3)
    w = q.waum(crowd.annotations, every.aum_, clf.predict_proba(X), clf.confusions_)
    assert w.shape == (120,) and np.isfinite(w).all()
    with pytest.raises(ValueError, match="every must be an integer >= 1, got 0"):
        MarginRecorder(X, every=0)


def test_crowdlab_options_and_item_scores_with_a_model() -> None:
    ann = _tiny()
    proba = np.array([[0.7, 0.3], [0.2, 0.8], [0.6, 0.4]])
    with pytest.raises(ValueError, match="rounds must be an integer >= 1, got 0"):
        q.crowdlab(ann, proba, rounds=0)
    with pytest.raises(ValueError, match=r"proba must have shape \(n_items, n_classes\) = \(3, 2\)"):
        q.crowdlab(ann, proba[:2])
    res = q.crowdlab(ann, proba, rounds=1)
    # item c has no label: the ensemble is the model there
    assert res.probas[2] == pytest.approx(proba[2])
    t = q.item_scores(ann, np.array([[0.8, 0.2], [0.1, 0.9], [0.5, 0.5]]), proba=proba)
    assert t["quality"].tolist() == pytest.approx(q.crowdlab(ann, proba).consensus_quality.tolist())


def test_waum_zero_trust_falls_back_to_the_mean_margin() -> None:
    ann = Annotations([0, 0], [0, 1], [0, 1])
    zero = np.array([[[0.0, 1.0], [1.0, 0.0]]] * 2)  # always wrong: trust 0 everywhere
    w = q.waum(ann, np.array([[0.4, -0.2]]), np.array([[0.5, 0.5]]), zero)
    assert w[0] == pytest.approx(0.1)
