"""The end-to-end demo runs, prints its table and writes its report."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from crowdlearn.cli import app


def test_demo_cli_writes_report(tmp_path: Path) -> None:
    out = tmp_path / "report"
    res = CliRunner().invoke(app, ["demo", "--out", str(out), "--epochs", "2", "--quiet"])
    assert res.exit_code == 0, res.output
    assert "| CCEM | end to end |" in res.output
    assert "| GeoCrowdNet(W) | end to end |" in res.output
    data = json.loads((out / "results.json").read_text())
    methods = [r["method"] for r in data["results"]]
    assert methods == [
        "majority vote",
        "Dawid-Skene",
        "MV -> MLP",
        "DS -> MLP",
        "MLP on true labels",
        "CCEM",
        "GeoCrowdNet(F)",
        "GeoCrowdNet(W)",
    ]
    assert data["n_labels"] == 3 * data["n_train"]
    for r in data["results"]:
        for key in ("train_label_accuracy", "test_accuracy"):
            assert r[key] is None or 0.0 <= r[key] <= 1.0
    assert (out / "report.md").read_text().startswith("# crowdlearn demo report")
    assert (out / "confusions.png").stat().st_size > 0
    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert "GeoCrowdNet(F)" in page and 'id="training"' in page and 'id="truth"' in page
    assert "report.html" in res.output
