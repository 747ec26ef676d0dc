"""Silent misparses of label files: each test pins one defect (a correct parse or one clear error)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from crowdlearn import Annotations, AnnotationsError
from crowdlearn.cli import app
from crowdlearn.io import (
    align_features,
    from_frame,
    read_annotations,
    read_answers_json,
    read_features,
    read_truth,
    read_wide,
    truth_array,
    write_annotations,
)

runner = CliRunner()


@pytest.fixture(autouse=True, params=["pyarrow", "pandas"])
def reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test here runs with both CSV parsers (pyarrow's, and pandas' forced by CROWDLEARN_READER)."""
    monkeypatch.setenv("CROWDLEARN_READER", request.param)
    return str(request.param)


def cli(*args: str) -> tuple[int, str, str]:
    res = runner.invoke(app, list(args))
    return res.exit_code, res.stdout, res.stderr


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


# --------------------------------------------------------------------------- 1. ids are strings
def _leading_zero_csv(tmp_path: Path) -> Path:
    p = tmp_path / "a.csv"
    p.write_text("item,annotator,label\n007,w1,0\n7,w1,1\n0042,w2,1\n007,w2,0\n")
    return p


def test_leading_zero_ids_are_distinct_items(tmp_path: Path) -> None:
    ann = read_annotations(_leading_zero_csv(tmp_path))
    assert ann.item_ids.tolist() == ["007", "7", "0042"]
    assert ann.annotator_ids.tolist() == ["w1", "w2"]
    assert ann.classes.tolist() == [0, 1]


def test_ids_int_declares_numeric_ids(tmp_path: Path) -> None:
    p = tmp_path / "a.csv"
    p.write_text("item,annotator,label\n007,1,0\n8,01,1\n")
    ann = read_annotations(p, ids="int")
    assert ann.item_ids.tolist() == [7, 8] and ann.annotator_ids.tolist() == [1]
    bad = tmp_path / "b.csv"
    bad.write_text("item,annotator,label\nq1,1,0\n")
    with pytest.raises(AnnotationsError, match=r"line 2, column 'item': item 'q1' is not an integer \(ids='int'\)"):
        read_annotations(bad, ids="int")
    with pytest.raises(AnnotationsError, match="ids= must be 'str' or 'int'"):
        read_annotations(p, ids="num")  # type: ignore[arg-type]


def test_ids_round_trip_every_format(tmp_path: Path) -> None:
    ann = read_annotations(_leading_zero_csv(tmp_path))
    for ext in (".csv", ".tsv", ".txt", ".jsonl", ".json", ".parquet"):
        out = tmp_path / f"out{ext}"
        write_annotations(ann, out)
        back = read_annotations(out)
        assert back.item_ids.tolist() == ["007", "7", "0042"], ext
        assert back.same_content(ann), ext


def test_jsonl_answers_json_and_frame_keep_id_text(tmp_path: Path) -> None:
    p = tmp_path / "a.jsonl"
    p.write_text('{"item": "007", "annotator": "w", "label": 1}\n{"item": "7", "annotator": "w", "label": 0}\n')
    assert read_annotations(p).item_ids.tolist() == ["007", "7"]
    j = tmp_path / "a.json"
    j.write_text(json.dumps({"007": {"01": 1}, "7": {"1": 0}}))
    ann = read_answers_json(j)
    assert ann.item_ids.tolist() == ["007", "7"] and ann.annotator_ids.tolist() == ["01", "1"]
    df = pd.DataFrame({"item": ["007", "7"], "annotator": ["1", "01"], "label": [0, 1]})
    assert from_frame(df).item_ids.tolist() == ["007", "7"]
    with pytest.raises(AnnotationsError, match="duplicate"):
        from_frame(df, ids="int")


