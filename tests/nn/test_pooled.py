"""Partial pooling of the confusions (PooledConfusionMatrices + ConfusionPooling, method_params pool)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from crowdlearn import Annotations, CrowdClassifier  # noqa: E402
from crowdlearn.nn import functional as CF  # noqa: E402
from crowdlearn.nn import get_method  # noqa: E402
from crowdlearn.nn.confusion import ConfusionMatrices  # noqa: E402
from crowdlearn.nn.heads.pooled import ConfusionPooling, PooledConfusionMatrices  # noqa: E402
from crowdlearn.nn.losses import CrowdLoss, LogDetVolumeW, TraceRegularizer  # noqa: E402
from crowdlearn.nn.model import CrowdModel  # noqa: E402
from crowdlearn.simulate import simulate_crowd  # noqa: E402
from crowdlearn.train import Trainer  # noqa: E402
from crowdlearn.train.batching import Batch  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

M, K, D = 7, 3, 4
COUNTS = np.array([5, 1, 2, 9, 3, 1, 4])


def _model(sparse: bool, counts: np.ndarray = COUNTS) -> CrowdModel:
    torch.manual_seed(0)
    head = PooledConfusionMatrices(M, K, label_counts=counts, sparse=sparse)
    with torch.no_grad():
        head.logits.add_(0.5 * torch.randn_like(head.logits))  # annotators apart from one another
    return CrowdModel(torch.nn.Linear(D, K), head)


def _batch(annotators: list[int], seed: int) -> Batch:
    gen = torch.Generator().manual_seed(seed)
    e = len(annotators)
    return Batch(
        items=np.arange(e),
        x=torch.randn(e, D, generator=gen),
        rows=torch.arange(e),
        annotators=torch.tensor(annotators),
        labels=torch.randint(0, K, (e,), generator=gen),
    )


def _dense_penalty(head: PooledConfusionMatrices, annotators: list[int]) -> torch.Tensor:
    """The batch's share of the prior, label by label."""
    dev = head.logits.detach().double()
    n = head.label_counts.double()
    e = len(annotators)
    return sum((dev[m].square().sum() / (e * n[m]) for m in annotators), torch.zeros((), dtype=torch.float64))


def test_forward_and_label_log_probs_equal_the_dense_formulation() -> None:
    head = _model(sparse=True).head
    gen = torch.Generator().manual_seed(1)
    annotators = torch.tensor([5, 1, 5, 2, 1, 5])
    labels = torch.tensor([0, 2, 1, 1, 0, 2])
    log_probs = torch.log_softmax(torch.randn(6, K, generator=gen), dim=1)
    want = CF.annotator_log_probs(log_probs, head.log_confusions(), annotators)  # every annotator's A_m
    torch.testing.assert_close(head(log_probs, annotators), want)
    torch.testing.assert_close(head.label_log_probs(log_probs, annotators, labels), want[torch.arange(6), labels])
    torch.testing.assert_close(head.confusions().sum(dim=1), torch.ones(M, K))


def test_initial_confusions_are_the_base_heads() -> None:
    rng = np.random.default_rng(0)
    init = rng.dirichlet(np.ones(K), size=(M, K)).transpose(0, 2, 1)  # columns sum to 1
    for kwargs in ({"init": init}, {"init": "identity", "scale": 2.0}):
        base = ConfusionMatrices(M, K, **kwargs)
        pooled = PooledConfusionMatrices(M, K, **kwargs)
        torch.testing.assert_close(pooled.confusions(), base.confusions())
        torch.testing.assert_close(pooled.logits.mean(dim=0), torch.zeros(K, K), atol=1e-6, rtol=0)
    assert torch.equal(PooledConfusionMatrices(M, K, scale=2.0).shared, 2.0 * torch.eye(K))


