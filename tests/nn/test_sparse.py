"""The batch's annotators only: gathered forward, sparse gradients, lazy Adam and the cached sums."""

from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from crowdlearn import Annotations  # noqa: E402
from crowdlearn.nn import functional as CF  # noqa: E402
from crowdlearn.nn.confusion import ConfusionMatrices  # noqa: E402
from crowdlearn.nn.crowdlayer import CrowdLayer  # noqa: E402
from crowdlearn.nn.losses import CrowdLoss, LogDetVolumeW, TraceRegularizer  # noqa: E402
from crowdlearn.nn.model import CrowdModel  # noqa: E402
from crowdlearn.train import Trainer  # noqa: E402
from crowdlearn.train.batching import Batch  # noqa: E402
from crowdlearn.train.optim import AdamWithSparse  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

M, K, D = 7, 3, 4


@pytest.fixture(params=["small", "big"])
def rows_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both forms of the label likelihood's log-softmax over the rows: one ``log_softmax`` with a
    dense ``G`` in the backward (below ``_BIG_ROWS`` entries), and ``A`` kept for the backward
    (from ``_BIG_ROWS`` on; forced here with a threshold of 0)."""
    if request.param == "big":
        monkeypatch.setattr(CF, "_BIG_ROWS", 0)
    return str(request.param)


def _dense_forward(head: torch.nn.Module, log_probs: torch.Tensor, annotators: torch.Tensor) -> torch.Tensor:
    """The formulation before the gather: every annotator's matrices, indexed per label."""
    if isinstance(head, ConfusionMatrices):
        return CF.annotator_log_probs(log_probs, CF.log_confusions(head.logits), annotators)
    assert isinstance(head, CrowdLayer)
    w = head.weight.index_select(0, annotators)
    p = log_probs.exp()
    a = torch.bmm(w, p.unsqueeze(2)).squeeze(2) if head.kind == "mw" else (w * p if head.kind == "vw" else p + w)
    return torch.log_softmax(a, dim=1)


def _heads(sparse: bool) -> list[torch.nn.Module]:
    torch.manual_seed(0)
    heads: list[torch.nn.Module] = [ConfusionMatrices(M, K, sparse=sparse)]
    heads += [CrowdLayer(M, K, kind=kind, sparse=sparse) for kind in ("mw", "vw", "vb")]  # type: ignore[arg-type]
    with torch.no_grad():
        for h in heads:
            for p in h.parameters():
                p.add_(0.3 * torch.randn_like(p))  # away from the symmetric initializations
    return heads


@pytest.mark.parametrize("sparse", [False, True])
def test_gathered_forward_equals_dense_forward_values_and_gradients(sparse: bool) -> None:
    gen = torch.Generator().manual_seed(1)
    annotators = torch.tensor([5, 1, 5, 2, 1, 5])  # U = {1, 2, 5}; 0, 3, 4, 6 absent
    log_probs = torch.log_softmax(torch.randn(6, K, generator=gen), dim=1)
    upstream = torch.randn(6, K, generator=gen)
    for head in _heads(sparse):
        param = next(head.parameters())
        got = head(log_probs, annotators)
        (got * upstream).sum().backward()
        grad = param.grad.to_dense() if param.grad.is_sparse else param.grad
        assert param.grad.is_sparse == sparse
        param.grad = None
        want = _dense_forward(head, log_probs, annotators)
        (want * upstream).sum().backward()
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
        torch.testing.assert_close(grad, param.grad, rtol=1e-5, atol=1e-7)
        absent = torch.tensor([0, 3, 4, 6])
        assert torch.count_nonzero(grad.index_select(0, absent)) == 0
        if sparse:  # the sparse gradient stores the batch's distinct annotators' rows only
            stored = torch.unique(head_grad_rows(head, log_probs, annotators, upstream))
            assert stored.tolist() == [1, 2, 5]


def head_grad_rows(head: torch.nn.Module, log_probs: torch.Tensor, annotators: torch.Tensor, up: torch.Tensor):
    param = next(head.parameters())
    param.grad = None
    (head(log_probs, annotators) * up).sum().backward()
    return param.grad.coalesce().indices()[0]


def _model(m: int, sparse: bool) -> CrowdModel:
    torch.manual_seed(0)
    return CrowdModel(torch.nn.Linear(D, K), ConfusionMatrices(m, K, sparse=sparse))


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


