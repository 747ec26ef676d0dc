"""Helpers for data-parallel training with :mod:`torch.distributed` (launched by ``torchrun``).

The :class:`~crowdlearn.train.Trainer` trains data-parallel when a default process group is
initialized (or with ``distributed=True``, which calls :func:`init_from_env`). These helpers
answer "am I distributed, which rank, how many" without failing when no group exists, so the
single-process code path stays unchanged.

Launch a script with, e.g., ``torchrun --standalone --nproc_per_node=2 examples/ddp_train.py``;
torchrun sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``.

Teardown
--------
A group is destroyed before the interpreter shuts down: by :func:`destroy` (or on leaving
:func:`process_group`), and otherwise by an :mod:`atexit` hook that :func:`init_from_env`
registers. Without it a rank can abort at exit with ``terminate called without an active
exception`` after all its work is done: a gloo worker thread finishing the last collective drops
that collective's tensors, which needs the GIL; once the main thread has entered interpreter
finalization, Python ends any thread that asks for the GIL with ``pthread_exit``, and the forced
unwind through a ``noexcept`` destructor calls ``std::terminate``. Destroying the group joins the
gloo worker threads (its C++ destructor runs with the GIL released) while the interpreter is
still alive. For that destructor to run, nothing may keep the group alive: importing
``torch._dynamo`` after a group exists (DDP does so on first use) leaves references to it
behind, so :func:`init_from_env` imports it first.
"""

from __future__ import annotations

import atexit
import gc
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import overload

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = [
    "all_reduce_mean",
    "barrier",
    "collective_device",
    "destroy",
    "init_from_env",
    "is_distributed",
    "is_main_process",
    "local_rank",
    "process_group",
    "rank",
    "world_size",
]

ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def is_distributed() -> bool:
    """True when :mod:`torch.distributed` is available and a default process group is initialized."""
    return bool(dist.is_available() and dist.is_initialized())


def rank() -> int:
    """Global rank of this process (0 without a process group)."""
    return int(dist.get_rank()) if is_distributed() else 0


def world_size() -> int:
    """Number of processes in the default group (1 without a process group)."""
    return int(dist.get_world_size()) if is_distributed() else 1


def local_rank() -> int:
    """``LOCAL_RANK`` from the environment (the GPU index of this process on its node); 0 if unset."""
    value = os.environ.get("LOCAL_RANK")
    if value is None:
        return 0
    return _int_env("LOCAL_RANK", value, lo=0)


def is_main_process() -> bool:
    """True on rank 0, and always without a process group: the process that writes files and prints."""
    return rank() == 0


def barrier() -> None:
    """Wait for every rank (no-op without a process group)."""
    if is_distributed():
        dist.barrier()


def _int_env(name: str, value: str, *, lo: int) -> int:
    try:
        out = int(value)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer >= {lo}, got {value!r}") from None
    if out < lo:
        raise ValueError(f"environment variable {name} must be an integer >= {lo}, got {value!r}")
    return out


def _read_env(env: Mapping[str, str]) -> tuple[int, int, int]:
    missing = [k for k in ENV_VARS if not env.get(k)]
    if missing:
        raise ValueError(
            f"distributed training needs the environment variable(s) {', '.join(missing)} "
            f"(all of {', '.join(ENV_VARS)}); launch with torchrun, e.g. "
            "`torchrun --standalone --nproc_per_node=2 script.py`"
        )
    world = _int_env("WORLD_SIZE", env["WORLD_SIZE"], lo=1)
    r = _int_env("RANK", env["RANK"], lo=0)
    if r >= world:
        raise ValueError(f"environment variable RANK must be < WORLD_SIZE={world}, got {env['RANK']!r}")
    lr = _int_env("LOCAL_RANK", env["LOCAL_RANK"], lo=0)
    port = _int_env("MASTER_PORT", env["MASTER_PORT"], lo=1)
    if port > 65535:
        raise ValueError(f"environment variable MASTER_PORT must be a port number <= 65535, got {env['MASTER_PORT']!r}")
    return r, world, lr


def init_from_env(backend: str | None = None) -> None:
    """Initialize the default process group from torchrun's environment variables.

    Reads ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` (set by
    ``torchrun``). Does nothing when a default group is already initialized.

    Parameters
    ----------
    backend : str or None, default=None
        ``"nccl"`` or ``"gloo"``; None picks ``"nccl"`` when CUDA is available, else ``"gloo"``.
        With NCCL, this process's CUDA device is set to ``LOCAL_RANK``.

    Raises
    ------
    ValueError
        When a variable is missing or not a valid value (the message names it).
    RuntimeError
        When :mod:`torch.distributed` is not available in this torch build.
    """
    if not dist.is_available():
        raise RuntimeError("torch.distributed is not available in this torch build")
    if dist.is_initialized():
        return
    r, world, lr = _read_env(os.environ)
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend not in ("nccl", "gloo"):
        raise ValueError(f"backend must be 'nccl', 'gloo' or None, got {backend!r}")
    if backend == "nccl":
        torch.cuda.set_device(lr)
    _import_before_group()
    dist.init_process_group(backend=backend, rank=r, world_size=world)
    _register_exit_teardown()


def _import_before_group() -> None:
    """Import ``torch._dynamo`` now: imported later, it keeps the default group alive past :func:`destroy`."""
    import torch._dynamo  # noqa: F401


_exit_teardown_registered = False


def _register_exit_teardown() -> None:
    global _exit_teardown_registered
    if not _exit_teardown_registered:
        atexit.register(destroy)
        _exit_teardown_registered = True


def destroy() -> None:
    """Destroy the default process group if one is initialized (no-op otherwise).

    Also collects garbage, so that a group held only by reference cycles (a freed DDP wrapper)
    is destroyed now and its worker threads are joined (see "Teardown" above). Runs at
    interpreter exit for a group made by :func:`init_from_env`.
    """
    if is_distributed():
        dist.destroy_process_group()
        gc.collect()


@contextmanager
def process_group(backend: str | None = None) -> Iterator[None]:
    """Context manager: :func:`init_from_env` on entry, :func:`destroy` on exit (also on error).

    A group that was already initialized before entering is left alone on exit.
    """
    owned = not is_distributed()
    init_from_env(backend)
    try:
        yield
    finally:
        if owned:
            destroy()


@overload
def all_reduce_mean(value: float) -> float: ...


@overload
def all_reduce_mean(value: Tensor) -> Tensor: ...


def all_reduce_mean(value: float | Tensor) -> float | Tensor:
    """Mean of ``value`` over all ranks (the value itself without a process group).

    Parameters
    ----------
    value : float or Tensor of any shape
        A tensor is averaged elementwise and returned as a new tensor on its device (the input
        is not modified; integer tensors come back as float64); a float is averaged in float64.

    Returns
    -------
    float or Tensor
        Same type (and shape) as ``value``, identical on every rank.
    """
    if not is_distributed():
        return value.clone() if isinstance(value, Tensor) else float(value)
    if isinstance(value, Tensor):
        dtype = value.dtype if value.is_floating_point() else torch.float64
        reduced = value.detach().to(device=collective_device(), dtype=dtype, copy=True)
        dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
        return (reduced / world_size()).to(value.device)
    t = torch.tensor([float(value)], dtype=torch.float64, device=collective_device())
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t.item()) / world_size()


def collective_device() -> torch.device:
    """Device of tensors passed to collectives: this rank's GPU under NCCL, else the CPU."""
    if is_distributed() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