def test_penalty_is_the_batch_share_of_the_prior_and_reaches_the_batch_annotators_only() -> None:
    model = _model(sparse=True)
    head = model.head
    batch = _batch([5, 1, 5, 2, 1, 5], 0)  # U = {1, 2, 5}
    logits = model.backbone(batch.x)
    loss = CrowdLoss(regularizers=[ConfusionPooling(2.0)])
    parts = loss(model, logits, batch.rows, batch.annotators, batch.labels)
    torch.testing.assert_close(parts["pool"].double(), _dense_penalty(head, [5, 1, 5, 2, 1, 5]), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(parts["loss"], parts["nll"] + 2.0 * parts["pool"])
    parts["pool"].backward()
    grad = head.logits.grad
    assert grad.is_sparse and head.shared.grad is None  # the prior is on the deviations only
    assert sorted(grad.coalesce().indices()[0].tolist()) == [1, 2, 5]
    dense = grad.to_dense()
    for u, w in ((1, 2 / (6 * 1)), (2, 1 / (6 * 2)), (5, 3 / (6 * 1))):  # d/dD_u of w_u ||D_u||^2
        torch.testing.assert_close(dense[u], 2 * w * head.logits.detach()[u], rtol=1e-5, atol=1e-7)


def test_a_sparse_step_moves_the_shared_logits_and_the_batch_annotators_only() -> None:
    model = _model(sparse=True)
    head = model.head
    trainer = Trainer(model, CrowdLoss(regularizers=[ConfusionPooling(1.0)]), lr=0.1, device="cpu", sink=lambda s: None)
    before_d, before_s = head.logits.detach().clone(), head.shared.detach().clone()
    trainer.train_step(_batch([1, 4, 1, 4], 1), 0, 0)
    absent = torch.tensor([0, 2, 3, 5, 6])
    assert torch.equal(head.logits.detach().index_select(0, absent), before_d.index_select(0, absent))
    assert not torch.equal(head.logits.detach()[1], before_d[1]) and not torch.equal(head.shared.detach(), before_s)


def test_sparse_equals_dense_when_every_annotator_is_in_every_batch() -> None:
    final = {}
    for sparse in (True, False):
        model = _model(sparse)
        loss = CrowdLoss(regularizers=[ConfusionPooling(3.0), LogDetVolumeW(0.1)])
        trainer = Trainer(model, loss, lr=0.05, device="cpu", sink=lambda s: None)
        for step in range(6):
            trainer.train_step(_batch([0, 1, 2, 3, 4, 5, 6, 3, 0], step), 0, step)
        final[sparse] = (model.head.logits.detach().clone(), model.head.shared.detach().clone())
    torch.testing.assert_close(final[True], final[False], rtol=1e-5, atol=1e-6)


def test_the_gram_is_over_every_annotator_and_the_trace_over_the_batch_labels() -> None:
    model = _model(sparse=True)
    head = model.head
    loss = CrowdLoss(regularizers=[ConfusionPooling(1.0), LogDetVolumeW(0.5), TraceRegularizer(0.1)])
    trainer = Trainer(model, loss, lr=0.1, device="cpu", sink=lambda s: None)
    for step in range(4):
        annotators = [step, step + 1, step + 1]
        parts = trainer.train_step(_batch(annotators, step), 0, step)
        assert np.isfinite(float(parts["trace"]))
        conf = head.confusions().detach().double()
        torch.testing.assert_close(head.volume_gram().detach(), torch.einsum("mij,mik->jk", conf, conf))
        # the last forward's annotators, weighed by their shares of its labels (1/3 and 2/3)
        head.label_log_probs(
            torch.log_softmax(torch.randn(3, K), 1), torch.tensor(annotators), torch.zeros(3, dtype=torch.long)
        )
        batch_conf, shares = head.batch_confusions()
        torch.testing.assert_close(batch_conf.detach().double(), conf[[step, step + 1]], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(shares, torch.tensor([1 / 3, 2 / 3], dtype=shares.dtype))
        expected = (torch.diagonal(conf[[step, step + 1]], dim1=1, dim2=2).sum(1) * torch.tensor([1, 2]) / 3).sum()
        torch.testing.assert_close(
            TraceRegularizer(1.0)(model, torch.zeros(3, K)).double(), expected, rtol=1e-5, atol=1e-6
        )


def test_pooling_beats_no_pooling_with_many_sparse_annotators() -> None:
    """200 annotators sharing one confusion, 6 labels each: the pooled prior recovers it better."""
    rng = np.random.default_rng(0)
    m, k, n = 200, 4, 600
    base = np.full((k, k), 0.1)
    np.fill_diagonal(base, 0.7)
    confusions = np.stack([base / base.sum(axis=0, keepdims=True)] * m)
    sim = simulate_crowd(confusions, n_items=n, per_item=2, random_state=0)
    x = (1.5 * rng.normal(size=(k, 5))[sim.true_labels] + rng.normal(size=(n, 5))).astype(np.float32)
    err = {}
    for pool in (0.0, 3.0):
        clf = CrowdClassifier(
            method="ccem",
            method_params={"pool": pool},
            epochs=30,
            lr=1e-2,
            batch_size=64,
            weight_decay=0.0,
            schedule="constant",
            init="identity",
            validation="none",
            random_state=0,
            device="cpu",
            verbose=0,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.fit(x, sim.annotations)
        assert isinstance(clf.model_.head, PooledConfusionMatrices if pool else ConfusionMatrices)
        assert ("train_pool" in clf.history_[-1]) == bool(pool)
        err[pool] = float(np.abs(clf.confusions_ - confusions).sum(axis=1).mean() / 2)  # mean TV per column
    assert err[3.0] < 0.6 * err[0.0], err


def test_pooled_estimator_saves_and_loads(tmp_path) -> None:
    rng = np.random.default_rng(1)
    ann = Annotations(
        rng.integers(0, 40, 120),
        rng.integers(0, 12, 120),
        rng.integers(0, 3, 120),
        n_items=40,
        n_annotators=12,
        n_classes=3,
        on_duplicate="first",
    )
    x = rng.normal(size=(40, 4)).astype(np.float32)
    clf = CrowdClassifier(method="geocrowdnet-w", method_params={"pool": 2.0}, epochs=2, validation="none", verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(x, ann)
    head = clf.model_.head
    np.testing.assert_array_equal(head.label_counts.numpy(), np.maximum(ann.annotator_counts, 1))
    clf.save(tmp_path / "m")
    back = CrowdClassifier.load(tmp_path / "m")
    assert isinstance(back.model_.head, PooledConfusionMatrices)
    np.testing.assert_allclose(back.predict_proba(x), clf.predict_proba(x), atol=1e-6)


def test_the_option_is_declared_by_the_confusion_methods_and_checked() -> None:
    for name in ("ccem", "geocrowdnet-f", "geocrowdnet-w", "tracereg"):
        spec = get_method(name)
        assert "pool" in spec.param_names and spec.params[spec.param_names.index("pool")].default == 0.0
    with pytest.raises(ValueError, match="pool"):
        CrowdClassifier(method="ccem", method_params={"pool": -1.0})._method_params()
    with pytest.raises(ValueError, match="must be finite and >= 0"):
        ConfusionPooling(-1.0)
    with pytest.raises(ValueError, match="label_counts must have shape"):
        PooledConfusionMatrices(M, K, label_counts=np.ones(M + 1))
    model = CrowdModel(torch.nn.Linear(D, K), ConfusionMatrices(M, K))
    with pytest.raises(TypeError, match="PooledConfusionMatrices"):
        ConfusionPooling(1.0)(model, torch.zeros(2, K))