@pytest.mark.parametrize("regularizer", [None, "logdet_w", "trace"])
def test_sparse_step_leaves_absent_annotators_and_their_moments_untouched(
    regularizer: str | None, rows_path: str
) -> None:
    regs = {"logdet_w": [LogDetVolumeW(0.1)], "trace": [TraceRegularizer(0.1)], None: []}[regularizer]
    moved = {}
    for sparse in (True, False):
        model = _model(M, sparse)
        trainer = Trainer(model, CrowdLoss(regularizers=regs), lr=0.05, device="cpu", sink=lambda s: None)
        assert isinstance(trainer.optimizer, AdamWithSparse) == sparse
        trainer.train_step(_batch([0, 1, 2, 3, 4, 5, 6], 0), 0, 0)  # every annotator: moments everywhere
        logits = model.head.logits.detach().clone()
        state = {k: v.clone() for k, v in trainer.optimizer.state[model.head.logits].items() if torch.is_tensor(v)}
        trainer.train_step(_batch([1, 4, 1, 4], 1), 0, 1)  # only annotators 1 and 4
        after = model.head.logits.detach()
        absent = torch.tensor([0, 2, 3, 5, 6])
        moved[sparse] = not torch.equal(after.index_select(0, absent), logits.index_select(0, absent))
        assert not torch.equal(after[1], logits[1]) and not torch.equal(after[4], logits[4])
        if sparse:
            for name in ("exp_avg", "exp_avg_sq"):
                new = trainer.optimizer.state[model.head.logits][name]
                assert torch.equal(new.index_select(0, absent), state[name].index_select(0, absent)), name
                assert not torch.equal(new[1], state[name][1]), name
    assert moved == {True: False, False: True}  # dense Adam's momentum moves the absent ones


def test_cached_gram_equals_the_dense_sum_after_steps(tmp_path) -> None:
    model = _model(M, True)
    loss = CrowdLoss(regularizers=[LogDetVolumeW(0.5), TraceRegularizer(0.1)])
    trainer = Trainer(model, loss, lr=0.1, device="cpu", sink=lambda s: None)
    head = model.head
    gen = np.random.default_rng(3)
    for step in range(12):
        # steps 4 and 5 hold every annotator: the sums over all M, the cache dropped, then rebuilt
        annotators = list(range(M)) if step in (4, 5) else gen.choice(M, size=3).tolist()
        trainer.train_step(_batch(annotators, step), 0, step)
        assert (head._cache is None) == (step in (4, 5))
        conf = head.confusions().detach().double()
        torch.testing.assert_close(head.volume_gram().detach(), torch.einsum("mij,mik->jk", conf, conf))
    # a loaded state replaces every annotator's logits: the cache must follow
    other = _model(M, True)
    with torch.no_grad():
        other.head.logits.mul_(3.0)
    model.load_state_dict(other.state_dict())
    head(torch.log_softmax(torch.randn(2, K), 1), torch.tensor([0, 1]))
    conf = head.confusions().detach().double()
    torch.testing.assert_close(head.volume_gram().detach(), torch.einsum("mij,mik->jk", conf, conf))


def test_cached_regularizers_give_the_dense_values_and_touched_gradients() -> None:
    head = _heads(True)[0]
    model = CrowdModel(torch.nn.Linear(D, K), head)
    log_probs = torch.log_softmax(torch.randn(4, K), dim=1)
    for reg, dense in (
        (LogDetVolumeW(1.0), lambda: -CF.logdet_volume_w(head.confusions())),
        # TraceReg: each label's annotator's trace, averaged over the batch's labels
        (TraceRegularizer(1.0), lambda: CF.trace_regularizer(head.confusions()[[2, 6, 2, 0]]) / 4),
    ):
        head.logits.grad = None
        head(log_probs, torch.tensor([2, 6, 2, 0]))
        value = reg(model, torch.zeros(4, K))
        assert value.dtype == torch.float32
        torch.testing.assert_close(value, dense(), rtol=1e-6, atol=1e-6)
        value.backward()
        assert head.logits.grad.is_sparse
        assert torch.unique(head.logits.grad.coalesce().indices()[0]).tolist() == [0, 2, 6]


