"""Union-Net A and B (Wei et al., IEEE TNNLS 2022): the union likelihood against plain loops, and through the estimator."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from crowdlearn import Annotations  # noqa: E402
from crowdlearn.estimators import CrowdClassifier  # noqa: E402
from crowdlearn.nn import CrowdModel, TraceRegularizer, get_method  # noqa: E402
from crowdlearn.nn import functional as CF  # noqa: E402
from crowdlearn.nn.heads.union_net import UnionLoss, UnionNet  # noqa: E402
from crowdlearn.train.batching import Batch  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

B, M, K, E = 5, 4, 3, 11
VARIANTS = ("a", "b")


def _case(seed: int = 0, annotators: int = M):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, K, generator=g, dtype=torch.float64)
    rows = torch.randint(0, B, (E,), generator=g)
    ann = torch.randint(0, annotators, (E,), generator=g)
    lab = torch.randint(0, K, (E,), generator=g)
    batch = Batch(np.arange(B), torch.zeros(B, 1), rows, ann, lab)
    return logits, batch


def _head(variant: str, seed: int = 1) -> UnionNet:
    head = UnionNet(M, K, variant=variant).double()  # type: ignore[arg-type]
    with torch.no_grad():
        head.transition.copy_(torch.randn(M, K, K, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return head


def _dense_union(head: UnionNet, logits: torch.Tensor) -> np.ndarray:
    """P((m, i) | x_n) for every item, annotator and class with plain loops, shape (B, M, K)."""
    t = head.transition.detach().numpy()
    f = logits.softmax(dim=1).numpy()
    out = np.empty((B, M, K))
    if head.variant == "a":  # softmax over the whole union of the linear layer's output
        for n in range(B):
            z = np.array([[sum(t[m, i, j] * f[n, j] for j in range(K)) for i in range(K)] for m in range(M)])
            out[n] = np.exp(z) / np.exp(z).sum()
    else:  # every column of T normalised over the whole union, then T f
        tn = np.empty_like(t)
        for j in range(K):
            tn[:, :, j] = np.exp(t[:, :, j]) / np.exp(t[:, :, j]).sum()
        for n in range(B):
            for m in range(M):
                for i in range(K):
                    out[n, m, i] = sum(tn[m, i, j] * f[n, j] for j in range(K))
    return out


@pytest.mark.parametrize("variant", VARIANTS)
def test_union_loss_matches_dense_reference(variant: str) -> None:
    logits, batch = _case()
    head = _head(variant)
    dense = _dense_union(head, logits)
    np.testing.assert_allclose(dense.sum(axis=(1, 2)), 1.0, atol=1e-12)  # one distribution over the union
    r, a, y = batch.rows.numpy(), batch.annotators.numpy(), batch.labels.numpy()
    want_loss = -np.log(dense[r, a, y]).sum() / B
    conditional = dense / dense.sum(axis=2, keepdims=True)  # annotator m's block, renormalised
    want_nll = -np.log(conditional[r, a, y]).mean()
    parts = UnionLoss()(CrowdModel(torch.nn.Identity(), head), logits, batch)
    assert set(parts) == {"loss", "nll"}
    np.testing.assert_allclose(float(parts["loss"].detach()), want_loss, rtol=0, atol=1e-10)
    np.testing.assert_allclose(float(parts["nll"].detach()), want_nll, rtol=0, atol=1e-10)
    union = head.union_log_probs(logits.log_softmax(dim=1), batch.rows, batch.annotators)
    np.testing.assert_allclose(union.exp().detach().numpy(), dense[r, a], rtol=0, atol=1e-12)
    # the head's forward is the renormalised block: what held-out validation scores
    out = head(logits.log_softmax(dim=1)[batch.rows], batch.annotators)
    np.testing.assert_allclose(out.exp().detach().numpy(), conditional[r, a], rtol=0, atol=1e-12)


def test_variant_a_conditional_is_a_crowdlayer_and_b_reweights_by_the_annotator_masses() -> None:
    logits, batch = _case(seed=2)
    log_f = logits.log_softmax(dim=1)[batch.rows]
    a = _head("a", seed=3)
    t = a.transition.detach()[batch.annotators]
    torch.testing.assert_close(
        a(log_f, batch.annotators), torch.log_softmax(torch.einsum("eij,ej->ei", t, log_f.exp()), 1)
    )
    b = _head("b", seed=3)
    masses = b.annotator_masses().detach()
    torch.testing.assert_close(masses.sum(dim=0), torch.ones(K, dtype=torch.float64))  # columns share the union
    conf = b.confusions().detach()[batch.annotators]
    post = log_f.exp() * masses[batch.annotators]
    post = post / post.sum(dim=1, keepdim=True)  # P(true j | x, m labels x)
    torch.testing.assert_close(b(log_f, batch.annotators).exp(), torch.einsum("eij,ej->ei", conf, post))
    with pytest.raises(ValueError, match="variant 'b' only"):
        a.annotator_masses()


@pytest.mark.parametrize("variant", VARIANTS)
def test_confusions_are_column_stochastic_and_the_head_on_one_hot_inputs(variant: str) -> None:
    head = _head(variant, seed=4)
    conf = head.confusions()
    assert conf.shape == (M, K, K)
    torch.testing.assert_close(conf.sum(dim=1), torch.ones(M, K, dtype=torch.float64))
    for j in range(K):
        onehot = torch.zeros(M, K, dtype=torch.float64)
        onehot[:, j] = 1.0
        torch.testing.assert_close(conf[:, :, j], head(onehot.log(), torch.arange(M)).exp())


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("variant", VARIANTS)
def test_gradients_reach_every_parameter_and_the_normaliser_every_annotator(variant: str, sparse: bool) -> None:
    _, batch = _case(seed=5, annotators=2)  # the batch's labels come from annotators 0 and 1 only
    x = torch.randn(B, 6, generator=torch.Generator().manual_seed(6))
    model = CrowdModel(torch.nn.Linear(6, K), UnionNet(M, K, variant=variant, sparse=sparse))  # type: ignore[arg-type]
    UnionLoss()(model, model(x), batch.replace(x=x))["loss"].backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        grad = p.grad.to_dense() if p.grad.is_sparse else p.grad
        assert bool(torch.isfinite(grad).all()) and grad.abs().sum() > 0, name
    grad = model.head.transition.grad
    assert grad.is_sparse == sparse
    # the union's normaliser runs over all M annotators by definition: 2 and 3 get a gradient too, but
    # a sparse head's gradient reaches the batch's annotators only (a lazy step leaves the others)
    assert (float(grad.to_dense()[2:].abs().sum()) > 0) != sparse


def _sparse_step_case(variant: str):
    head = _head(variant, seed=8)
    model = CrowdModel(torch.nn.Identity(), head)
    groups = head.param_groups(0.05)
    assert [g["sparse"] for g in groups] == [True]
    return model, head, torch.optim.SparseAdam(groups[0]["params"], lr=0.05)  # a lazy Adam, as the trainer's


def test_variant_b_sparse_normaliser_stays_exact_through_lazy_steps() -> None:
    """The cached column masses give the dense normaliser's value after every lazy step, with
    several calls per step (mixup views) and a no-gradient call between forward and step."""
    model, head, opt = _sparse_step_case("b")
    g = torch.Generator().manual_seed(11)
    for step in range(6):
        logits = torch.randn(B, K, generator=g, dtype=torch.float64)
        ann = torch.randint(0, M, (E,), generator=g) % (2 + step % 3)  # a few annotators a step, changing
        batch = Batch(np.arange(B), torch.zeros(B, 1), torch.randint(0, B, (E,), generator=g), ann, ann % K)
        opt.zero_grad()
        loss = UnionLoss()(model, logits, batch)["loss"] + UnionLoss()(model, logits.flip(0), batch)["loss"]
        with torch.no_grad():  # e.g. a validation pass before the step: must not lose the pending rows
            head(logits.log_softmax(dim=1)[batch.rows], torch.tensor([M - 1]).expand(E))
        loss.backward()
        opt.step()
        for probe in (torch.arange(M), torch.tensor([0, 3])):
            got = head.union_log_probs(logits.log_softmax(dim=1), torch.zeros(probe.numel(), dtype=torch.int64), probe)
            want = CF.annotator_log_probs(
                logits.log_softmax(dim=1)[:1].expand(probe.numel(), K), head.log_transition(), probe
            )
            torch.testing.assert_close(got, want, rtol=0, atol=1e-10)
    # an edit outside an optimizer step needs invalidate_cache (documented); a reload invalidates
    head.load_state_dict({"transition": head.transition.detach() + 1.0})
    probe = torch.arange(M)
    torch.testing.assert_close(
        head.union_log_probs(logits.log_softmax(dim=1), torch.zeros(M, dtype=torch.int64), probe),
        CF.annotator_log_probs(logits.log_softmax(dim=1)[:1].expand(M, K), head.log_transition(), probe),
        rtol=0,
        atol=1e-10,
    )


def test_variant_a_sparse_normaliser_is_the_batch_annotators_union_scaled() -> None:
    logits, batch = _case(seed=9, annotators=2)
    sparse, dense = _head("a", seed=4), _head("a", seed=4)
    dense.sparse = False
    log_f = logits.log_softmax(dim=1)
    got = sparse.union_log_probs(log_f, batch.rows, batch.annotators)
    t = sparse.transition.detach()[:2]  # the batch's annotators' blocks
    union = log_f.exp() @ t.flatten(0, 1).T  # (B, 2 K)
    block = torch.einsum("eij,ej->ei", t[batch.annotators], log_f.exp()[batch.rows])
    want = block - (torch.logsumexp(union, dim=1) + np.log(M / 2))[batch.rows].unsqueeze(1)
    torch.testing.assert_close(got, want)
    # the renormalised blocks (nll, the forward) do not depend on the normaliser
    full = dense.union_log_probs(log_f, batch.rows, batch.annotators)
    torch.testing.assert_close(got.log_softmax(dim=1), full.log_softmax(dim=1))
    every = torch.arange(M).repeat(2)  # every annotator in the batch: the dense union exactly
    rows = torch.arange(2 * M) % B
    torch.testing.assert_close(sparse.union_log_probs(log_f, rows, every), dense.union_log_probs(log_f, rows, every))


@pytest.mark.parametrize("variant", VARIANTS)
def test_initialisations(variant: str) -> None:
    eye = torch.eye(K)
    head = UnionNet(M, K, variant=variant, epsilon=0.1, scale=2.0)  # type: ignore[arg-type]
    torch.testing.assert_close(head.transition, (2.0 * (0.9 * eye + 0.05 * (1 - eye))).expand(M, K, K))
    assert float(UnionNet(M, K, variant=variant, init="uniform").transition.detach().abs().sum()) == 0.0  # type: ignore[arg-type]
    rng = np.random.default_rng(0)
    a = rng.dirichlet(np.ones(K), size=(M, K)).transpose(0, 2, 1)  # column-stochastic
    head = UnionNet(M, K, variant=variant, init=a, smoothing=1e-3)  # type: ignore[arg-type]
    np.testing.assert_allclose(head.confusions().detach().numpy(), 0.999 * a + 1e-3 / K, atol=1e-6)
    if variant == "b":  # every annotator's block starts with the same share of the union
        torch.testing.assert_close(head.annotator_masses().detach(), torch.full((M, K), 1.0 / M))
    with pytest.raises(ValueError, match="columns summing to 1"):
        UnionNet(M, K, variant=variant, init=np.ones((M, K, K)))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="variant must be 'a' or 'b'"):
        UnionNet(M, K, variant="c")  # type: ignore[arg-type]


def test_union_loss_refuses_other_heads_and_batches_it_cannot_use() -> None:
    logits, batch = _case()
    model = CrowdModel(torch.nn.Identity(), _head("b"))
    with pytest.raises(TypeError, match="UnionLoss needs a UnionNet head"):
        UnionLoss()(CrowdModel(torch.nn.Identity(), torch.nn.Identity()), logits, batch)
    with pytest.raises(TypeError, match="carries soft targets"):
        UnionLoss()(model, logits, batch.replace(targets=torch.ones(B, K)))
    empty = torch.zeros(0, dtype=torch.int64)
    with pytest.raises(ValueError, match="no observed labels"):
        UnionLoss()(model, logits, batch.replace(rows=empty, annotators=empty, labels=empty))
    parts = UnionLoss([TraceRegularizer(0.5)])(model, logits, batch)
    # a head without batch_confusions(): the mean of the M annotators' traces
    trace = float(torch.diagonal(model.head.confusions(), dim1=1, dim2=2).sum().detach()) / M
    np.testing.assert_allclose(float(parts["reg"].detach()), 0.5 * trace, atol=1e-10)
    np.testing.assert_allclose(
        float(parts["loss"].detach()), float(UnionLoss()(model, logits, batch)["loss"].detach()) + 0.5 * trace
    )
    crit = UnionLoss([TraceRegularizer(0.5)])
    crit.lam = 0.1  # what LambdaSchedule does
    assert crit.lam == 0.1 and crit.regularizers[0].weight == 0.1 and UnionLoss().lam == 0.0


# ---------------------------------------------------------------- through the estimator
def _crowd(seed: int = 0, n: int = 150, accuracy: float = 0.7):
    """An easy crowd: separable classes (one dominant), 5 annotators of about ``accuracy``, 3 labels an item."""
    rng = np.random.default_rng(seed)
    y = rng.choice(K, size=n, p=[0.5, 0.3, 0.2])
    x = (rng.normal(size=(n, 5)) + 2.5 * np.eye(K, 5)[y]).astype(np.float32)
    items = np.repeat(np.arange(n), 3)
    anns = np.concatenate([rng.choice(5, size=3, replace=False) for _ in range(n)])
    labels = np.where(rng.random(3 * n) < accuracy, y[items], rng.integers(0, K, 3 * n))
    return x, y, Annotations(items, anns, labels, n_items=n, n_annotators=5, n_classes=K)


@pytest.mark.parametrize("variant", VARIANTS)
def test_spec_declares_the_method(variant: str) -> None:
    spec = get_method(f"union-net-{variant}")
    assert spec.param_names == ("epsilon",) and spec.params[0].default == 1e-5
    assert not spec.instance_dependent and not spec.needs_representation
    clf = CrowdClassifier(method=f"union-net-{variant}", method_params={"epsilon": 0.01})
    assert isinstance(clf._make_criterion(), UnionLoss)
    head = clf._make_head(3, 2, "identity")
    assert isinstance(head, UnionNet) and head.variant == variant
    torch.testing.assert_close(head.transition[0], torch.tensor([[0.99, 0.01], [0.01, 0.99]]))


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("setting", [{"mixup": 0.4, "validation": "none"}, {"validation": "holdout"}])
def test_fits_with_mixup_and_with_holdout_validation(variant: str, setting) -> None:
    x, _, ann = _crowd(n=60)
    clf = CrowdClassifier(method=f"union-net-{variant}", epochs=2, batch_size=16, **setting).fit(x, ann)
    assert len(clf.history_.epochs) == 2 and all(np.isfinite(e["train_loss"]) for e in clf.history_.epochs)
    # the union's cross-entropy per item exceeds the per-annotator NLL per label (3 labels, mass 1/5 each)
    assert all(e["train_loss"] > e["train_nll"] for e in clf.history_.epochs)
    assert ("valid_loss" in clf.history_[-1]) == (setting["validation"] == "holdout")
    np.testing.assert_allclose(clf.confusions_.sum(axis=1), 1.0, atol=1e-6)


@pytest.mark.parametrize("variant", VARIANTS)
def test_save_load_gives_identical_predictions(tmp_path, variant: str) -> None:
    x, _, ann = _crowd(n=60)
    clf = CrowdClassifier(method=f"union-net-{variant}", epochs=3, batch_size=16, lr=1e-2, validation="none")
    clf.fit(x, ann).save(tmp_path / "m.safetensors")
    back = CrowdClassifier.load(tmp_path / "m.safetensors")
    np.testing.assert_array_equal(back.predict_proba(x), clf.predict_proba(x))
    np.testing.assert_array_equal(back.confusions_, clf.confusions_)
    assert back.get_params()["method"] == f"union-net-{variant}"


@pytest.mark.parametrize("variant", VARIANTS)
def test_learns_an_easy_crowd(variant: str) -> None:
    x, y, ann = _crowd(seed=1, n=240)
    clf = CrowdClassifier(method=f"union-net-{variant}", epochs=25, batch_size=64, lr=1e-2, validation="none")
    clf.fit(x, ann)
    majority = np.bincount(y).max() / len(y)
    assert majority < 0.6
    assert clf.score(x, y) > 0.85
    diag = np.diagonal(clf.confusions_, axis1=1, axis2=2)
    assert (diag > 0.5).all()  # annotators are right 70% + 10% of the time
