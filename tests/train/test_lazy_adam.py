"""LazyAdam: Adam's step on the rows a sparse gradient holds, the other rows and moments untouched."""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")

from crowdlearn.nn import functional as CF  # noqa: E402
from crowdlearn.train import optim  # noqa: E402
from crowdlearn.train.optim import AdamWithSparse, LazyAdam  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

M, K = 6, 3


def _grads(seed: int, rows: list[int]) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(len(rows), K, K, generator=gen)


def _sparse_step(opt: torch.optim.Optimizer, p: torch.Tensor, rows: list[int], up: torch.Tensor) -> None:
    opt.zero_grad(set_to_none=True)
    index = torch.tensor(rows)
    (CF.gather_rows(p, index, sparse_grad=True, distinct=True) * up).sum().backward()
    opt.step()


def test_every_row_touched_equals_torch_adam() -> None:
    torch.manual_seed(0)
    init = torch.randn(M, K, K)
    lazy_p, adam_p = torch.nn.Parameter(init.clone()), torch.nn.Parameter(init.clone())
    lazy, adam = LazyAdam([lazy_p], lr=0.05), torch.optim.Adam([adam_p], lr=0.05)
    rows = list(range(M))
    for step in range(8):
        up = _grads(step, rows)
        _sparse_step(lazy, lazy_p, rows, up)
        assert CF.distinct_rows(lazy_p, lazy_p.grad) is None  # the record was consumed by the step
        adam.zero_grad(set_to_none=True)
        (adam_p * up).sum().backward()
        adam.step()
    torch.testing.assert_close(lazy_p.detach(), adam_p.detach(), rtol=1e-6, atol=1e-7)
    for name in ("exp_avg", "exp_avg_sq"):
        torch.testing.assert_close(lazy.state[lazy_p][name], adam.state[adam_p][name], rtol=1e-6, atol=1e-9)
    assert float(lazy.state[lazy_p]["step"]) == float(adam.state[adam_p]["step"]) == 8.0


def test_absent_rows_keep_values_and_moments() -> None:
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.randn(M, K, K))
    opt = LazyAdam([p], lr=0.05)
    _sparse_step(opt, p, list(range(M)), _grads(0, list(range(M))))
    before = p.detach().clone()
    moments = {k: opt.state[p][k].clone() for k in ("exp_avg", "exp_avg_sq")}
    _sparse_step(opt, p, [1, 4], _grads(1, [1, 4]))
    absent = torch.tensor([0, 2, 3, 5])
    assert torch.equal(p.detach().index_select(0, absent), before.index_select(0, absent))
    assert not torch.equal(p.detach()[1], before[1]) and not torch.equal(p.detach()[4], before[4])
    for k, old in moments.items():
        assert torch.equal(opt.state[p][k].index_select(0, absent), old.index_select(0, absent)), k
        assert not torch.equal(opt.state[p][k][4], old[4]), k


def test_a_gradient_summed_from_two_gathers_is_coalesced_first() -> None:
    torch.manual_seed(0)
    init = torch.randn(M, K, K)
    twice, once = torch.nn.Parameter(init.clone()), torch.nn.Parameter(init.clone())
    opt_twice, opt_once = LazyAdam([twice], lr=0.05), LazyAdam([once], lr=0.05)
    up_a, up_b = _grads(0, [0, 2]), _grads(1, [2, 5])
    g = CF.gather_rows
    (g(twice, torch.tensor([0, 2]), sparse_grad=True, distinct=True) * up_a).sum().add(
        (g(twice, torch.tensor([2, 5]), sparse_grad=True, distinct=True) * up_b).sum()
    ).backward()
    assert CF.distinct_rows(twice, twice.grad) is None  # row 2 twice: not known distinct
    opt_twice.step()
    summed = torch.stack([up_a[0], up_a[1] + up_b[0], up_b[1]])
    _sparse_step(opt_once, once, [0, 2, 5], summed)
    torch.testing.assert_close(twice.detach(), once.detach(), rtol=1e-6, atol=1e-7)


def test_a_dense_gradient_is_stepped_as_adam() -> None:
    torch.manual_seed(0)
    init = torch.randn(M, K, K)
    lazy_p, adam_p = torch.nn.Parameter(init.clone()), torch.nn.Parameter(init.clone())
    lazy, adam = LazyAdam([lazy_p], lr=0.05), torch.optim.Adam([adam_p], lr=0.05)
    for step in range(3):
        up = _grads(step, list(range(M)))
        for opt, p in ((lazy, lazy_p), (adam, adam_p)):
            opt.zero_grad(set_to_none=True)
            (p * up).sum().backward()
            opt.step()
    torch.testing.assert_close(lazy_p.detach(), adam_p.detach(), rtol=1e-6, atol=1e-7)