def test_sparse_optimizer_state_round_trips_and_keeps_stepping() -> None:
    model = _model(M, True)
    trainer = Trainer(model, CrowdLoss(), lr=0.05, device="cpu", sink=lambda s: None)
    trainer.train_step(_batch([0, 3, 3], 0), 0, 0)
    saved = copy.deepcopy(trainer.optimizer.state_dict())  # state_dict() shares the moment tensors
    twin = Trainer(_model(M, True), CrowdLoss(), lr=0.05, device="cpu", sink=lambda s: None)
    twin.model.load_state_dict(model.state_dict())
    twin.optimizer.load_state_dict(saved)
    for t in (trainer, twin):
        t.optimizer.param_groups[1]["lr"] = 0.01  # a schedule writes the shared groups
        t.train_step(_batch([3, 5], 1), 0, 1)
    torch.testing.assert_close(twin.model.head.logits, model.head.logits, rtol=0, atol=0)
    assert twin.optimizer.sparse is not None and twin.optimizer.sparse.param_groups[0]["lr"] == 0.01


def test_fit_with_sparse_heads_trains_every_confusion_method() -> None:
    rng = np.random.default_rng(0)
    n = 40
    y = rng.integers(0, K, n)
    X = (rng.normal(size=(n, D)) + 2 * np.eye(K, D)[y]).astype(np.float32)
    items = np.repeat(np.arange(n), 2)
    annotators = np.concatenate([rng.choice(30, size=2, replace=False) for _ in range(n)])  # M = 30
    labels = np.where(rng.random(items.size) < 0.8, y[items], rng.integers(0, K, items.size))
    ann = Annotations(items, annotators, labels, n_items=n, n_annotators=30, n_classes=K)
    for head, regs in (
        (ConfusionMatrices(30, K, sparse=True), [LogDetVolumeW(0.01)]),
        (ConfusionMatrices(30, K, sparse=True), [TraceRegularizer(0.01)]),
        (CrowdLayer(30, K, kind="mw", sparse=True), []),
    ):
        torch.manual_seed(0)
        trainer = Trainer(
            CrowdModel(torch.nn.Linear(D, K), head),
            CrowdLoss(regularizers=regs),
            epochs=3,
            batch_size=8,
            lr=0.05,
            device="cpu",
            sink=lambda s: None,
        )
        history = trainer.fit(X, ann)
        losses = [e["train_loss"] for e in history.epochs]
        assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (AMP runs on CUDA only)")
def test_amp_keeps_the_log_determinants_in_float32() -> None:
    from crowdlearn.nn.losses import LogDetVolumeF

    torch.manual_seed(0)
    model = CrowdModel(torch.nn.Linear(D, K), ConfusionMatrices(M, K, sparse=True))
    loss = CrowdLoss(regularizers=[LogDetVolumeF(0.1), LogDetVolumeW(0.1)])
    trainer = Trainer(model, loss, lr=0.05, device="cuda", amp=True, sink=lambda s: None)
    batch = _batch([0, 1, 2, 3, 4, 5, 6], 0).to(trainer.device)
    parts = trainer.forward_loss(batch.x, lambda logits, rep: trainer.get_loss(logits, batch, rep))
    with trainer.autocast():
        half = model(batch.x)
    assert half.dtype == torch.float16  # autocast is on for the backbone
    assert parts["logdet_f"].dtype == torch.float32 and parts["logdet_w"].dtype == torch.float32
    values = trainer.train_step(batch, 0, 0)
    assert all(np.isfinite(v) for v in values.values())


