"""`crowdlearn train --search GRID.toml`: the truth-free grid search on the command line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from crowdlearn.cli import app
from crowdlearn.estimators import CrowdClassifier
from crowdlearn.io import align_features, read_annotations, read_features
from crowdlearn.model_selection import CrowdSearchCV

runner = CliRunner()

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def crowd(tmp_path: Path) -> dict[str, Path]:
    """60 items with string ids (3 classes, 4 features), 4 annotators right 80% of the time."""
    rng = np.random.default_rng(0)
    n, k = 60, 3
    y = rng.integers(0, k, n)
    x = rng.normal(size=(n, 4)) + 3.0 * np.eye(k, 4)[y]
    ids = [f"doc{i:02d}" for i in range(n)]
    rows = [
        (ids[i], f"w{a}", int(y[i] if rng.random() < 0.8 else rng.integers(0, k)))
        for i in range(n)
        for a in range(4)
        if rng.random() < 0.7 or a == 0
    ]
    labels = tmp_path / "labels.csv"
    pd.DataFrame(rows, columns=["item", "annotator", "label"]).to_csv(labels, index=False)
    feats = tmp_path / "features.csv"
    pd.DataFrame(x, columns=[f"f{j}" for j in range(4)]).assign(item=ids)[["item", "f0", "f1", "f2", "f3"]].to_csv(
        feats, index=False
    )
    return {"labels": labels, "features": feats, "dir": tmp_path}


def args(crowd: dict[str, Path], grid: Path, *extra: str) -> list[str]:
    out = crowd["dir"] / "model.safetensors"
    return [
        "train",
        str(crowd["labels"]),
        "-x",
        str(crowd["features"]),
        "-o",
        str(out),
        "--epochs",
        "4",
        "--search",
        str(grid),
        *extra,
    ]


def write(crowd: dict[str, Path], text: str) -> Path:
    path = crowd["dir"] / "grid.toml"
    path.write_text(text)
    return path


def test_search_prints_every_point_writes_the_refit_best_model_and_the_results(crowd) -> None:
    grid = write(crowd, 'lr = [1e-6, 1e-2]\ninit = ["identity", "ds"]\n[search]\ncriterion = "kfold"\ncv = 2\n')
    results = crowd["dir"] / "results.csv"
    res = runner.invoke(app, args(crowd, grid, "--search-results", str(results)))
    assert res.exit_code == 0, res.output
    assert "4 grid points" in res.stdout and res.stdout.count("identity") == 2 and res.stdout.count(" ds ") == 2
    assert "search (kfold): best grid point" in res.stdout and "refit on all labels for" in res.stdout
    table = pd.read_csv(results)
    assert len(table) == 4 and sorted(table["rank_test_score"]) == [1, 2, 3, 4]
    assert set(table.columns) >= {"param_lr", "param_init", "split0_test_score", "split1_test_score", "mean_test_score"}
    # the same search in Python gives the same best point and the same refit model
    ann = read_annotations(crowd["labels"])
    ids, X = read_features(crowd["features"])
    X_items, _ = align_features(ann, ids, X)
    search = CrowdSearchCV(
        CrowdClassifier(epochs=4), {"lr": [1e-6, 1e-2], "init": ["identity", "ds"]}, criterion="kfold", cv=2
    ).fit(X_items, ann)
    assert "lr=0.01" in res.stdout.split("best grid point")[1].split("\n")[0]
    assert search.best_params_["lr"] == 1e-2
    saved = CrowdClassifier.load(crowd["dir"] / "model.safetensors")
    np.testing.assert_allclose(saved.predict_proba(X_items), search.predict_proba(X_items), rtol=1e-5, atol=1e-6)


def test_method_params_table_and_method_as_a_grid_key(crowd) -> None:
    grid = write(crowd, 'method = ["geocrowdnet-f", "geocrowdnet-w"]\n[method_params]\nlam = [0.001, 0.1]\n')
    res = runner.invoke(app, args(crowd, grid, "--criterion", "holdout"))
    assert res.exit_code == 0, res.output
    assert "method_params.lam" in res.stdout and "4 grid points" in res.stdout


def test_the_cli_names_every_criterion_of_the_search() -> None:
    # cli keeps its own tuple (importing crowdlearn.model_selection would import torch at start-up)
    from crowdlearn.cli import SEARCH_CRITERIA
    from crowdlearn.model_selection import _CRITERIA

    assert SEARCH_CRITERIA == tuple(_CRITERIA)


@pytest.mark.parametrize(("criterion", "over"), [("holdout-items", "one held-out split"), ("kfold-items", "2 folds")])
def test_the_item_criteria_run_from_the_command_line(crowd, criterion: str, over: str) -> None:
    grid = write(crowd, f'lr = [1e-6, 1e-2]\n[search]\ncriterion = "{criterion}"\ncv = 2\n')
    res = runner.invoke(app, args(crowd, grid))
    assert res.exit_code == 0, res.output
    assert f"search ({criterion}): best grid point" in res.stdout and over in res.stdout
    ann = read_annotations(crowd["labels"])
    ids, X = read_features(crowd["features"])
    X_items, _ = align_features(ann, ids, X)
    search = CrowdSearchCV(CrowdClassifier(epochs=4), {"lr": [1e-6, 1e-2]}, criterion=criterion, cv=2).fit(X_items, ann)  # type: ignore[arg-type]
    assert f"score {search.best_score_:.4f}" in res.stdout


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "grid.toml: no such grid file (--search)"),
        ("lr = [1e-3,\n", "grid.toml: not valid TOML: "),
        ("lrr = [1e-3]\n", "grid.toml: lrr: 'lrr' is not a parameter of CrowdClassifier"),
        ("lr = []\n", "grid.toml: lr is an empty list; give at least one value"),
        ("lr = 0.01\n", "grid.toml: lr must be a list of values, got 0.01"),
        ("lr = [-1.0]\n", "grid.toml: grid point 1 of 1 (lr=-1.0): The 'lr' parameter of CrowdClassifier must be"),
        ("[method_params]\nalpha = [1.0]\n", "grid.toml: grid point 1 of 1 (method_params.alpha=1.0):"),
        ("validation = ['none']\n", "grid.toml: validation: 'validation' cannot be searched"),
        (
            "lr = [1e-3]\n[search]\ncriterion = 'truth'\n",
            "grid.toml: [search] criterion must be one of holdout, kfold, holdout-items, kfold-items",
        ),
        ("lr = [1e-3]\n[search]\nfolds = 3\n", "grid.toml: [search] key 'folds' is unknown"),
        ("[search]\ncv = 3\n", "grid.toml: the grid has no keys"),
    ],
)
def test_a_bad_grid_file_exits_1_with_one_line_and_writes_nothing(crowd, text: str | None, message: str) -> None:
    grid = crowd["dir"] / "grid.toml"
    if text is not None:
        grid.write_text(text)
    res = runner.invoke(app, args(crowd, grid))
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], res.stderr
    assert not (crowd["dir"] / "model.safetensors").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--lr", "0.01"], "grid.toml: key lr and --lr both set lr; give it once"),
        (["--criterion", "best"], "--criterion must be one of holdout, kfold, holdout-items, kfold-items, got 'best'"),
        (["--cv", "1"], "--cv must be an integer >= 2, got 1"),
        (["--validation", "none"], "--validation does not apply with --search"),
    ],
)
def test_flags_that_conflict_with_the_search_are_usage_errors(crowd, extra: list[str], message: str) -> None:
    grid = write(crowd, "lr = [1e-3]\n")
    res = runner.invoke(app, args(crowd, grid, *extra))
    assert res.exit_code == 2 and message in res.stderr, res.output


def test_search_flags_need_search(crowd) -> None:
    a = args(crowd, crowd["dir"] / "grid.toml")[:-2]
    res = runner.invoke(app, [*a, "--criterion", "kfold"])
    assert res.exit_code == 2 and "--criterion needs --search GRID.toml" in res.stderr
