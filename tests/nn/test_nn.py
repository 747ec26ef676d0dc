"""crowdlearn.nn: confusion layer, losses, regularizers, backbones."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from crowdlearn.nn import (
    MLP,
    ConfusionMatrices,
    CrowdLoss,
    CrowdModel,
    GeoCrowdNetFLoss,
    GeoCrowdNetWLoss,
    IdentityHead,
    LeNet,
    SmallResNet,
    TraceRegLoss,
    paper_mlp,
)
from crowdlearn.nn import functional as CF

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _random_case(seed: int = 0, b: int = 5, m: int = 4, k: int = 3, e: int = 11):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, k, generator=g, dtype=torch.float64)
    conf_logits = torch.randn(m, k, k, generator=g, dtype=torch.float64)
    rows = torch.randint(0, b, (e,), generator=g)
    ann = torch.randint(0, m, (e,), generator=g)
    lab = torch.randint(0, k, (e,), generator=g)
    return logits, conf_logits, rows, ann, lab


def test_columns_sum_to_one_and_identity_init() -> None:
    layer = ConfusionMatrices(3, 4, init="identity", scale=2.0)
    a = layer.confusions().detach()
    assert a.shape == (3, 4, 4)
    torch.testing.assert_close(a.sum(dim=1), torch.ones(3, 4))
    diag = np.e**2 / (np.e**2 + 3)
    torch.testing.assert_close(a[0].diagonal(), torch.full((4,), diag, dtype=a.dtype))
    u = ConfusionMatrices(2, 4, init="uniform").confusions().detach()
    torch.testing.assert_close(u, torch.full((2, 4, 4), 0.25))


def test_init_from_arrays_with_smoothing() -> None:
    a = np.zeros((2, 3, 3))
    a[0] = np.eye(3)
    a[1] = np.array([[0.5, 0.2, 0.0], [0.5, 0.8, 0.0], [0.0, 0.0, 1.0]])
    layer = ConfusionMatrices(2, 3, init=a, smoothing=0.03)
    expected = 0.97 * a + 0.01
    np.testing.assert_allclose(layer.confusions().detach().numpy(), expected, atol=1e-6)


def test_init_errors() -> None:
    with pytest.raises(ValueError, match=r"shape \(2, 3, 3\)"):
        ConfusionMatrices(2, 3, init=np.ones((2, 2, 2)) / 2)
    bad = np.ones((2, 3, 3)) / 3
    bad[1, :, 2] = [0.5, 0.5, 0.5]
    with pytest.raises(ValueError, match=r"annotator 1, column 2 sums to 1\.5"):
        ConfusionMatrices(2, 3, init=bad)
    with pytest.raises(ValueError, match="smoothing > 0"):
        ConfusionMatrices(1, 2, init=np.eye(2)[None], smoothing=0.0)
    with pytest.raises(ValueError, match="init must be"):
        ConfusionMatrices(1, 2, init="random")


def test_observed_pairs_loss_equals_dense_reference() -> None:
    logits, conf_logits, rows, ann, lab = _random_case()
    loss = CF.coupled_cross_entropy(logits.log_softmax(1), CF.log_confusions(conf_logits), rows, ann, lab)
    # dense reference: every item x annotator x class, then pick the observed ones
    f = logits.softmax(1).numpy()
    a = conf_logits.softmax(1).numpy()
    dense = np.einsum("mij,bj->bmi", a, f)  # (B, M, K)
    ref = -np.mean(np.log(dense[rows.numpy(), ann.numpy(), lab.numpy()]))
    assert float(loss) == pytest.approx(ref, rel=1e-10)
    per = CF.coupled_cross_entropy(
        logits.log_softmax(1), CF.log_confusions(conf_logits), rows, ann, lab, reduction="none"
    )
    assert per.shape == (11,)
    assert float(per.sum()) == pytest.approx(ref * 11, rel=1e-10)


def test_log_space_never_log_zero() -> None:
    # f puts (numerically) zero mass on class 0, A says class 1 only for class 0: log-space stays finite
    logits = torch.tensor([[-200.0, 0.0, 0.0]], dtype=torch.float64)
    conf = torch.tensor([[[-100.0, 0.0, 0.0], [100.0, 0.0, 0.0], [-100.0, 0.0, 0.0]]], dtype=torch.float64)
    out = CF.coupled_cross_entropy(
        logits.log_softmax(1), CF.log_confusions(conf), torch.tensor([0]), torch.tensor([0]), torch.tensor([1])
    )
    assert torch.isfinite(out)


def test_gradients_reach_backbone_and_confusions() -> None:
    torch.manual_seed(0)
    model = CrowdModel(MLP(4, 3, hidden=(8,), dropout=0.0), ConfusionMatrices(5, 3))
    x = torch.randn(6, 4)
    rows = torch.tensor([0, 0, 1, 2, 3, 4, 5, 5])
    ann = torch.tensor([0, 1, 2, 3, 4, 0, 1, 2])
    lab = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    for loss_fn in (CrowdLoss(), GeoCrowdNetFLoss(0.1), GeoCrowdNetWLoss(0.1), TraceRegLoss(0.1)):
        model.zero_grad()
        parts = loss_fn(model, model(x), rows, ann, lab)
        parts["loss"].backward()
        for name, p in model.named_parameters():
            assert p.grad is not None, name
            grad = p.grad.to_dense() if p.grad.is_sparse else p.grad  # the head's is sparse by default
            assert torch.isfinite(grad).all(), name
            assert float(grad.abs().sum()) > 0, name


def test_regularizers_match_numpy() -> None:
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.3, 0.3, 0.4]])
    eps = 1e-6
    ref_f = np.linalg.slogdet(probs.T @ probs + eps * np.eye(3))[1]
    assert float(CF.logdet_volume_f(torch.tensor(probs), eps=eps)) == pytest.approx(ref_f, rel=1e-12)
    a = np.stack([np.array([[0.9, 0.1], [0.1, 0.9]]), np.array([[0.6, 0.3], [0.4, 0.7]])])
    w = a.reshape(4, 2)  # W = [A_1; A_2]
    ref_w = np.linalg.slogdet(w.T @ w + eps * np.eye(2))[1]
    assert float(CF.logdet_volume_w(torch.tensor(a), eps=eps)) == pytest.approx(ref_w, rel=1e-12)
    assert float(CF.trace_regularizer(torch.tensor(a))) == pytest.approx(0.9 + 0.9 + 0.6 + 0.7)
    # hand case: identity predictions -> log det(I + eps I) = K log(1 + eps)
    assert float(CF.logdet_volume_f(torch.eye(3, dtype=torch.float64), eps=eps)) == pytest.approx(3 * np.log1p(eps))


@pytest.mark.parametrize(
    "probs",
    [
        torch.tensor([[0.2, 0.3, 0.5]]),  # B = 1 < K
        torch.tensor([[0.5, 0.5, 0.0, 0.0], [0.0, 0.5, 0.5, 0.0]]),  # B = 2 < K = 4
        torch.full((16, 5), 0.2),  # collapsed predictions: rank one
        torch.eye(4)[[0, 0, 0, 1]],  # one-hot, two classes never predicted
    ],
)
def test_logdet_f_finite_and_differentiable_on_degenerate_batches(probs: torch.Tensor) -> None:
    logits = torch.log(probs.clamp_min(1e-30)).requires_grad_(True)
    val = CF.logdet_volume_f(logits.softmax(1))
    assert torch.isfinite(val)
    assert val.dtype == torch.float32
    val.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


def test_logdet_w_finite_on_identical_rank_one_confusions() -> None:
    # every A_m (almost) uniform: W^T W is (numerically) rank one; exactly uniform is a stationary point
    logits = (1e-5 * torch.randn(3, 4, 4, generator=torch.Generator().manual_seed(0))).requires_grad_(True)
    val = CF.logdet_volume_w(logits.softmax(1))
    assert torch.isfinite(val)
    val.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
    assert float(logits.grad.abs().sum()) > 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ridge_logdet_node_equals_slogdet_through_autograd(dtype: torch.dtype) -> None:
    """The log-determinants' one autograd node (Cholesky, gradient from its inverse) gives
    slogdet's value and gradient, for F's batch Gram and W's stacked confusions."""
    gen = torch.Generator().manual_seed(3)
    for make, mats in (
        (CF.logdet_volume_f, torch.randn(9, 4, generator=gen, dtype=torch.float64)),
        (CF.logdet_volume_w, torch.randn(5, 4, 4, generator=gen, dtype=torch.float64)),
    ):
        logits = mats.to(dtype).requires_grad_(True)
        got = make(logits.softmax(-1 if mats.ndim == 2 else 1))
        assert got.dtype == dtype
        got.backward()
        grad = logits.grad.clone()
        logits.grad = None
        a = logits.softmax(-1 if mats.ndim == 2 else 1).to(torch.float64)
        flat = a if mats.ndim == 2 else a.reshape(-1, 4)
        want = torch.linalg.slogdet(flat.transpose(0, 1) @ flat + 1e-6 * torch.eye(4, dtype=torch.float64))[1]
        want.backward()
        tol = 1e-5 if dtype == torch.float32 else 1e-10
        torch.testing.assert_close(got.double(), want.detach(), rtol=tol, atol=tol)
        torch.testing.assert_close(grad.double(), logits.grad.double(), rtol=tol, atol=tol)


