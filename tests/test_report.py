"""The HTML report: well formed, sections by input, escaped ids, numbers equal the model's."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from crowdlearn import Annotations, DawidSkene, MajorityVote
from crowdlearn.cli import app
from crowdlearn.diagnose import diagnose
from crowdlearn.metrics import annotator_accuracy, spammer_score
from crowdlearn.report import render_html, write_html

EVIL = "<script>alert(1)</script>"
VOID = {"meta", "br", "hr", "img", "input", "link", "wbr", "col", "area", "base", "source", "track", "embed"}


class _Checker(HTMLParser):
    """Every opened tag is closed, in order; collects the text of the cells of every table id."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.cells: dict[str, list[str]] = {}
        self._table: list[str | None] = []
        self._cell: list[str] | None = None
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag in VOID:
            return
        self.stack.append(tag)
        if tag == "table":
            self._table.append(dict(attrs).get("id"))
        if tag == "td":
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1] if self.stack else 'nothing'}")
            return
        self.stack.pop()
        if tag == "td" and self._cell is not None:
            table = self._table[-1] if self._table else None
            if table is not None:
                self.cells.setdefault(table, []).append("".join(self._cell))
            self._cell = None
        if tag == "table":
            self._table.pop()

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def check(page: str) -> _Checker:
    parser = _Checker()
    parser.feed(page)
    parser.close()
    assert parser.errors == []
    assert parser.stack == []
    assert page.startswith("<!DOCTYPE html>")
    assert "http://" not in page and "https://" not in page
    assert "script" not in parser.tags
    return parser


@pytest.fixture(scope="module")
def crowd() -> tuple[Annotations, np.ndarray, np.ndarray]:
    """60 items, 3 classes, 6 annotators (one named like a script tag), features."""
    rng = np.random.default_rng(0)
    n, k = 60, 3
    y = rng.integers(0, k, n)
    X = (rng.normal(size=(n, 4)) + 2.5 * np.eye(k, 4)[y]).astype(np.float32)
    names = [EVIL, "w1", "w2", "w3", "w4", "w5"]
    items, annotators, labels = [], [], []
    for i in range(n):
        for a, name in enumerate(names):
            if a == 0 or rng.random() < 0.2 + 0.1 * a:
                items.append(i)
                annotators.append(name)
                labels.append(int(y[i]) if rng.random() < 0.8 else int(rng.integers(0, k)))
    ann = Annotations.from_ids(items, annotators, labels)
    order = np.asarray(ann.item_ids, dtype=np.int64)
    return ann, y[order], X[order]


@pytest.fixture(scope="module")
def ds(crowd: tuple[Annotations, np.ndarray, np.ndarray]) -> DawidSkene:
    return DawidSkene().fit(crowd[0])


@pytest.fixture(scope="module")
def model(crowd: tuple[Annotations, np.ndarray, np.ndarray]) -> Any:
    import torch

    from crowdlearn import CrowdClassifier

    torch.set_num_threads(1)
    ann, _, X = crowd
    return CrowdClassifier(method="geocrowdnet-f", epochs=4, random_state=0).fit(X, ann)


def test_data_only(crowd: tuple[Annotations, np.ndarray, np.ndarray]) -> None:
    ann = crowd[0]
    page = render_html(ann, title="T <b>")
    check(page)
    assert '<section id="data">' in page
    assert "<title>T &lt;b&gt;</title>" in page
    for absent in ("annotators-", "confusions-", 'id="training"', 'id="diagnosis"', 'id="truth"'):
        assert absent not in page
    assert f"<td>{ann.n_labels}</td>" in page


