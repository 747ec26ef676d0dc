"""CoNAL (Chu, Ma & Wang, AAAI 2021): the head and its regularizer against plain loops, and through the estimator."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from crowdlearn import Annotations  # noqa: E402
from crowdlearn.estimators import CrowdClassifier  # noqa: E402
from crowdlearn.nn import MLP, CrowdLoss, CrowdModel, get_method  # noqa: E402
from crowdlearn.nn.heads.conal import CommonDistance, CoNAL  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

B, M, K, H, E = 5, 4, 3, 6, 12


def _case(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, K, generator=g, dtype=torch.float64)
    rep = torch.randn(B, H, generator=g, dtype=torch.float64)
    rows = torch.randint(0, B, (E,), generator=g)
    ann = torch.cat([torch.arange(M), torch.randint(0, M, (E - M,), generator=g)])  # every annotator once
    lab = torch.randint(0, K, (E,), generator=g)
    return logits, rep, rows, ann, lab


def _head(seed: int = 1, emb_dim: int = 5) -> CoNAL:
    head = CoNAL(M, K, rep_dim=H, emb_dim=emb_dim)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # away from the 2 I initialisation, so that w and the regularizer matter
        for p in head.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return head


def _dense(head: CoNAL, logits, rep, rows, ann, lab) -> tuple[np.ndarray, float, float]:
    """Per-pair log-probabilities, the mean NLL and sum_m ||W_m - W_c||_F with plain loops."""
    wc = head.common.detach().double().numpy()
    w = head.individual.detach().double().numpy()
    v_w = head.instance_proj.weight.detach().double().numpy()
    v_b = head.instance_proj.bias.detach().double().numpy()
    u_w = head.annotator_emb.detach().double().numpy()
    u_b = head.annotator_bias.detach().double().numpy()
    f = logits.softmax(dim=1).numpy()
    out = np.empty((E, K))
    for e in range(E):
        n, m = int(rows[e]), int(ann[e])
        v = v_w @ rep[n].numpy() + v_b
        u = u_w[m] + u_b
        weight = 1.0 / (1.0 + np.exp(-(v / np.linalg.norm(v)) @ (u / np.linalg.norm(u))))
        act = np.array(
            [sum((weight * wc[i, j] + (1 - weight) * w[m, i, j]) * f[n, j] for j in range(K)) for i in range(K)]
        )
        out[e] = act - np.log(np.exp(act).sum())
    nll = -float(np.mean([out[e, int(lab[e])] for e in range(E)]))
    dist = sum(float(np.sqrt(((w[m] - wc) ** 2).sum())) for m in range(M))
    return out, nll, dist


def test_head_matches_dense_loops_in_float64() -> None:
    logits, rep, rows, ann, lab = _case()
    head = _head().double()
    out = head(logits.log_softmax(dim=1)[rows], ann, rows=rows, representation=rep[rows])
    ref, _, dist = _dense(head, logits, rep, rows, ann, lab)
    assert out.shape == (E, K)
    np.testing.assert_allclose(out.detach().numpy(), ref, rtol=0, atol=1e-10)
    np.testing.assert_allclose(float(head.distances().sum().detach()), dist, rtol=0, atol=1e-10)


def test_loss_with_regularizer_matches_dense_reference() -> None:
    """Through CrowdModel (representation gathered by rows) and CrowdLoss: nll - lam * sum_m ||W_m - W_c||_F.

    CrowdModel computes in float32: values to 1e-6 (relative for the distance, about 20).
    """
    logits, rep, rows, ann, lab = _case(seed=3)
    head = _head(seed=4)
    model = CrowdModel(torch.nn.Identity(), head, needs_representation=True)
    parts = CrowdLoss(regularizers=[CommonDistance(0.3)])(model, logits, rows, ann, lab, rep)
    _, nll, dist = _dense(head, logits, rep, rows, ann, lab)
    assert set(parts) == {"loss", "nll", "reg", "conal_distance"}
    np.testing.assert_allclose(float(parts["nll"].detach()), nll, rtol=0, atol=1e-6)
    np.testing.assert_allclose(float(parts["conal_distance"].detach()), -dist, rtol=1e-6, atol=0)
    np.testing.assert_allclose(float(parts["loss"].detach()), nll - 0.3 * dist, rtol=1e-6, atol=1e-6)


def test_weight_is_in_the_sigmoid_of_a_cosine_and_depends_on_item_and_annotator() -> None:
    _, rep, rows, ann, _ = _case()
    head = _head().double()
    w = head.common_weight(ann, rep[rows])
    lo, hi = 1 / (1 + np.e), 1 / (1 + np.exp(-1))
    assert w.shape == (E,) and bool(((w > lo) & (w < hi)).all())
    same_item = head.common_weight(torch.arange(M), rep[:1].expand(M, H))
    same_annotator = head.common_weight(torch.zeros(B, dtype=torch.int64), rep)
    assert same_item.std() > 1e-3 and same_annotator.std() > 1e-3


def test_pair_confusions_are_column_stochastic_and_are_the_head_on_one_hot_inputs() -> None:
    _, rep, rows, ann, _ = _case()
    head = _head(seed=5).double()
    conf = head.pair_confusions(ann, rep[rows])
    assert conf.shape == (E, K, K)
    torch.testing.assert_close(conf.sum(dim=1), torch.ones(E, K, dtype=torch.float64))
    for j in range(K):
        onehot = torch.zeros(E, K, dtype=torch.float64)
        onehot[:, j] = 1.0
        out = head(onehot.log(), ann, representation=rep[rows])
        torch.testing.assert_close(conf[:, :, j], out.exp())
    # instance-dependent: one annotator, two items, two matrices
    two = head.pair_confusions(torch.zeros(2, dtype=torch.int64), rep[:2])
    assert (two[0] - two[1]).abs().max() > 1e-4
    # the initialisation: both kernels 2 I, so every pair confusion is softmax(2 I) whatever w
    fresh = CoNAL(M, K, rep_dim=H).double().pair_confusions(ann, rep[rows])
    torch.testing.assert_close(fresh, torch.softmax(2 * torch.eye(K, dtype=torch.float64), dim=0).expand(E, K, K))


def test_gradients_reach_every_parameter() -> None:
    _, _, rows, ann, lab = _case()
    x = torch.randn(B, 7, generator=torch.Generator().manual_seed(9))
    for start in (False, True):  # a random point, then the 2 I initialisation
        head = CoNAL(M, K, rep_dim=H) if start else _head(seed=6)
        model = CrowdModel(MLP(7, K, hidden=(H,), dropout=0.0), head, needs_representation=True)
        out, feats = model.forward_features(x)
        CrowdLoss(regularizers=[CommonDistance(0.1)])(model, out, rows, ann, lab, feats)["loss"].backward()
        for name, p in model.named_parameters():
            assert p.grad is not None, name
            grad = p.grad.to_dense() if p.grad.is_sparse else p.grad  # the per-annotator tables: sparse
            assert bool(torch.isfinite(grad).all()), name
            if start and name.startswith(("head.instance_proj", "head.annotator_")):
                # W_m = W_c at the start: the mixture does not depend on w, whose network gets exactly 0
                assert float(grad.abs().sum()) == 0.0, name
            else:
                assert grad.abs().sum() > 0, name


@pytest.mark.parametrize("sparse", [False, True])
def test_regularizer_gradient_is_zero_at_the_initialisation_and_pushes_apart_elsewhere(sparse: bool) -> None:
    _, rep, rows, ann, _ = _case()
    rep = rep.float()

    def forward(head: CoNAL) -> None:  # the sparse head's distance runs over the last forward's annotators
        head(torch.zeros(E, K), ann, representation=rep[rows])

    model = CrowdModel(torch.nn.Identity(), CoNAL(M, K, rep_dim=H, sparse=sparse), needs_representation=True)
    reg = CommonDistance(1.0)
    forward(model.head)
    reg(model, torch.zeros(1, K)).backward()
    assert float(model.head.individual.grad.to_dense().abs().sum()) == 0.0  # W_m = W_c: torch's zero subgradient
    head = _head(seed=7)
    head.sparse = sparse
    model = CrowdModel(torch.nn.Identity(), head, needs_representation=True)
    before = float(head.distances().sum().detach())
    forward(head)
    reg(model, torch.zeros(1, K)).backward()
    with torch.no_grad():
        head.individual -= 0.01 * head.individual.grad.to_dense()
        head.common -= 0.01 * head.common.grad
    assert float(head.distances().sum().detach()) > before
    with pytest.raises(TypeError, match="CommonDistance needs a CoNAL head"):
        reg(CrowdModel(torch.nn.Identity(), torch.nn.Identity()), torch.zeros(1, K))


def test_sparse_distance_is_the_dense_one_over_the_batch_annotators() -> None:
    """Value and gradients of the batch's distance: the paper's terms of the batch's annotators,
    nothing for the others; with every annotator in the batch, the dense sum exactly."""
    _, rep, rows, ann, _ = _case()
    rep = rep.float()
    for batch in (ann, ann[ann != 2]):  # every annotator, then without annotator 2
        grads = []
        for sparse in (False, True):
            head = _head(seed=3)
            head.sparse = sparse
            head(torch.zeros(batch.numel(), K), batch, representation=rep[rows][: batch.numel()])
            value = -CommonDistance(1.0)(CrowdModel(torch.nn.Identity(), head, needs_representation=True), rep)
            value.backward()
            grads.append((float(value.detach()), head.individual.grad.to_dense(), head.common.grad))
        present = torch.unique(batch)
        want = float(torch.linalg.vector_norm((head.individual - head.common)[present].flatten(1), dim=1).sum())
        assert grads[1][0] == pytest.approx(want, rel=1e-6)
        torch.testing.assert_close(grads[1][1][present], grads[0][1][present])
        if present.numel() == M:
            assert grads[1][0] == pytest.approx(grads[0][0], rel=1e-6)
            torch.testing.assert_close(grads[1][2], grads[0][2])
        else:
            assert float(grads[1][1][2].abs().sum()) == 0.0  # absent: no push
            assert head.individual.grad.is_sparse


def test_wrong_representation_width_is_a_clear_error() -> None:
    _, rep, rows, ann, _ = _case()
    head = CoNAL(M, K, rep_dim=H + 1)
    with pytest.raises(ValueError, match=r"rep_dim=7\) \(the estimator sizes it"):
        head(torch.zeros(E, K), ann, representation=rep[rows].float())
    with pytest.raises(ValueError, match="CoNAL needs the item representation"):
        head(torch.zeros(E, K), ann)


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


def test_spec_declares_the_method() -> None:
    spec = get_method("conal")
    assert spec.param_names == ("lam_diff", "emb_dim", "init_diag")
    assert [p.default for p in spec.params] == [1e-5, 20, 2.0]
    assert spec.instance_dependent and spec.needs_representation and spec.inits == ("identity",)
    clf = CrowdClassifier(method="conal", method_params={"lam_diff": 0.02, "emb_dim": 4})
    crit = clf._make_criterion()
    assert [type(r) for r in crit.regularizers] == [CommonDistance] and crit.regularizers[0].weight == 0.02
    head = clf._make_head(3, 2, "identity")
    assert isinstance(head, CoNAL) and head.emb_dim == 4 and head.rep_dim == 128


@pytest.mark.parametrize("setting", [{"mixup": 0.4, "validation": "none"}, {"validation": "holdout"}])
def test_fits_with_mixup_and_with_holdout_validation(setting) -> None:
    x, _, ann = _crowd(n=60)
    clf = CrowdClassifier(method="conal", epochs=2, batch_size=16, **setting).fit(x, ann)
    assert len(clf.history_.epochs) == 2
    assert all(np.isfinite(e["train_loss"]) and "train_conal_distance" in e for e in clf.history_.epochs)
    assert ("valid_loss" in clf.history_[-1]) == (setting["validation"] == "holdout")
    assert clf.confusions_.shape == (5, K, K)
    np.testing.assert_allclose(clf.confusions_.sum(axis=1), 1.0, atol=1e-6)


def test_save_load_gives_identical_predictions_and_pair_confusions(tmp_path) -> None:
    x, _, ann = _crowd(n=60)
    clf = CrowdClassifier(method="conal", epochs=3, batch_size=16, lr=1e-2, validation="none").fit(x, ann)
    clf.save(tmp_path / "m.safetensors")
    back = CrowdClassifier.load(tmp_path / "m.safetensors")
    who = np.arange(len(x)) % 5
    np.testing.assert_array_equal(back.predict_proba(x), clf.predict_proba(x))
    np.testing.assert_array_equal(back.predict_confusions(x, who), clf.predict_confusions(x, who))
    np.testing.assert_array_equal(back.confusions_, clf.confusions_)
    assert back.predict_confusions(x[:4], who[:4]).shape == (4, K, K)


def test_learns_an_easy_crowd() -> None:
    x, y, ann = _crowd(seed=1, n=240)
    clf = CrowdClassifier(method="conal", epochs=25, batch_size=64, lr=1e-2, validation="none").fit(x, ann)
    majority = np.bincount(y).max() / len(y)
    assert majority < 0.6
    assert clf.score(x, y) > 0.85
    # the learned confusions are diagonally dominant (annotators are right 70% + 10% of the time)
    diag = np.diagonal(clf.confusions_, axis1=1, axis2=2)
    assert (diag > 0.5).all()


def test_the_weight_network_is_sized_from_the_backbones_representation() -> None:
    x, _, ann = _crowd(n=40)
    clf = CrowdClassifier(method="conal", backbone="linear", epochs=1, validation="none")
    assert clf.fit(x, ann).model_.head.rep_dim == x.shape[1]  # the linear backbone's representation
