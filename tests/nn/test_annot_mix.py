"""Annot-Mix (Herde, Lührs, Huseljic & Sick, ECAI 2024): record mixup, head and loss, training."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from crowdlearn import Annotations  # noqa: E402
from crowdlearn.estimators import CrowdClassifier  # noqa: E402
from crowdlearn.nn import MLP, CrowdModel, get_method  # noqa: E402
from crowdlearn.nn.heads.annot_mix import AnnotatorLabelMix, AnnotMixHead, AnnotMixLoss, RecordMixup  # noqa: E402
from crowdlearn.train.batching import AnnotatorMix, Batch  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

M, K, H, D = 4, 3, 6, 5


def _randomize(module: torch.nn.Module, seed: int = 1) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=g, dtype=p.dtype))
        for mod in module.modules():
            if isinstance(mod, torch.nn.BatchNorm1d) and mod.running_mean is not None:
                assert mod.running_var is not None
                mod.running_mean.copy_(torch.randn(mod.running_mean.shape, generator=g, dtype=p.dtype))
                mod.running_var.copy_(torch.rand(mod.running_var.shape, generator=g, dtype=p.dtype) + 0.5)


def _head() -> AnnotMixHead:
    torch.manual_seed(0)
    head = AnnotMixHead(M, K, representation_size=H, embed_size=D)
    _randomize(head)
    return head


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy().astype(np.float64)


def _reference(head: AnnotMixHead, log_probs, annotators, rep, partners=None, weight=None) -> np.ndarray:
    """log P(z | x, a) (E, K) in eval mode, record by record, with the annotator mixture written out."""
    wa, ba = _np(head.annotator_embedding.weight).T, _np(head.annotator_embedding.bias)  # the Linear (D, M)
    ws, bs = _np(head.item_embedding.weight), _np(head.item_embedding.bias)
    _, lin, bn, _ = head.hidden
    assert bn.running_mean is not None and bn.running_var is not None
    out = np.empty((len(annotators), K))
    p = np.exp(_np(log_probs))
    for e, m in enumerate(annotators.tolist()):
        onehot = np.eye(M)[m]
        if partners is not None:
            t = float(weight[e])
            onehot = t * onehot + (1 - t) * np.eye(M)[int(partners[e])]
        a = wa @ onehot + ba  # the official Linear on the mixed one-hot vector
        s = ws @ _np(rep[e]) + bs
        z = lin.weight.detach().double().numpy() @ np.concatenate([s, a]) + _np(lin.bias)
        z = (z - _np(bn.running_mean)) / np.sqrt(_np(bn.running_var) + bn.eps) * _np(bn.weight) + _np(bn.bias)
        u = np.maximum(z, 0.0)
        lam = (_np(head.output.weight) @ u + _np(head.output.bias)).reshape(K, K)
        conf = np.exp(lam) / np.exp(lam).sum(axis=1, keepdims=True)  # [y, z]
        for zz in range(K):
            out[e, zz] = math.log(sum(p[e, y] * conf[y, zz] for y in range(K)))
    return out


def _records(e: int = 9, seed: int = 2):
    g = torch.Generator().manual_seed(seed)
    log_probs = torch.randn(e, K, generator=g).log_softmax(1)
    annotators = torch.randint(0, M, (e,), generator=g)
    rep = torch.randn(e, H, generator=g)
    return log_probs, annotators, rep, g


def test_head_matches_dense_reference_with_and_without_annotator_mixtures() -> None:
    head = _head().double().eval()
    log_probs, annotators, rep, g = _records()
    log_probs, rep = log_probs.double(), rep.double()
    got = head(log_probs, annotators, representation=rep)
    np.testing.assert_allclose(_np(got), _reference(head, log_probs, annotators, rep), atol=1e-6, rtol=0)
    partners = torch.randint(0, M, annotators.shape, generator=g)
    weight = torch.rand(annotators.shape, generator=g, dtype=torch.float64)
    mix = AnnotatorMix(partners, weight)
    got = head(log_probs, annotators, representation=rep, annotator_mix=mix)
    want = _reference(head, log_probs, annotators, rep, partners, weight)
    np.testing.assert_allclose(_np(got), want, atol=1e-6, rtol=0)
    conf = head.pair_confusions(annotators, rep)
    np.testing.assert_allclose(_np(conf).sum(axis=1), 1.0, atol=1e-12)


class _Backbone(torch.nn.Module):
    """Linear features and logits, with ``forward_features`` (no batch norm, no dropout)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = torch.nn.Linear(5, H)
        self.out = torch.nn.Linear(H, K)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)[0]

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rep = torch.tanh(self.features(x))
        return self.out(rep), rep