def test_wide_header_annotator_ids_keep_text(tmp_path: Path) -> None:
    p = tmp_path / "w.csv"
    p.write_text("007,7\n1,-1\n0,1\n")
    ann = read_wide(p, format="wide-csv", header=True)
    assert ann.annotator_ids.tolist() == ["007", "7"]


def test_truth_and_features_match_ids_by_text(tmp_path: Path) -> None:
    ann = read_annotations(_leading_zero_csv(tmp_path))
    t = tmp_path / "t.csv"
    t.write_text("item,label\n007,1\n0042,0\n")
    truth = read_truth(t)
    assert truth.index.tolist() == ["007", "0042"]
    assert truth_array(truth, ann).tolist() == [1, -1, 0]
    f = tmp_path / "x.csv"
    f.write_text("item,f0\n0042,0.5\n7,1.5\n007,2.5\n")
    ids, X = read_features(f)
    assert ids.tolist() == ["0042", "7", "007"]
    X_items, unlabelled = align_features(ann, ids, X)
    assert X_items[:, 0].tolist() == [2.5, 1.5, 0.5] and unlabelled.tolist() == []
    g = tmp_path / "y.csv"
    g.write_text("item,f0\n7,1.5\n42,0.5\n")  # '7' is not '007', '42' is not '0042'
    with pytest.raises(AnnotationsError, match="item '007' has labels but no feature row"):
        align_features(ann, *read_features(g))


def test_cli_aggregate_writes_the_ids_it_read(tmp_path: Path) -> None:
    out = tmp_path / "agg.csv"
    code, _, err = cli("aggregate", str(_leading_zero_csv(tmp_path)), "--method", "mv", "--out", str(out))
    assert code == 0, err
    table = pd.read_csv(out, dtype=str)
    assert table["item"].tolist() == ["007", "7", "0042"]
    p = tmp_path / "n.csv"
    p.write_text("item,annotator,label\n007,1,0\n7,2,1\n0042,01,1\n")
    code, stdout, err = cli("validate", str(p), "--ids", "int")
    assert code == 0, err
    assert "items:      2" in stdout and "annotators: 2" in stdout
    code, _, err = cli("validate", str(_leading_zero_csv(tmp_path)), "--ids", "int")
    assert code == 1 and "annotator 'w1' is not an integer (--ids int)" in one_error_line(err)


# --------------------------------------------------------------------------- 2. float labels
def test_non_integral_numeric_label_is_an_error(tmp_path: Path) -> None:
    p = tmp_path / "a.csv"
    p.write_text("item,annotator,label\na,w,0\nb,w,1\nc,w,1.5\nd,w,2\n")
    with pytest.raises(
        AnnotationsError, match=r"line 4, column 'label': label '1.5' is not an integer class id.*classes="
    ):
        read_annotations(p)
    code, _, err = cli("validate", str(p))
    assert code == 1 and "--classes" in one_error_line(err) and "classes=" not in err.replace("--classes", "")
    ann = read_annotations(p, classes=[0, 1, 1.5, 2])
    assert ann.classes.tolist() == [0, 1, 1.5, 2] and ann.labels.tolist() == [0, 1, 2, 3]
    code, _, err = cli("validate", str(p), "--classes", "0,1,1.5,2")
    assert code == 0, err


def test_integral_float_labels_are_classes(tmp_path: Path) -> None:
    p = tmp_path / "a.csv"
    p.write_text("item,annotator,label\na,w,0.0\nb,w,2.0\nc,w,1\n")
    assert read_annotations(p).classes.tolist() == [0, 1, 2]
    df = pd.DataFrame({"item": ["a", "b", "c"], "annotator": ["w", "w", "w"], "label": [0.0, 2.0, 1.5]})
    with pytest.raises(AnnotationsError, match="label '1.5' is not an integer class id"):
        from_frame(df)


