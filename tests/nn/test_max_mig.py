"""Max-MIG (Cao, Xu, Kong & Wang, ICLR 2019): aggregator head, MIG loss, estimator round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

from crowdlearn import Annotations  # noqa: E402
from crowdlearn.estimators import CrowdClassifier  # noqa: E402
from crowdlearn.nn import CrowdModel, get_method  # noqa: E402
from crowdlearn.nn.heads.max_mig import MaxMIGAggregator, MaxMIGLoss, mutual_information_gain  # noqa: E402
from crowdlearn.train.batching import Batch  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _crowd(n: int = 48, seed: int = 7, k: int = 3, m: int = 4) -> tuple[np.ndarray, np.ndarray, Annotations]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    X = (rng.normal(size=(n, 5)) + 2.0 * np.eye(k, 5)[y]).astype(np.float32)
    items, annotators, labels = [], [], []
    for i in range(n):
        for a in rng.choice(m, size=3, replace=False):
            right = rng.random() < 0.6 + 0.1 * a
            items.append(i)
            annotators.append(int(a))
            labels.append(int(y[i]) if right else int(rng.integers(0, k)))
    return X, y, Annotations(np.asarray(items), np.asarray(annotators), np.asarray(labels))


def _tiny() -> tuple[CrowdModel, torch.Tensor, Batch]:
    """4 rows, 3 classes, 5 annotators (annotator 4 unused), 7 labels; random weights and prior."""
    gen = torch.Generator().manual_seed(0)
    head = MaxMIGAggregator(5, 3).double()
    with torch.no_grad():
        head.weights.logits.copy_(torch.randn(5, 3, 3, generator=gen, dtype=torch.float64))
        head.prior_logits.copy_(torch.randn(3, generator=gen, dtype=torch.float64))
    model = CrowdModel(nn.Linear(2, 3).double(), head)
    logits = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    rows = torch.tensor([0, 0, 1, 2, 2, 2, 3])
    annotators = torch.tensor([0, 1, 1, 0, 2, 3, 3])
    labels = torch.tensor([2, 0, 1, 1, 1, 0, 2])
    batch = Batch(np.arange(4), torch.zeros(4, 2, dtype=torch.float64), rows, annotators, labels)
    return model, logits, batch


def _dense_reference(model: CrowdModel, logits: torch.Tensor, batch: Batch) -> tuple[np.ndarray, float, np.ndarray]:
    """The aggregator, the MIG and the label likelihood written out in plain loops."""
    head = model.head
    logit_w = head.weights.logits.detach().numpy()
    conf = np.exp(logit_w) / np.exp(logit_w).sum(axis=1, keepdims=True)  # C_m[i, j], columns sum to 1
    prior = np.exp(head.prior_logits.detach().numpy())
    prior /= prior.sum()
    h = torch.softmax(logits, dim=1).numpy()
    b, k = h.shape
    rows, ann, lab = (t.numpy() for t in (batch.rows, batch.annotators, batch.labels))
    g = np.zeros((b, k))
    for i in range(b):
        for c in range(k):
            g[i, c] = prior[c]
            for e in range(len(rows)):
                if rows[e] == i:
                    g[i, c] *= conf[ann[e], lab[e], c]
        g[i] /= g[i].sum()
    reward = np.zeros((b, b))
    for i in range(b):
        for j in range(b):
            reward[i, j] = sum(h[i, c] * g[j, c] / prior[c] for c in range(k))
    joint = sum(1.0 + np.log(reward[i, i]) for i in range(b)) / b
    product = sum(reward[i, j] for i in range(b) for j in range(b) if i != j) / (b * (b - 1))
    like = np.zeros((len(rows), k))
    for e in range(len(rows)):
        for z in range(k):
            like[e, z] = np.log(sum(conf[ann[e], z, j] * h[rows[e], j] for j in range(k)))
    return g, joint - product, like


def test_aggregator_loss_and_likelihood_match_a_dense_reference() -> None:
    model, logits, batch = _tiny()
    g_ref, mig_ref, like_ref = _dense_reference(model, logits, batch)
    head = model.head
    log_g = head.aggregate(batch.rows, batch.annotators, batch.labels, 4)
    np.testing.assert_allclose(log_g.exp().detach().numpy(), g_ref, rtol=0, atol=1e-6)
    parts = {k: v.detach() for k, v in MaxMIGLoss()(model, logits, batch).items()}
    assert abs(float(parts["mig"]) - mig_ref) < 1e-6
    assert float(parts["loss"]) == -float(parts["mig"])
    like = model.crowd_log_probs(logits, batch.rows, batch.annotators)  # the head's forward (held-out labels)
    np.testing.assert_allclose(like.detach().numpy(), like_ref, rtol=0, atol=1e-5)  # crowd_log_probs casts to float32
    np.testing.assert_allclose(
        head(logits.log_softmax(1)[batch.rows], batch.annotators).detach().numpy(), like_ref, atol=1e-6
    )
    # the forecaster is the normalised product h * g / p
    h = torch.softmax(logits, 1).numpy()
    prior = torch.softmax(head.prior_logits, 0).detach().numpy()
    zeta = h * g_ref / prior
    zeta /= zeta.sum(axis=1, keepdims=True)
    got = head.forecast(logits.log_softmax(1), batch.rows, batch.annotators, batch.labels).exp().detach().numpy()
    np.testing.assert_allclose(got, zeta, atol=1e-6)


def test_mig_is_zero_for_independent_sides_and_needs_two_rows() -> None:
    # h(x) uniform whatever the item: no information, R_ij = 1 for every pair, MIG = 1 + 0 - 1 = 0
    log_h = torch.full((5, 3), -float(np.log(3.0)), dtype=torch.float64)
    log_g = torch.randn(5, 3, dtype=torch.float64).log_softmax(1)
    uniform_p = torch.full((3,), -float(np.log(3.0)), dtype=torch.float64)
    assert abs(float(mutual_information_gain(log_h, log_g, uniform_p))) < 1e-12
    with pytest.raises(ValueError, match="at least 2 items in a batch"):
        mutual_information_gain(log_h[:1], log_g[:1], uniform_p)
    with pytest.raises(ValueError, match="need log_h"):
        mutual_information_gain(log_h, log_g[:, :2], uniform_p)


def test_gradients_reach_every_parameter_and_only_the_batch_annotators() -> None:
    model, _, batch = _tiny()
    x = torch.randn(4, 2, dtype=torch.float64)
    parts = MaxMIGLoss()(model, model(x), batch)
    parts["loss"].backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and bool(p.grad.abs().sum() > 0), name
    grad = model.head.weights.logits.grad
    assert bool(grad[4].abs().sum() == 0)  # annotator 4 has no label in the batch: untouched
    # with learn_prior=False the prior stays out of the optimisation
    fixed = MaxMIGAggregator(5, 3, learn_prior=False)
    assert not fixed.prior_logits.requires_grad
    torch.testing.assert_close(fixed.log_prior().exp(), torch.full((3,), 1 / 3))


def test_estimator_fits_with_mixup_and_holdout_and_round_trips(tmp_path: Path) -> None:
    X, _, ann = _crowd()
    spec = get_method("max-mig")
    assert spec.param_names == ("learn_prior",) and spec.make_criterion is not None
    for extra in ({"mixup": 0.4, "validation": "none"}, {"validation": "holdout", "holdout_fraction": 0.2}):
        clf = CrowdClassifier(method="max-mig", epochs=2, batch_size=16, lr=1e-2, random_state=0, **extra)
        clf.fit(X, ann)
        assert isinstance(clf.model_.head, MaxMIGAggregator)
        assert all(np.isfinite(e["train_mig"]) for e in clf.history_.epochs)
        if extra["validation"] == "holdout":
            assert all(np.isfinite(e["valid_loss"]) and e["valid_loss"] > 0 for e in clf.history_.epochs)
    np.testing.assert_allclose(clf.confusions_.sum(axis=1), 1.0, rtol=1e-6)
    path = tmp_path / "mig.safetensors"
    clf.save(path)
    back = CrowdClassifier.load(path)
    np.testing.assert_array_equal(back.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(back.confusions_, clf.confusions_)
    assert torch.equal(back.model_.head.prior_logits, clf.model_.head.prior_logits)


def test_learn_prior_and_mv_init() -> None:
    X, _, ann = _crowd()
    fixed = CrowdClassifier(
        method="max-mig", method_params={"learn_prior": 0}, init="mv", epochs=2, batch_size=16, validation="none"
    ).fit(X, ann)
    assert torch.equal(fixed.model_.head.prior_logits.detach(), torch.zeros(3))
    learned = CrowdClassifier(method="max-mig", epochs=2, batch_size=16, lr=1e-2, validation="none").fit(X, ann)
    assert bool(learned.model_.head.prior_logits.detach().abs().sum() > 0)
    with pytest.raises(ValueError, match="learn_prior"):
        CrowdClassifier(method="max-mig", method_params={"learn_prior": 2}, epochs=1).fit(X, ann)


def test_it_learns_an_easy_crowd() -> None:
    X, y, ann = _crowd(n=240, seed=1)
    clf = CrowdClassifier(method="max-mig", epochs=30, batch_size=32, lr=1e-2, validation="none", random_state=0)
    clf.fit(X, ann)
    accuracy = float((clf.predict_proba(X).argmax(1) == y).mean())
    majority = float(np.bincount(y).max() / len(y))
    assert majority < 0.4 and accuracy > 0.8, (accuracy, majority)
    # the aggregator's weights are confusion matrices aligned with the labels (diagonal dominant)
    diag = np.einsum("mii->mi", clf.confusions_)
    assert (diag.mean(axis=1) > 0.5).all()
