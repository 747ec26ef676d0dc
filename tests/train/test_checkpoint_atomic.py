"""A checkpoint is one atomic unit: a crash while writing leaves the previous one, never a mix."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import torch
from _toy import toy

from crowdlearn.nn import MLP, ConfusionMatrices, CrowdLoss, CrowdModel
from crowdlearn.train import Callback, Checkpoint, Trainer, load_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Record(Callback):
    """Keeps the model's weights after every epoch (runs before the checkpoint is written)."""

    def __init__(self) -> None:
        self.states: list[dict[str, torch.Tensor]] = []

    def on_epoch_end(self, trainer: Trainer, epoch: int) -> None:
        self.states.append({k: v.detach().clone() for k, v in trainer.model.state_dict().items()})


def _trainer(epochs: int, callbacks: list[Callback], seed: int = 0) -> Trainer:
    torch.manual_seed(seed)
    model = CrowdModel(MLP(5, 3, hidden=(8,)), ConfusionMatrices(4, 3))
    return Trainer(model, CrowdLoss(), epochs=epochs, batch_size=32, lr=1e-2, device="cpu", callbacks=callbacks)


def _assert_state(trainer: Trainer, state: dict[str, torch.Tensor]) -> None:
    for k, v in trainer.model.state_dict().items():
        torch.testing.assert_close(v, state[k], rtol=0, atol=0)


def test_crash_at_any_rename_of_a_checkpoint_save_keeps_the_previous_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    x, _y, ann = toy()
    real_replace = os.replace
    calls: list[Any] = []

    def counting(src: Any, dst: Any) -> None:
        calls.append(dst)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", counting)
    _trainer(1, [Checkpoint(tmp_path / "count")]).fit(x, ann)
    per_save = len(calls)  # the renames one checkpoint save makes
    assert per_save >= 1

    for fail_at in range(1, per_save + 1):  # a crash at each rename of epoch 1's save
        folder = tmp_path / f"ck{fail_at}"
        rec = Record()
        tr = _trainer(5, [rec, Checkpoint(folder)])
        seen: list[Any] = []

        def replace(src: Any, dst: Any, fail_at: int = fail_at, rec: Record = rec, seen: list[Any] = seen) -> None:
            if len(rec.states) == 2:  # epoch 0's checkpoint is written; epoch 1's is being written
                seen.append(dst)
                if len(seen) == fail_at:
                    raise OSError("simulated crash")
            real_replace(src, dst)

        monkeypatch.setattr(os, "replace", replace)
        with pytest.raises(OSError, match="simulated crash"):
            tr.fit(x, ann)
        monkeypatch.setattr(os, "replace", real_replace)

        fresh = _trainer(5, [Record(), Checkpoint(folder)], seed=99)
        assert load_checkpoint(fresh, folder) == 1  # the epoch-0 checkpoint, whole
        _assert_state(fresh, rec.states[0])
        assert len(fresh.history) == 1
        assert sorted(p.name for p in folder.iterdir()) == ["checkpoint.safetensors"]  # no temporary file left


def test_checkpoint_is_one_file_and_resume_still_matches(tmp_path: Path) -> None:
    x, _y, ann = toy()
    straight = _trainer(3, [Checkpoint(tmp_path / "a")])
    straight.fit(x, ann)
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["checkpoint.safetensors"]
    first = _trainer(2, [Checkpoint(tmp_path / "b")])
    first.fit(x, ann)
    resumed = _trainer(3, [Checkpoint(tmp_path / "b")], seed=5)
    resumed.fit(x, ann, resume_from=tmp_path / "b")
    assert resumed.history[:, "train_loss"] == pytest.approx(straight.history[:, "train_loss"], rel=1e-6)


def test_a_damaged_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    x, _y, ann = toy()
    _trainer(1, [Checkpoint(tmp_path / "ck")]).fit(x, ann)
    path = tmp_path / "ck" / "checkpoint.safetensors"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="checkpoint.safetensors: not a readable checkpoint"):
        load_checkpoint(_trainer(2, [Checkpoint(tmp_path / "ck")]), tmp_path / "ck")
