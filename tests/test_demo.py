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


def test_confusion_figure_has_class_ticks_and_a_colour_bar(tmp_path: Path) -> None:
    import numpy as np

    from crowdlearn.demo import DemoResult, _confusion_figure, _plot_confusions

    rng = np.random.default_rng(0)
    conf = rng.dirichlet(np.ones(10), size=(30, 10)).transpose(0, 2, 1)
    result = DemoResult(10, 5, 30, 10, 30, 0, confusions_true=conf, confusions_ds=conf, confusions_ccem=conf)
    fig = _confusion_figure(result)
    images = [ax for ax in fig.axes if ax.images]
    bars = [ax for ax in fig.axes if not ax.images]
    assert len(images) == 12  # 3 rows (true, DS, CCEM) x 4 annotators
    for ax in images:
        assert [t.get_text() for t in ax.get_xticklabels()] == [str(k) for k in range(10)]
        assert [t.get_text() for t in ax.get_yticklabels()] == [str(k) for k in range(10)]
    assert len(bars) == 1 and bars[0].get_ylabel() == "probability"  # the colour bar
    assert images[-1].get_xlabel() == "true class" and images[0].get_ylabel() == "true\nlabel given"
    path = _plot_confusions(result, tmp_path / "c.png")
    assert path is not None and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["c.png"]  # no temporary file left
