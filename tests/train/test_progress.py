"""ProgressBar: a rich bar on an injectable console (stderr by default), rank 0 only."""

from __future__ import annotations

import io

import pytest
import torch
from _toy import toy
from rich.console import Console

from crowdlearn.nn import MLP, ConfusionMatrices, CrowdLoss, CrowdModel
from crowdlearn.train import ProgressBar, Trainer

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def fit_with(bar: ProgressBar, epochs: int = 3) -> None:
    x, _y, ann = toy()
    torch.manual_seed(0)
    model = CrowdModel(MLP(5, 3, hidden=(8,)), ConfusionMatrices(4, 3))
    Trainer(model, CrowdLoss(), epochs=epochs, batch_size=64, device="cpu", callbacks=[bar]).fit(x, ann)


def terminal() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, force_terminal=True, width=120), buf


def test_bar_draws_epochs_and_losses_on_the_injected_console() -> None:
    console, buf = terminal()
    fit_with(ProgressBar(console=console), epochs=3)
    text = buf.getvalue()
    assert "training" in text and "epoch 3/3" in text and "train_loss=" in text
    assert "━" in text  # the bar itself


def test_default_console_is_stderr_never_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    fit_with(ProgressBar(), epochs=2)
    captured = capsys.readouterr()
    assert captured.out == ""  # results stay on stdout; the bar is not one of them
    assert "epoch 2/2" in captured.err


def test_only_rank_0_draws(monkeypatch: pytest.MonkeyPatch) -> None:
    import crowdlearn.train.distributed as dist_utils

    monkeypatch.setattr(dist_utils, "is_main_process", lambda: False)
    console, buf = terminal()
    fit_with(ProgressBar(console=console), epochs=2)
    assert buf.getvalue() == ""
