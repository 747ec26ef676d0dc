"""Every command checks its inputs and outputs before the work, and writes all or nothing."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from crowdlearn.cli import app
from crowdlearn.estimators import CrowdClassifier

runner = CliRunner()

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def crowd(tmp_path: Path) -> dict[str, Path]:
    """40 items with string ids (3 classes, 4 features), 3 annotators each; 5 unlabelled rows."""
    rng = np.random.default_rng(0)
    n, k = 45, 3
    y = rng.integers(0, k, n)
    x = rng.normal(size=(n, 4)) + 3.0 * np.eye(k, 4)[y]
    ids = [f"doc{i:03d}" for i in range(n)]
    names = np.array(["bird", "cat", "dog"])
    rows = [(ids[i], f"w{a}", names[y[i]] if rng.random() < 0.8 else "cat") for i in range(40) for a in range(3)]
    labels = tmp_path / "labels.csv"
    pd.DataFrame(rows, columns=["item", "annotator", "label"]).to_csv(labels, index=False)
    feats = tmp_path / "features.csv"
    pd.DataFrame(x, columns=[f"f{j}" for j in range(4)]).assign(item=ids)[["item", "f0", "f1", "f2", "f3"]].to_csv(
        feats, index=False
    )
    truth = tmp_path / "truth.csv"
    pd.DataFrame({"item": ids, "label": names[y]}).to_csv(truth, index=False)
    return {"labels": labels, "features": feats, "truth": truth, "dir": tmp_path}


def train(crowd: dict[str, Path], *extra: str, out: str | None = None) -> list[str]:
    return [
        "train",
        str(crowd["labels"]),
        "--features",
        str(crowd["features"]),
        "--out",
        out if out is not None else str(crowd["dir"] / "model.safetensors"),
        "--epochs",
        "3",
        "--lr",
        "0.01",
        *extra,
    ]


@pytest.fixture
def no_fit(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Record calls of CrowdClassifier.fit instead of training (a check must fail before it)."""
    calls: list[Any] = []

    def fit(self: CrowdClassifier, *args: Any, **kwargs: Any) -> CrowdClassifier:
        calls.append(args)
        raise AssertionError("training started")

    monkeypatch.setattr(CrowdClassifier, "fit", fit)
    return calls


def _files(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


BEFORE = ["features.csv", "labels.csv", "truth.csv"]


@pytest.mark.parametrize("option", ["--out", "--predictions", "--confusions", "--report"])
def test_train_output_in_a_missing_folder_fails_before_training(
    crowd: dict[str, Path], no_fit: list[Any], option: str
) -> None:
    d = crowd["dir"]
    args = train(crowd) if option == "--out" else train(crowd, option, str(d / "nowhere" / "x.out"))
    if option == "--out":
        args[5] = str(d / "nowhere" / "m.safetensors")
    res = runner.invoke(app, args)
    assert res.exit_code == 1, res.output
    assert "nowhere: the output folder does not exist" in res.output
    assert "Traceback" not in res.output and no_fit == [] and _files(d) == BEFORE


def test_train_bad_truth_fails_before_training(crowd: dict[str, Path], no_fit: list[Any]) -> None:
    d = crowd["dir"]
    bad = d / "bad_truth.csv"
    pd.DataFrame({"item": ["doc001"], "label": ["fish"]}).to_csv(bad, index=False)
    res = runner.invoke(app, train(crowd, "--truth", str(bad)))
    assert res.exit_code == 1, res.output
    assert "truth label 'fish' of item 'doc001' is not one of the classes" in res.output
    assert no_fit == [] and not (d / "model.safetensors").exists()

    pd.DataFrame({"item": ["zzz"], "label": ["cat"]}).to_csv(bad, index=False)
    res = runner.invoke(app, train(crowd, "--truth", str(bad)))
    assert (
        res.exit_code == 1
        and "bad_truth.csv: none of the 1 truth items is an item of the labels or a feature row" in res.output
    )
    assert no_fit == [] and not (d / "model.safetensors").exists()


def test_train_outputs_must_be_distinct_and_not_inputs(crowd: dict[str, Path], no_fit: list[Any]) -> None:
    d = crowd["dir"]
    res = runner.invoke(app, train(crowd, "--predictions", str(d / "model.safetensors")))
    assert res.exit_code == 1 and "--out and --predictions name the same file" in res.output
    res = runner.invoke(app, train(crowd, "--predictions", str(crowd["labels"]), "--force"))
    assert res.exit_code == 1 and "is the input FILE; an output never replaces an input" in res.output
    res = runner.invoke(app, train(crowd, "--force", out=str(crowd["features"])))
    assert res.exit_code == 1 and "is the input --features" in res.output
    assert no_fit == [] and _files(d) == BEFORE
    assert pd.read_csv(crowd["labels"]).shape == (120, 3)


def test_train_out_dash_is_an_error_for_the_binary_model(crowd: dict[str, Path], no_fit: list[Any]) -> None:
    res = runner.invoke(app, train(crowd, out="-"))
    assert res.exit_code == 1
    assert "--out -: the model (a binary safetensors file) cannot go to standard output" in res.output
    assert no_fit == []


@pytest.mark.parametrize("kind", ["symlink", "fifo"])
def test_force_never_replaces_a_symlink_or_a_non_regular_file(
    crowd: dict[str, Path], no_fit: list[Any], kind: str
) -> None:
    d = crowd["dir"]
    target = d / "pred.csv"
    if kind == "symlink":
        (d / "real.csv").write_text("keep")
        target.symlink_to(d / "real.csv")
    else:
        os.mkfifo(target)
    for force in ([], ["--force"]):
        res = runner.invoke(app, train(crowd, "--predictions", str(target), *force))
        assert res.exit_code == 1, res.output
        assert ("is a symbolic link" if kind == "symlink" else "is a named pipe") in res.output
    assert target.is_symlink() if kind == "symlink" else not target.is_file()
    assert no_fit == []


def test_train_writes_all_outputs_or_none(crowd: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    d = crowd["dir"]
    real_replace = os.replace

    def replace(src: Any, dst: Any) -> None:
        if Path(dst).name == "report.html":
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    outputs = ("--predictions", str(d / "pred.csv"), "--confusions", str(d / "conf.json"))
    res = runner.invoke(app, train(crowd, *outputs, "--report", str(d / "report.html")))
    assert res.exit_code != 0
    assert _files(d) == BEFORE  # the model, predictions and confusions were rolled back
    monkeypatch.setattr(os, "replace", real_replace)
    res = runner.invoke(app, train(crowd, *outputs, "--report", str(d / "report.html")))
    assert res.exit_code == 0, res.output
    assert _files(d) == sorted([*BEFORE, "conf.json", "model.safetensors", "pred.csv", "report.html"])


def test_train_predictions_dash_goes_to_stdout(crowd: dict[str, Path]) -> None:
    res = runner.invoke(app, train(crowd, "--predictions", "-"))
    assert res.exit_code == 0, res.output
    table = pd.read_csv(pd.io.common.StringIO(res.stdout))
    assert list(table.columns) == ["item", "label", "confidence"] and len(table) == 45
    assert "model written to" in res.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--lr", "1e38"], "--lr must be a finite number > 0 and <= 3.4e+37"),
        (["--lr", "0"], "--lr must be a finite number > 0"),
        (["--lr", "nan"], "--lr must be a finite number > 0"),
        (["--confusion-lr", "-1"], "--confusion-lr must be a finite number > 0"),
        (["--lam", "-1"], "--lam must be a finite number >= 0, got -1"),
        (["--mixup", "inf"], "--mixup must be a finite number >= 0"),
        (["--seed", "-1"], "--seed must be an integer >= 0, got -1"),
    ],
)
def test_train_bad_numbers_are_usage_errors_with_the_flag_name(
    crowd: dict[str, Path], no_fit: list[Any], args: list[str], message: str
) -> None:
    res = runner.invoke(app, train(crowd, *args))
    assert res.exit_code == 2, res.output
    assert message in res.output and "Traceback" not in res.output and no_fit == []


