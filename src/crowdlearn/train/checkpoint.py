"""Checkpoints without pickle: tensors in safetensors, everything else in JSON.

A checkpoint folder holds one file, ``checkpoint.safetensors``: the tensors (model weights,
optimizer moments, RNG states, callback tensors, keys prefixed ``model.``, ``optim.``,
``rng.``, ``cb<i>.``) and, in its safetensors metadata under ``crowdlearn-checkpoint``, a JSON
document (format version, epoch, history, optimizer hyper-parameters, callback states).

Atomicity: the whole checkpoint is that one file, written by :func:`crowdlearn.io.atomic_write`
(a temporary file in the folder, flushed and fsync'ed, then one ``os.replace``). A crash or an
error at any point of a save leaves the previous checkpoint whole (or no checkpoint, before the
first save completes); tensors and metadata of different epochs can never be paired. A file
damaged afterwards (truncated, edited) is refused on load with an error naming it. The rename
is atomic on POSIX filesystems; the folder itself is not fsync'ed, so after a power loss the
folder may still show the previous checkpoint.

In a distributed run (:mod:`crowdlearn.train.distributed`) every rank calls
:func:`save_checkpoint`: the ranks' torch RNG states are gathered (rank ``r > 0`` is stored as
``rng.torch.rank<r>``), rank 0 writes the file, and the others wait at a barrier. Every rank
then loads the same folder on resume (a filesystem shared by the ranks is assumed).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save
from torch import Tensor

from crowdlearn.io import atomic_write
from crowdlearn.train import distributed as dist_utils
from crowdlearn.train.history import History

if TYPE_CHECKING:
    from crowdlearn.train.trainer import Trainer

__all__ = ["FORMAT_VERSION", "load_checkpoint", "save_checkpoint"]

FORMAT_VERSION = 2
TENSORS = "checkpoint.safetensors"
#: the safetensors metadata key holding the JSON document
META_KEY = "crowdlearn-checkpoint"


def _cpu(t: Tensor) -> Tensor:
    return t.detach().to("cpu").contiguous().clone()


def save_checkpoint(trainer: Trainer, dirname: str | os.PathLike[str], epoch: int) -> None:
    """Write the trainer's state after ``epoch`` (0-based) into ``dirname``.

    Collective in a distributed run: call it on every rank (only rank 0 writes).
    """
    rng_states = _gather_rng_states()
    error: Exception | None = None
    if dist_utils.is_main_process():
        try:
            _write(trainer, Path(dirname), epoch, rng_states)
        except Exception as exc:  # re-raised below, after telling the other ranks
            error = exc
    # doubles as the barrier: the other ranks wait here until rank 0 has written (or failed)
    failed = dist_utils.all_reduce_mean(0.0 if error is None else 1.0) > 0
    if error is not None:
        raise error
    if failed:
        raise RuntimeError(f"rank 0 failed to write the checkpoint to {dirname}; see rank 0's error")


def _gather_rng_states() -> list[Tensor]:
    """Every rank's CPU torch RNG state (just this process's without a process group)."""
    state = torch.get_rng_state()
    if not dist_utils.is_distributed():
        return [state]
    import torch.distributed as dist

    device = dist_utils.collective_device()
    local = state.to(device)
    out = [torch.empty_like(local) for _ in range(dist_utils.world_size())]
    dist.all_gather(out, local)
    return [t.cpu() for t in out]


def _write(trainer: Trainer, d: Path, epoch: int, rng_states: list[Tensor]) -> None:
    d.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, Tensor] = {f"model.{k}": _cpu(v) for k, v in trainer.model.state_dict().items()}
    opt = trainer.optimizer.state_dict()
    opt_state_keys: dict[str, list[str]] = {}
    for pid, st in opt["state"].items():
        opt_state_keys[str(pid)] = []
        for name, value in st.items():
            tensors[f"optim.{pid}.{name}"] = _cpu(torch.as_tensor(value))
            opt_state_keys[str(pid)].append(name)
    tensors["rng.torch"] = _cpu(rng_states[0])
    for r, st in enumerate(rng_states[1:], start=1):
        tensors[f"rng.torch.rank{r}"] = _cpu(st)
    tensors["rng.shuffle"] = _cpu(trainer.generator.get_state())
    cb_meta: list[dict[str, Any]] = []
    for i, cb in enumerate(trainer.callbacks):
        meta, cb_tensors = cb.state_dict()
        cb_meta.append({"class": type(cb).__name__, "state": meta})
        for k, v in cb_tensors.items():
            tensors[f"cb{i}.{k}"] = _cpu(v)
    meta_doc = {
        "format_version": FORMAT_VERSION,
        "epoch": int(epoch),
        "stop_training": bool(trainer.stop_training),
        "history": trainer.history.to_list(),
        "optimizer": {"param_groups": opt["param_groups"], "state_keys": opt_state_keys},
        "callbacks": cb_meta,
    }
    data = save(tensors, metadata={META_KEY: json.dumps(meta_doc)})
    with atomic_write(d / TENSORS, "wb", overwrite=True) as fh:  # the one rename: all or nothing
        fh.write(data)


def load_checkpoint(trainer: Trainer, dirname: str | os.PathLike[str]) -> int:
    """Restore the trainer's state from ``dirname``; returns the next epoch to run."""
    d = Path(dirname)
    path = d / TENSORS
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint in {d} (expected {TENSORS})")
    try:
        with safe_open(str(path), framework="pt") as fh:
            raw = (fh.metadata() or {}).get(META_KEY)
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except SafetensorError as exc:
        raise ValueError(f"{path}: not a readable checkpoint ({exc})") from None
    if raw is None:
        raise ValueError(
            f"{path}: no {META_KEY!r} metadata (a checkpoint of an older crowdlearn, format 1, is not supported)"
        )
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: the checkpoint metadata are not valid JSON ({exc.msg})") from None
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        version = meta.get("format_version") if isinstance(meta, dict) else None
        raise ValueError(f"{path}: checkpoint format {version!r} is not supported (expected {FORMAT_VERSION})")
    for key in ("epoch", "stop_training", "history", "optimizer", "callbacks"):
        if key not in meta:
            raise ValueError(f"{path}: the checkpoint metadata lack {key!r}; the file is damaged")
    model_state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    missing = set(trainer.model.state_dict()) - set(model_state)
    if missing:
        raise ValueError(f"checkpoint in {d} does not match the model: missing {sorted(missing)[:5]}")
    trainer.model.load_state_dict(model_state)
    groups = meta["optimizer"]["param_groups"]
    for g in groups:
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    state = {
        int(pid): {name: tensors[f"optim.{pid}.{name}"] for name in names}
        for pid, names in meta["optimizer"]["state_keys"].items()
    }
    trainer.optimizer.load_state_dict({"state": state, "param_groups": groups})
    r = dist_utils.rank()
    if r == 0:
        torch.set_rng_state(tensors["rng.torch"])
    elif f"rng.torch.rank{r}" in tensors:
        torch.set_rng_state(tensors[f"rng.torch.rank{r}"])
    else:  # a checkpoint of a run with fewer ranks: a fresh dropout stream for this rank
        torch.manual_seed(trainer.random_state + r + 1_000_003 * (int(meta["epoch"]) + 1))
    trainer.generator.set_state(tensors["rng.shuffle"])
    saved = meta["callbacks"]
    names = [type(cb).__name__ for cb in trainer.callbacks]
    if [c["class"] for c in saved] != names:
        raise ValueError(
            f"checkpoint callbacks {[c['class'] for c in saved]} do not match the trainer's {names}; "
            "resume with the same callbacks"
        )
    for i, (cb, c) in enumerate(zip(trainer.callbacks, saved, strict=True)):
        prefix = f"cb{i}."
        cb.load_state_dict(c["state"], {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)})
    trainer.history = History(meta["history"])
    trainer.stop_training = bool(meta["stop_training"])
    return int(meta["epoch"]) + 1