def test_aggregator_sections_and_numbers(crowd: tuple[Annotations, np.ndarray, np.ndarray], ds: DawidSkene) -> None:
    ann = crowd[0]
    page = render_html(ann, aggregator=ds, top=2, max_annotators=3)
    parsed = check(page)
    assert 'id="annotators-aggregator"' in page and 'id="confusions-aggregator"' in page
    assert 'id="training"' not in page and "annotators-model" not in page
    assert "... 3 more annotators not shown" in page
    assert "A[i, j] = P(annotator says i | true class j)" in page
    # escaped id, never a live tag
    assert EVIL not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # the table: most labels first, numbers equal the metrics
    counts = ann.annotator_counts
    order = np.argsort(-counts, kind="stable")
    acc = annotator_accuracy(ds.confusions_, ds.priors_)
    spam = spammer_score(ds.confusions_)
    cells = parsed.cells["annotator-table-aggregator"]
    assert len(cells) == 3 * 5
    for r in range(3):
        m = order[r]
        assert cells[5 * r : 5 * r + 5] == [
            str(r + 1),
            str(ann.annotator_ids[m]),
            str(counts[m]),
            f"{acc[m]:.3f}",
            f"{spam[m]:.3f}",
        ]
    # heatmaps: the top-2 annotators and the weighted mean, cell (i, j) = A[m, i, j]
    shown = [key for key in parsed.cells if key.startswith("cm-aggregator-")]
    assert sorted(shown) == sorted([f"cm-aggregator-{m}" for m in order[:2]] + ["cm-aggregator-mean"])
    m = int(order[1])
    K = ann.n_classes
    assert parsed.cells[f"cm-aggregator-{m}"] == [f"{ds.confusions_[m, i, j]:.2f}" for i in range(K) for j in range(K)]
    mean = np.tensordot(counts / counts.sum(), ds.confusions_, axes=1)
    assert parsed.cells["cm-aggregator-mean"] == [f"{mean[i, j]:.2f}" for i in range(K) for j in range(K)]


def test_no_cap_line_when_all_shown(crowd: tuple[Annotations, np.ndarray, np.ndarray], ds: DawidSkene) -> None:
    page = render_html(crowd[0], aggregator=ds)
    check(page)
    assert "more annotators not shown" not in page


def test_model_curves_truth_and_diagnosis(
    crowd: tuple[Annotations, np.ndarray, np.ndarray], ds: DawidSkene, model: Any
) -> None:
    ann, y, X = crowd
    truth = y.copy()
    truth[:10] = -1
    page = render_html(ann, model=model, aggregator=ds, diagnosis=diagnose(ann), truth=truth, X=X)
    parsed = check(page)
    for section in ("annotators-model", "confusions-model", 'id="training"', 'id="diagnosis"', 'id="truth"'):
        assert section in page
    report = model.annotator_report()
    first = int(np.argmax(report["n_labels"].to_numpy()))
    cells = parsed.cells["annotator-table-model"]
    assert cells[3] == f"{report['accuracy'].iloc[first]:.3f}"
    assert cells[4] == f"{report['spammer_score'].iloc[first]:.3f}"
    # curves: one polyline point per epoch, the selected epoch marked
    n_epochs = len(model.history_)
    svg = re.search(r'<svg id="curve-train_loss".*?</svg>', page, re.S)
    assert svg is not None
    points = re.search(r'points="([^"]*)"', svg.group(0))
    assert points is not None and len(points.group(1).split()) == n_epochs
    assert f"selected epoch (dashed red line): {model.best_epoch_ + 1} of {n_epochs}" in page
    assert 'id="curve-valid_loss"' in page
    # truth: accuracy of DS labels and of the model's predictions on the known items
    known = truth >= 0
    assert f"<td>{known.sum()} of {ann.n_items}</td>" in page
    assert f"<td>{np.mean(ds.labels_[known] == truth[known]):.3f}</td>" in page
    pred = model.predict_proba(X).argmax(axis=1)
    assert f"<td>{np.mean(pred[known] == truth[known]):.3f}</td>" in page
    assert "recommendation" in page


def test_model_truth_without_features_says_so(crowd: tuple[Annotations, np.ndarray, np.ndarray], model: Any) -> None:
    ann, y, _ = crowd
    page = render_html(ann, model=model, truth=y)
    check(page)
    assert "needs the items&#x27; features (X)" in page


def test_majority_vote_has_a_table(crowd: tuple[Annotations, np.ndarray, np.ndarray]) -> None:
    page = render_html(crowd[0], aggregator=MajorityVote().fit(crowd[0]))
    check(page)
    assert "Annotators: aggregator (MajorityVote)" in page


