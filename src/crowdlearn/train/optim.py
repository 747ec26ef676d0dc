"""Adam for the dense parameters and a row-wise lazy Adam for the sparse ones, as one optimizer.

The trainer steps the backbone with :class:`torch.optim.Adam` and a head group marked
``"sparse": True`` (e.g. :meth:`crowdlearn.nn.ConfusionMatrices.param_groups`) with
:class:`LazyAdam`, whose step reads and writes the moments and the values of the rows present
in the gradient only: an annotator absent from a batch is not touched, so the cost of a step
follows the batch's annotators, not ``M``. :class:`AdamWithSparse` holds both and shares one
``param_groups`` list and one ``state`` with them, so learning-rate schedules,
:class:`torch.amp.GradScaler` and checkpoints (``state_dict`` / ``load_state_dict``) see one
optimizer.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from crowdlearn.nn.functional import distinct_rows, gathered_values

__all__ = ["USE_FUSED", "AdamWithSparse", "LazyAdam"]


class LazyAdam(torch.optim.Optimizer):
    """Adam's update on the rows of a parameter that the gradient holds, the others untouched.

    For a parameter ``P`` of shape (M, ...) whose gradient is a sparse COO tensor with one sparse
    dimension (the rows, as :func:`crowdlearn.nn.functional.gather_rows` with
    ``sparse_grad=True`` gives; shape (M, ...), values (U, ...)), a step takes the ``U`` rows
    ``r`` of the gradient ``g`` and does, on those rows only (index ops, ``O(U x row size)``)::

        m[r] = beta1 m[r] + (1 - beta1) g          v[r] = beta2 v[r] + (1 - beta2) g^2
        P[r] -= lr / (1 - beta1^t) * m[r] / (sqrt(v[r]) / sqrt(1 - beta2^t) + eps)

    with ``t`` the number of steps taken on the parameter so far (the bias correction counts
    every step, as :class:`torch.optim.SparseAdam` and TensorFlow's LazyAdam do, not the steps
    the row was in). That is :class:`torch.optim.Adam`'s update rule and ``eps`` placement
    (:class:`torch.optim.SparseAdam` adds ``eps`` before the bias correction), so a step whose
    gradient holds every row equals an Adam step. The moments ``exp_avg`` and ``exp_avg_sq`` are
    dense tensors of ``P``'s shape (the state keys of Adam: a checkpoint of either loads into the
    other); the gradient's rows are not sorted again when the gradient says it is coalesced
    or comes from :func:`crowdlearn.nn.functional.gather_rows` with ``distinct=True``
    (:func:`crowdlearn.nn.functional.distinct_rows`); a gradient summed from several gathers is
    coalesced first). The rows' values are those the label likelihood gathered in the forward
    when it recorded them and the parameter is unchanged since
    (:func:`crowdlearn.nn.functional.gathered_values`), else gathered here. A dense gradient is
    taken as every row touched (Adam's step). No weight decay, no AMSGrad.

    On the CPU the update runs as one fused kernel (:func:`torch._fused_adam_`, what
    ``torch.optim.Adam(fused=True)`` runs) on the gathered rows (or on the whole parameter for a
    dense gradient) instead of seven elementwise operations: the moments are those of the rule
    above, the parameter can differ from the unfused rule by rounding. :data:`USE_FUSED` = False
    selects the unfused rule.

    Parameters
    ----------
    params : iterable of Tensor or of dict
        Parameters or parameter groups.
    lr : float, default=1e-3
    betas : (float, float), default=(0.9, 0.999)
    eps : float, default=1e-8
    """

    def __init__(
        self, params: Any, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8
    ) -> None:
        if not (lr >= 0.0 and eps >= 0.0 and 0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"LazyAdam needs lr >= 0, eps >= 0 and betas in [0, 1), got {lr}, {eps}, {betas}")
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})

    @torch.no_grad()  # type: ignore[misc]
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """One lazy Adam step (see the class docstring)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self._step_groups()
        return loss

    def _step_groups(self) -> None:
        """The step of every parameter with a gradient, without the hooks of :meth:`step`
        (:class:`AdamWithSparse` calls it from its own, hooked, step)."""
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            lr, eps = float(group["lr"]), float(group["eps"])
            for p in group["params"]:
                if p.grad is not None:
                    self._step_param(p, p.grad, lr, beta1, beta2, eps)

    def _step_param(self, p: Tensor, grad: Tensor, lr: float, beta1: float, beta2: float, eps: float) -> None:
        state = self.state[p]
        if not state:
            state["step"] = torch.tensor(0.0)
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        step_t: Tensor = state["step"]
        step_t += 1
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        fused = _fused_ok(p, exp_avg, exp_avg_sq, step_t)
        if not grad.is_sparse:  # every row has a gradient: Adam's step
            _adam_update(p, grad, exp_avg, exp_avg_sq, step_t, lr, beta1, beta2, eps, fused)
            return
        if grad.sparse_dim() != 1:
            raise ValueError(
                f"LazyAdam needs a sparse gradient with one sparse dimension (the rows), got {grad.sparse_dim()}"
            )
        rows = distinct_rows(p, grad)  # (U,) when known sorted and distinct (no sort, no sync)
        if rows is None:
            grad = grad.coalesce()
            rows = grad._indices()[0]
        g = grad._values()  # (U, ...)
        m = exp_avg.index_select(0, rows)
        v = exp_avg_sq.index_select(0, rows)
        # the rows gathered (or as the forward gathered them), Adam's step on them, written back
        known = gathered_values(p, rows)
        w = known if known is not None else p.index_select(0, rows)
        _adam_update(w, g, m, v, step_t, lr, beta1, beta2, eps, fused)
        p.index_copy_(0, rows, w)
        exp_avg.index_copy_(0, rows, m)
        exp_avg_sq.index_copy_(0, rows, v)


#: devices where :func:`torch._fused_adam_` runs (CPU since torch 2.4, CUDA)
_FUSED_DEVICES = ("cpu", "cuda")


def _adam_update(
    w: Tensor,
    g: Tensor,
    m: Tensor,
    v: Tensor,
    step: Tensor,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    fused: bool,
) -> None:
    """Adam's update of ``w`` with gradient ``g`` and moments ``m``, ``v`` (all one shape), in
    place, at the (already incremented) step count ``step``: the fused kernel where ``fused``,
    else torch's op-by-op rule (bias-corrected step size, ``sqrt(v) / sqrt(1 - beta2^t) + eps``)."""
    if fused:
        _fused_adam(w, g.contiguous(), m, v, step, lr, beta1, beta2, eps)
        return
    t = float(step)
    step_size = lr / (1.0 - beta1**t)
    bias_correction2_sqrt = math.sqrt(1.0 - beta2**t)
    m.lerp_(g, 1.0 - beta1)
    v.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
    denom = (v.sqrt() / bias_correction2_sqrt).add_(eps)
    w.addcdiv_(m, denom, value=-step_size)


def _fused_ok(p: Tensor, exp_avg: Tensor, exp_avg_sq: Tensor, step: Tensor) -> bool:
    """Whether the fused Adam kernel applies: torch has it, a CPU or CUDA float parameter whose
    moments share its device and dtype, and a step count on its device (on CUDA the count is a
    host tensor: the unfused rule runs there)."""
    return (
        USE_FUSED
        and hasattr(torch, "_fused_adam_")
        and p.device.type in _FUSED_DEVICES
        and p.dtype in (torch.float32, torch.float64)
        and exp_avg.dtype == exp_avg_sq.dtype == p.dtype
        and exp_avg.device == exp_avg_sq.device == p.device
        and exp_avg.is_contiguous()
        and exp_avg_sq.is_contiguous()
        and p.is_contiguous()
        and step.dtype == torch.float32
        and step.device == p.device
    )


def _fused_adam(
    p: Tensor,
    grad: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    step: Tensor,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
) -> None:
    """Adam's update of ``p`` and its moments in place, one kernel (:func:`torch._fused_adam_`,
    what ``torch.optim.Adam(fused=True)`` runs; ``step`` already counts this step). The moments
    are those of the unfused rule; the parameter can differ from it by rounding (the kernel
    evaluates ``lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)`` in another order)."""
    torch._fused_adam_(  # type: ignore[attr-defined]
        [p], [grad], [exp_avg], [exp_avg_sq], [], [step],
        lr=lr, beta1=beta1, beta2=beta2, weight_decay=0.0, eps=eps, amsgrad=False, maximize=False,
    )  # fmt: skip


#: Use the fused Adam kernel for :class:`LazyAdam` where it applies (set False for the op-by-op
#: rule, e.g. to compare the two; the results differ by rounding only).
USE_FUSED = True


class AdamWithSparse(torch.optim.Optimizer):
    """:class:`torch.optim.Adam` over the dense groups, :class:`LazyAdam` over the sparse ones.

    Parameters
    ----------
    dense_groups : list of dict
        Adam parameter groups (``"params"``, ``"lr"``, ``"weight_decay"``, ...).
    sparse_groups : list of dict
        LazyAdam parameter groups (``"params"``, ``"lr"``, optionally ``"betas"``, ``"eps"``);
        their parameters should receive sparse row gradients (a dense one is stepped as Adam
        would). LazyAdam has no weight decay: a group with ``weight_decay`` other than 0 is an
        error.

    Attributes
    ----------
    dense : torch.optim.Adam
    sparse : LazyAdam or None
        The two optimizers (``sparse`` is None without sparse groups); their ``param_groups``
        are this optimizer's (dense groups first) and their ``state`` is this optimizer's.
    """

    def __init__(self, dense_groups: list[dict[str, Any]], sparse_groups: list[dict[str, Any]]) -> None:
        for g in sparse_groups:
            if float(g.get("weight_decay", 0.0)) != 0.0:
                raise ValueError("a sparse parameter group cannot have weight decay (LazyAdam has none)")
        self.n_dense = len(dense_groups)
        self.dense = torch.optim.Adam(dense_groups)
        self.sparse: LazyAdam | None = None
        groups: list[dict[str, Any]] = list(self.dense.param_groups)
        if sparse_groups:
            self.sparse = LazyAdam([{k: v for k, v in g.items() if k != "weight_decay"} for g in sparse_groups])
            for g in self.sparse.param_groups:
                g["weight_decay"] = 0.0
            groups += self.sparse.param_groups
        super().__init__(groups, defaults={})
        self._link()

    def _link(self) -> None:
        """Let the two optimizers use this one's groups and state (after a load replaced them)."""
        self.dense.param_groups = self.param_groups[: self.n_dense]
        self.dense.state = self.state
        if self.sparse is not None:
            self.sparse.param_groups = self.param_groups[self.n_dense :]
            self.sparse.state = self.state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load as :meth:`torch.optim.Optimizer.load_state_dict` does, keeping the two optimizers linked."""
        super().load_state_dict(state_dict)
        self._link()

    @torch.no_grad()  # type: ignore[misc]
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """One Adam step on the dense groups and one LazyAdam step on the sparse groups."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self.dense.step()
        if self.sparse is not None:
            self.sparse._step_groups()
        return loss
