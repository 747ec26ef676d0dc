"""`crowdlearn evaluate`: accuracy, per-class accuracy, ECE and confusion error on hand-made files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from crowdlearn.cli import app
from crowdlearn.metrics import confusion_estimation_error, expected_calibration_error

runner = CliRunner()


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """Predictions of 5 items (one without truth), truth of 5 items (one without prediction)."""
    pred = tmp_path / "pred.csv"
    pd.DataFrame(
        {
            "item": ["a", "b", "c", "d", "x"],
            "label": ["cat", "dog", "cat", "dog", "cat"],
            "confidence": [0.9, 0.6, 0.7, 0.8, 0.5],
            "p_cat": [0.9, 0.4, 0.7, 0.2, 0.5],
            "p_dog": [0.1, 0.6, 0.3, 0.8, 0.5],
        }
    ).to_csv(pred, index=False)
    truth = tmp_path / "truth.csv"
    pd.DataFrame({"item": ["a", "b", "c", "d", "y"], "label": ["cat", "dog", "dog", "dog", "cat"]}).to_csv(
        truth, index=False
    )
    return {"pred": pred, "truth": truth, "dir": tmp_path}


def evaluate(*args: str) -> object:
    return runner.invoke(app, ["evaluate", *args])


def test_accuracy_per_class_and_ece(files: dict[str, Path]) -> None:
    res = evaluate(str(files["pred"]), "--truth", str(files["truth"]), "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert (out["n_scored"], out["n_predicted_without_truth"], out["n_truth_without_prediction"]) == (4, 1, 1)
    assert out["accuracy"] == 0.75  # a, b, d right; c wrong
    assert out["per_class"] == [
        {"class": "cat", "n": 1, "accuracy": 1.0},
        {"class": "dog", "n": 3, "accuracy": pytest.approx(2 / 3)},
    ]
    proba = np.array([[0.9, 0.1], [0.4, 0.6], [0.7, 0.3], [0.2, 0.8]])
    assert out["ece"] == pytest.approx(expected_calibration_error([0, 1, 1, 1], proba))
    assert out["confusion_error"] is None
    text = evaluate(str(files["pred"]), "--truth", str(files["truth"]))
    assert text.exit_code == 0
    assert "4 items scored (1 predicted items have no truth, 1 true items no prediction)" in text.stdout
    assert "accuracy 0.7500" in text.stdout and "  dog: 0.6667 (n=3)" in text.stdout


def test_without_probabilities_no_ece(files: dict[str, Path]) -> None:
    plain = files["dir"] / "plain.csv"
    pd.read_csv(files["pred"])[["item", "label"]].to_csv(plain, index=False)
    res = evaluate(str(plain), "--truth", str(files["truth"]), "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["ece"] is None
    res = evaluate(str(plain), "--truth", str(files["truth"]))
    assert "ECE: needs p_<class> columns" in res.stdout


def test_zero_overlap_is_an_error(files: dict[str, Path]) -> None:
    other = files["dir"] / "other.csv"
    pd.DataFrame({"item": ["q", "r"], "label": ["cat", "dog"]}).to_csv(other, index=False)
    res = evaluate(str(other), "--truth", str(files["truth"]))
    assert res.exit_code == 1
    assert res.stderr.startswith(f"error: none of the 2 items of {other} is in {files['truth']}")
    assert "Traceback" not in res.output


def test_bad_probability_column_names_line_and_column(files: dict[str, Path]) -> None:
    bad = files["dir"] / "bad.csv"
    frame = pd.read_csv(files["pred"])
    frame.loc[2, "p_dog"] = 1.5
    frame.to_csv(bad, index=False)
    res = evaluate(str(bad), "--truth", str(files["truth"]))
    assert res.exit_code == 1
    assert res.stderr.strip() == f"error: {bad}, line 4, column 'p_dog': value '1.5' is not a probability in [0, 1]"


def write_conf(path: Path, classes: list[object], ids: list[object], matrices: np.ndarray) -> Path:
    doc = {"classes": classes, "annotators": [{"annotator": a, "matrix": m.tolist()} for a, m in zip(ids, matrices)]}
    path.write_text(json.dumps(doc))
    return path


def test_confusion_error_matches_by_annotator_and_class_id(files: dict[str, Path]) -> None:
    rng = np.random.default_rng(0)
    true = rng.dirichlet(np.ones(2), size=(3, 2)).transpose(0, 2, 1)  # (3, 2, 2), columns sum to 1
    est = np.clip(true + rng.normal(scale=0.05, size=true.shape), 0.01, None)
    est /= est.sum(axis=1, keepdims=True)
    t = write_conf(files["dir"] / "true.json", ["cat", "dog"], ["w0", "w1", "w2"], true)
    # the estimate lists the annotators in another order, the classes reversed, and one annotator more
    flipped = est[[2, 0, 1]][:, ::-1][:, :, ::-1]
    extra = np.concatenate([flipped, np.eye(2)[None]])
    e = write_conf(files["dir"] / "est.json", ["dog", "cat"], ["w2", "w0", "w1", "w9"], extra)
    res = evaluate(str(files["pred"]), "--truth", str(files["truth"]), "--confusions", str(e), "--true-confusions",
                   str(t), "--json")  # fmt: skip
    assert res.exit_code == 0, res.output
    ce = json.loads(res.stdout)["confusion_error"]
    expected = confusion_estimation_error(est, true, per_annotator=True)
    assert ce["mean"] == pytest.approx(float(expected.mean()))
    assert ce["per_annotator"] == {k: pytest.approx(v) for k, v in zip(["w0", "w1", "w2"], expected.tolist())}
    assert (ce["n_annotators"], ce["n_estimated_without_truth"], ce["n_true_not_estimated"]) == (3, 1, 0)


def test_confusion_options_go_together_and_classes_must_match(files: dict[str, Path]) -> None:
    t = write_conf(files["dir"] / "true.json", ["cat", "dog"], ["w0"], np.eye(2)[None])
    res = evaluate(str(files["pred"]), "--truth", str(files["truth"]), "--true-confusions", str(t))
    assert res.exit_code == 2 and "--confusions and --true-confusions go together" in res.stderr
    e = write_conf(files["dir"] / "est.json", ["cat", "bird"], ["w0"], np.eye(2)[None])
    res = evaluate(str(files["pred"]), "--truth", str(files["truth"]), "--confusions", str(e), "--true-confusions",
                   str(t))  # fmt: skip
    assert res.exit_code == 1 and "cannot be compared" in res.stderr
    (files["dir"] / "junk.json").write_text("[1, 2]")
    res = evaluate(str(files["pred"]), "--truth", str(files["truth"]), "--confusions",
                   str(files["dir"] / "junk.json"), "--true-confusions", str(t))  # fmt: skip
    assert res.exit_code == 1 and "expected a JSON object with 'classes' and 'annotators' lists" in res.stderr