def test_nan_input_is_not_hidden() -> None:
    probs = torch.tensor([[float("nan"), 0.5], [0.5, 0.5]])
    assert not torch.isfinite(CF.logdet_volume_f(probs))


def test_shape_errors() -> None:
    with pytest.raises(ValueError, match=r"must have shape \(B, K\)"):
        CF.logdet_volume_f(torch.ones(3))
    with pytest.raises(ValueError, match="eps must be > 0"):
        CF.logdet_volume_f(torch.ones(2, 2), eps=0.0)
    with pytest.raises(ValueError, match="same length"):
        CF.coupled_cross_entropy(
            torch.zeros(2, 2), torch.zeros(1, 2, 2), torch.tensor([0]), torch.tensor([0, 0]), torch.tensor([0])
        )
    with pytest.raises(ValueError, match="reduction must be"):
        CF.coupled_cross_entropy(
            torch.zeros(1, 2),
            torch.zeros(1, 2, 2),
            torch.tensor([0]),
            torch.tensor([0]),
            torch.tensor([0]),
            reduction="avg",
        )  # type: ignore[arg-type]


def test_identity_head_is_plain_cross_entropy() -> None:
    torch.manual_seed(0)
    model = CrowdModel(torch.nn.Identity(), IdentityHead(1, 3))
    logits = torch.randn(4, 3)
    rows = torch.arange(4)
    lab = torch.tensor([0, 2, 1, 1])
    parts = CrowdLoss()(model, logits, rows, torch.zeros(4, dtype=torch.int64), lab)
    torch.testing.assert_close(parts["loss"], torch.nn.functional.cross_entropy(logits, lab))


def test_backbones_shapes() -> None:
    torch.manual_seed(0)
    m = paper_mlp(124, 10)
    assert m(torch.randn(8, 124)).shape == (8, 10)
    bns = [mod for mod in m.modules() if isinstance(mod, torch.nn.BatchNorm1d)]
    assert [b.num_features for b in bns] == [124, 128] and not any(b.affine for b in bns)
    assert LeNet(10)(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    assert SmallResNet(4, width=4)(torch.randn(2, 3, 16, 16)).shape == (2, 4)
    with pytest.raises(ValueError, match="dropout"):
        MLP(3, 2, dropout=1.5)
