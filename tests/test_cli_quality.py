"""`crowdlearn quality`: agreement, hardest items, annotator table, CSV outputs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from crowdlearn.cli import QUALITY_FILES, app

runner = CliRunner()


@pytest.fixture
def crowd(tmp_path: Path) -> dict[str, Path]:
    """80 items (3 classes, 4 features), 5 annotators; w4 answers at random."""
    rng = np.random.default_rng(0)
    n, k = 80, 3
    y = rng.integers(0, k, n)
    x = rng.normal(size=(n, 4)) + 3.0 * np.eye(k, 4)[y]
    ids = [f"it{i:02d}" for i in range(n)]
    names = np.array(["bird", "cat", "dog"])
    rows = []
    for i in range(n):
        for a in range(5):
            if rng.random() < 0.7:
                lab = rng.integers(0, k) if a == 4 else (y[i] if rng.random() < 0.85 else rng.integers(0, k))
                rows.append((ids[i], f"w{a}", names[lab]))
    labels = tmp_path / "labels.csv"
    pd.DataFrame(rows, columns=["item", "annotator", "label"]).to_csv(labels, index=False)
    feats = tmp_path / "features.csv"
    pd.DataFrame(x, columns=[f"f{j}" for j in range(4)]).assign(item=ids)[["item", "f0", "f1", "f2", "f3"]].to_csv(
        feats, index=False
    )
    return {"labels": labels, "features": feats, "dir": tmp_path}


def test_quality_prints_tables_and_writes_csvs(crowd: dict[str, Path]) -> None:
    out = crowd["dir"] / "q"
    res = runner.invoke(
        app, ["quality", str(crowd["labels"]), "--top", "3", "--out", str(out), "--levels", "nominal,ordinal"]
    )
    assert res.exit_code == 0, res.output
    assert "Krippendorff's alpha (nominal)" in res.output and "(ordinal)" in res.output
    assert "Fleiss' kappa" in res.output and "Hardest items" in res.output and "Annotators" in res.output
    hardest = res.output.split("Hardest items")[1].split("Annotators")[0]
    assert re.search(r"│\s+1 │", hardest) and ".000" not in hardest.split("│")[1]  # counts print as integers
    assert sorted(p.name for p in out.iterdir()) == sorted(QUALITY_FILES)
    agreement = json.loads((out / "agreement.json").read_text())
    assert set(agreement["alpha"]) == {"nominal", "ordinal"}
    items = pd.read_csv(out / "items.csv")
    assert len(items) == pd.read_csv(crowd["labels"])["item"].nunique() and {
        "consensus",
        "confidence",
        "entropy",
        "agreement",
    } <= set(items.columns)
    ann = pd.read_csv(out / "annotators.csv", index_col="annotator")
    assert ann["spammer_score"].idxmin() == "w4"  # the random annotator
    pairs = pd.read_csv(out / "annotator_pairs.csv")
    assert len(pairs) == 10 and (pairs["n_shared"] >= 5).all()
    # outputs are not overwritten without --force
    again = runner.invoke(app, ["quality", str(crowd["labels"]), "--out", str(out)])
    assert again.exit_code == 1 and "--force" in again.output
    assert runner.invoke(app, ["quality", str(crowd["labels"]), "--out", str(out), "--force"]).exit_code == 0


def test_quality_with_model_and_features(crowd: dict[str, Path], one_torch_thread: None) -> None:
    from crowdlearn.estimators import CrowdClassifier
    from crowdlearn.io import align_features, read_annotations, read_features

    ann = read_annotations(crowd["labels"])
    fid, X = read_features(crowd["features"])
    X_items, _ = align_features(ann, fid, X)
    model = crowd["dir"] / "m.safetensors"
    CrowdClassifier(epochs=3, validation="none", random_state=0).fit(X_items, ann).save(model)
    out = crowd["dir"] / "q"
    res = runner.invoke(
        app,
        ["quality", str(crowd["labels"]), "--model", str(model), "--features", str(crowd["features"]), "-o", str(out)],
    )
    assert res.exit_code == 0, res.output
    assert "lowest quality first" in res.output and "CROWDLAB" in res.output
    assert "quality" in pd.read_csv(out / "items.csv").columns
    assert "quality" in pd.read_csv(out / "annotators.csv").columns
    # the model's confusions without features: no CROWDLAB column
    res = runner.invoke(app, ["quality", str(crowd["labels"]), "--model", str(model)])
    assert res.exit_code == 0 and "the model's confusions" in res.output


def test_quality_errors(crowd: dict[str, Path], tmp_path: Path) -> None:
    res = runner.invoke(app, ["quality", str(crowd["labels"]), "--features", str(crowd["features"])])
    assert res.exit_code == 2 and "--features needs --model" in res.output
    res = runner.invoke(app, ["quality", str(crowd["labels"]), "--levels", "nominal,circular"])
    assert res.exit_code == 2 and "--levels must be" in res.output
    res = runner.invoke(app, ["quality", str(crowd["labels"]), "--method", "nope"])
    assert res.exit_code == 2 and "--method must be one of" in res.output
    res = runner.invoke(app, ["quality", str(crowd["labels"]), "--levels", "interval"])
    assert res.exit_code == 1 and "class 'bird' is not a number" in res.output and "Traceback" not in res.output
    bad = tmp_path / "bad.csv"
    bad.write_text("item,annotator,label\na,w1,x\na,w1,y\n")
    res = runner.invoke(app, ["quality", str(bad)])
    assert res.exit_code == 1 and "duplicate (item, annotator) pair" in res.output
