"""`crowdlearn aggregate --workers N / --scheduler ADDRESS`: the Dask backend from the command line."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from _agg_sim import random_confusions, simulate
from crowdlearn import cli
from crowdlearn.cli import app

distributed = pytest.importorskip("distributed")
pytest.importorskip("pyarrow")

runner = CliRunner()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """A folder of 3 Parquet files (items in order, string ids) and the same labels as one frame."""
    ann, _ = simulate(
        600, random_confusions(np.random.default_rng(2), 12, 3, diag=0.85), 5, seed=5
    )  # DS converges fast
    df = ann.to_frame(ids=False)
    df.columns = ["item", "annotator", "label"]
    df = df.sort_values("item", kind="stable").reset_index(drop=True)
    df["item"] = "q" + df["item"].astype(str).str.zfill(4)
    df["annotator"] = "a" + df["annotator"].astype(str)
    df["label"] = np.array(["cat", "dog", "eel"])[df["label"]]
    folder = tmp_path_factory.mktemp("labels")
    for k, part in enumerate(np.array_split(np.arange(600), 3)):
        df[df["item"].isin([f"q{i:04d}" for i in part])].to_parquet(folder / f"part-{k}.parquet", index=False)
    return folder, df


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0", scheduler_port=0
    ) as cluster:
        yield cluster.scheduler_address


def test_scheduler_equals_in_memory(dataset: tuple[Path, pd.DataFrame], scheduler: str, tmp_path: Path) -> None:
    folder, df = dataset
    out, conf = tmp_path / "out.csv", tmp_path / "conf.json"
    res = runner.invoke(
        app,
        [
            "aggregate",
            str(folder),
            "--scheduler",
            scheduler,
            "-m",
            "onecoin",
            "-o",
            str(out),
            "--proba",
            "--confusions",
            str(conf),
        ],
    )
    assert res.exit_code == 0, res.output
    csv = tmp_path / "labels.csv"
    df.to_csv(csv, index=False)
    ref_out, ref_conf = tmp_path / "ref.csv", tmp_path / "ref.json"
    res = runner.invoke(
        app, ["aggregate", str(csv), "-m", "onecoin", "-o", str(ref_out), "--proba", "--confusions", str(ref_conf)]
    )
    assert res.exit_code == 0, res.output
    got, ref = pd.read_csv(out), pd.read_csv(ref_out)
    assert list(got.columns) == ["item", "label", "confidence", "p_cat", "p_dog", "p_eel"]
    assert got["item"].tolist() == ref["item"].tolist()  # partition order = item order here
    assert got["label"].tolist() == ref["label"].tolist()
    np.testing.assert_allclose(got.iloc[:, 2:].to_numpy(), ref.iloc[:, 2:].to_numpy(), atol=1e-10)
    a, b = json.loads(conf.read_text()), json.loads(ref_conf.read_text())
    assert [x["annotator"] for x in a["annotators"]] == [x["annotator"] for x in b["annotators"]]
    np.testing.assert_allclose(
        [x["matrix"] for x in a["annotators"]], [x["matrix"] for x in b["annotators"]], atol=1e-10
    )


def test_workers_local_cluster_and_stdout(dataset: tuple[Path, pd.DataFrame], monkeypatch: pytest.MonkeyPatch) -> None:
    folder, _ = dataset
    made: list[tuple[int, Any]] = []

    def threaded(n_workers: int, memory_limit: str | None) -> Any:  # worker threads: no process start-up
        made.append((n_workers, memory_limit))
        return distributed.LocalCluster(
            n_workers=n_workers, threads_per_worker=1, processes=False, dashboard_address=":0", scheduler_port=0
        )

    monkeypatch.setattr(cli, "_local_cluster", threaded)
    res = runner.invoke(
        app,
        [
            "aggregate",
            str(folder / "part-0.parquet"),
            "--workers",
            "2",
            "--worker-memory",
            "1GiB",
            "-m",
            "onecoin",
            "--out-of-core",
        ],
    )
    assert res.exit_code == 0, res.output
    assert made == [(2, "1GiB")]
    lines = res.stdout.strip().splitlines()
    assert lines[0] == "item,label,confidence" and len(lines) == 1 + 200


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ["-m", "glad", "--workers", "2"],
            1,
            "--method glad has no Dask backend; with --workers/--scheduler use one of mv, ds, onecoin, mace",
        ),
        (["--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], 2, "give either --scheduler ADDRESS or --workers N"),
        (["--out-of-core"], 2, "--out-of-core needs --workers N or --scheduler ADDRESS"),
        ([], 1, "is a folder; a folder of Parquet files is read by the Dask backend: add --workers N"),
        (["--workers", "1", "--report", "r.html"], 2, "--report needs the labels in memory"),
    ],
)
def test_errors(dataset: tuple[Path, pd.DataFrame], args: list[str], code: int, message: str) -> None:
    folder, _ = dataset
    res = runner.invoke(app, ["aggregate", str(folder), *args])
    assert res.exit_code == code, res.output
    assert message in res.output and "Traceback" not in res.output


def test_csv_input_and_missing_dask(
    dataset: tuple[Path, pd.DataFrame], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, df = dataset
    csv = tmp_path / "labels.csv"
    df.to_csv(csv, index=False)
    res = runner.invoke(app, ["aggregate", str(csv), "--workers", "1"])
    assert res.exit_code == 1 and "the Dask backend reads Parquet" in res.output
    monkeypatch.setitem(sys.modules, "distributed", None)
    res = runner.invoke(app, ["aggregate", str(dataset[0]), "--workers", "1"])
    assert res.exit_code == 1 and "need dask: pip install 'crowdlearn[dask]'" in res.output
    res = runner.invoke(app, ["aggregate", str(dataset[0]), "--scheduler", "tcp://127.0.0.1:9"])
    assert res.exit_code == 1
