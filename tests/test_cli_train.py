"""`crowdlearn train` / `crowdlearn predict` and the feature readers behind them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from crowdlearn import Annotations
from crowdlearn.annotations import AnnotationsError
from crowdlearn.cli import app
from crowdlearn.estimators import CrowdClassifier
from crowdlearn.io import align_features, read_features

runner = CliRunner()


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def crowd(tmp_path: Path) -> dict[str, Path]:
    """90 items with string ids (3 classes, 5 features), 4 annotators; 10 more unlabelled rows."""
    rng = np.random.default_rng(0)
    n, k = 100, 3
    y = rng.integers(0, k, n)
    x = rng.normal(size=(n, 5)) + 3.0 * np.eye(k, 5)[y]
    ids = [f"doc{i:03d}" for i in range(n)]
    names = np.array(["bird", "cat", "dog"])
    rows = []
    for i in range(90):  # the last 10 items have features but no labels
        for a in range(4):
            if rng.random() < 0.6 or a == 0:
                lab = y[i] if rng.random() < 0.8 else rng.integers(0, k)
                rows.append((ids[i], f"w{a}", names[lab]))
    labels = tmp_path / "labels.csv"
    pd.DataFrame(rows, columns=["item", "annotator", "label"]).to_csv(labels, index=False)
    feats = tmp_path / "features.csv"
    pd.DataFrame(x, columns=[f"f{j}" for j in range(5)]).assign(item=ids)[
        ["item", "f0", "f1", "f2", "f3", "f4"]
    ].to_csv(feats, index=False)
    truth = tmp_path / "truth.csv"
    pd.DataFrame({"item": ids, "label": names[y]}).to_csv(truth, index=False)
    return {"labels": labels, "features": feats, "truth": truth, "dir": tmp_path}


def train_args(crowd: dict[str, Path], *extra: str) -> list[str]:
    return [
        "train",
        str(crowd["labels"]),
        "--features",
        str(crowd["features"]),
        "--out",
        str(crowd["dir"] / "model.safetensors"),
        "--epochs",
        "15",
        "--lr",
        "0.01",
        *extra,
    ]


def test_train_writes_model_predictions_confusions_and_predict_repeats_them(crowd: dict[str, Path]) -> None:
    d = crowd["dir"]
    res = runner.invoke(
        app,
        train_args(
            crowd,
            "--truth",
            str(crowd["truth"]),
            "--predictions",
            str(d / "pred.csv"),
            "--confusions",
            str(d / "conf.json"),
            "--init",
            "ds",
        ),
    )
    assert res.exit_code == 0, res.output
    assert "trained geocrowdnet-f on 90 items" in res.output
    assert "10 feature rows have no labels: not used for training" in res.output
    assert "selected epoch" in res.output and "held-out label NLL" in res.output
    acc = float(res.output.split("accuracy on the 100 of 100 items of truth.csv with features: ")[1].split()[0])
    assert acc > 0.8

    pred = pd.read_csv(d / "pred.csv")
    assert list(pred.columns) == ["item", "label", "confidence"]
    assert len(pred) == 100 and pred["item"].iloc[-1] == "doc099"  # unlabelled rows are predicted too
    assert set(pred["label"]) <= {"bird", "cat", "dog"}

    conf = json.loads((d / "conf.json").read_text())
    assert conf["method"] == "geocrowdnet-f" and conf["classes"] == ["bird", "cat", "dog"]
    assert sorted(a["annotator"] for a in conf["annotators"]) == ["w0", "w1", "w2", "w3"]
    m = np.array(conf["annotators"][0]["matrix"])
    np.testing.assert_allclose(m.sum(axis=0), 1.0, atol=1e-6)

    res = runner.invoke(app, ["predict", str(d / "model.safetensors"), "--features", str(crowd["features"]), "--proba"])
    assert res.exit_code == 0, res.output
    again = pd.read_csv(pd.io.common.StringIO(res.output))
    assert again["label"].tolist() == pred["label"].tolist()
    np.testing.assert_allclose(again["confidence"], pred["confidence"], rtol=1e-5)
    np.testing.assert_allclose(again[["p_bird", "p_cat", "p_dog"]].sum(axis=1), 1.0, atol=1e-5)

    loaded = CrowdClassifier.load(d / "model.safetensors")
    assert loaded.get_params()["init"] == "ds" and loaded.get_params()["epochs"] == 15


def test_train_refuses_to_overwrite_and_reports_bad_input(crowd: dict[str, Path], tmp_path: Path) -> None:
    model = crowd["dir"] / "model.safetensors"
    model.write_text("keep me")
    res = runner.invoke(app, train_args(crowd))
    assert res.exit_code == 1
    assert "model.safetensors: already exists (pass --force to replace it)" in res.output
    assert model.read_text() == "keep me"
    assert "Traceback" not in res.output

    res = runner.invoke(app, train_args(crowd, "--method", "crowdsvm"))
    assert res.exit_code == 2 and "--method must be one of" in res.output

    # a labelled item without a feature row
    feats = pd.read_csv(crowd["features"])
    short = tmp_path / "short.csv"
    feats[feats["item"] != "doc007"].to_csv(short, index=False)
    model.unlink()
    res = runner.invoke(app, [*train_args(crowd)[:2], "--features", str(short), *train_args(crowd)[4:]])
    assert res.exit_code == 1
    assert "item 'doc007' has labels but no feature row (1 of 90 labelled items have no features)" in res.output
    assert not model.exists()

    # a non-numeric feature value: file, line, column and value
    feats = feats.astype({"f2": object})
    feats.loc[4, "f2"] = "n/a"
    bad = tmp_path / "bad.csv"
    feats.to_csv(bad, index=False)
    res = runner.invoke(app, [*train_args(crowd)[:2], "--features", str(bad), *train_args(crowd)[4:]])
    assert res.exit_code == 1
    assert "bad.csv, line 6, column 'f2': feature value 'n/a' is not a finite number" in res.output


def test_train_reports_divergence_without_traceback(crowd: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from crowdlearn.train import TrainingDivergedError

    def boom(self: CrowdClassifier, *args: object, **kwargs: object) -> CrowdClassifier:
        raise TrainingDivergedError(3, 1, {"loss": float("nan")})

    monkeypatch.setattr(CrowdClassifier, "fit", boom)
    res = runner.invoke(app, train_args(crowd))
    assert res.exit_code == 1
    assert "training diverged: non-finite loss at epoch 3, batch 1" in res.output
    assert "Nothing was written." in res.output
    assert not (crowd["dir"] / "model.safetensors").exists()


def test_predict_errors(crowd: dict[str, Path], tmp_path: Path) -> None:
    res = runner.invoke(app, train_args(crowd, "--validation", "none", "--method", "ccem"))
    assert res.exit_code == 0, res.output
    assert "selected epoch" not in res.output
    model = crowd["dir"] / "model.safetensors"
    narrow = tmp_path / "narrow.npy"
    np.save(narrow, np.zeros((4, 3), dtype=np.float32))
    res = runner.invoke(app, ["predict", str(model), "--features", str(narrow)])
    assert res.exit_code == 1
    assert "X has 3 features, but CrowdClassifier is expecting 5 features as input" in res.output
    fake = tmp_path / "fake.safetensors"
    fake.write_text("not a model")
    res = runner.invoke(app, ["predict", str(fake), "--features", str(narrow)])
    assert res.exit_code == 1
    assert "fake.safetensors is not a CrowdClassifier file (not readable as safetensors" in res.output
    assert "Traceback" not in res.output


def test_read_features_npy_and_tables(tmp_path: Path) -> None:
    arr = np.arange(12, dtype=np.float64).reshape(4, 3)
    np.save(tmp_path / "x.npy", arr)
    ids, x = read_features(tmp_path / "x.npy")
    assert ids.tolist() == [0, 1, 2, 3] and x.dtype == np.float32
    np.testing.assert_array_equal(x, arr)

    (tmp_path / "x.tsv").write_text("id\ta\tb\n7\t1.5\t2\n3\t0\t-1e3\n")
    ids, x = read_features(tmp_path / "x.tsv")  # no 'item' column: the first column holds the ids
    assert ids.tolist() == ["7", "3"]  # ids are text, as written
    np.testing.assert_array_equal(x, [[1.5, 2.0], [0.0, -1000.0]])

    (tmp_path / "dup.csv").write_text("item,a\nq,1\nr,2\nq,3\n")
    with pytest.raises(AnnotationsError, match=r"dup.csv, line 4: item 'q' appears twice"):
        read_features(tmp_path / "dup.csv")
    (tmp_path / "nan.csv").write_text("item,a\nq,1\nr,nan\n")
    with pytest.raises(AnnotationsError, match=r"nan.csv, line 3, column 'a': feature value 'nan' is not a finite"):
        read_features(tmp_path / "nan.csv")
    np.save(tmp_path / "inf.npy", np.array([[1.0, np.inf]]))
    with pytest.raises(AnnotationsError, match=r"inf.npy: row 0, column 1: feature value inf is not finite"):
        read_features(tmp_path / "inf.npy")
    np.save(tmp_path / "one.npy", np.zeros(3))
    with pytest.raises(AnnotationsError, match=r"expected a 2-d numeric array \(items x features\), got shape \(3,\)"):
        read_features(tmp_path / "one.npy")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(AnnotationsError, match="not a plain numeric .npy array"):
        read_features(tmp_path / "obj.npy")  # never unpickled
    (tmp_path / "ids.csv").write_text("item\nq\n")
    with pytest.raises(AnnotationsError, match="no feature columns besides the item column"):
        read_features(tmp_path / "ids.csv")


def test_align_features_orders_rows_and_lists_unlabelled() -> None:
    ann = Annotations.from_ids(["b", "a", "b"], ["w", "w", "v"], [0, 1, 1])
    x = np.array([[1.0], [2.0], [3.0]])
    aligned, unlabelled = align_features(ann, np.array(["c", "a", "b"]), x)
    assert ann.item_ids.tolist() == ["b", "a"]
    np.testing.assert_array_equal(aligned, [[3.0], [2.0]])
    assert unlabelled.tolist() == [0]
    with pytest.raises(AnnotationsError, match="item 'b' has labels but no feature row"):
        align_features(ann, np.array(["a", "c"]), x[:2])


def test_train_under_torchrun_writes_once(crowd: dict[str, Path]) -> None:
    """``python -m torch.distributed.run --nproc_per_node=2 -m crowdlearn train ... --distributed``."""
    import os
    import subprocess
    import sys

    d = crowd["dir"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    src = Path(__file__).resolve().parents[1] / "src"
    env["PYTHONPATH"] = os.pathsep.join([str(src), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "crowdlearn"]
    cmd += [*train_args(crowd, "--distributed", "--batch-size", "32", "--predictions", str(d / "pred.csv"))]
    # the timeout only detects a hang: generous, so a loaded machine never fails the test
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("trained geocrowdnet-f on 90 items") == 1  # rank 0 only
    assert "data-parallel over 2 processes" in done.stdout
    assert len(pd.read_csv(d / "pred.csv")) == 100
    model = CrowdClassifier.load(d / "model.safetensors")
    assert model.get_params()["distributed"] is True


def test_lam_help_names_the_methods_that_use_and_ignore_it() -> None:
    """``--lam`` help says which --method values use it and which ignore it (every method named once)."""
    import inspect

    from crowdlearn import cli
    from crowdlearn.estimators import METHODS

    help_text = inspect.signature(cli.train).parameters["lam"].default.help
    used_part, _, ignored_part = help_text.partition("ignored by")
    assert ignored_part, help_text
    for method in METHODS:
        uses = getattr(CrowdClassifier(method=method, lam=0.5)._make_criterion(), "lam", None) == 0.5  # type: ignore[arg-type]
        named = [w.strip(" ,;()") for w in used_part.split()], [w.strip(" ,;()") for w in ignored_part.split()]
        assert (method in named[0]) == uses, (method, help_text)
        assert (method in named[1]) == (not uses), (method, help_text)
