"""Reading the loss values every ``check_every`` steps: the same history, the same divergence error."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _toy import toy

from crowdlearn.nn import MLP, ConfusionMatrices, CrowdLoss, CrowdModel, GeoCrowdNetWLoss
from crowdlearn.train import Trainer, TrainingDivergedError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class _NanAt(CrowdLoss):
    """CCEM whose loss becomes NaN from its ``at``-th call on (0-based)."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at, self.calls = at, 0

    def forward(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        parts = super().forward(*args, **kwargs)
        self.calls += 1
        if self.calls - 1 >= self.at:
            parts = {**parts, "loss": parts["loss"] * float("nan")}
        return parts


def _trainer(criterion: torch.nn.Module, check_every: int | None, epochs: int = 2) -> Trainer:
    torch.manual_seed(0)
    model = CrowdModel(MLP(5, 3, hidden=(16,)), ConfusionMatrices(4, 3))
    return Trainer(
        model, criterion, epochs=epochs, batch_size=16, lr=1e-2, device="cpu", sink=lambda s: None,
        check_every=check_every,
    )  # fmt: skip


@pytest.mark.parametrize("every", [3, 100])
def test_deferred_reads_give_the_same_history(every: int) -> None:
    x, _, ann = toy()
    want = _trainer(GeoCrowdNetWLoss(0.01), None).fit(x, ann)
    got = _trainer(GeoCrowdNetWLoss(0.01), every).fit(x, ann)
    assert got.to_list() == want.to_list()  # the per-batch values and the epoch means, exactly


@pytest.mark.parametrize("every", [None, 4, 100])
def test_deferred_reads_name_the_first_non_finite_batch(every: int | None) -> None:
    x, _, ann = toy()  # 120 items, batch 16: 8 batches per epoch
    trainer = _trainer(_NanAt(8 + 5), every)  # epoch 1, batch 5

    with pytest.raises(TrainingDivergedError, match=r"non-finite loss at epoch 1, batch 5 \(loss=nan") as info:
        trainer.fit(x, ann)
    err = info.value
    assert (err.epoch, err.batch) == (1, 5) and np.isnan(err.parts["loss"]) and np.isfinite(err.parts["nll"])
    assert len(trainer.history) == 1  # the diverged epoch is dropped
    # the model is reset to its state after epoch 0: finite, and that of a run stopped there
    ref = _trainer(CrowdLoss(), None, epochs=1)
    ref.fit(x, ann)
    for (name, a), b in zip(trainer.model.state_dict().items(), ref.model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


def test_check_every_is_validated() -> None:
    with pytest.raises(ValueError, match="check_every"):
        _trainer(CrowdLoss(), 0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_defers_the_reads_and_still_names_the_batch() -> None:
    x, _, ann = toy()
    torch.manual_seed(0)
    model = CrowdModel(MLP(5, 3, hidden=(16,)), ConfusionMatrices(4, 3))
    trainer = Trainer(model, _NanAt(3), epochs=2, batch_size=16, lr=1e-2, device="cuda", sink=lambda s: None)
    assert trainer._steps_between_checks(8) == 8  # once per epoch on CUDA
    with pytest.raises(TrainingDivergedError, match=r"epoch 0, batch 3"):
        trainer.fit(x, ann)
    good = _trainer(CrowdLoss(), None)
    cpu_hist = good.fit(x, ann)
    torch.manual_seed(0)
    model = CrowdModel(MLP(5, 3, hidden=(16,)), ConfusionMatrices(4, 3))
    cuda = Trainer(model, CrowdLoss(), epochs=2, batch_size=16, lr=1e-2, device="cuda", sink=lambda s: None)
    hist = cuda.fit(x, ann)
    np.testing.assert_allclose(hist[:, "train_loss"], cpu_hist[:, "train_loss"], rtol=1e-4)