def test_bad_inputs(crowd: tuple[Annotations, np.ndarray, np.ndarray], ds: DawidSkene) -> None:
    ann = crowd[0]
    with pytest.raises(ValueError, match=r"truth must have shape \(60,\)"):
        render_html(ann, truth=np.zeros(3, dtype=int))
    with pytest.raises(ValueError, match=r"truth\[0\] = 7"):
        render_html(ann, truth=np.full(ann.n_items, 7))
    with pytest.raises(ValueError, match="top must be a non-negative integer"):
        render_html(ann, top=-1)
    with pytest.raises(ValueError, match="aggregator is not fitted"):
        render_html(ann, aggregator=DawidSkene())
    other = ann.subset_annotators(np.arange(3))
    with pytest.raises(ValueError, match=r"confusions_ has shape \(6, 3, 3\) but the annotations need \(3, 3, 3\)"):
        render_html(other, aggregator=ds)
    with pytest.raises(TypeError, match="annotations must be an Annotations object"):
        render_html(pd.DataFrame())  # type: ignore[arg-type]


def test_write_html_refuses_to_overwrite(tmp_path: Path, crowd: tuple[Annotations, np.ndarray, np.ndarray]) -> None:
    ann = crowd[0]
    path = tmp_path / "r.html"
    write_html(path, ann, title="first")
    assert "<title>first</title>" in path.read_text(encoding="utf-8")
    with pytest.raises(FileExistsError, match="already exists"):
        write_html(path, ann, title="second")
    assert "<title>first</title>" in path.read_text(encoding="utf-8")
    write_html(path, ann, title="second", overwrite=True)
    assert "<title>second</title>" in path.read_text(encoding="utf-8")


def test_report_module_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = "import sys, crowdlearn.report; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------------------- command line
@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(1)
    n, k = 60, 3
    y = rng.integers(0, k, n)
    x = rng.normal(size=(n, 4)) + 2.5 * np.eye(k, 4)[y]
    rows = [
        (f"i{i}", a, "abc"[int(y[i]) if rng.random() < 0.8 else int(rng.integers(0, k))])
        for i in range(n)
        for a in ("w0", "w1", "w2", "w3")
        if rng.random() < 0.7
    ]
    labels = tmp_path / "labels.csv"
    pd.DataFrame(rows, columns=["item", "annotator", "label"]).to_csv(labels, index=False)
    feats = tmp_path / "x.csv"
    pd.DataFrame(x, columns=["f0", "f1", "f2", "f3"]).assign(item=[f"i{i}" for i in range(n)]).to_csv(
        feats, index=False
    )
    truth = tmp_path / "truth.csv"
    pd.DataFrame({"item": [f"i{i}" for i in range(n)], "label": ["abc"[v] for v in y]}).to_csv(truth, index=False)
    return {"labels": labels, "features": feats, "truth": truth, "dir": tmp_path}


def test_cli_aggregate_report(files: dict[str, Path]) -> None:
    report = files["dir"] / "agg.html"
    args = ["aggregate", str(files["labels"]), "--method", "ds", "--out", str(files["dir"] / "o.csv")]
    res = CliRunner().invoke(app, [*args, "--report", str(report)])
    assert res.exit_code == 0, res.output
    page = report.read_text(encoding="utf-8")
    check(page)
    assert 'id="annotators-aggregator"' in page and "DawidSkene" in page
    res = CliRunner().invoke(app, [*args, "--force", "--report", str(report)])
    assert res.exit_code == 0, res.output
    (files["dir"] / "o2.csv").unlink(missing_ok=True)
    res = CliRunner().invoke(
        app, ["aggregate", str(files["labels"]), "--out", str(files["dir"] / "o2.csv"), "--report", str(report)]
    )
    assert res.exit_code == 1
    assert "already exists" in res.output
    assert not (files["dir"] / "o2.csv").exists()  # refused before any work


@pytest.mark.usefixtures("one_torch_thread")
def test_cli_train_report(files: dict[str, Path]) -> None:
    report = files["dir"] / "train.html"
    res = CliRunner().invoke(
        app,
        [
            "train",
            str(files["labels"]),
            "--features",
            str(files["features"]),
            "--out",
            str(files["dir"] / "m.safetensors"),
            "--epochs",
            "3",
            "--truth",
            str(files["truth"]),
            "--report",
            str(report),
        ],
    )
    assert res.exit_code == 0, res.output
    assert f"report written to {report}" in res.output
    page = report.read_text(encoding="utf-8")
    check(page)
    for section in ('id="annotators-model"', 'id="training"', 'id="truth"'):
        assert section in page