# --------------------------------------------------------------------------- 3. wide tables read as long
def _wide_txt(tmp_path: Path, name: str = "answers.txt", sep: str = " ") -> Path:
    rng = np.random.default_rng(0)
    table = np.where(rng.random((6, 12)) < 0.3, rng.integers(0, 3, (6, 12)), -1)
    p = tmp_path / name
    p.write_text("\n".join(sep.join(map(str, r)) for r in table.tolist()) + "\n")
    return p


@pytest.mark.parametrize("on_duplicate", ["error", "first"])
def test_wide_txt_read_as_long_is_detected(tmp_path: Path, on_duplicate: str) -> None:
    p = _wide_txt(tmp_path)
    with pytest.raises(AnnotationsError, match=r"looks like a wide table \(12 columns\): use format='wide-txt'"):
        read_annotations(p, on_duplicate=on_duplicate)  # type: ignore[arg-type]
    code, _, err = cli("validate", str(p), "--on-duplicate", on_duplicate)
    assert code == 1 and "looks like a wide table (12 columns): use --format wide-txt" in one_error_line(err)


def test_wide_csv_read_as_long_is_detected(tmp_path: Path) -> None:
    p = _wide_txt(tmp_path, "answers.csv", ",")
    with pytest.raises(AnnotationsError, match=r"looks like a wide table \(12 columns\): use format='wide-csv'"):
        read_annotations(p)


def test_real_labelme_answers_is_detected(data_dir: Path) -> None:
    p = data_dir / "LabelMe" / "answers.txt"
    code, _, err = cli("validate", str(p), "--on-duplicate", "first")
    assert code == 1 and "looks like a wide table (77 columns): use --format wide-txt" in one_error_line(err)
    code, out, err = cli("validate", str(p), "--format", "wide-txt")
    assert code == 0, err
    assert "items:      1000" in out


def test_long_txt_with_extra_columns_is_not_silently_cut(tmp_path: Path) -> None:
    p = tmp_path / "a.txt"
    p.write_text("q1 w1 cat 2020\nq2 w1 dog 2021\n")
    with pytest.raises(AnnotationsError, match="4 columns.*item_col="):
        read_annotations(p)
    ann = read_annotations(p, item_col=0, annotator_col=1, label_col=2)
    assert ann.n_labels == 2


# --------------------------------------------------------------------------- 4. separator hint
def test_semicolon_file_suggests_sep(tmp_path: Path) -> None:
    p = tmp_path / "a.csv"
    p.write_text("item;annotator;label\na;w;1\nb;w;0\n")
    with pytest.raises(AnnotationsError, match=r"sep=';'"):
        read_annotations(p)
    code, _, err = cli("validate", str(p))
    assert code == 1 and "--sep ';'" in one_error_line(err)
    assert read_annotations(p, sep=";").n_labels == 2


# --------------------------------------------------------------------------- 5. truth of another dataset
def test_truth_without_overlap_is_an_error(tmp_path: Path) -> None:
    ann = Annotations.from_ids(["a", "b"], ["w", "w"], [0, 1])
    t = tmp_path / "other.csv"
    t.write_text("item,label\nx,0\ny,1\n")
    with pytest.raises(AnnotationsError, match=r"other.csv: none of the 2 truth items is an item of the labels.*'x'"):
        truth_array(read_truth(t), ann)
    t.write_text("item,label\na,1\ny,1\n")  # partial overlap is allowed
    assert truth_array(read_truth(t), ann).tolist() == [1, -1]


