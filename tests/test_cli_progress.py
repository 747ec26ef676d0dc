"""Progress bars and --quiet of `crowdlearn train` / `aggregate`, and `-V`."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import crowdlearn
import crowdlearn.cli as cli
from crowdlearn import Annotations
from crowdlearn.aggregate import GLAD, MACE, DawidSkene, OneCoinDawidSkene
from crowdlearn.cli import app

runner = CliRunner()
BAR = "━"  # rich's bar character on a terminal

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """60 items, 3 classes, 4 annotators; integer ids; features as .npy (row i = item i)."""
    rng = np.random.default_rng(0)
    n, k = 60, 3
    y = rng.integers(0, k, n)
    x = rng.normal(size=(n, 4)) + 3.0 * np.eye(k, 4)[y]
    rows = [(i, a, int(y[i]) if rng.random() < 0.8 else int(rng.integers(0, k))) for i in range(n) for a in range(4)]
    labels = tmp_path / "labels.csv"
    pd.DataFrame(rows, columns=["item", "annotator", "label"]).to_csv(labels, index=False)
    features = tmp_path / "x.npy"
    np.save(features, x)
    return {"labels": labels, "features": features, "dir": tmp_path}


def train_args(files: dict[str, Path], *extra: str) -> list[str]:
    out = files["dir"] / "model.safetensors"
    return ["train", str(files["labels"]), "-x", str(files["features"]), "-o", str(out), "--epochs", "3", *extra]


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend stderr is a terminal; FORCE_COLOR makes rich draw on the runner's stderr as on one."""
    monkeypatch.setattr(cli, "_stderr_is_terminal", lambda: True)
    monkeypatch.setenv("FORCE_COLOR", "1")


def test_train_draws_a_bar_on_a_terminal_by_default(files: dict[str, Path], terminal: None) -> None:
    res = runner.invoke(app, train_args(files))
    assert res.exit_code == 0, res.output
    assert BAR in res.stderr and "epoch 3/3" in res.stderr
    assert BAR not in res.stdout and "model written to" in res.stdout


def test_train_draws_no_bar_when_stderr_is_not_a_terminal(files: dict[str, Path]) -> None:
    res = runner.invoke(app, train_args(files))
    assert res.exit_code == 0, res.output
    assert res.stderr == ""
    assert BAR not in res.stdout and "epoch" not in res.stdout.replace("selected epoch", "")


def test_train_no_progress_wins_on_a_terminal(files: dict[str, Path], terminal: None) -> None:
    res = runner.invoke(app, train_args(files, "--no-progress"))
    assert res.exit_code == 0, res.output
    assert res.stderr == ""


def test_train_quiet_prints_nothing_but_writes_the_model(files: dict[str, Path], terminal: None) -> None:
    res = runner.invoke(app, train_args(files, "-q"))
    assert res.exit_code == 0, res.output
    assert res.stdout == "" and res.stderr == ""
    assert (files["dir"] / "model.safetensors").is_file()


def test_train_quiet_still_reports_errors(files: dict[str, Path]) -> None:
    (files["dir"] / "model.safetensors").write_text("old")
    res = runner.invoke(app, train_args(files, "--quiet"))
    assert res.exit_code == 1
    assert res.stderr.startswith("error: ") and "already exists" in res.stderr


def test_aggregate_em_draws_an_iteration_bar_on_a_terminal(files: dict[str, Path], terminal: None) -> None:
    res = runner.invoke(app, ["aggregate", str(files["labels"]), "--method", "ds"])
    assert res.exit_code == 0, res.output
    assert BAR in res.stderr and "DawidSkene EM" in res.stderr and "log-likelihood" in res.stderr
    table = pd.read_csv(io.StringIO(res.stdout))  # the CSV on stdout is untouched by the bar
    assert list(table.columns) == ["item", "label", "confidence"] and len(table) == 60


def test_aggregate_no_bar_off_a_terminal_or_quiet(files: dict[str, Path], terminal: None) -> None:
    res = runner.invoke(app, ["aggregate", str(files["labels"]), "--method", "glad", "--quiet"])
    assert res.exit_code == 0, res.output
    assert res.stderr == "" and len(pd.read_csv(io.StringIO(res.stdout))) == 60
    res = runner.invoke(app, ["aggregate", str(files["labels"]), "--method", "mv", "--progress"])
    assert res.exit_code == 0 and res.stderr == ""  # one-pass methods have no iterations to show


@pytest.mark.parametrize("cls", [DawidSkene, OneCoinDawidSkene, GLAD, MACE])
def test_em_callback_sees_every_iteration_and_its_log_likelihood(cls: type) -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 40)
    items = np.repeat(np.arange(40), 3)
    annotators = np.tile(np.arange(3), 40)
    labels = np.where(rng.random(120) < 0.75, np.repeat(y, 3), rng.integers(0, 3, 120))
    ann = Annotations(items, annotators, labels, n_classes=3)
    seen: list[tuple[int, float]] = []
    agg = cls(n_iter=5, tol=0).fit(ann, callback=lambda i, ll: seen.append((i, ll)))
    assert [i for i, _ in seen] == [1, 2, 3, 4, 5] == list(range(1, agg.n_iter_ + 1))
    assert [ll for _, ll in seen] == agg.log_likelihood_[-5:]


def test_short_version_flag() -> None:
    for flag in ("-V", "--version"):
        res = runner.invoke(app, [flag])
        assert res.exit_code == 0 and res.stdout == f"crowdlearn {crowdlearn.__version__}\n"
