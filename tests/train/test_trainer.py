"""crowdlearn.train: batching, history, callbacks, checkpoints/resume, divergence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from _toy import toy

from crowdlearn.annotations import Annotations
from crowdlearn.nn import MLP, ConfusionMatrices, CrowdLoss, CrowdModel, GeoCrowdNetFLoss
from crowdlearn.train import (
    Callback,
    Checkpoint,
    EarlyStopping,
    EpochPrinter,
    History,
    Inputs,
    LambdaSchedule,
    Trainer,
    TrainingDivergedError,
    ValidationSet,
    item_batches,
    make_batch,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_trainer(epochs: int = 3, callbacks: list[Callback] | None = None, **kw: object) -> Trainer:
    torch.manual_seed(0)
    model = CrowdModel(MLP(5, 3, hidden=(16,), dropout=0.2), ConfusionMatrices(4, 3, scale=2.0))
    return Trainer(
        model, CrowdLoss(), epochs=epochs, batch_size=32, lr=1e-2, device="cpu", callbacks=callbacks or [], **kw
    )  # type: ignore[arg-type]


def test_history_round_trip_and_slicing(tmp_path: Path) -> None:
    h = History()
    for e in range(3):
        h.new_epoch(e)
        h.record_batch({"loss": 1.0 / (e + 1)})
        h.record("train_loss", 1.0 / (e + 1))
    h.record("valid_acc", 0.9)
    assert h[:, "train_loss"] == [1.0, 0.5, 1.0 / 3]
    assert h[:, "valid_acc"] == [None, None, 0.9]
    assert h[-1, "valid_acc"] == 0.9
    assert History.from_json(h.to_json()) == h
    h.to_file(tmp_path / "h.json")
    assert History.from_file(tmp_path / "h.json") == h
    with pytest.raises(ValueError, match="list of epoch objects"):
        History.from_json('{"a": 1}')


def test_item_batches_and_make_batch() -> None:
    batches = item_batches(np.arange(9, dtype=np.int64), 4)
    assert [len(b) for b in batches] == [4, 5]  # trailing singleton merged (batch norm needs 2 items)
    shuffled = item_batches(np.arange(9, dtype=np.int64), 4, generator=torch.Generator().manual_seed(1))
    assert sorted(np.concatenate(shuffled).tolist()) == list(range(9))
    ann = Annotations([0, 0, 1, 2, 2, 2], [0, 1, 1, 0, 1, 2], [1, 1, 0, 2, 2, 1])
    b = make_batch(Inputs(np.arange(6.0).reshape(3, 2)), ann, np.array([2, 0]))
    assert b.x.tolist() == [[4.0, 5.0], [0.0, 1.0]]
    assert b.rows.tolist() == [0, 0, 0, 1, 1]
    assert b.annotators.tolist() == [0, 1, 2, 0, 1]
    assert b.labels.tolist() == [2, 2, 1, 1, 1]
    with pytest.raises(ValueError, match=r"non-finite value at index \(1, 0\)"):
        Inputs(np.array([[0.0], [np.nan]]))


def test_training_reduces_loss_and_records_validation() -> None:
    x, y, ann = toy()
    train, held = ann.split_holdout(0.2, random_state=0)
    tr = make_trainer(epochs=8)
    h = tr.fit(x, train, valid=ValidationSet(Inputs(x), annotations=held))
    losses = h[:, "train_loss"]
    assert losses[-1] < losses[0]
    assert all(v is not None for v in h[:, "valid_loss"])
    tr2 = make_trainer(epochs=2)
    h2 = tr2.fit(x, ann, valid=ValidationSet(Inputs(x), y=y))
    assert 0.0 <= h2[-1, "valid_acc"] <= 1.0
    assert len(h2[-1]["batches"]) == 4


def test_early_stopping_stops_by_flag_and_restores_best() -> None:
    x, _y, ann = toy()
    lines: list[str] = []

    class WorseEachEpoch(Callback):
        def on_epoch_end(self, trainer: Trainer, epoch: int) -> None:
            trainer.history.record("score", float(epoch))  # minimised: epoch 0 is best

    es = EarlyStopping("score", mode="min", patience=2)
    tr = make_trainer(epochs=10, callbacks=[WorseEachEpoch(), es], sink=lines.append)
    snapshots: list[dict[str, torch.Tensor]] = []

    class Snap(Callback):
        def on_epoch_end(self, trainer: Trainer, epoch: int) -> None:
            snapshots.append({k: v.clone() for k, v in trainer.model.state_dict().items()})

    tr.callbacks.append(Snap())
    h = tr.fit(x, ann)
    assert len(h) == 3
    assert h[:, "score_best"] == [True, False, False]
    assert lines == ["Early stopping after epoch 2: score did not improve for 2 epochs; best score = 0 at epoch 0."]
    for k, v in tr.model.state_dict().items():
        torch.testing.assert_close(v, snapshots[0][k])


def test_epoch_printer_and_lambda_schedule() -> None:
    x, _y, ann = toy()
    lines: list[str] = []
    torch.manual_seed(0)
    model = CrowdModel(MLP(5, 3, hidden=(8,)), ConfusionMatrices(4, 3))
    crit = GeoCrowdNetFLoss(lam=1.0)
    tr = Trainer(
        model,
        crit,
        epochs=3,
        batch_size=64,
        device="cpu",
        sink=lines.append,
        callbacks=[LambdaSchedule(lambda e: 0.1 * e), EpochPrinter()],
    )
    h = tr.fit(x, ann)
    assert h[:, "lam"] == [0.0, 0.1, 0.2]
    assert crit.lam == pytest.approx(0.2)
    assert len(lines) == 3 and lines[0].startswith("epoch 1/3 train_loss=")
    assert "train_reg" in h[-1]


def test_resume_continues_the_same_run(tmp_path: Path) -> None:
    x, y, ann = toy()
    valid = ValidationSet(Inputs(x), y=y)
    straight = make_trainer(epochs=4, callbacks=[EarlyStopping("valid_acc", mode="max"), Checkpoint(tmp_path / "a")])
    straight.fit(x, ann, valid=valid)

    first = make_trainer(epochs=2, callbacks=[EarlyStopping("valid_acc", mode="max"), Checkpoint(tmp_path / "b")])
    first.fit(x, ann, valid=valid)
    # a fresh process: new model with different weights, resumed from the folder
    torch.manual_seed(123)
    model = CrowdModel(MLP(5, 3, hidden=(16,), dropout=0.2), ConfusionMatrices(4, 3))
    resumed = Trainer(
        model,
        CrowdLoss(),
        epochs=4,
        batch_size=32,
        lr=1e-2,
        device="cpu",
        callbacks=[EarlyStopping("valid_acc", mode="max"), Checkpoint(tmp_path / "b")],
    )
    resumed.fit(x, ann, valid=valid, resume_from=tmp_path / "b")
    assert resumed.history[:, "epoch"] == [0, 1, 2, 3]
    assert resumed.history[:, "train_loss"] == pytest.approx(straight.history[:, "train_loss"], rel=1e-6)
    for k, v in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[k], v)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        make_trainer().fit(x, ann, resume_from=tmp_path / "missing")


def test_divergence_raises_and_keeps_last_good_state(tmp_path: Path) -> None:
    x, _y, ann = toy()

    class NaNAtEpoch1(CrowdLoss):
        epoch = 0

        def forward(self, model, logits, rows, annotators, labels):  # type: ignore[no-untyped-def]
            parts = super().forward(model, logits, rows, annotators, labels)
            if NaNAtEpoch1.epoch >= 1:
                parts["loss"] = parts["loss"] * float("nan")
            return parts

    class Count(Callback):
        def on_epoch_end(self, trainer: Trainer, epoch: int) -> None:
            NaNAtEpoch1.epoch = epoch + 1
            self.state = {k: v.clone() for k, v in trainer.model.state_dict().items()}

    torch.manual_seed(0)
    model = CrowdModel(MLP(5, 3, hidden=(8,)), ConfusionMatrices(4, 3))
    counter = Count()
    tr = Trainer(
        model, NaNAtEpoch1(), epochs=5, batch_size=32, device="cpu", callbacks=[counter, Checkpoint(tmp_path / "ck")]
    )
    with pytest.raises(TrainingDivergedError, match=r"non-finite loss at epoch 1, batch 0 \(loss=nan"):
        tr.fit(x, ann)
    assert len(tr.history) == 1
    for k, v in tr.model.state_dict().items():
        torch.testing.assert_close(v, counter.state[k])
    assert (tmp_path / "ck" / "checkpoint.safetensors").is_file()


def test_input_errors_and_dataset_inputs() -> None:
    x, y, ann = toy()
    with pytest.raises(ValueError, match="X has 119 rows but the annotations have 120 items"):
        make_trainer().fit(x[:-1], ann)
    ds = torch.utils.data.TensorDataset(torch.tensor(x, dtype=torch.float32), torch.tensor(y))
    h = make_trainer(epochs=1).fit(ds, ann)
    assert len(h) == 1


def test_deterministic_flag_is_restored_and_runs_repeat() -> None:
    x, _y, ann = toy()
    before = torch.are_deterministic_algorithms_enabled()
    a = make_trainer(epochs=2, deterministic=True)
    a.fit(x, ann)
    assert torch.are_deterministic_algorithms_enabled() == before
    b = make_trainer(epochs=2, deterministic=True)
    b.fit(x, ann)
    assert a.history[:, "train_loss"] == b.history[:, "train_loss"]


def test_mixup_loss_is_the_weighted_loss_of_both_items_labels() -> None:
    """One mixed batch against a hand computation with the same draws (CCEM and GeoCrowdNet(F))."""
    x, _y, ann = toy(n=10)
    for criterion in (CrowdLoss(), GeoCrowdNetFLoss(lam=0.1)):
        trainer = make_trainer(mixup=0.4)
        trainer.criterion = criterion
        trainer.model.eval()  # no dropout: the same forward twice
        batch = make_batch(Inputs(x), ann, np.arange(10, dtype=np.int64))
        state = trainer.generator.get_state()
        got = trainer.mixup_loss(batch)

        replay = torch.Generator()
        replay.set_state(state)
        draw = int(torch.randint(0, 2**62, (1,), generator=replay))
        t = float(np.random.default_rng(draw).beta(0.4, 0.4))
        perm = torch.randperm(10, generator=replay)
        logits = trainer.model(t * batch.x + (1 - t) * batch.x[perm])
        # dense reference: for every observed (item j, annotator, label), row j with weight t and
        # the row r with perm[r] == j with weight 1 - t
        rows_other = torch.tensor([int(torch.nonzero(perm == j)[0]) for j in batch.rows.tolist()])
        own = criterion(trainer.model, logits, batch.rows, batch.annotators, batch.labels)
        other = criterion(trainer.model, logits, rows_other, batch.annotators, batch.labels)
        assert 0.0 < t < 1.0
        for key in own:
            torch.testing.assert_close(got[key], t * own[key] + (1 - t) * other[key])
        assert set(got) == set(own)


def test_mixup_trains_repeats_with_the_seed_and_resumes(tmp_path: Path) -> None:
    x, y, ann = toy()
    valid = ValidationSet(Inputs(x), y=y)
    plain = make_trainer(epochs=4)
    plain.fit(x, ann)
    a = make_trainer(epochs=4, mixup=1.0)
    a.fit(x, ann, valid=valid)
    b = make_trainer(epochs=4, mixup=1.0)
    b.fit(x, ann, valid=valid)
    assert a.history[:, "train_loss"] == b.history[:, "train_loss"]
    assert a.history[:, "train_loss"] != pytest.approx(plain.history[:, "train_loss"])
    assert a.history[-1]["valid_acc"] > 0.6  # it still learns the classes

    first = make_trainer(epochs=2, mixup=1.0, callbacks=[Checkpoint(tmp_path / "m")])
    first.fit(x, ann, valid=valid)
    resumed = make_trainer(epochs=4, mixup=1.0, callbacks=[Checkpoint(tmp_path / "m")])
    resumed.fit(x, ann, valid=valid, resume_from=tmp_path / "m")
    assert resumed.history[:, "train_loss"] == pytest.approx(a.history[:, "train_loss"], rel=1e-6)


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
def test_mixup_must_be_a_finite_non_negative_float(bad: float) -> None:
    with pytest.raises(ValueError, match="The 'mixup' parameter of Trainer must be a float >= 0, got "):
        make_trainer(mixup=bad)
