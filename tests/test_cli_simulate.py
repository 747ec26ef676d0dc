"""`crowdlearn simulate`: the files it writes, its checks, and simulate -> aggregate/train -> evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from crowdlearn.cli import app
from crowdlearn.io import read_annotations, read_features, read_truth
from crowdlearn.simulate import item_features

runner = CliRunner()
FILES = ("labels.csv", "truth.csv", "features.npy", "true_confusions.json", "settings.json")


def simulate(out: Path, *extra: str) -> object:
    return runner.invoke(app, ["simulate", str(out), "--n-items", "120", "--n-annotators", "5", *extra])


def test_writes_labels_truth_features_confusions_and_settings(tmp_path: Path) -> None:
    out = tmp_path / "crowd"
    res = simulate(out, "--n-classes", "4", "--per-item", "3", "--n-features", "6", "--seed", "7")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    ann = read_annotations(out / "labels.csv")
    assert (ann.n_items, ann.n_annotators, ann.n_labels) == (120, 5, 360)
    assert ann.item_counts.tolist() == [3] * 120
    truth = read_truth(out / "truth.csv")
    assert truth.index.tolist() == [str(i) for i in range(120)] and set(truth.tolist()) <= {0, 1, 2, 3}
    ids, X = read_features(out / "features.npy")
    assert X.shape == (120, 6) and ids.tolist() == list(range(120))
    doc = json.loads((out / "true_confusions.json").read_text())
    assert doc["classes"] == [0, 1, 2, 3] and [a["annotator"] for a in doc["annotators"]] == [0, 1, 2, 3, 4]
    A = np.array([a["matrix"] for a in doc["annotators"]])
    np.testing.assert_allclose(A.sum(axis=1), 1.0)  # column-stochastic, as aggregate --confusions writes
    settings = json.loads((out / "settings.json").read_text())
    assert settings["family"] == "diagonally-dominant" and settings["design"] is None
    assert (settings["n_items"], settings["per_item"], settings["seed"], settings["n_labels"]) == (120, 3, 7, 360)


def test_same_seed_same_files_other_seed_other_labels(tmp_path: Path) -> None:
    for name, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        assert simulate(tmp_path / name, "--seed", seed).exit_code == 0
    for f in FILES:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    assert (tmp_path / "a" / "labels.csv").read_bytes() != (tmp_path / "c" / "labels.csv").read_bytes()


def test_design_with_observation_probability_and_csv_features(tmp_path: Path) -> None:
    out = tmp_path / "d"
    res = simulate(out, "--design", "control", "--obs-prob", "0.5", "--features-format", "csv")
    assert res.exit_code == 0, res.output
    settings = json.loads((out / "settings.json").read_text())
    assert settings["design"] == "control" and settings["obs_prob"] == 0.5 and settings["family"] is None
    ids, X = read_features(out / "features.csv")
    assert ids.tolist() == [str(i) for i in range(120)] and X.shape == (120, 10)
    assert not (out / "features.npy").exists()


def test_family_with_observation_probability(tmp_path: Path) -> None:
    out = tmp_path / "f"
    res = simulate(out, "--family", "hammer-spammer", "--obs-prob", "0.4", "--n-classes", "2")
    assert res.exit_code == 0, res.output
    settings = json.loads((out / "settings.json").read_text())
    assert settings["obs_prob"] == 0.4 and "per_item" not in settings
    counts = read_annotations(out / "labels.csv").item_counts
    assert counts.max() <= 5 and len(set(counts.tolist())) > 1  # Bernoulli pairs, not a fixed count per item


def test_default_labels_per_item_is_at_most_the_annotators(tmp_path: Path) -> None:
    res = runner.invoke(app, ["simulate", str(tmp_path / "s"), "--n-items", "20", "--n-annotators", "2",
                              "--family", "random"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "s" / "settings.json").read_text())["per_item"] == 2


def test_refuses_existing_files_before_writing_any(tmp_path: Path) -> None:
    out = tmp_path / "crowd"
    out.mkdir()
    (out / "settings.json").write_text("keep me")
    res = simulate(out)
    assert res.exit_code == 1
    assert res.stderr.strip() == f"error: {out / 'settings.json'}: already exists (pass --force to replace it)"
    assert [p.name for p in out.iterdir()] == ["settings.json"]  # nothing else was written
    assert (out / "settings.json").read_text() == "keep me"
    assert simulate(out, "--force").exit_code == 0
    assert json.loads((out / "settings.json").read_text())["n_items"] == 120


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--design", "control", "--family", "random"], "give --design or --family, not both"),
        (["--design", "nope"], "--design must be one of control, f-ssc, w-ssc, separable-uniform, got 'nope'"),
        (["--family", "nope"], "--family must be one of"),
        (["--per-item", "6"], "--per-item (6) must be at most --n-annotators (5)"),
        (["--per-item", "2", "--obs-prob", "0.5"], "give --per-item or --obs-prob, not both"),
        (["--obs-prob", "0"], "--obs-prob must be in (0, 1], got 0"),
        (["--design", "w-ssc", "--per-item", "2"], "--per-item works with --family only"),
        (["--features-format", "parquet"], "--features-format must be npy or csv, got 'parquet'"),
        (["--n-classes", "2"], "--family diagonally-dominant needs --n-classes >= 3 (with its default parameters)"),
        (["--design", "w-ssc", "--n-classes", "3"], "--design w-ssc needs --n-classes >= 4"),
    ],
)
def test_usage_errors_exit_2_and_write_nothing(tmp_path: Path, args: list[str], message: str) -> None:
    res = simulate(tmp_path / "crowd", *args)
    assert res.exit_code == 2, res.output
    assert message in res.stderr and "Traceback" not in res.output
    assert not (tmp_path / "crowd").exists()


def test_outdir_that_is_a_file_or_has_no_parent(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    res = simulate(tmp_path / "file")
    assert res.exit_code == 1 and "exists and is not a folder" in res.stderr
    res = simulate(tmp_path / "no" / "such")
    assert res.exit_code == 1 and "parent folder of OUTDIR does not exist" in res.stderr


def test_item_features_carry_the_class_signal() -> None:
    F = np.eye(3)[[0, 1, 2, 0]]
    X = item_features(F, 4, separation=5.0, noise=0.0, random_state=0)
    assert X.shape == (4, 4)
    np.testing.assert_allclose(X[0], X[3])  # no noise: same class, same point
    np.testing.assert_allclose(np.linalg.norm(X[:3], axis=1), 5.0)  # every centre at the separation
    with pytest.raises(ValueError, match="n_features must be a positive integer"):
        item_features(F, 0)


@pytest.mark.usefixtures("one_torch_thread")
def test_simulate_then_aggregate_train_predict_and_evaluate(tmp_path: Path) -> None:
    out = tmp_path / "crowd"
    assert simulate(out, "--n-items", "150", "--seed", "2").exit_code == 0
    labels, truth, true_conf = out / "labels.csv", out / "truth.csv", out / "true_confusions.json"
    assert runner.invoke(app, ["validate", str(labels)]).exit_code == 0

    res = runner.invoke(
        app, ["aggregate", str(labels), "-m", "ds", "--proba", "-o", str(tmp_path / "agg.csv"), "--confusions",
              str(tmp_path / "ds.json")]
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        app, ["evaluate", str(tmp_path / "agg.csv"), "--truth", str(truth), "--confusions", str(tmp_path / "ds.json"),
              "--true-confusions", str(true_conf), "--json"]
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    agg = json.loads(res.stdout)
    assert agg["n_scored"] == 150 and agg["accuracy"] > 0.6 and agg["ece"] is not None
    assert agg["confusion_error"]["n_annotators"] == 5 and 0 <= agg["confusion_error"]["mean"] < 1

    model = tmp_path / "model.safetensors"
    res = runner.invoke(
        app, ["train", str(labels), "-x", str(out / "features.npy"), "-o", str(model), "--epochs", "5", "--lr",
              "0.01", "--confusions", str(tmp_path / "cc.json"), "--method", "ccem"]
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    pred = tmp_path / "pred.csv"
    res = runner.invoke(app, ["predict", str(model), "-x", str(out / "features.npy"), "--proba", "-o", str(pred)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        app, ["evaluate", str(pred), "--truth", str(truth), "--confusions", str(tmp_path / "cc.json"),
              "--true-confusions", str(true_conf)]
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "150 items scored" in res.stdout and "accuracy" in res.stdout and "ECE (15 bins)" in res.stdout
    assert "confusion estimation error" in res.stdout and "over 5 annotators" in res.stdout
    assert len(pd.read_csv(pred)) == 150