def test_adam_with_sparse_state_round_trip_and_schedule() -> None:
    torch.manual_seed(0)
    body = torch.nn.Parameter(torch.randn(4))
    p = torch.nn.Parameter(torch.randn(M, K, K))
    opt = AdamWithSparse([{"params": [body], "lr": 0.01}], [{"params": [p], "lr": 0.05}])
    _sparse_step(opt, p, [0, 3], _grads(0, [0, 3]))
    saved = copy.deepcopy(opt.state_dict())
    twin_p = torch.nn.Parameter(p.detach().clone())
    twin = AdamWithSparse([{"params": [torch.nn.Parameter(body.detach().clone())], "lr": 0.01}], [{"params": [twin_p]}])
    twin.load_state_dict(saved)
    for o, q in ((opt, p), (twin, twin_p)):
        o.param_groups[1]["lr"] = 0.02  # a schedule writes the shared groups
        _sparse_step(o, q, [3, 5], _grads(1, [3, 5]))
    torch.testing.assert_close(twin_p.detach(), p.detach(), rtol=0, atol=0)
    assert twin.sparse is not None and twin.sparse.param_groups[0]["lr"] == 0.02
    with pytest.raises(ValueError, match="cannot have weight decay"):
        AdamWithSparse([], [{"params": [p], "weight_decay": 0.1}])


@pytest.mark.parametrize("dense", [False, True])
def test_the_fused_kernel_equals_the_unfused_rule(dense: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fused step (the default on the CPU) and the op-by-op rule: the same moments, the
    same parameter up to rounding, on sparse row gradients and on dense ones."""
    torch.manual_seed(0)
    init = torch.randn(M, K, K)
    params, opts = [], []
    for fused in (True, False):
        monkeypatch.setattr(optim, "USE_FUSED", fused)
        p = torch.nn.Parameter(init.clone())
        opt = LazyAdam([p], lr=0.05)
        for step in range(12):
            rows = list(range(M)) if dense else [step % M, (3 * step + 1) % M]
            rows = sorted(set(rows))
            if dense:
                opt.zero_grad(set_to_none=True)
                (p * _grads(step, rows)).sum().backward()
                opt.step()
            else:
                _sparse_step(opt, p, rows, _grads(step, rows))
        params.append(p)
        opts.append(opt)
    torch.testing.assert_close(params[0].detach(), params[1].detach(), rtol=1e-6, atol=1e-7)
    for name in ("exp_avg", "exp_avg_sq"):
        torch.testing.assert_close(opts[0].state[params[0]][name], opts[1].state[params[1]][name], rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("edited", [False, True])
def test_the_forwards_gathered_rows_step_as_a_fresh_gather(
    fused: bool, edited: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LazyAdam takes the rows the label likelihood gathered in the forward (no second gather):
    the step is bit-identical to one that gathers them again, absent rows and their moments stay
    bit-identical, and a parameter edited in place after the forward is gathered afresh."""
    monkeypatch.setattr(optim, "USE_FUSED", fused)
    touched = torch.tensor([1, 4])
    inverse = torch.tensor([0, 1, 1, 0])
    labels = torch.tensor([2, 0, 1, 1])
    log_probs = torch.log_softmax(torch.randn(4, K, generator=torch.Generator().manual_seed(3)), dim=1)
    results = []
    for keep_record in (True, False):
        torch.manual_seed(0)
        p = torch.nn.Parameter(torch.randn(M, K, K))
        opt = LazyAdam([p], lr=0.1)
        for _ in range(2):
            opt.zero_grad(set_to_none=True)
            out, _ = CF.label_log_probs_of_touched(p, log_probs, touched, inverse, labels, sparse_grad=True)
            out.sum().backward()
            assert CF._GATHERED_ATTR in p.__dict__  # the forward's record
            if edited:
                with torch.no_grad():
                    p.mul_(1.5)  # after the forward: the record is stale
            if not keep_record:
                p.__dict__.pop(CF._GATHERED_ATTR, None)
            before = p.detach().clone(), {k: v.clone() for k, v in opt.state[p].items()} if opt.state[p] else None
            opt.step()
            assert CF._GATHERED_ATTR not in p.__dict__  # consumed
            absent = torch.tensor([0, 2, 3, 5])
            assert torch.equal(p.detach().index_select(0, absent), before[0].index_select(0, absent))
            if before[1] is not None:
                for name in ("exp_avg", "exp_avg_sq"):
                    assert torch.equal(
                        opt.state[p][name].index_select(0, absent), before[1][name].index_select(0, absent)
                    )
        results.append((p.detach().clone(), opt.state[p]["exp_avg"].clone(), opt.state[p]["exp_avg_sq"].clone()))
    for a, b in zip(*results, strict=True):
        assert torch.equal(a, b)