class _Wrapper(torch.nn.Module):
    """A plug-in head using a ConfusionMatrices inside, without param_groups."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = ConfusionMatrices(M, K, sparse=True)

    def forward(self, log_probs: torch.Tensor, annotators: torch.Tensor) -> torch.Tensor:
        return self.inner(log_probs, annotators)


def test_a_sparse_layer_inside_a_head_without_groups_is_made_dense() -> None:
    torch.manual_seed(0)
    model = CrowdModel(torch.nn.Linear(D, K), _Wrapper())
    trainer = Trainer(model, CrowdLoss(), lr=0.05, device="cpu", sink=lambda s: None)
    assert isinstance(trainer.optimizer, torch.optim.Adam) and not model.head.inner.sparse
    before = model.head.inner.logits.detach().clone()
    trainer.train_step(_batch([0, 2], 0), 0, 0)  # dense Adam would refuse a sparse gradient
    assert not model.head.inner.logits.grad.is_sparse
    assert not torch.equal(model.head.inner.logits.detach(), before)


@pytest.mark.parametrize("sparse", [False, True])
def test_label_log_probs_is_the_forward_at_the_labels(sparse: bool, rows_path: str) -> None:
    head = _heads(sparse)[0]
    gen = torch.Generator().manual_seed(2)
    annotators = torch.tensor([3, 0, 3, 6, 6])
    labels = torch.tensor([2, 0, 1, 1, 2])
    log_probs = torch.log_softmax(torch.randn(5, K, generator=gen), dim=1).requires_grad_(True)
    got = head.label_log_probs(log_probs, annotators, labels)
    got.sum().backward()
    grads = (log_probs.grad.clone(), head.logits.grad.to_dense() if sparse else head.logits.grad.clone())
    log_probs.grad, head.logits.grad = None, None
    want = _dense_forward(head, log_probs, annotators).gather(1, labels.unsqueeze(1)).squeeze(1)
    want.sum().backward()
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    torch.testing.assert_close(grads[0], log_probs.grad, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(grads[1], head.logits.grad, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("sparse", [False, True])
def test_label_log_probs_with_a_regularizer_on_the_same_gather(sparse: bool, rows_path: str) -> None:
    """The fused label log-likelihood's second output (the touched log confusions) carries a
    regularizer's gradient too: CCEM + lam * trace over the touched annotators, against autograd."""
    head = _heads(sparse)[0]
    gen = torch.Generator().manual_seed(4)
    annotators = torch.tensor([3, 0, 3, 6, 6, 1])
    labels = torch.tensor([2, 0, 1, 1, 2, 0])
    log_probs = torch.log_softmax(torch.randn(6, K, generator=gen), dim=1).requires_grad_(True)
    got = head.label_log_probs(log_probs, annotators, labels)
    _, log_conf = head._touched
    (got.sum() + 0.7 * torch.diagonal(log_conf.exp(), dim1=1, dim2=2).sum()).backward()
    grads = (log_probs.grad.clone(), head.logits.grad.to_dense() if sparse else head.logits.grad.clone())
    log_probs.grad, head.logits.grad = None, None
    want = _dense_forward(head, log_probs, annotators).gather(1, labels.unsqueeze(1)).squeeze(1)
    touched = torch.unique(annotators)
    trace = torch.diagonal(head.confusions().index_select(0, touched), dim1=1, dim2=2).sum()
    (want.sum() + 0.7 * trace).backward()
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    torch.testing.assert_close(grads[0], log_probs.grad, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(grads[1], head.logits.grad, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("sparse", [False, True])
def test_label_log_probs_with_every_annotator_in_the_batch(sparse: bool, rows_path: str) -> None:
    """A batch holding all M annotators takes the logits without a gather and gives a dense
    gradient (the rows' own): values and gradients are the dense formulation's, with a
    regularizer on the second output too."""
    head = _heads(sparse)[0]
    gen = torch.Generator().manual_seed(5)
    annotators = torch.tensor([3, 0, 3, 6, 5, 1, 2, 4, 6])  # every one of the M = 7
    labels = torch.tensor([2, 0, 1, 1, 2, 0, 1, 2, 0])
    log_probs = torch.log_softmax(torch.randn(9, K, generator=gen), dim=1).requires_grad_(True)
    got = head.label_log_probs(log_probs, annotators, labels)
    _, log_conf = head._touched
    assert log_conf.shape == (M, K, K)
    (got.sum() + 0.7 * torch.diagonal(log_conf.exp(), dim1=1, dim2=2).sum()).backward()
    assert not head.logits.grad.is_sparse
    grads = (log_probs.grad.clone(), head.logits.grad.clone())
    log_probs.grad, head.logits.grad = None, None
    want = _dense_forward(head, log_probs, annotators).gather(1, labels.unsqueeze(1)).squeeze(1)
    (want.sum() + 0.7 * CF.trace_regularizer(head.confusions())).backward()
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    torch.testing.assert_close(grads[0], log_probs.grad, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(grads[1], head.logits.grad, rtol=1e-5, atol=1e-7)


def test_cached_regularizers_gradients_equal_the_dense_ones_on_the_touched_rows() -> None:
    for reg_cls, dense in (
        (LogDetVolumeW, lambda h: -CF.logdet_volume_w(h.confusions())),
        (TraceRegularizer, lambda h: CF.trace_regularizer(h.confusions()[[2, 6, 2, 0]]) / 4),
    ):
        head = _heads(True)[0]
        model = CrowdModel(torch.nn.Linear(D, K), head)
        head(torch.log_softmax(torch.randn(4, K), dim=1), torch.tensor([2, 6, 2, 0]))
        reg_cls(1.0)(model, torch.zeros(4, K)).backward()
        got = head.logits.grad.to_dense()
        head.logits.grad = None
        dense(head).backward()
        touched = torch.tensor([0, 2, 6])
        torch.testing.assert_close(got.index_select(0, touched), head.logits.grad.index_select(0, touched))


def test_heads_use_the_distinct_annotators_attached_to_the_batch() -> None:
    """The trainer attaches the host-computed unique on CUDA; the heads read it instead of torch.unique."""
    head = _heads(True)[0]
    log_probs = torch.log_softmax(torch.randn(4, K), dim=1)
    annotators, labels = torch.tensor([5, 1, 5, 2]), torch.tensor([0, 2, 1, 1])
    want = head.label_log_probs(log_probs, annotators, labels)
    touched, inverse = torch.unique(annotators, return_inverse=True)
    same = CF.attach_unique(annotators.clone(), touched, inverse)
    assert CF.unique_annotators(same)[0] is touched
    torch.testing.assert_close(head.label_log_probs(log_probs, same, labels), want, rtol=0, atol=0)
    # a (deliberately inconsistent) attached pair is what the head uses: annotator 1's rows for all
    other = CF.attach_unique(annotators.clone(), torch.tensor([1]), torch.zeros(4, dtype=torch.int64))
    got = head.label_log_probs(log_probs, other, labels)
    torch.testing.assert_close(got, head.label_log_probs(log_probs, torch.ones(4, dtype=torch.int64), labels))


@pytest.mark.parametrize("reg_name", ["trace", "logdet_w"])
def test_regularizers_on_the_label_likelihoods_confusions_equal_the_dense_gradients(
    reg_name: str, rows_path: str
) -> None:
    """TraceReg's and GeoCrowdNet(W)'s terms read the touched annotators' ``A`` that the label
    likelihood formed (big batches) or ``exp(log A)``: CCEM + term, values and gradients of the
    touched rows, equal the dense formulation's through autograd."""
    head = _heads(True)[0]
    model = CrowdModel(torch.nn.Linear(D, K), head)
    gen = torch.Generator().manual_seed(6)
    annotators = torch.tensor([2, 6, 2, 0, 6])
    labels = torch.tensor([1, 0, 2, 2, 1])
    log_probs = torch.log_softmax(torch.randn(5, K, generator=gen), dim=1)
    reg = TraceRegularizer(0.7) if reg_name == "trace" else LogDetVolumeW(0.7)
    if reg_name == "logdet_w":  # the cache's first build (every annotator, exact)
        head.label_log_probs(log_probs, annotators, labels)
        reg(model, torch.zeros(5, K))
    nll = head.label_log_probs(log_probs, annotators, labels).sum()
    assert (head._conf is not None) == (rows_path == "big")
    term = reg(model, torch.zeros(5, K))
    (nll + 0.7 * term).backward()
    got = head.logits.grad.to_dense()
    head.logits.grad = None
    conf = head.confusions()
    want_nll = _dense_forward(head, log_probs, annotators).gather(1, labels.unsqueeze(1)).squeeze(1).sum()
    if reg_name == "trace":
        want_term = CF.trace_regularizer(conf[annotators]) / annotators.numel()
    else:
        want_term = -CF.logdet_volume_w(conf)
    (want_nll + 0.7 * want_term).backward()
    torch.testing.assert_close(term, want_term.to(term.dtype), rtol=1e-6, atol=1e-6)
    touched = torch.tensor([0, 2, 6])
    torch.testing.assert_close(
        got.index_select(0, touched), head.logits.grad.index_select(0, touched), rtol=1e-5, atol=1e-6
    )
