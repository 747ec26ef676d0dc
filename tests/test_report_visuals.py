"""Report visuals (heatmap legend, captions, axis ticks), a report from a saved model, `crowdlearn report`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from crowdlearn import Annotations, CrowdClassifier, DawidSkene
from crowdlearn.cli import app
from crowdlearn.report import render_html
from crowdlearn.report.html import _nice_ticks
from test_report import check

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def crowd() -> tuple[Annotations, np.ndarray, np.ndarray]:
    """50 items, 3 classes, annotators w0..w3 with different label counts."""
    rng = np.random.default_rng(3)
    n, k = 50, 3
    y = rng.integers(0, k, n)
    X = (rng.normal(size=(n, 4)) + 2.5 * np.eye(k, 4)[y]).astype(np.float32)
    rows = [
        (i, f"w{a}", int(y[i]) if rng.random() < 0.8 else int(rng.integers(0, k)))
        for i in range(n)
        for a in range(4)
        if a == 0 or rng.random() < 0.25 * a
    ]
    ann = Annotations.from_ids(*zip(*rows, strict=True))
    order = np.asarray(ann.item_ids, dtype=np.int64)
    return ann, y[order], X[order]


@pytest.fixture(scope="module")
def model(crowd: tuple[Annotations, np.ndarray, np.ndarray]) -> Any:
    import torch

    torch.set_num_threads(1)
    ann, _, X = crowd
    return CrowdClassifier(method="ccem", epochs=12, lr=0.01, random_state=0).fit(X, ann)


def captions(page: str) -> list[str]:
    return re.findall(r"<caption>(.*?)</caption>", page)


def test_heatmaps_have_a_colour_legend_and_unambiguous_captions(
    crowd: tuple[Annotations, np.ndarray, np.ndarray],
) -> None:
    ann = crowd[0]
    page = render_html(ann, aggregator=DawidSkene().fit(ann))
    check(page)
    legend = re.search(r'<div class="legend" id="legend-aggregator">.*?</div></div>', page, re.S)
    assert legend is not None and "linear-gradient" in legend.group(0)
    assert re.findall(r"<span[^>]*>([^<]*)</span>", legend.group(0))[1:] == ["0", "0.25", "0.5", "0.75", "1"]
    counts = dict(zip(ann.annotator_ids.tolist(), ann.annotator_counts.tolist(), strict=True))
    by_count = sorted(counts, key=lambda a: -counts[a])
    assert captions(page) == [
        f"mean of all 4 annotators, weighted by their {ann.n_labels} labels",
        *(f"annotator {a} – {counts[a]} labels" for a in by_count),
    ]


def test_nice_ticks() -> None:
    assert _nice_ticks(0.123, 0.987) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert _nice_ticks(0.61, 0.64) == [0.61, 0.62, 0.63, 0.64]
    assert _nice_ticks(1, 60, 6) == [0, 10, 20, 30, 40, 50, 60]
    assert _nice_ticks(1e5, 3e5) == [1e5, 1.5e5, 2e5, 2.5e5, 3e5]


def test_training_curves_have_y_ticks_and_an_axis_label(
    crowd: tuple[Annotations, np.ndarray, np.ndarray], model: Any
) -> None:
    page = render_html(crowd[0], model=model)
    check(page)
    svg = re.search(r'<svg id="curve-train_loss".*?</svg>', page, re.S)
    assert svg is not None
    ticks = [float(t) for t in re.findall(r'class="ytick-label"[^>]*>([^<]*)<', svg.group(0))]
    losses = [h["train_loss"] for h in model.history_]
    assert len(ticks) >= 3 and ticks == sorted(ticks)
    assert ticks[0] <= min(losses) and ticks[-1] >= max(losses)  # the ticks span the curve
    assert re.search(r'class="ylabel"[^>]*rotate\(-90[^>]*>training loss<', svg.group(0))
    xticks = re.findall(r'text-anchor="middle">(\d+)</text>', svg.group(0))
    assert xticks[0] == "1" and xticks[-1] == str(len(losses))


def test_report_of_a_model_without_its_labels(model: Any) -> None:
    page = render_html(None, model=model, title="saved model")
    check(page)
    assert "No label file was given" in page and 'id="confusions-model"' in page and 'id="training"' in page
    assert f"<td>{int(model.annotator_counts_.sum())}</td>" in page
    assert captions(page)[1].startswith("annotator w0 – ")
    with pytest.raises(ValueError, match="needs a model"):
        render_html(None)
    with pytest.raises(ValueError, match="truth= needs the annotations"):
        render_html(None, model=model, truth=[0])


def test_model_and_annotations_must_agree(crowd: tuple[Annotations, np.ndarray, np.ndarray], model: Any) -> None:
    ann = crowd[0]
    renamed = Annotations.from_ids(ann.item_ids[ann.items], np.array(["v0", "v1", "v2", "v3"])[ann.annotators],
                                   ann.classes[ann.labels])  # fmt: skip
    with pytest.raises(
        ValueError, match=r"the model's annotators differ from the annotations' \(position 0: 'w0' vs 'v0'\)"
    ):
        render_html(renamed, model=model)


# ---------------------------------------------------------------------------- crowdlearn report
@pytest.fixture
def saved(tmp_path: Path, crowd: tuple[Annotations, np.ndarray, np.ndarray], model: Any) -> dict[str, Path]:
    ann, y, X = crowd
    path = tmp_path / "model.safetensors"
    model.save(path)
    labels = tmp_path / "labels.csv"
    ann.to_frame().to_csv(labels, index=False)
    truth = tmp_path / "truth.csv"
    pd.DataFrame({"item": ann.item_ids, "label": y}).to_csv(truth, index=False)
    feats = tmp_path / "x.npy"
    full = np.zeros((int(ann.item_ids.max()) + 1, X.shape[1]), dtype=np.float32)
    full[np.asarray(ann.item_ids, dtype=np.int64)] = X
    np.save(feats, full)
    return {"model": path, "labels": labels, "truth": truth, "features": feats, "dir": tmp_path}


def test_cli_report_from_the_model_alone(saved: dict[str, Path]) -> None:
    out = saved["dir"] / "r.html"
    res = runner.invoke(app, ["report", str(saved["model"]), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert res.stdout == f"report written to {out}\n"
    page = out.read_text(encoding="utf-8")
    check(page)
    assert "<title>crowdlearn report: model.safetensors</title>" in page and "No label file was given" in page


def test_cli_report_with_labels_truth_and_features(saved: dict[str, Path], model: Any) -> None:
    out = saved["dir"] / "r.html"
    args = ["report", str(saved["model"]), "-o", str(out), "--labels", str(saved["labels"])]
    res = runner.invoke(app, [*args, "--truth", str(saved["truth"]), "-x", str(saved["features"])])
    assert res.exit_code == 0, res.output
    page = out.read_text(encoding="utf-8")
    check(page)
    assert 'id="truth"' in page and "model (CrowdClassifier): predictions on the items" in page
    assert "Labels per class" in page  # the data section of the label file


def test_cli_report_errors(saved: dict[str, Path]) -> None:
    out = saved["dir"] / "r.html"
    out.write_text("old")
    res = runner.invoke(app, ["report", str(saved["model"]), "-o", str(out)])
    assert res.exit_code == 1 and res.stderr.strip() == f"error: {out}: already exists (pass --force to replace it)"
    assert out.read_text() == "old"
    res = runner.invoke(app, ["report", str(saved["model"]), "-o", str(out), "--force", "--truth", str(saved["truth"])])
    assert res.exit_code == 2 and "--truth and --features need --labels" in res.stderr
    res = runner.invoke(app, ["report", str(saved["labels"]), "-o", str(saved["dir"] / "x.html")])
    assert res.exit_code == 1 and "is not a CrowdClassifier file" in res.stderr and "Traceback" not in res.output
