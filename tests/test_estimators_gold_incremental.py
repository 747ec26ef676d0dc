"""CrowdClassifier with gold labels (``known_labels``) and ``partial_fit``; the trainer's gold term."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from crowdlearn import Annotations, CrowdClassifier
from crowdlearn.nn import ConfusionMatrices, CrowdLoss, CrowdModel
from crowdlearn.simulate import diagonally_dominant_confusions, item_features, simulate_crowd
from crowdlearn.train import Trainer
from crowdlearn.train.batching import Inputs, make_batch

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# mixup 0: gold labels exclude mixup, and the default recipes of CCEM and GeoCrowdNet(F)/(W) have 0.2
FAST = {"validation": "none", "random_state": 0, "init": "identity", "schedule": "constant", "lr": 1e-2, "mixup": 0.0}


def _hard_crowd(n_items: int = 300) -> tuple[np.ndarray, Annotations, np.ndarray]:
    conf = diagonally_dominant_confusions(20, 4, accuracy=(0.3, 0.6), random_state=0)
    crowd = simulate_crowd(conf, n_items=n_items, per_item=2, random_state=0)
    X = item_features(crowd.true_posteriors, 10, separation=2.0, random_state=0)
    return X, crowd.annotations, crowd.true_labels


def test_gold_labels_raise_the_accuracy_on_the_other_items() -> None:
    X, ann, truth = _hard_crowd()
    known = np.full(ann.n_items, -1)
    known[:60] = truth[:60]
    rest = known < 0
    plain = CrowdClassifier(method="geocrowdnet-f", epochs=6, batch_size=64, **FAST).fit(X, ann)
    gold = CrowdClassifier(method="geocrowdnet-f", epochs=6, batch_size=64, **FAST).fit(X, ann, known_labels=known)
    acc_plain = (plain.predict(X)[rest] == truth[rest]).mean()
    acc_gold = (gold.predict(X)[rest] == truth[rest]).mean()
    assert acc_gold > acc_plain + 0.03, (acc_plain, acc_gold)  # measured: 0.792 -> 0.842
    assert gold.known_labels_.tolist() == known.tolist()
    assert "train_gold" in gold.history_[-1] and "train_gold" not in plain.history_[-1]
    assert (plain.known_labels_ == -1).all()


def test_gold_by_item_id_and_gold_items_without_crowd_labels() -> None:
    X, ann, truth = _hard_crowd(120)
    # two extra items with no crowd label at all, known only from gold
    X2 = np.concatenate([X, X[:2]])
    ann2 = Annotations(ann.items, ann.annotators, ann.labels, n_items=ann.n_items + 2, n_classes=4)
    gold = {ann.n_items: int(truth[0]), ann.n_items + 1: int(truth[1])}
    clf = CrowdClassifier(method="ccem", epochs=3, **FAST).fit(X2, ann2, known_labels=pd.Series(gold))
    assert clf.known_labels_[-2:].tolist() == [truth[0], truth[1]]


def test_unsupported_methods_and_mixup_raise_one_line() -> None:
    X, ann, truth = _hard_crowd(60)
    known = np.full(ann.n_items, -1)
    known[0] = truth[0]
    with pytest.raises(ValueError, match=r"method='madl' does not support known_labels .* methods that do: ccem"):
        CrowdClassifier(method="madl", epochs=1, validation="none").fit(X, ann, known_labels=known)
    with pytest.raises(ValueError, match=r"cannot be combined with the batch transform InputMixup .* mixup=0"):
        CrowdClassifier(method="ccem", epochs=1, validation="none", mixup=0.2).fit(X, ann, known_labels=known)
    with pytest.raises(ValueError, match=r"known_labels\[1\] = 9 is not one of the classes \[0, 1, 2, 3\]"):
        CrowdClassifier(method="ccem", epochs=1, validation="none").fit(X, ann, known_labels=[0, 9] + [-1] * 58)
    with pytest.raises(ValueError, match=r"known_labels must have shape \(n_items,\) = \(60,\)"):
        CrowdClassifier(method="ccem", epochs=1, validation="none").fit(X, ann, known_labels=[0, 1])


def test_trainer_gold_term_is_the_complete_data_likelihood() -> None:
    torch.manual_seed(0)
    ann = Annotations([0, 0, 1, 2], [0, 1, 1, 0], [1, 1, 0, 2], n_classes=3)
    model = CrowdModel(torch.nn.Linear(2, 3), ConfusionMatrices(2, 3, init="identity"))
    trainer = Trainer(model, CrowdLoss(), epochs=1, batch_size=8, device="cpu")
    x = torch.randn(3, 2)
    trainer._known = trainer._check_known(np.array([2, -1, -1]), ann)
    batch = make_batch(Inputs(x), ann, np.arange(3, dtype=np.int64))
    logits = model(batch.x)
    parts = trainer.get_loss(logits, batch)
    # item 0 is gold class 2: its labels' crowd term is log A_m[y, 2], plus log f(x_0)[2]
    A = model.head.confusions().detach()
    logf = logits.detach().log_softmax(1)
    crowd = torch.log(A[0, 1, 2]) + torch.log(A[1, 1, 2])
    crowd = crowd + torch.log((A[1] @ logf[1].exp())[0]) + torch.log((A[0] @ logf[2].exp())[2])
    expected_nll = -crowd / 4
    assert torch.allclose(parts["nll"], expected_nll, atol=1e-5)
    assert torch.allclose(parts["gold"], -logf[0, 2] / 4, atol=1e-6)
    assert torch.allclose(parts["loss"], parts["nll"] + parts["gold"])
    # the crowd term sends no gradient into the gold item's logits
    g = torch.autograd.grad(parts["nll"], logits)[0]
    assert torch.all(g[0] == 0) and torch.any(g[1] != 0)


def test_a_batch_of_gold_items_without_crowd_labels_averages_the_gold_term_over_them() -> None:
    torch.manual_seed(0)
    ann = Annotations([0], [0], [1], n_items=4, n_classes=3)  # items 1-3 carry no crowd label
    model = CrowdModel(torch.nn.Linear(2, 3), ConfusionMatrices(1, 3, init="identity"))
    trainer = Trainer(model, CrowdLoss(), epochs=1, batch_size=8, device="cpu")
    x = torch.randn(4, 2)
    trainer._known = trainer._check_known(np.array([-1, 0, 2, 1]), ann)
    batch = make_batch(Inputs(x), ann, np.array([1, 2, 3], dtype=np.int64))
    assert batch.labels.numel() == 0
    logits = model(batch.x)
    parts = trainer.get_loss(logits, batch)
    logf = logits.detach().log_softmax(1)
    expected = -(logf[0, 0] + logf[1, 2] + logf[2, 1]) / 3  # the mean over the 3 gold items, not their sum
    assert torch.allclose(parts["gold"], expected, atol=1e-6)
    assert torch.allclose(parts["loss"], parts["gold"])


def _split_crowd() -> tuple[np.ndarray, Annotations, Annotations, np.ndarray]:
    conf = diagonally_dominant_confusions(8, 3, accuracy=(0.5, 0.8), random_state=0)
    crowd = simulate_crowd(conf, n_items=300, per_item=3, random_state=0)
    X = item_features(crowd.true_posteriors, 10, separation=2.0, random_state=0)
    ann = crowd.annotations
    df = ann.to_frame()
    first = (df["annotator"] != 7) & (np.random.default_rng(0).random(len(df)) < 0.85)
    part = Annotations.from_ids(
        df["item"][first], df["annotator"][first], df["label"][first], item_ids=ann.item_ids.tolist(), classes=[0, 1, 2]
    )
    return X, ann, part, crowd.true_labels


def test_partial_fit_adds_annotators_and_gets_closer_to_the_full_fit() -> None:
    X, ann, part, _ = _split_crowd()
    full = CrowdClassifier(method="ccem", epochs=12, **FAST).fit(X, ann)
    inc = CrowdClassifier(method="ccem", epochs=12, **FAST).fit(X, part)
    assert 7 not in inc.annotator_ids_.tolist()
    before = inc.confusions_.copy()
    inc.partial_fit(X, ann, epochs=3)
    scratch = CrowdClassifier(method="ccem", epochs=3, **FAST).fit(X, ann)
    assert inc.annotator_ids_.tolist()[: len(before)] == part.annotator_ids.tolist()
    assert inc.annotator_ids_.tolist()[-1] == 7 and inc.confusions_.shape == (8, 3, 3)
    assert inc.epochs == 12 and len(inc.history_.epochs) == 3  # the parameter is restored
    pos = [inc.annotator_ids_.tolist().index(a) for a in full.annotator_ids_.tolist()]
    warm_gap = np.abs(inc.confusions_[pos] - full.confusions_).mean()
    cold_gap = np.abs(scratch.confusions_ - full.confusions_).mean()
    assert warm_gap < cold_gap, (warm_gap, cold_gap)  # measured: 0.021 < 0.044
    assert not np.allclose(inc.confusions_[: len(before)], before)  # it trained


@pytest.mark.filterwarnings("ignore::crowdlearn.estimators.UntrustedModelWarning")  # one epoch only
def test_partial_fit_errors_and_unfitted() -> None:
    X, ann, part, _ = _split_crowd()
    clf = CrowdClassifier(method="ccem", **FAST).partial_fit(X, part, epochs=1)  # unfitted: fit
    assert len(clf.history_.epochs) == 1 and clf.epochs == 1
    bad = Annotations.from_ids(["a"], ["x"], ["new"], item_ids=["a"])
    with pytest.raises(ValueError, match=r"y holds class 'new', not one of the classes the model was fitted on"):
        clf.partial_fit(X[:1], bad)
    with pytest.raises(ValueError, match=r"partial_fit is not supported by method='mbem'"):
        CrowdClassifier(method="mbem", epochs=1, validation="none").fit(X, ann).partial_fit(X, ann)


@pytest.mark.filterwarnings("ignore::crowdlearn.estimators.UntrustedModelWarning")  # two epochs only
@pytest.mark.parametrize("method", ["mv-train", "ds-train", "mbem"])
def test_methods_trained_on_targets_give_gold_items_their_class(method: str) -> None:
    from crowdlearn.nn import get_method
    from crowdlearn.nn.registry import TargetsContext

    X, ann, truth = _hard_crowd(120)
    known = np.full(ann.n_items, -1)
    known[:30] = (truth[:30] + 1) % 4  # not the crowd's answer: only gold can put it there
    spec = get_method(method)
    params = spec.resolve_params(None, {}, "test")
    proba = np.full((ann.n_items, 4), 0.25)
    for round_ in (0, 1) if method == "mbem" else (0,):
        ctx = TargetsContext(ann, params, round_, proba if round_ else None, 0, known_labels=known)
        targets = spec.targets(ctx)  # type: ignore[misc]
        assert targets is not None
        np.testing.assert_allclose(targets.targets[:30], np.eye(4)[known[:30]])
    clf = CrowdClassifier(method=method, epochs=2, validation="none").fit(X, ann, known_labels=known)
    assert clf.known_labels_[:30].tolist() == known[:30].tolist()


def test_a_spec_declares_how_it_takes_gold_labels() -> None:
    from crowdlearn.nn import MethodSpec

    with pytest.raises(ValueError, match="known_labels must be 'none', 'clamp' or 'targets', got 'yes'"):
        MethodSpec("g", "bad", lambda ctx: torch.nn.Identity(), known_labels="yes")
    with pytest.raises(ValueError, match="known_labels='targets' needs a targets hook"):
        MethodSpec("g", "bad", lambda ctx: torch.nn.Identity(), known_labels="targets")