def test_cli_train_truth_of_another_dataset(tmp_path: Path) -> None:
    labels = tmp_path / "l.csv"
    labels.write_text(
        "item,annotator,label\n" + "".join(f"{i},w{a},{(i + a) % 2}\n" for i in range(8) for a in range(3))
    )
    feats = tmp_path / "x.csv"
    feats.write_text("item,f0\n" + "".join(f"{i},{i / 8}\n" for i in range(8)) + "100,0.5\n101,0.1\n")
    truth = tmp_path / "t.csv"
    truth.write_text("item,label\n007,0\nq9,1\n")  # another dataset: '007' is not item '7'
    args = ["train", str(labels), "-x", str(feats), "-o", str(tmp_path / "m.cl"), "--epochs", "1"]
    args.append("--allow-untrusted")  # 1 epoch on labels that are noise: a model at chance (exit 3 without it)
    code, _, err = cli(*args, "--validation", "none", "--truth", str(truth))
    assert code == 1 and "t.csv: none of the 2 truth items" in one_error_line(err) and "'007'" in err
    assert not (tmp_path / "m.cl").exists()
    truth.write_text("item,label\n100,0\n101,1\n3,1\nq9,0\n")  # unlabelled feature rows count; 3 of 4 match
    code, out, err = cli(*args, "--validation", "none", "--truth", str(truth))
    assert code == 0, err
    assert "accuracy on the 3 of 4 items of t.csv with features" in out


# --------------------------------------------------------------------------- 7. no numpy reprs
def test_messages_have_no_numpy_reprs(tmp_path: Path) -> None:
    ann = Annotations([0, 0], [0, 1], [0, 1], item_ids=np.array([7]), annotator_ids=np.array([3, 4]))
    with pytest.raises(AnnotationsError) as e1:
        Annotations([0, 0], [0, 0], [0, 1], item_ids=np.array([7]), annotator_ids=np.array([3]))
    with pytest.raises(AnnotationsError) as e2:
        align_features(ann, np.array([8]), np.zeros((1, 2)))
    with pytest.raises(AnnotationsError) as e3:
        from_frame(pd.DataFrame({"item": [1.0, 2.0], "annotator": [1, 1], "label": [0.5, 1.0]}))
    for e in (e1, e2, e3):
        assert "np." not in str(e.value), str(e.value)


# --------------------------------------------------------------------------- 8. no traceback
def test_huge_long_label_is_an_error(tmp_path: Path) -> None:
    p = tmp_path / "a.csv"
    p.write_text(f"item,annotator,label\na,w,{10**30}\nb,w,1\n")
    with pytest.raises(AnnotationsError, match="line 2, column 'label'.*out of range"):
        read_annotations(p)
    code, _, err = cli("validate", str(p))
    assert code == 1
    one_error_line(err)


def test_huge_wide_label_has_no_dense_allocation(tmp_path: Path) -> None:
    p = tmp_path / "w.txt"
    p.write_text("1 999999999\n-1 1\n")
    ann = read_wide(p)
    assert ann.classes.tolist() == [1, 999999999] and ann.n_classes == 2
    code, _, err = cli("validate", str(p), "--format", "wide-txt")
    assert code == 0, err
    p.write_text(f"1 {10**30}\n")
    code, _, err = cli("validate", str(p), "--format", "wide-txt")
    assert code == 1 and "out of range" in one_error_line(err)


@pytest.mark.parametrize("fmt", ["csv", "wide-csv", "jsonl", "answers-json"])
def test_utf8_bom_parses(tmp_path: Path, fmt: str) -> None:
    body = {
        "csv": "item,annotator,label\na,w,1\n",
        "wide-csv": "1,-1\n0,1\n",
        "jsonl": '{"item": "a", "annotator": "w", "label": 1}\n',
        "answers-json": '{"a": {"w": 1}}',
    }[fmt]
    p = tmp_path / "bom.txt"
    p.write_bytes(b"\xef\xbb\xbf" + body.encode())
    ann = read_annotations(p, format=fmt)
    assert ann.n_labels >= 1
    if fmt == "csv":
        assert ann.item_ids.tolist() == ["a"]