def test_train_huge_lr_in_the_api_is_a_value_error() -> None:
    from crowdlearn.nn import MLP, ConfusionMatrices, CrowdLoss, CrowdModel
    from crowdlearn.train import Trainer

    model = CrowdModel(MLP(2, 2, hidden=(4,)), ConfusionMatrices(2, 2))
    with pytest.raises(ValueError, match=r"lr=1e\+38 is too large"):
        Trainer(model, CrowdLoss(), lr=1e38, device="cpu")


def test_aggregate_and_predict_check_outputs_before_reading(
    crowd: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    d = crowd["dir"]
    import crowdlearn.cli as cli

    def no_read(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("input read before the outputs were checked")

    monkeypatch.setattr(cli, "read_annotations", no_read)
    res = runner.invoke(app, ["aggregate", str(crowd["labels"]), "--out", str(d / "nowhere" / "a.csv")])
    assert res.exit_code == 1 and "nowhere: the output folder does not exist" in res.output
    res = runner.invoke(app, ["aggregate", str(crowd["labels"]), "--out", "-", "--confusions", "-"])
    assert res.exit_code == 1 and "--confusions -: the confusions (JSON) cannot go to standard output" in res.output
    res = runner.invoke(app, ["aggregate", str(crowd["labels"]), "--out", str(crowd["labels"]), "--force"])
    assert res.exit_code == 1 and "an output never replaces an input" in res.output

    monkeypatch.setattr(CrowdClassifier, "load", no_read)
    (d / "m.safetensors").write_text("not read")
    (d / "p.csv").write_text("keep")
    res = runner.invoke(
        app, ["predict", str(d / "m.safetensors"), "-x", str(crowd["features"]), "-o", str(d / "p.csv")]
    )
    assert res.exit_code == 1 and "p.csv: already exists (pass --force to replace it)" in res.output
    res = runner.invoke(app, ["predict", str(d / "m.safetensors"), "-x", str(crowd["features"]), "-o", "/dev/null"])
    assert res.exit_code == 1 and "/dev/null: is a character device" in res.output
    assert (d / "p.csv").read_text() == "keep"


def test_aggregate_writes_all_outputs_or_none(crowd: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    d = crowd["dir"]
    real_replace = os.replace

    def replace(src: Any, dst: Any) -> None:
        if Path(dst).name == "conf.json":
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    args = ["aggregate", str(crowd["labels"]), "-o", str(d / "a.csv"), "--confusions", str(d / "conf.json")]
    res = runner.invoke(app, args)
    assert res.exit_code != 0 and _files(d) == BEFORE


def test_demo_checks_its_folder_before_running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("sklearn")
    import crowdlearn.demo as demo

    def no_run(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the demo ran before its outputs were checked")

    monkeypatch.setattr(demo, "run_demo", no_run)
    (tmp_path / "file").write_text("x")
    res = runner.invoke(app, ["demo", "--out", str(tmp_path / "file"), "--quiet"])
    assert res.exit_code == 1 and "file: is not a folder" in res.output
    folder = tmp_path / "rep"
    folder.mkdir()
    (folder / "confusions.png").symlink_to(tmp_path / "file")
    res = runner.invoke(app, ["demo", "--out", str(folder), "--quiet"])
    assert res.exit_code == 1 and "confusions.png: is a symbolic link" in res.output
    assert (tmp_path / "file").read_text() == "x"
