"""CrowdAR (Cao, Chen, Huang, Shen & Huang, SIGIR 2023): reliability head, loss, estimator round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

from crowdlearn import Annotations  # noqa: E402
from crowdlearn.estimators import CrowdClassifier  # noqa: E402
from crowdlearn.nn import MLP, CrowdModel, get_method  # noqa: E402
from crowdlearn.nn.heads.crowdar import CrowdARHead, CrowdARLoss, predict_reliability  # noqa: E402
from crowdlearn.train.batching import Batch  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _crowd(
    n: int = 48, seed: int = 7, accuracy: tuple[float, ...] = (0.6, 0.7, 0.8, 0.9)
) -> tuple[np.ndarray, np.ndarray, Annotations]:
    rng = np.random.default_rng(seed)
    k, m = 3, len(accuracy)
    y = rng.integers(0, k, n)
    X = (rng.normal(size=(n, 5)) + 2.0 * np.eye(k, 5)[y]).astype(np.float32)
    items, annotators, labels = [], [], []
    for i in range(n):
        for a in rng.choice(m, size=3, replace=False):
            right = rng.random() < accuracy[a]
            items.append(i)
            annotators.append(int(a))
            labels.append(int(y[i]) if right else int(rng.integers(0, k)))
    return X, y, Annotations(np.asarray(items), np.asarray(annotators), np.asarray(labels))


def _tiny(hidden: int = 4, rep_dim: int = 6) -> tuple[CrowdModel, torch.Tensor, torch.Tensor, Batch]:
    """4 rows, 3 classes, 3 annotators, 7 labels; random weights, w_3 with negative entries."""
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    head = CrowdARHead(3, 3, representation_dim=rep_dim, hidden=hidden)
    with torch.no_grad():
        head.annotation.weight.copy_(torch.randn(3, 3, 3, generator=gen))
        head.combine.weight.copy_(torch.tensor([[0.7, -0.4, 1.3]]))
        head.combine.bias.fill_(0.2)
    model = CrowdModel(nn.Linear(2, 3), head, needs_representation=True)
    logits = torch.randn(4, 3, generator=gen)
    rep = torch.randn(4, rep_dim, generator=gen)
    rows = torch.tensor([0, 0, 1, 2, 2, 3, 3])
    annotators = torch.tensor([0, 1, 1, 0, 2, 1, 2])
    labels = torch.tensor([2, 0, 1, 1, 1, 0, 2])
    batch = Batch(np.arange(4), torch.zeros(4, 2), rows, annotators, labels)
    return model, logits, rep, batch


def _sigmoid(v: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-v))


def _dense_reference(
    model: CrowdModel, logits: torch.Tensor, rep: torch.Tensor, batch: Batch, lam: float
) -> tuple[np.ndarray, dict[str, float]]:
    """Reliabilities and loss parts written out in plain loops (float64), with w_3 projected onto w_3 >= 0."""
    head = model.head
    d64 = {k: v.detach().double().numpy() for k, v in head.state_dict().items()}
    w_m = d64["annotation.weight"]
    w1, b1 = d64["difficulty_hidden.weight"], d64["difficulty_hidden.bias"]
    w2, b2 = d64["difficulty_out.weight"], d64["difficulty_out.bias"]
    w3, b3 = np.maximum(d64["combine.weight"][0], 0.0), d64["combine.bias"][0]
    q = torch.softmax(logits.double(), 1).numpy()
    x = rep.double().numpy()
    rows, ann, lab = (t.numpy() for t in (batch.rows, batch.annotators, batch.labels))
    k = q.shape[1]
    rel, ce, bce, nll = [], [], [], []
    for e in range(len(rows)):
        n, m, z = rows[e], ann[e], lab[e]
        hid = _sigmoid(w1 @ x[n] + b1)
        diff = _sigmoid(w2 @ hid + b2)
        expert = _sigmoid(d64["expertise"][m])
        r = _sigmoid(sum(w3[c] * (expert[c] - diff[c]) * q[n, c] for c in range(k)) + b3)
        act = np.array([sum(w_m[m, i, j] * q[n, j] for j in range(k)) for i in range(k)])
        log_s = act - np.log(np.exp(act).sum())
        soft = np.array([r * (c == z) + (1 - r) / k for c in range(k)])
        ce.append(-sum(soft[c] * log_s[c] for c in range(k)))
        target = 1.0 if int(np.argmax(q[n])) == z else 0.0
        bce.append(-(target * np.log(r) + (1 - target) * np.log(1 - r)))
        nll.append(-log_s[z])
        rel.append(r)
    annotation, reliability = float(np.mean(ce)), float(np.mean(bce))
    parts = {
        "annotation": annotation,
        "reliability": reliability,
        "nll": float(np.mean(nll)),
        "loss": lam * annotation + (1 - lam) * reliability,
    }
    return np.asarray(rel), parts


def test_reliability_and_loss_match_a_dense_reference() -> None:
    model, logits, rep, batch = _tiny()
    rel_ref, parts_ref = _dense_reference(model, logits, rep, batch, lam=0.7)
    parts = CrowdARLoss(0.7)(model, logits, batch, rep)
    for key, value in parts_ref.items():
        assert abs(float(parts[key].detach()) - value) < 1e-6, key
    head = model.head
    assert float(head.combine.weight.detach().min()) == 0.0  # projected onto w_3 >= 0 (was -0.4)
    score = head.reliability_logits(torch.softmax(logits, 1)[batch.rows], batch.annotators, rep[batch.rows])
    np.testing.assert_allclose(torch.sigmoid(score).detach().numpy(), rel_ref, atol=1e-6)
    # the annotator model is CrowdLayer MW: log_softmax(W_m q)
    like = model.crowd_log_probs(logits, batch.rows, batch.annotators, rep)
    act = torch.einsum("eij,ej->ei", head.annotation.weight[batch.annotators], torch.softmax(logits, 1)[batch.rows])
    torch.testing.assert_close(like, act.log_softmax(1))
    with pytest.raises(ValueError, match=r"representations of size 6, but the backbone gives shape \(2, 5\)"):
        head.difficulty(torch.zeros(2, 5))


def test_gradients_reach_every_parameter_but_not_the_features_through_the_difficulty() -> None:
    torch.manual_seed(0)
    head = CrowdARHead(3, 3, representation_dim=8, hidden=4)
    with torch.no_grad():
        head.combine.weight.copy_(torch.tensor([[0.5, 0.2, 0.9]]))  # w_3 > 0: every input of r counts
    model = CrowdModel(MLP(2, 3, hidden=(8,)), head, needs_representation=True)
    _, _, _, batch = _tiny()
    x = torch.randn(4, 2)
    logits, rep = model.forward_features(x)
    CrowdARLoss(0.9)(model, logits, batch, rep)["loss"].backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and bool(p.grad.abs().sum() > 0), name
    # the reliability network reads the representation detached: no gradient to the features from it
    rep = rep.detach().requires_grad_(True)
    head.reliability_logits(
        torch.softmax(logits.detach(), 1)[batch.rows], batch.annotators, rep[batch.rows]
    ).sum().backward()
    assert rep.grad is None or bool(rep.grad.abs().sum() == 0)


def test_the_projection_keeps_two_views_of_one_step_differentiable() -> None:
    model, logits, rep, batch = _tiny()
    head = model.head
    loss = CrowdARLoss()(model, logits, batch, rep)["loss"] + CrowdARLoss()(model, logits, batch, rep)["loss"]
    loss.backward()  # no in-place error: the second view found w_3 already projected
    with torch.no_grad():
        head.combine.weight.sub_(5.0)  # a step that leaves w_3 negative
    head.reliability_logits(torch.softmax(logits, 1)[batch.rows], batch.annotators, rep[batch.rows])
    assert not bool(head.combine.weight.detach().any())  # every entry was negative: all projected to 0


def test_estimator_fits_with_mixup_and_holdout_and_round_trips(tmp_path: Path) -> None:
    X, _, ann = _crowd()
    spec = get_method("crowdar")
    assert spec.needs_representation and spec.param_names == ("annotation_weight", "difficulty_dim")
    for extra in ({"mixup": 0.4, "validation": "none"}, {"validation": "holdout", "holdout_fraction": 0.2}):
        clf = CrowdClassifier(method="crowdar", epochs=2, batch_size=16, lr=1e-2, random_state=0, **extra)
        clf.fit(X, ann)
        assert isinstance(clf.model_.head, CrowdARHead)
        assert all(np.isfinite(e["train_reliability"]) for e in clf.history_.epochs)
        if extra["validation"] == "holdout":
            assert all(np.isfinite(e["valid_loss"]) and e["valid_loss"] > 0 for e in clf.history_.epochs)
    np.testing.assert_allclose(clf.confusions_.sum(axis=1), 1.0, rtol=1e-6)
    path = tmp_path / "crowdar.safetensors"
    clf.save(path)
    back = CrowdClassifier.load(path)
    np.testing.assert_array_equal(back.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(back.confusions_, clf.confusions_)
    x, a = torch.from_numpy(X[:6]), torch.tensor([0, 1, 2, 3, 0, 1])
    torch.testing.assert_close(predict_reliability(back.model_, x, a), predict_reliability(clf.model_, x, a))


def test_the_reliability_network_is_sized_from_the_backbones_representation(tmp_path: Path) -> None:
    X, _, ann = _crowd()
    clf = CrowdClassifier(method="crowdar", backbone="linear", epochs=1, validation="none").fit(X, ann)
    assert clf.model_.head.difficulty_hidden.in_features == X.shape[1]  # the linear backbone's representation
    clf.save(tmp_path / "linear.safetensors")
    back = CrowdClassifier.load(tmp_path / "linear.safetensors")
    np.testing.assert_array_equal(back.predict_proba(X), clf.predict_proba(X))


def test_it_learns_an_easy_crowd_and_trusts_the_good_annotators_more() -> None:
    # annotators 0 and 1 answer at random, 2 to 4 are right 90% of the time
    X, y, ann = _crowd(n=240, seed=1, accuracy=(0.0, 0.0, 0.9, 0.9, 0.9))
    clf = CrowdClassifier(method="crowdar", epochs=30, batch_size=32, lr=1e-2, validation="none", random_state=0)
    clf.fit(X, ann)
    accuracy = float((clf.predict_proba(X).argmax(1) == y).mean())
    majority = float(np.bincount(y).max() / len(y))
    assert majority < 0.4 and accuracy > 0.8, (accuracy, majority)
    x, a = torch.from_numpy(X[ann.items]), torch.from_numpy(ann.annotators.copy())
    rel = predict_reliability(clf.model_, x, a).numpy()
    per_annotator = np.array([rel[ann.annotators == m].mean() for m in range(5)])
    assert per_annotator[:2].max() < per_annotator[2:].min(), per_annotator