def _batch(seed: int = 4) -> Batch:
    g = torch.Generator().manual_seed(seed)
    rows = torch.tensor([0, 0, 1, 2, 2, 2, 3, 4, 5, 5])
    return Batch(
        items=np.arange(10, 16),
        x=torch.randn(6, 5, generator=g),
        rows=rows,
        annotators=torch.randint(0, M, rows.shape, generator=g),
        labels=torch.randint(0, K, rows.shape, generator=g),
    )


def test_record_mixup_mixes_inputs_annotators_and_labels_of_record_pairs() -> None:
    batch = _batch()
    x, views = RecordMixup(1.0)(batch, torch.Generator().manual_seed(0))
    (weight, view), e = views[0], len(batch.rows)
    assert len(views) == 1 and weight == 1.0 and x.shape == (e, 5)
    mix = view.annotator_mix
    assert isinstance(mix, AnnotatorLabelMix)
    assert torch.equal(view.rows, torch.arange(e)) and view.x is x
    assert torch.equal(view.annotators, batch.annotators) and torch.equal(view.labels, batch.labels)
    np.testing.assert_array_equal(view.items, batch.items[batch.rows.numpy()])
    t = mix.weight
    assert ((t > 0) & (t < 1)).all() and len(set(t.tolist())) == e  # one draw per record
    own = batch.x[batch.rows]
    for r in range(e):  # the partner record q: its input, annotator and label, all with weight 1 - t
        matches = [
            q
            for q in range(e)
            if torch.allclose(x[r], t[r] * own[r] + (1 - t[r]) * own[q], atol=1e-6)
            and mix.partners[r] == batch.annotators[q]
            and mix.partner_labels[r] == batch.labels[q]
        ]
        assert matches, r
    assert sorted(mix.partner_labels.tolist()) == sorted(batch.labels.tolist())  # a permutation of the records
    x2, _ = RecordMixup(1.0)(batch, torch.Generator().manual_seed(0))
    assert torch.equal(x, x2)  # the draws come from the generator


def test_loss_is_the_soft_target_cross_entropy_of_the_dense_reference() -> None:
    torch.manual_seed(0)
    model = CrowdModel(_Backbone(), _head(), needs_representation=True).eval()
    batch = _batch()
    x, [(_, view)] = RecordMixup(0.7)(batch, torch.Generator().manual_seed(1))
    logits, rep = model.forward_features(x)
    parts = AnnotMixLoss()(model, logits, view, rep)
    mix = view.annotator_mix
    assert isinstance(mix, AnnotatorLabelMix)
    ref = _reference(model.head, logits.log_softmax(1), view.annotators, rep, mix.partners, mix.weight)  # type: ignore[arg-type]
    targets = np.zeros((len(view.rows), K))  # t e_z + (1 - t) e_z'
    for r, (z, z2, t) in enumerate(zip(view.labels.tolist(), mix.partner_labels.tolist(), mix.weight.tolist())):
        targets[r, z] += t
        targets[r, z2] += 1 - t
    want = -(targets * ref).sum(axis=1).mean()
    assert parts["loss"].item() == pytest.approx(want, abs=1e-6)
    # an unmixed batch: the mean NLL of its labels
    logits, rep = model.forward_features(batch.x)
    plain = AnnotMixLoss()(model, logits, batch, rep)["loss"]
    ref = _reference(model.head, logits.log_softmax(1)[batch.rows], batch.annotators, rep[batch.rows])  # type: ignore[arg-type]
    assert plain.item() == pytest.approx(-ref[np.arange(len(batch.rows)), batch.labels.numpy()].mean(), abs=1e-6)


def test_gradients_reach_every_parameter_under_the_mixup() -> None:
    torch.manual_seed(0)
    model = CrowdModel(MLP(5, K, hidden=(H,), dropout=0.0), AnnotMixHead(M, K, representation_size=H, embed_size=D))
    x, [(_, view)] = RecordMixup(1.0)(_batch(), torch.Generator().manual_seed(2))
    logits, rep = model.forward_features(x)
    AnnotMixLoss()(model, logits, view, rep)["loss"].backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    rep_leaf = rep.detach().requires_grad_(True)  # the annotator-performance model reads it detached
    model.head(logits.detach().log_softmax(1), view.annotators, representation=rep_leaf).sum().backward()
    assert rep_leaf.grad is None


def test_mixup_sets_alpha() -> None:
    spec = get_method("annot-mix")
    assert spec.make_transform is not None
    params = spec.resolve_params(None, {}, "CrowdClassifier")
    assert params == {"alpha": 1.0, "eta": 0.9, "embed_size": 128, "dropout": 0.5}
    default = spec.make_transform(params, 0.0)
    assert isinstance(default, RecordMixup) and default.alpha == 1.0
    given = spec.make_transform(params, 0.4)
    assert isinstance(given, RecordMixup) and given.alpha == 0.4  # never InputMixup
    assert spec.make_transform(dict(params, alpha=0.0), 0.0) is None
    assert spec.make_transform(dict(params, alpha=0.4), 0.4).alpha == 0.4  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="mixup=0.4 sets alpha"):
        spec.make_transform(dict(params, alpha=0.2), 0.4)


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


