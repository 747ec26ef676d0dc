"""Divergence of the held-out loss and collapsed models: errors, warnings, CLI exit codes."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from crowdlearn import Annotations
from crowdlearn.cli import app
from crowdlearn.estimators import CrowdClassifier

pytestmark = pytest.mark.usefixtures("one_torch_thread")

runner = CliRunner()


def _data(n: int = 60, k: int = 3) -> tuple[np.ndarray, Annotations]:
    rng = np.random.default_rng(0)
    y = rng.integers(0, k, n)
    x = (rng.normal(size=(n, 4)) + 3.0 * np.eye(k, 4)[y]).astype(np.float32)
    items = np.repeat(np.arange(n), 3)
    anns = np.tile(np.arange(3), n)
    labels = np.where(rng.random(3 * n) < 0.8, np.repeat(y, 3), rng.integers(0, k, 3 * n))
    return x, Annotations(items, anns, labels, n_classes=k)


def test_exploding_held_out_nll_is_divergence_naming_epoch_and_checkpoint(tmp_path: Path) -> None:
    from crowdlearn.train import TrainingDivergedError

    x, ann = _data()
    # both learning rates: CCEM's default recipe sets its own confusion_lr, which lr leaves
    clf = CrowdClassifier(method="ccem", epochs=10, lr=1e6, confusion_lr=1e6, checkpoint_dir=str(tmp_path / "ck"))
    with pytest.raises(TrainingDivergedError) as info:
        clf.fit(x, ann)
    err = info.value
    assert err.batch == -1 and err.epoch == 0
    assert f"exceeds {20 * math.log(3):.4g} (20 x log K" in str(err)
    assert "No checkpoint was written to" in str(err) and err.checkpoint == str(tmp_path / "ck")


def test_divergence_after_a_good_epoch_names_that_checkpoint(tmp_path: Path) -> None:
    from crowdlearn.nn import MLP, ConfusionMatrices, CrowdLoss, CrowdModel
    from crowdlearn.train import Checkpoint, Inputs, Trainer, TrainingDivergedError, ValidationSet

    x, ann = _data()
    train, held = ann.split_holdout(0.2)  # seeded by default
    model = CrowdModel(MLP(4, 3, hidden=(8,)), ConfusionMatrices(3, 3))

    class LrBoost(Checkpoint):  # after epoch 1's checkpoint, a learning rate that explodes
        def on_epoch_end(self, trainer: Trainer, epoch: int) -> None:
            super().on_epoch_end(trainer, epoch)
            if epoch == 1:
                trainer.lr = trainer.confusion_lr = 1e6

    tr = Trainer(model, CrowdLoss(), epochs=6, batch_size=16, lr=1e-2, device="cpu", callbacks=[LrBoost(tmp_path)])
    with pytest.raises(TrainingDivergedError, match=r"held-out loss .* after epoch 2 exceeds") as info:
        tr.fit(x, train, valid=ValidationSet(Inputs(x), annotations=held))
    assert f"The last good checkpoint is epoch 1 in {tmp_path}." in str(info.value)
    assert len(tr.history) == 2  # the diverged epoch is dropped, the model reset to after epoch 1


def test_normal_runs_do_not_trip_the_rule() -> None:
    x, ann = _data()
    for method in ("ccem", "geocrowdnet-f", "ce", "crowdlayer-mw"):
        for lr in (1e-3, 1e-1):
            clf = CrowdClassifier(method=method, epochs=15, lr=lr).fit(x, ann)  # type: ignore[arg-type]
            assert max(clf.history_[:, "valid_loss"]) < 2 * math.log(3)


class _Constant(torch.nn.Module):
    """A backbone that ignores its input: the same logits for every item (a collapsed model)."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = torch.nn.Parameter(torch.tensor([2.0, 0.0, 0.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bias.expand(x.shape[0], 3)


def test_a_collapsed_model_warns_and_says_so() -> None:
    from crowdlearn.estimators import CollapsedModelWarning

    x, ann = _data()
    with pytest.warns(
        CollapsedModelWarning, match="predicts class 0 for every training item while the crowd's majority"
    ):
        clf = CrowdClassifier(method="ccem", backbone=_Constant(), epochs=2, lr=1e-3, validation="none").fit(x, ann)
    assert clf.collapsed_ is True
    with warnings.catch_warnings():
        warnings.simplefilter("error", CollapsedModelWarning)
        good = CrowdClassifier(method="ccem", epochs=5, lr=1e-2, validation="none").fit(x, ann)
    assert good.collapsed_ is False


def _files(tmp_path: Path, x: np.ndarray, ann: Annotations) -> tuple[Path, Path]:
    labels, feats = tmp_path / "labels.csv", tmp_path / "x.npy"
    pd.DataFrame({"item": ann.items, "annotator": ann.annotators, "label": ann.labels}).to_csv(labels, index=False)
    np.save(feats, x)
    return labels, feats


def test_cli_lr_1e6_exits_1_and_writes_nothing(tmp_path: Path) -> None:
    x, ann = _data()
    labels, feats = _files(tmp_path, x, ann)
    args = ["train", str(labels), "-x", str(feats), "--out", str(tmp_path / "m.safetensors"), "--epochs", "5"]
    # both learning rates: the default recipe (GeoCrowdNet(F)'s) sets its own confusion_lr, which --lr leaves
    res = runner.invoke(app, [*args, "--lr", "1e6", "--confusion-lr", "1e6", "--predictions", str(tmp_path / "p.csv")])
    assert res.exit_code == 1, res.output
    assert "training diverged: held-out loss" in res.output and "after epoch 0 exceeds" in res.output
    assert "Nothing was written." in res.output and "Traceback" not in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.csv", "x.npy"]


def test_cli_refuses_a_collapsed_model_unless_allowed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    x, ann = _data()
    labels, feats = _files(tmp_path, x, ann)
    real_fit = CrowdClassifier.fit

    def constant_fit(self: CrowdClassifier, *args: object, **kwargs: object) -> CrowdClassifier:
        self.backbone = _Constant()
        return real_fit(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(CrowdClassifier, "fit", constant_fit)
    args = ["train", str(labels), "-x", str(feats), "--out", str(tmp_path / "m.safetensors"), "--epochs", "2"]
    res = runner.invoke(app, [*args, "--validation", "none", "--method", "ccem"])
    assert res.exit_code == 3, res.output
    assert "error: untrusted model: the model predicts class 0 for every training item while the crowd's" in res.output
    assert not (tmp_path / "m.safetensors").exists()
    res = runner.invoke(app, [*args, "--validation", "none", "--method", "ccem", "--allow-untrusted"])
    assert res.exit_code == 0, res.output
    assert "warning: the model predicts class 0 for every training item while the crowd's majority" in res.output
    assert (tmp_path / "m.safetensors").exists()
