"""Checkpoints without pickle: tensors in safetensors, everything else in JSON.

A checkpoint folder holds ``checkpoint.safetensors`` (model weights, optimizer moments, RNG
states, callback tensors, keys prefixed ``model.``, ``optim.``, ``rng.``, ``cb<i>.``) and
``checkpoint.json`` (epoch, history, optimizer hyper-parameters, callback states). Both are
written to temporary files and renamed, so an interruption leaves the previous checkpoint intact.

In a distributed run (:mod:`crowdlearn.train.distributed`) every rank calls
:func:`save_checkpoint`: the ranks' torch RNG states are gathered (rank ``r > 0`` is stored as
``rng.torch.rank<r>``), rank 0 writes the files, and the others wait at a barrier. Every rank
then loads the same folder on resume (a filesystem shared by the ranks is assumed).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from crowdlearn.train import distributed as dist_utils
from crowdlearn.train.history import History

if TYPE_CHECKING:
    from crowdlearn.train.trainer import Trainer

__all__ = ["FORMAT_VERSION", "load_checkpoint", "save_checkpoint"]

FORMAT_VERSION = 1
TENSORS = "checkpoint.safetensors"
META = "checkpoint.json"


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
    tmp_t = d / (TENSORS + ".tmp")
    tmp_m = d / (META + ".tmp")
    save_file(tensors, str(tmp_t), metadata={"format": "crowdlearn-checkpoint"})
    tmp_m.write_text(json.dumps(meta_doc), encoding="utf-8")
    os.replace(tmp_t, d / TENSORS)
    os.replace(tmp_m, d / META)


def load_checkpoint(trainer: Trainer, dirname: str | os.PathLike[str]) -> int:
    """Restore the trainer's state from ``dirname``; returns the next epoch to run."""
    d = Path(dirname)
    if not (d / TENSORS).is_file() or not (d / META).is_file():
        raise FileNotFoundError(f"no checkpoint in {d} (expected {TENSORS} and {META})")
    meta = json.loads((d / META).read_text(encoding="utf-8"))
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"checkpoint format {meta.get('format_version')!r} is not supported (expected {FORMAT_VERSION})"
        )
    tensors = load_file(str(d / TENSORS))
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
