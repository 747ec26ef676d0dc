"""Worker of tests/train/test_distributed.py: one rank of a 2-process gloo group.

Runs every scenario in one process group (spawning is the slow part) and saves this rank's
results to ``<outdir>/rank<r>.pt`` (tensors, floats, lists; loaded with ``weights_only=True``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from _toy import toy
from torch import Tensor

from crowdlearn.annotations import Annotations
from crowdlearn.estimators import CrowdClassifier
from crowdlearn.nn import MLP, ConfusionMatrices, CrowdLoss, CrowdModel, GeoCrowdNetFLoss
from crowdlearn.simulate import diagonally_dominant_confusions, simulate_crowd
from crowdlearn.train import Callback, Checkpoint, Trainer, TrainingDivergedError
from crowdlearn.train import checkpoint as checkpoint_module
from crowdlearn.train import distributed as dist_utils


def simulated(n: int = 800, seed: int = 0) -> tuple[np.ndarray, np.ndarray, Annotations]:
    """A simulated crowd (10 annotators, 3 classes, p=0.3) with Gaussian features of the true class."""
    rng = np.random.default_rng(seed)
    conf = diagonally_dominant_confusions(10, 3, random_state=rng)
    crowd = simulate_crowd(conf, n_items=n, p=0.3, random_state=rng)
    y = crowd.true_labels
    x = rng.normal(size=(n, 8)) + 2.0 * np.eye(3, 8)[y]
    return x.astype(np.float32), y, crowd.annotations


def exact_model(dropout: float = 0.0) -> CrowdModel:
    torch.manual_seed(0)
    return CrowdModel(MLP(5, 3, hidden=(16,), dropout=dropout), ConfusionMatrices(4, 3, scale=2.0))


class RngProbe(Callback):
    """Records this rank's torch RNG state when training begins (dropout's stream)."""

    def __init__(self) -> None:
        self.states: list[Tensor] = []

    def on_train_begin(self, trainer: Trainer) -> None:
        self.states.append(torch.get_rng_state().clone())


class NaNOnRank1(CrowdLoss):
    """CCEM whose 3rd call on rank 1 returns NaN."""

    calls = 0

    def forward(
        self, model: CrowdModel, logits: Tensor, rows: Tensor, annotators: Tensor, labels: Tensor
    ) -> dict[str, Tensor]:
        out = super().forward(model, logits, rows, annotators, labels)
        self.calls += 1
        if dist.get_rank() == 1 and self.calls == 3:
            return {k: v * float("nan") for k, v in out.items()}
        return out


def params(model: torch.nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def scenario_exact(out: dict[str, Any]) -> None:
    """One optimizer step: 16 items, batch 8 -> two batches, rank r trains on batch r."""
    x, _, ann = toy(n=16)
    model = exact_model()
    tr = Trainer(model, GeoCrowdNetFLoss(0.01), epochs=1, batch_size=8, lr=1e-2, device="cpu", random_state=3)
    tr.fit(x, ann)
    out["exact_is_crowdmodel"] = type(tr.model) is CrowdModel
    out["exact_params"] = {k: p.detach().clone() for k, p in model.named_parameters()}
    out["exact_grads"] = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
    out["exact_train_loss"] = float(tr.history[-1]["train_loss"])


def scenario_learn(out: dict[str, Any], outdir: Path) -> None:
    """CrowdClassifier(distributed=True) on a simulated crowd; holdout validation; save from rank 0."""
    x, y, ann = simulated()
    messages: list[str] = []
    clf = CrowdClassifier(
        method="ccem", epochs=12, batch_size=32, lr=3e-3, random_state=0, device="cpu", distributed=True,
        verbose=2, sink=messages.append,
    )  # fmt: skip
    clf.fit(x, ann)
    out["learn_messages"] = len(messages)
    out["learn_state"] = params(clf.model_)
    out["learn_history"] = clf.history_.to_list()
    out["learn_acc"] = float(clf.score(x, y))
    out["learn_best_epoch"] = clf.best_epoch_
    clf.save(outdir / "model.safetensors")
    out["learn_saved_after_save"] = (outdir / "model.safetensors").is_file()


def scenario_checkpoint(out: dict[str, Any], outdir: Path) -> None:
    """4 epochs straight vs 2 epochs + resume to 4 (110 items, batch 16: 7 batches, padded to 8)."""
    x, _, ann = toy(n=110)
    writes = {"n": 0}
    original = checkpoint_module._write

    def counting(*args: Any) -> None:
        writes["n"] += 1
        original(*args)

    checkpoint_module._write = counting  # type: ignore[assignment]
    try:

        def build(epochs: int, folder: str) -> tuple[Trainer, RngProbe]:
            probe = RngProbe()
            model = exact_model(dropout=0.3)
            cbs = [probe, Checkpoint(outdir / folder)]
            return Trainer(model, CrowdLoss(), epochs=epochs, batch_size=16, lr=1e-2, device="cpu", random_state=1,
                           callbacks=cbs), probe  # fmt: skip

        full, probe = build(4, "full")
        full.fit(x, ann)
        out["ckpt_rng_at_start"] = probe.states[0]
        part, _ = build(2, "ck")
        part.fit(x, ann)
        resumed, _ = build(4, "ck")
        resumed.fit(x, ann, resume_from=outdir / "ck")
    finally:
        checkpoint_module._write = original  # type: ignore[assignment]
    out["ckpt_writes"] = writes["n"]
    out["ckpt_full"] = params(full.model)
    out["ckpt_resumed"] = params(resumed.model)
    out["ckpt_full_history"] = [e["train_loss"] for e in full.history]
    out["ckpt_resumed_history"] = [e["train_loss"] for e in resumed.history]
    out["ckpt_batches_per_epoch"] = len(full.history[0]["batches"])


def scenario_diverge(out: dict[str, Any]) -> None:
    """NaN on rank 1 only, at its 3rd batch: every rank must raise, and the group must stay usable."""
    x, _, ann = toy(n=110)
    model = exact_model()
    before = params(model)
    tr = Trainer(model, NaNOnRank1(), epochs=3, batch_size=16, lr=1e-2, device="cpu", random_state=1)
    try:
        tr.fit(x, ann)
        out["diverge_raised"] = False
    except TrainingDivergedError as err:
        out["diverge_raised"] = True
        out["diverge_where"] = [err.epoch, err.batch]
        out["diverge_ranks"] = list(err.ranks or [])
        out["diverge_message"] = str(err)
    out["diverge_reset"] = all(torch.equal(before[k], v) for k, v in params(model).items())
    out["diverge_history_len"] = len(tr.history)
    out["group_alive"] = dist_utils.all_reduce_mean(float(dist.get_rank()))


def scenario_mixup(out: dict[str, Any]) -> None:
    x, _, ann = toy(n=64)
    model = exact_model(dropout=0.2)
    tr = Trainer(model, CrowdLoss(), epochs=2, batch_size=16, lr=1e-2, device="cpu", random_state=2, mixup=0.4)
    tr.fit(x, ann)
    out["mixup_state"] = params(model)


def scenario_every_method(out: dict[str, Any]) -> None:
    """Every registered method trains data-parallel (holdout validation, mixup) to identical ranks."""
    from crowdlearn.nn import available_methods

    x, _, ann = toy(n=48)
    out["methods"] = list(available_methods())
    for name in out["methods"]:
        clf = CrowdClassifier(
            method=name,
            epochs=2,
            batch_size=16,
            lr=1e-2,
            mixup=0.4,
            validation="holdout",
            holdout_fraction=0.2,
            device="cpu",
            random_state=3,
        )
        try:
            clf.fit(x, ann)
        except Exception as exc:  # reported per method by the test
            out[f"method_error/{name}"] = f"{type(exc).__name__}: {exc}"
            continue
        out[f"method_state/{name}"] = params(clf.model_)
        out[f"method_loss/{name}"] = [float(e["train_loss"]) for e in clf.history_]


def gloo_threads() -> list[str]:
    """Names of this process's gloo threads (Linux: /proc/self/task); [] elsewhere."""
    task = Path("/proc/self/task")
    if not task.is_dir():
        return []
    names = []
    for t in task.iterdir():
        try:
            names.append((t / "comm").read_text().strip())
        except OSError:  # the thread ended while listing
            continue
    return sorted(n for n in names if "gloo" in n)


def run(local_index: int, world: int, port: int, outdir: str) -> None:
    """Entry point of ``torch.multiprocessing.start_processes``."""
    torch.set_num_threads(1)
    os.environ.update(
        RANK=str(local_index),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(local_index),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    path = Path(outdir)
    out: dict[str, Any] = {}
    with dist_utils.process_group("gloo"):
        out["rank"] = dist_utils.rank()
        out["world"] = dist_utils.world_size()
        scenario_exact(out)
        scenario_learn(out, path)
        scenario_checkpoint(out, path)
        scenario_diverge(out)
        scenario_mixup(out)
        scenario_every_method(out)
    out["destroyed"] = not dist_utils.is_distributed()
    out["gloo_threads_after_destroy"] = gloo_threads()
    torch.save(out, path / f"rank{local_index}.pt")
