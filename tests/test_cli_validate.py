"""`crowdlearn validate`: exit codes, messages, and counts on the real datasets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crowdlearn.cli import app

runner = CliRunner()

# (folder/file, extra options, items, annotators with labels, labels, annotators without labels)
# Expected numbers are the ones stated in each dataset's SOURCE.md.
REAL = [
    ("Bluebirds/bluebird_crowd.txt", [], 108, 39, 4212, 0),
    ("Dog/dog_crowd.txt", [], 807, 109, 8070, 0),
    ("RTE/rte_crowd.txt", [], 800, 164, 8000, 0),
    (
        "RTE/rte.standardized.tsv",
        ["--item-col", "orig_id", "--annotator-col", "!amt_worker_ids", "--label-col", "response"],
        800,
        164,
        8000,
        0,
    ),
    (
        "TEMP/temp.standardized.tsv",
        ["--item-col", "orig_id", "--annotator-col", "!amt_worker_ids", "--label-col", "response"],
        462,
        76,
        4620,
        0,
    ),
    ("TREC-relevance/trec_crowd.txt", [], 19033, 762, 88385, 0),
    ("Product/answer.csv", ["--item-col", "question"], 8315, 176, 24945, 0),
    ("Music/music_genre_mturk.csv", ["--item-col", "id"], 700, 44, 2945, 0),
    # 77 columns, 18 of them empty: 59 active annotators, kept and reported
    ("LabelMe/answers.txt", ["--format", "wide-txt"], 1000, 59, 2547, 18),
]


@pytest.mark.parametrize(("rel", "opts", "items", "annotators", "labels", "silent"), REAL, ids=[r[0] for r in REAL])
def test_validate_real_dataset_counts(
    data_dir: Path, rel: str, opts: list[str], items: int, annotators: int, labels: int, silent: int
) -> None:
    res = runner.invoke(app, ["validate", str(data_dir / rel), *opts, "--json"])
    assert res.exit_code == 0, res.output
    s = json.loads(res.output)
    assert s["n_items"] == items
    assert s["n_annotators"] - s["n_annotators_without_labels"] == annotators
    assert s["n_annotators_without_labels"] == silent
    assert s["n_labels"] == labels


def test_validate_adultcontent2_reports_repeated_pairs(data_dir: Path) -> None:
    path = str(data_dir / "AdultContent2/labels.txt")
    opts = ["--format", "tsv", "--no-header", "--item-col", "1", "--annotator-col", "0", "--label-col", "2"]
    res = runner.invoke(app, ["validate", path, *opts])
    assert res.exit_code == 1
    assert "labels.txt, line 3: duplicate (item, annotator) pair ('http://000.cc', 'A1PXXEOGQ76RNJ')" in res.output
    assert "Traceback" not in res.output
    res = runner.invoke(app, ["validate", path, *opts, "--on-duplicate", "first", "--json"])
    assert res.exit_code == 0, res.output
    s = json.loads(res.output)
    # SOURCE.md: 11,040 items, 825 workers, 92,721 label lines (some repeat an (item, worker) pair)
    assert (s["n_items"], s["n_annotators"]) == (11040, 825)
    assert s["n_labels"] + s["n_duplicates_dropped"] == 92721
    assert s["n_duplicates_dropped"] == 2922


def test_validate_text_output(tmp_path: Path) -> None:
    p = tmp_path / "l.csv"
    p.write_text("task,worker,label\nt1,w1,a\nt1,w2,b\nt2,w1,a\n")
    res = runner.invoke(app, ["validate", str(p)])
    assert res.exit_code == 0
    assert "valid" in res.output and "labels:     3" in res.output


def test_validate_invalid_exit_1_one_line(tmp_path: Path) -> None:
    p = tmp_path / "bad.csv"
    p.write_text("item,annotator,label\na,w,1\nb,w,cat\n")
    res = runner.invoke(app, ["validate", str(p)])
    assert res.exit_code == 1
    assert res.output.strip().startswith("error: ")
    assert "mixed label types" in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_validate_usage_errors_exit_2(tmp_path: Path) -> None:
    assert runner.invoke(app, ["validate", str(tmp_path / "missing.csv")]).exit_code == 2
    p = tmp_path / "l.csv"
    p.write_text("item,annotator,label\na,w,1\n")
    assert runner.invoke(app, ["validate", str(p), "--format", "xls"]).exit_code == 2
    assert runner.invoke(app, ["validate", str(p), "--on-duplicate", "maybe"]).exit_code == 2
    assert runner.invoke(app, ["validate"]).exit_code == 2
