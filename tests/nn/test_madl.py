"""MaDL (Herde, Huseljic & Sick, TMLR 2023): head and loss against dense references, training."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from crowdlearn import Annotations  # noqa: E402
from crowdlearn.estimators import CrowdClassifier  # noqa: E402
from crowdlearn.nn import MLP, CrowdModel, get_method  # noqa: E402
from crowdlearn.nn.heads.madl import MaDLHead, MaDLLoss, prior_bias  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

M, K, H = 4, 3, 6


def _head(**kw: object) -> MaDLHead:
    torch.manual_seed(0)
    head = MaDLHead(M, K, representation_size=H, embed_size=5, hidden_size=7, **kw).double()  # type: ignore[arg-type]
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in head.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=g, dtype=torch.float64))
        for mod in head.modules():
            if isinstance(mod, torch.nn.BatchNorm1d):
                assert mod.running_mean is not None and mod.running_var is not None
                mod.running_mean.copy_(torch.randn(mod.running_mean.shape, generator=g, dtype=torch.float64))
                mod.running_var.copy_(torch.rand(mod.running_var.shape, generator=g, dtype=torch.float64) + 0.5)
    return head


def _records(e: int = 9, seed: int = 2) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    log_probs = torch.randn(e, K, generator=g, dtype=torch.float64).log_softmax(1)
    annotators = torch.randint(0, M, (e,), generator=g)
    rep = torch.randn(e, H, generator=g, dtype=torch.float64)
    labels = torch.randint(0, K, (e,), generator=g)
    return log_probs, annotators, rep, labels


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy().astype(np.float64)


def _bn(z: np.ndarray, mod: torch.nn.BatchNorm1d, train: bool) -> np.ndarray:
    if train:
        mean, var = z.mean(0), z.var(0)  # biased variance, as batch norm normalizes
    else:
        assert mod.running_mean is not None and mod.running_var is not None
        mean, var = _np(mod.running_mean), _np(mod.running_var)
    return (z - mean) / np.sqrt(var + mod.eps) * _np(mod.weight) + _np(mod.bias)


def _reference(head: MaDLHead, log_probs, annotators, rep, train: bool) -> tuple[np.ndarray, np.ndarray]:
    """log P(z | x, m) (E, K) and the row-stochastic confusions (E, K, K) [e, y, z], record by record."""
    wa, ba = _np(head.annotator_embedding.weight), _np(head.annotator_embedding.bias)
    ws, bs = _np(head.item_embedding.weight), _np(head.item_embedding.bias)
    u = _np(head.outer.weight)
    l1, bn1, _, l2, bn2 = head.hidden
    e_count, d = len(annotators), head.embed_size
    a = np.stack([wa[m] + ba for m in annotators.tolist()])
    s = np.stack([ws @ r + bs for r in _np(rep)])
    o = np.zeros((e_count, d))
    for e in range(e_count):
        f = a[e] + s[e]
        for k in range(d):
            o[e, k] = sum(u[k, i, j] * f[i] * f[j] for i in range(d) for j in range(d))
    z1 = np.concatenate([a, s, o], axis=1) @ _np(l1.weight).T + _np(l1.bias)
    h1 = np.maximum(_bn(z1, bn1, train), 0.0)
    z2 = _bn(h1 @ _np(l2.weight).T + _np(l2.bias), bn2, train)
    v = np.maximum(z2 + a, 0.0)
    lam = (v @ _np(head.output.weight).T + _np(head.output.bias)).reshape(e_count, K, K)
    conf = np.exp(lam) / np.exp(lam).sum(axis=2, keepdims=True)
    p = np.exp(_np(log_probs))
    out = np.empty((e_count, K))
    for e in range(e_count):
        for z in range(K):
            out[e, z] = math.log(sum(p[e, y] * conf[e, y, z] for y in range(K)))
    return out, conf


@pytest.mark.parametrize("train", [False, True])
def test_head_matches_dense_reference(train: bool) -> None:
    head = _head()
    head.train(train)
    log_probs, annotators, rep, _ = _records()
    want, conf = _reference(head, log_probs, annotators, rep, train)
    got = head(log_probs, annotators, rows=torch.arange(len(annotators)), representation=rep)
    assert got.shape == (len(annotators), K)
    np.testing.assert_allclose(_np(got), want, atol=1e-6, rtol=0)
    pair = head.pair_confusions(annotators, rep)  # column-stochastic [e, z, y]
    np.testing.assert_allclose(_np(pair), conf.transpose(0, 2, 1), atol=1e-6, rtol=0)
    np.testing.assert_allclose(_np(pair).sum(axis=1), 1.0, atol=1e-12)


def test_annotator_weights_prior_and_loss_match_dense_reference() -> None:
    head = _head()
    with torch.no_grad():
        assert head.log_gamma is not None
        head.log_gamma.fill_(math.log(0.7))
    gamma = 0.7
    emb = _np(head.annotator_embedding.weight) + _np(head.annotator_embedding.bias)
    dens = np.array([sum(math.exp(-gamma * ((emb[m] - emb[n]) ** 2).sum()) for n in range(M)) for m in range(M)])
    want_w = M * (1 / dens) / (1 / dens).sum()
    np.testing.assert_allclose(_np(head.annotator_weights()), want_w, atol=1e-9, rtol=0)
    assert head.annotator_weights().mean().item() == pytest.approx(1.0)
    f64 = {"dtype": torch.float64}
    gamma_dist = torch.distributions.Gamma(torch.tensor(1.25, **f64), torch.tensor(0.25, **f64))
    want_prior = float(gamma_dist.log_prob(torch.tensor(gamma, **f64)))
    assert head.log_prior().item() == pytest.approx(want_prior, abs=1e-9)

    # the loss through CrowdModel (which computes in float32) against the float64 reference
    head = head.float().eval()
    head.sparse = False  # the weights over all M (a sparse head estimates them from the batch's annotators)
    log_probs, annotators, rep, labels = _records()
    log_probs, rep = log_probs.float(), rep.float()
    ref, _ = _reference(head, log_probs, annotators, rep, train=False)
    picked = ref[np.arange(len(labels)), labels.numpy()]
    want_nll = -(want_w[annotators.numpy()] * picked).mean()
    model = CrowdModel(torch.nn.Identity(), head, needs_representation=True)
    rows = torch.arange(len(labels))
    parts = MaDLLoss()(model, log_probs, rows, annotators, labels, rep)  # log_softmax of log-probs is themselves
    assert parts["nll"].item() == pytest.approx(want_nll, abs=1e-6)
    assert parts["gamma_prior"].item() == pytest.approx(-want_prior, abs=1e-6)
    assert parts["loss"].item() == pytest.approx(want_nll - want_prior, abs=1e-6)


def test_sparse_record_weights_estimate_the_densities_from_the_batch_annotators() -> None:
    head = _head()
    assert head.sparse and head.log_gamma is not None
    with torch.no_grad():
        head.log_gamma.fill_(math.log(0.3))
    emb = _np(head.annotator_embedding.weight) + _np(head.annotator_embedding.bias)
    batch = torch.tensor([3, 0, 3, 1])  # annotators 0, 1, 3 of M = 4
    present = [0, 1, 3]
    kern = np.array([[math.exp(-0.3 * ((emb[m] - emb[n]) ** 2).sum()) for n in present] for m in present])
    dens = 1.0 + (kern.sum(axis=0) - 1.0) * (M - 1) / (len(present) - 1)  # the 2 others stand for all 3
    w = (1 / dens) * len(present) / (1 / dens).sum()
    want = w[[present.index(int(m)) for m in batch]]
    got = head.record_weights(batch)
    np.testing.assert_allclose(_np(got), want, atol=1e-9, rtol=0)
    got.sum().backward()  # differentiable in gamma only
    assert head.log_gamma.grad is not None and head.annotator_embedding.weight.grad is None
    every = torch.tensor([2, 0, 1, 3, 3])  # every annotator: the exact weights
    torch.testing.assert_close(head.record_weights(every), head.annotator_weights()[every])
    torch.testing.assert_close(head.record_weights(torch.tensor([2, 2])), torch.ones(2, dtype=torch.float64))


def test_sparse_embedding_gradient_holds_the_batch_annotators_only() -> None:
    head = _head().float()
    log_probs, annotators, rep, labels = _records()
    annotators = torch.arange(len(labels)) % 2  # annotators 0 and 1 only
    model = CrowdModel(torch.nn.Identity(), head, needs_representation=True)
    parts = MaDLLoss()(model, log_probs.float(), torch.arange(len(labels)), annotators, labels, rep.float())
    parts["loss"].backward()
    grad = head.annotator_embedding.weight.grad
    assert grad.is_sparse and sorted(grad.coalesce().indices()[0].tolist()) == [0, 1]
    groups = head.param_groups(0.01)
    assert [g["sparse"] for g in groups] == [False, True]
    assert groups[1]["params"] == [head.annotator_embedding.weight]
    # the dense head: the same values, a dense gradient
    dense = _head().float()
    dense.sparse = False
    dense_model = CrowdModel(torch.nn.Identity(), dense, needs_representation=True)
    out = dense_model.head(log_probs.float(), annotators, representation=rep.float())
    torch.testing.assert_close(out, model.head(log_probs.float(), annotators, representation=rep.float()))
    assert [g["sparse"] for g in dense.param_groups(0.01)] == [False]


def test_state_dicts_of_the_linear_layout_still_load() -> None:
    head = _head()
    state = head.state_dict()
    old = {k: v for k, v in state.items() if not k.startswith("annotator_embedding.")}
    old["annotator_embedding.linear.weight"] = state["annotator_embedding.weight"].t().clone()
    old["annotator_embedding.linear.bias"] = state["annotator_embedding.bias"].clone()
    fresh = MaDLHead(M, K, representation_size=H, embed_size=5, hidden_size=7).double()
    fresh.load_state_dict(old)
    torch.testing.assert_close(fresh.annotator_embedding.table(), head.annotator_embedding.table())


def test_duplicated_annotators_weigh_less() -> None:
    head = _head()
    with torch.no_grad():
        head.annotator_embedding.bias.zero_()
        head.annotator_embedding.weight.zero_()
        head.annotator_embedding.weight[3, :] = 2.0  # annotators 0-2 identical, 3 far away
    w = head.annotator_weights()
    assert torch.allclose(w[0], w[1]) and torch.allclose(w[1], w[2])
    assert w[3] > 2 * w[0]


def test_without_annotator_weights_the_loss_is_the_mean_nll() -> None:
    head = _head(gamma_shape=None, gamma_rate=None).float().eval()
    assert head.log_gamma is None
    log_probs, annotators, rep, labels = _records()
    log_probs, rep = log_probs.float(), rep.float()
    ref, _ = _reference(head, log_probs, annotators, rep, train=False)
    parts = MaDLLoss()(CrowdModel(torch.nn.Identity(), head, needs_representation=True), log_probs,
                       torch.arange(len(labels)), annotators, labels, rep)  # fmt: skip
    assert set(parts) == {"loss", "nll"}
    assert parts["loss"].item() == pytest.approx(-ref[np.arange(len(labels)), labels.numpy()].mean(), abs=1e-6)


def test_initial_confusions_have_eta_on_the_diagonal() -> None:
    head = MaDLHead(M, K, representation_size=H, eta=0.7)
    with torch.no_grad():
        head.output.weight.zero_()
    _, annotators, rep, _ = _records()
    conf = head.eval().pair_confusions(annotators, rep.float())
    eye = torch.eye(K).expand_as(conf).bool()
    assert torch.allclose(conf[eye], torch.tensor(0.7))
    assert torch.allclose(conf[~eye], torch.tensor(0.3 / (K - 1)))
    assert torch.allclose(prior_bias(K, 0.7).view(K, K).diag(), torch.full((K,), math.log(0.7 * 2 / 0.3)))


def test_confusions_depend_on_the_item() -> None:
    head = _head().eval()
    _, _, rep, _ = _records(e=5)
    conf = head.pair_confusions(torch.zeros(5, dtype=torch.int64), rep)
    assert (conf[0] - conf[1]).abs().max() > 1e-3


def test_gradients_reach_every_parameter_but_not_through_the_representation() -> None:
    torch.manual_seed(0)
    model = CrowdModel(MLP(5, K, hidden=(H,), dropout=0.0), MaDLHead(M, K, representation_size=H))
    g = torch.Generator().manual_seed(3)
    x = torch.randn(8, 5, generator=g)
    rows = torch.arange(8).repeat_interleave(2)
    annotators = torch.randint(0, M, (16,), generator=g)
    labels = torch.randint(0, K, (16,), generator=g)
    logits, rep = model.forward_features(x)
    MaDLLoss()(model, logits, rows, annotators, labels, rep)["loss"].backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    # the annotator-performance model reads a detached representation
    rep_leaf = rep.detach().requires_grad_(True)
    out = model.head(logits.detach().log_softmax(1)[rows], annotators, rows=rows, representation=rep_leaf[rows])
    out.sum().backward()
    assert rep_leaf.grad is None


def test_errors_name_the_fix() -> None:
    head = MaDLHead(M, K, representation_size=H)
    log_probs, annotators, _, _ = _records()
    with pytest.raises(ValueError, match=r"built for a 6-d item representation but got shape \(9, 4\)"):
        head(log_probs.float(), annotators, representation=torch.zeros(len(annotators), 4))
    with pytest.raises(ValueError, match=r"eta .* must be in \(0, 1\)"):
        MaDLHead(M, K, eta=1.0)
    with pytest.raises(ValueError, match="both gamma_shape and gamma_rate"):
        MaDLHead(M, K, gamma_shape=1.0, gamma_rate=None)


def _crowd(n: int = 48, seed: int = 7, acc: float = 0.6) -> tuple[np.ndarray, np.ndarray, Annotations]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, K, n)
    X = (rng.normal(size=(n, 5)) + 2.0 * np.eye(K, 5)[y]).astype(np.float32)
    items, annotators, labels = [], [], []
    for i in range(n):
        for a in rng.choice(M, size=3, replace=False):
            right = rng.random() < acc + 0.1 * a
            items.append(i)
            annotators.append(int(a))
            labels.append(int(y[i]) if right else int(rng.integers(0, K)))
    return X, y, Annotations(np.asarray(items), np.asarray(annotators), np.asarray(labels))


def test_spec() -> None:
    spec = get_method("madl")
    assert spec.instance_dependent and spec.needs_representation
    assert spec.make_transform is None  # CrowdClassifier(mixup=a) is the input mixup
    assert spec.resolve_params(None, {}, "CrowdClassifier") == {
        "eta": 0.8,
        "embed_size": 16,
        "annotator_weights": 1,
        "gamma_shape": 1.25,
        "gamma_rate": 0.25,
    }


def test_fits_with_mixup_and_with_holdout_validation() -> None:
    X, _, ann = _crowd()
    kw = {"method": "madl", "epochs": 2, "batch_size": 16, "random_state": 0}
    mixed = CrowdClassifier(mixup=0.4, validation="none", **kw).fit(X, ann)  # type: ignore[arg-type]
    plain = CrowdClassifier(validation="none", **kw).fit(X, ann)  # type: ignore[arg-type]
    assert mixed.history_[:, "train_loss"] != plain.history_[:, "train_loss"]  # the mixup was applied
    held = CrowdClassifier(validation="holdout", holdout_fraction=0.2, **kw).fit(X, ann)  # type: ignore[arg-type]
    assert all(np.isfinite(held.history_[:, "valid_loss"]))
    assert held.best_epoch_ is not None
    for clf in (mixed, plain, held):
        assert clf.confusions_.shape == (M, K, K)
        np.testing.assert_allclose(clf.confusions_.sum(axis=1), 1.0, atol=1e-5)
        assert np.all(np.isfinite(clf.history_[:, "train_gamma"]))


def test_save_load_round_trip(tmp_path: Path) -> None:
    X, _, ann = _crowd()
    clf = CrowdClassifier(method="madl", epochs=2, batch_size=16, validation="none").fit(X, ann)
    path = tmp_path / "madl.safetensors"
    clf.save(path)
    back = CrowdClassifier.load(path)
    np.testing.assert_array_equal(back.predict_proba(X), clf.predict_proba(X))
    ids = ann.annotator_ids[np.arange(len(X)) % M]
    np.testing.assert_array_equal(back.predict_confusions(X, ids), clf.predict_confusions(X, ids))
    np.testing.assert_array_equal(back.confusions_, clf.confusions_)


def test_learns_an_easy_crowd() -> None:
    X, y, ann = _crowd(n=120, seed=11, acc=0.55)
    clf = CrowdClassifier(method="madl", epochs=20, batch_size=32, lr=1e-2, validation="none", random_state=0)
    clf.fit(X, ann)
    majority = np.bincount(y).max() / len(y)
    assert clf.score(X, y) > majority + 0.3