_SMALL = {"method": "annot-mix", "epochs": 2, "batch_size": 16, "random_state": 0, "method_params": {"embed_size": 8}}


def test_fits_with_mixup_and_with_holdout_validation() -> None:
    X, _, ann = _crowd()
    at_04 = CrowdClassifier(mixup=0.4, validation="none", **_SMALL).fit(X, ann)  # type: ignore[arg-type]
    at_1 = CrowdClassifier(validation="none", **_SMALL).fit(X, ann)  # type: ignore[arg-type]
    assert at_04.history_[:, "train_loss"] != at_1.history_[:, "train_loss"]  # mixup=0.4 is another alpha
    explicit = CrowdClassifier(validation="none", **dict(_SMALL, method_params={"embed_size": 8, "alpha": 0.4}))
    assert explicit.fit(X, ann).history_[:, "train_loss"] == at_04.history_[:, "train_loss"]
    with pytest.raises(ValueError, match="sets alpha"):
        CrowdClassifier(mixup=0.4, **dict(_SMALL, method_params={"alpha": 2.0})).fit(X, ann)  # type: ignore[arg-type]
    held = CrowdClassifier(validation="holdout", holdout_fraction=0.2, mixup=0.4, **_SMALL).fit(X, ann)  # type: ignore[arg-type]
    assert held.best_epoch_ is not None
    # validation never mixes: the recorded held-out loss is the unmixed NLL of the held-out labels
    _, out = ann.split_holdout(0.2, random_state=0)
    model = held.model_.eval()
    with torch.no_grad():
        logits, rep = model.forward_features(torch.as_tensor(X))
        rows = torch.from_numpy(np.array(out.items))
        logp = model.crowd_log_probs(logits, rows, torch.from_numpy(np.array(out.annotators)), rep)
        nll = -logp.gather(1, torch.from_numpy(np.array(out.labels))[:, None]).mean().item()
    assert held.history_[held.best_epoch_]["valid_loss"] == pytest.approx(nll, abs=1e-5)
    for clf in (at_04, held):
        assert clf.confusions_.shape == (M, K, K)
        np.testing.assert_allclose(clf.confusions_.sum(axis=1), 1.0, atol=1e-5)


def test_save_load_round_trip(tmp_path: Path) -> None:
    X, _, ann = _crowd()
    clf = CrowdClassifier(validation="none", **_SMALL).fit(X, ann)  # type: ignore[arg-type]
    path = tmp_path / "annot_mix.safetensors"
    clf.save(path)
    back = CrowdClassifier.load(path)
    np.testing.assert_array_equal(back.predict_proba(X), clf.predict_proba(X))
    ids = ann.annotator_ids[np.arange(len(X)) % M]
    np.testing.assert_array_equal(back.predict_confusions(X, ids), clf.predict_confusions(X, ids))
    np.testing.assert_array_equal(back.confusions_, clf.confusions_)


def test_learns_an_easy_crowd() -> None:
    X, y, ann = _crowd(n=120, seed=11, acc=0.55)
    clf = CrowdClassifier(
        method="annot-mix", epochs=20, batch_size=32, lr=1e-2, validation="none", random_state=0,
        method_params={"embed_size": 16},
    )  # fmt: skip
    clf.fit(X, ann)
    majority = np.bincount(y).max() / len(y)
    assert clf.score(X, y) > majority + 0.3


def test_sparse_embedding_gradient_holds_the_records_and_partners_annotators_only() -> None:
    from crowdlearn.train.batching import AnnotatorMix

    head = AnnotMixHead(6, K, representation_size=H, embed_size=4).eval()  # no dropout draws
    assert head.sparse and [g["sparse"] for g in head.param_groups(0.01)] == [False, True]
    annotators, partners = torch.tensor([0, 2, 2, 0]), torch.tensor([2, 5, 0, 0])
    mix = AnnotatorMix(partners, torch.tensor([0.3, 0.6, 1.0, 0.5]))
    rep = torch.randn(4, H, generator=torch.Generator().manual_seed(3))
    log_probs = torch.randn(4, K).log_softmax(dim=1)
    out = head(log_probs, annotators, representation=rep, annotator_mix=mix)
    out.sum().backward()
    grad = head.annotator_embedding.weight.grad
    assert grad.is_sparse and grad.coalesce().indices()[0].tolist() == [0, 2, 5]
    dense = AnnotMixHead(6, K, representation_size=H, embed_size=4, sparse=False).eval()
    dense.load_state_dict(head.state_dict())
    torch.testing.assert_close(dense(log_probs, annotators, representation=rep, annotator_mix=mix), out)
    dense(log_probs, annotators, representation=rep, annotator_mix=mix).sum().backward()
    torch.testing.assert_close(dense.annotator_embedding.weight.grad, grad.to_dense())
