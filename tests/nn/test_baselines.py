"""Deep crowd-learning baselines as heads of the one model: CrowdLayer (MW, VW, VB)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from crowdlearn import Annotations
from crowdlearn.estimators import CrowdClassifier
from crowdlearn.nn import CROWDLAYER_KINDS, CrowdLayer, CrowdLoss, CrowdModel


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _case(seed: int = 0, b: int = 5, m: int = 4, k: int = 3, e: int = 11):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, k, generator=g, dtype=torch.float64)
    rows = torch.randint(0, b, (e,), generator=g)
    ann = torch.randint(0, m, (e,), generator=g)
    lab = torch.randint(0, k, (e,), generator=g)
    return logits, rows, ann, lab


def _randomize(layer: CrowdLayer, seed: int = 1) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(layer.weight.shape, generator=g, dtype=torch.float64))


def _dense_reference(layer: CrowdLayer, logits: torch.Tensor, rows, ann, lab) -> torch.Tensor:
    """Every (item, annotator) pair with numpy-style loops, then the observed ones picked out."""
    p = logits.softmax(dim=1).detach().numpy()
    w = layer.weight.detach().numpy()
    b, m = p.shape[0], layer.n_annotators
    dense = np.empty((b, m, p.shape[1]))
    for n in range(b):
        for a in range(m):
            if layer.kind == "mw":
                act = w[a] @ p[n]
            elif layer.kind == "vw":
                act = w[a] * p[n]
            else:
                act = p[n] + w[a]
            dense[n, a] = act - np.log(np.exp(act).sum())
    picked = dense[rows.numpy(), ann.numpy(), lab.numpy()]
    return torch.as_tensor(-picked.mean())


@pytest.mark.parametrize("kind", CROWDLAYER_KINDS)
def test_shapes_init_and_dense_reference(kind: str) -> None:
    logits, rows, ann, lab = _case()
    layer = CrowdLayer(4, 3, kind=kind)  # type: ignore[arg-type]
    assert layer.weight.shape == ((4, 3, 3) if kind == "mw" else (4, 3))
    init = {"mw": torch.eye(3).expand(4, 3, 3), "vw": torch.ones(4, 3), "vb": torch.zeros(4, 3)}[kind]
    torch.testing.assert_close(layer.weight, init)
    _randomize(layer)
    model = CrowdModel(torch.nn.Identity(), layer)
    out = model.crowd_log_probs(logits, rows, ann)
    assert out.shape == (11, 3)
    torch.testing.assert_close(out.exp().sum(dim=1), torch.ones(11))
    loss = CrowdLoss()(model, logits, rows, ann, lab)["loss"]
    torch.testing.assert_close(loss.double(), _dense_reference(layer, logits, rows, ann, lab), rtol=1e-5, atol=1e-6)


def test_variants_agree_at_initialization_and_equal_softmax_of_probabilities() -> None:
    """At init every variant gives softmax(p): cross-entropy with the probabilities used as logits.

    (Not plain cross-entropy on p and not CCEM with identity confusions: the softmax flattens p.)
    """
    logits, rows, ann, lab = _case(seed=3)
    losses = []
    for kind in CROWDLAYER_KINDS:
        model = CrowdModel(torch.nn.Identity(), CrowdLayer(4, 3, kind=kind))  # type: ignore[arg-type]
        losses.append(CrowdLoss()(model, logits, rows, ann, lab)["loss"])
    ref = torch.nn.functional.cross_entropy(logits.float().softmax(dim=1)[rows], lab)
    for value in losses:
        torch.testing.assert_close(value, ref)
    plain_ce = torch.nn.functional.cross_entropy(logits.float()[rows], lab)
    assert not torch.isclose(losses[0], plain_ce)


@pytest.mark.parametrize("kind", CROWDLAYER_KINDS)
def test_gradients_reach_backbone_and_head(kind: str) -> None:
    torch.manual_seed(0)
    x = torch.randn(5, 6)
    _, rows, ann, lab = _case()
    model = CrowdModel(torch.nn.Linear(6, 3), CrowdLayer(4, 3, kind=kind))  # type: ignore[arg-type]
    CrowdLoss()(model, model(x), rows, ann, lab)["loss"].backward()
    for p in model.parameters():
        assert p.grad is not None
        grad = p.grad.to_dense() if p.grad.is_sparse else p.grad  # the head's is sparse by default
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0


@pytest.mark.parametrize("kind", CROWDLAYER_KINDS)
def test_implied_confusions_are_column_stochastic_and_match_one_hot_inputs(kind: str) -> None:
    layer = CrowdLayer(4, 3, kind=kind)  # type: ignore[arg-type]
    _randomize(layer, seed=2)
    conf = layer.confusions()
    assert conf.shape == (4, 3, 3)
    torch.testing.assert_close(conf.sum(dim=1), torch.ones(4, 3))
    for j in range(3):  # column j is the label distribution of a one-hot probability vector e_j
        onehot = torch.zeros(4, 3)
        onehot[:, j] = 1.0
        out = layer(onehot.log(), torch.arange(4))
        torch.testing.assert_close(conf[:, :, j], out.exp())


def test_bad_kind_and_sizes() -> None:
    with pytest.raises(ValueError, match=r"kind must be one of 'mw', 'vw', 'vb', got 'mx'"):
        CrowdLayer(3, 2, kind="mx")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="need n_annotators >= 1 and n_classes >= 2"):
        CrowdLayer(0, 2)


def _toy(seed: int = 0, n: int = 150, k: int = 3, m: int = 4):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    x = 3.0 * np.eye(k, 5)[y] + rng.normal(size=(n, 5))
    items = np.repeat(np.arange(n), m)
    anns = np.tile(np.arange(m), n)
    flip = rng.random(n * m) < 0.3
    labels = np.where(flip, rng.integers(0, k, n * m), y[items])
    return x, y, Annotations(items, anns, labels, n_items=n, n_annotators=m, n_classes=k)


@pytest.mark.parametrize("method", ["crowdlayer-mw", "crowdlayer-vw", "crowdlayer-vb"])
def test_estimator_fit_confusions_and_save_load(tmp_path, method: str) -> None:
    x, y, ann = _toy()
    clf = CrowdClassifier(method=method, epochs=15, lr=1e-2, batch_size=64, validation="none").fit(x, ann)
    assert isinstance(clf.model_.head, CrowdLayer) and clf.model_.head.kind == method[-2:]
    assert clf.confusions_.shape == (4, 3, 3)
    np.testing.assert_allclose(clf.confusions_.sum(axis=1), 1.0, atol=1e-6)
    assert clf.score(x, y) > 0.8
    clf.save(tmp_path / "m.safetensors")
    back = CrowdClassifier.load(tmp_path / "m.safetensors")
    np.testing.assert_array_equal(back.predict_proba(x), clf.predict_proba(x))
    np.testing.assert_array_equal(back.confusions_, clf.confusions_)
    assert back.get_params()["method"] == method


def test_estimator_rejects_other_inits() -> None:
    x, _, ann = _toy(n=20)
    with pytest.raises(ValueError, match=r"'init' parameter .* must be 'identity' with method='crowdlayer-mw'"):
        CrowdClassifier(method="crowdlayer-mw", init="ds", epochs=1).fit(x, ann)
    with pytest.raises(ValueError, match=r"'method' parameter .* must be one of .*'crowdlayer-vb'"):
        CrowdClassifier(method="crowdlayer-xx", epochs=1).fit(x, ann)  # type: ignore[arg-type]
