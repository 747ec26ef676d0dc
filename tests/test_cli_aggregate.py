"""`crowdlearn aggregate`: outputs, options and errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from crowdlearn.cli import app

runner = CliRunner()


@pytest.fixture
def labels_csv(tmp_path: Path) -> Path:
    path = tmp_path / "labels.csv"
    pd.DataFrame(
        {
            "item": ["q1", "q1", "q1", "q2", "q2", "q2", "q3"],
            "annotator": ["a", "b", "c", "a", "b", "c", "a"],
            "label": ["cat", "cat", "dog", "dog", "dog", "dog", "cat"],
        }
    ).to_csv(path, index=False)
    return path


def test_writes_labels_and_confidence(labels_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    res = runner.invoke(app, ["aggregate", str(labels_csv), "--method", "ds", "--out", str(out)])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(out)
    assert list(table.columns) == ["item", "label", "confidence"]
    assert table["item"].tolist() == ["q1", "q2", "q3"]
    assert table["label"].tolist() == ["cat", "dog", "cat"]
    assert ((table["confidence"] > 0.5) & (table["confidence"] <= 1)).all()


def test_proba_and_confusions(labels_csv: Path, tmp_path: Path) -> None:
    out, conf = tmp_path / "out.csv", tmp_path / "conf.json"
    res = runner.invoke(
        app, ["aggregate", str(labels_csv), "-m", "mv", "-o", str(out), "--proba", "--confusions", str(conf)]
    )
    assert res.exit_code == 0, res.output
    table = pd.read_csv(out)
    assert list(table.columns) == ["item", "label", "confidence", "p_cat", "p_dog"]
    np.testing.assert_allclose(table[["p_cat", "p_dog"]].sum(axis=1), 1.0)
    np.testing.assert_allclose(table.loc[0, ["p_cat", "p_dog"]].astype(float), [2 / 3, 1 / 3])
    doc = json.loads(conf.read_text())
    assert doc["classes"] == ["cat", "dog"] and [a["annotator"] for a in doc["annotators"]] == ["a", "b", "c"]
    np.testing.assert_allclose(np.array(doc["annotators"][0]["matrix"]).sum(axis=0), 1.0)


@pytest.mark.parametrize("method", ["mv", "wawa", "ds", "onecoin", "glad", "mace"])
def test_every_method_to_stdout(labels_csv: Path, method: str) -> None:
    res = runner.invoke(app, ["aggregate", str(labels_csv), "--method", method])
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines()[0] == "item,label,confidence"
    assert len(res.stdout.splitlines()) == 4


def test_errors(labels_csv: Path, tmp_path: Path) -> None:
    res = runner.invoke(app, ["aggregate", str(labels_csv), "--method", "kos"])
    assert res.exit_code == 2 and "--method must be one of mv, wawa, ds" in res.output
    out = tmp_path / "exists.csv"
    out.write_text("keep")
    res = runner.invoke(app, ["aggregate", str(labels_csv), "--out", str(out)])
    assert res.exit_code == 1 and "already exists" in res.output
    assert out.read_text() == "keep"
    assert runner.invoke(app, ["aggregate", str(labels_csv), "--out", str(out), "--force"]).exit_code == 0