@pytest.mark.parametrize("fmt", ["csv", "txt", "wide-txt", "jsonl", "answers-json"])
def test_undecodable_bytes_name_line_and_byte(tmp_path: Path, fmt: str) -> None:
    p = tmp_path / "bad.dat"
    p.write_bytes(b"item,annotator,label\na,w,1\ncaf\xe9,w,0\n")
    with pytest.raises(AnnotationsError, match=r"bad.dat, line 3: not UTF-8 text \(invalid .* at byte 30\)"):
        read_annotations(p, format=fmt)
    code, _, err = cli("validate", str(p), "--format", fmt)
    assert code == 1
    one_error_line(err)


def test_utf16_is_a_clear_error(tmp_path: Path) -> None:
    p = tmp_path / "a.csv"
    p.write_bytes("item,annotator,label\na,w,1\n".encode("utf-16"))
    with pytest.raises(AnnotationsError, match="UTF-16.*UTF-8"):
        read_annotations(p)


# --------------------------------------------------------------------------- found by tests/test_fuzz.py
def test_npy_reader_on_zip_bytes(tmp_path: Path) -> None:
    p = tmp_path / "x.npy"
    p.write_bytes(b"PK\x03\x04")
    with pytest.raises(AnnotationsError, match=r"x.npy: not a .npy array"):
        read_features(p)
    np.savez(tmp_path / "z.npz", a=np.zeros((2, 2)))
    (tmp_path / "z.npz").rename(p)
    with pytest.raises(AnnotationsError, match=r"x.npy: not a .npy array"):
        read_features(p)


def test_load_of_corrupted_metadata_is_one_line(tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    from crowdlearn.estimators import CrowdClassifier

    ann = Annotations.from_ids(["a", "b", "c", "d"], ["w", "w", "v", "v"], [0, 1, 1, 0])
    x = np.random.default_rng(0).normal(size=(4, 2)).astype(np.float32)
    CrowdClassifier(method="ccem", epochs=1, batch_size=2, validation="none").fit(x, ann).save(tmp_path / "m.cl")
    from safetensors import safe_open

    with safe_open(str(tmp_path / "m.cl"), framework="pt") as fh:
        meta = json.loads(fh.metadata()["crowdlearn"])
    tensors = load_file(str(tmp_path / "m.cl"))
    for key, value in (("annotator_ids", None), ("params", {"bheckpoint_dir": None}), ("history", 3)):
        broken = dict(meta)
        broken[key] = value
        save_file(tensors, str(tmp_path / "bad.cl"), metadata={"crowdlearn": json.dumps(broken)})
        with pytest.raises(ValueError) as err:
            CrowdClassifier.load(tmp_path / "bad.cl")
        assert "\n" not in str(err.value) and str(err.value).startswith(str(tmp_path / "bad.cl")), key
        (tmp_path / "x.csv").write_text("item,f0,f1\na,0,1\n")
        code, _, stderr = cli("predict", str(tmp_path / "bad.cl"), "-x", str(tmp_path / "x.csv"))
        assert code == 1
        one_error_line(stderr)
    broken = dict(meta, params=dict(meta["params"], batch_size="many"))
    save_file(tensors, str(tmp_path / "bad.cl"), metadata={"crowdlearn": json.dumps(broken)})
    with pytest.raises(ValueError, match="The 'batch_size' parameter of CrowdClassifier must be an int >= 1"):
        CrowdClassifier.load(tmp_path / "bad.cl")


def test_cli_duplicate_hint_uses_flags(tmp_path: Path) -> None:
    p = tmp_path / "a.csv"
    p.write_text("item,annotator,label\na,w,1\na,w,0\n")
    with pytest.raises(AnnotationsError, match="on_duplicate='first' or on_duplicate='last'"):
        read_annotations(p)
    code, _, err = cli("validate", str(p))
    line = one_error_line(err)
    assert code == 1 and "--on-duplicate first or --on-duplicate last" in line and "on_duplicate=" not in line
    p.write_text("question,who,answer\na,w,1\n")
    code, _, err = cli("validate", str(p))
    line = one_error_line(err)
    assert "--item-col" in line and "item_col=" not in line
