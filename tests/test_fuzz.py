"""Fuzzing the readers, the CLI and CrowdClassifier.load: a correct parse or one clear error.

Inputs are random bytes and random mutations of valid files (truncation, deleted or duplicated
columns, swapped delimiters, huge and non-integral numbers, odd encodings, empty and header-only
files). The property, for every reader: it returns, or raises one of the documented input
errors with a one-line message free of numpy reprs. For the CLI (in-process, CliRunner): exit
0, or exit 1 with a single ``error: ...`` line on stderr and no traceback, and never a partial
output file. Deterministic (``derandomize=True``) and cheap (a few hundred examples in all).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from crowdlearn.annotations import AnnotationsError
from crowdlearn.cli import app
from crowdlearn.io import read_annotations, read_answers_json, read_features, read_truth, read_wide

FUZZ = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
runner = CliRunner()
#: What a reader may raise for bad content: the library's input errors, nothing else.
INPUT_ERRORS = (AnnotationsError, FileNotFoundError, IsADirectoryError)

# --------------------------------------------------------------------------- valid seeds
LONG = "item,annotator,label\n007,w1,cat\n7,w2,dog\n0042,w1,dog\nq4,w3,cat\n007,w2,cat\n"
LONG_INT = "item,annotator,label\n1,1,0\n2,1,1\n3,2,1\n1,2,0\n4,3,2\n"
WIDE = "1,-1,0\n-1,2,2\n0,0,-1\n2,1,1\n"
TRUTH = "item,label\n007,cat\n7,dog\nq4,cat\n"
FEATURES = "item,f0,f1\n007,0.5,1.0\n7,1.5,-2.0\n0042,0.0,3.25\nq4,2.0,2.0\n"
JSONL = "".join(
    json.dumps({"item": i, "annotator": a, "label": lab}) + "\n"
    for i, a, lab in [("007", "w1", 1), ("7", "w2", 0), ("x", "w1", 2)]
)
ANSWERS = json.dumps({"007": {"w1": 1, "w2": 0}, "7": {"w1": 2}})

HUGE = ["1" + "0" * 30, "999999999", "-5", "1.5", "2.0", "1e309", "nan", "inf", "", " ", "0x10", "٣"]


@st.composite
def mutated_text(draw: st.DrawFn, seed: str) -> bytes:
    """A valid file text with up to three random mutations, then a random encoding."""
    lines = seed.splitlines()
    sep = "," if "," in seed else " "
    for _ in range(draw(st.integers(0, 3))):
        op = draw(
            st.sampled_from(
                ["truncate", "drop_col", "dup_col", "swap_sep", "cell", "dup_line", "drop_header", "junk", "blank"]
            )
        )
        if not lines:
            break
        if op == "truncate":
            text = "\n".join(lines)
            lines = text[: draw(st.integers(0, len(text)))].split("\n")
        elif op in ("drop_col", "dup_col"):
            width = max(len(r.split(sep)) for r in lines)
            j = draw(st.integers(0, max(width - 1, 0)))
            out = []
            for r in lines:
                cells = r.split(sep)
                if j < len(cells):
                    if op == "drop_col":
                        del cells[j]
                    else:
                        cells.insert(j, cells[j])
                out.append(sep.join(cells))
            lines = out
        elif op == "swap_sep":
            new = draw(st.sampled_from([";", "\t", " ", "|", ",,"]))
            lines = [r.replace(sep, new) for r in lines]
        elif op == "cell":
            i = draw(st.integers(0, len(lines) - 1))
            cells = lines[i].split(sep)
            cells[draw(st.integers(0, len(cells) - 1))] = draw(st.sampled_from(HUGE) | st.text(max_size=6))
            lines[i] = sep.join(cells)
        elif op == "dup_line":
            i = draw(st.integers(0, len(lines) - 1))
            lines.insert(i, lines[i])
        elif op == "drop_header":
            lines = lines[1:]
        elif op == "junk":
            i = draw(st.integers(0, len(lines)))
            lines.insert(i, draw(st.text(max_size=12)))
        elif op == "blank":
            lines = lines[:1]
    text = "\n".join(lines) + draw(st.sampled_from(["\n", "", "\r\n"]))
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8", "utf-8-sig", "utf-16", "latin-1", "cp1252"]))
    try:
        return text.encode(encoding)
    except UnicodeEncodeError:
        return text.encode("utf-8")


def any_bytes(seed: str) -> st.SearchStrategy[bytes]:
    return st.one_of(mutated_text(seed), st.binary(max_size=200), st.just(b""), st.just(seed.split("\n")[0].encode()))


def assert_input_error(call: Callable[[], Any]) -> None:
    """``call()`` returns, or raises a documented input error with a clean one-line message."""
    try:
        call()
    except INPUT_ERRORS as exc:
        msg = str(exc)
        assert msg and "\n" not in msg, repr(msg)
        assert "np.int" not in msg and "np.float" not in msg and "np.str" not in msg, msg


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


# --------------------------------------------------------------------------- readers
READERS: dict[str, tuple[str, str, Callable[[Path], Any]]] = {
    "csv": ("a.csv", LONG, lambda p: read_annotations(p)),
    "csv-int-ids": ("a.csv", LONG_INT, lambda p: read_annotations(p, ids="int")),
    "csv-classes": ("a.csv", LONG_INT, lambda p: read_annotations(p, classes=[0, 1, 2])),
    "tsv": ("a.tsv", LONG.replace(",", "\t"), lambda p: read_annotations(p)),
    "txt": ("a.txt", "\n".join(LONG.replace(",", " ").splitlines()[1:]), lambda p: read_annotations(p)),
    "jsonl": ("a.jsonl", JSONL, lambda p: read_annotations(p)),
    "answers-json": ("a.json", ANSWERS, lambda p: read_answers_json(p)),
    "wide-csv": ("w.csv", WIDE, lambda p: read_wide(p, format="wide-csv")),
    "wide-txt": ("w.txt", WIDE.replace(",", " "), lambda p: read_annotations(p, format="wide-txt")),
    "wide-header": ("w.csv", "a,b,c\n" + WIDE, lambda p: read_wide(p, format="wide-csv", header=True)),
    "truth": ("t.csv", TRUTH, lambda p: read_truth(p)),
    "features": ("x.csv", FEATURES, lambda p: read_features(p)),
}


@pytest.mark.parametrize("reader", sorted(READERS))
@FUZZ
@given(data=st.data())
def test_readers_parse_or_raise_one_clear_error(tmp_path: Path, reader: str, data: st.DataObject) -> None:
    name, seed, read = READERS[reader]
    blob = data.draw(any_bytes(seed))
    p = write(tmp_path, name, blob)
    assert_input_error(lambda: read(p))


@FUZZ
@given(blob=st.binary(max_size=300))
def test_parquet_and_npy_readers_on_random_bytes(tmp_path: Path, blob: bytes) -> None:
    for name, read in (
        ("a.parquet", read_annotations),
        ("x.npy", read_features),
        ("x.parquet", read_features),
    ):
        p = write(tmp_path, name, blob)
        assert_input_error(lambda read=read, p=p: read(p))  # type: ignore[misc]
        p = write(tmp_path, name, b"PAR1" + blob if name.endswith("parquet") else b"\x93NUMPY" + blob)
        assert_input_error(lambda read=read, p=p: read(p))  # type: ignore[misc]


@FUZZ
@given(
    frame=st.lists(
        st.tuples(
            st.one_of(st.integers(-3, 3), st.text(max_size=3), st.floats(allow_nan=True), st.none()),
            st.one_of(st.integers(0, 3), st.text(max_size=2), st.booleans()),
            st.one_of(st.integers(-2, 10**20), st.floats(), st.text(max_size=3), st.none()),
        ),
        max_size=8,
    )
)
def test_parquet_of_odd_columns(tmp_path: Path, frame: list[tuple[Any, Any, Any]]) -> None:
    df = pd.DataFrame(frame, columns=["item", "annotator", "label"])
    p = tmp_path / "a.parquet"
    try:
        df.to_parquet(p)
    except Exception:  # pyarrow refuses mixed-type object columns: nothing to read
        return
    assert_input_error(lambda: read_annotations(p))


# --------------------------------------------------------------------------- CLI
def assert_cli(args: list[str], out: Path | None = None) -> None:
    """Exit 0, or exit 1 with one ``error:`` line; on failure ``out`` and no temporary file exist."""
    before = set(out.parent.iterdir()) if out is not None else set()
    res = runner.invoke(app, args)
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.output and "Traceback" not in res.stderr
    assert res.exit_code in (0, 1), (res.exit_code, res.stderr)
    if res.exit_code == 1:
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
        assert "np.int" not in lines[0] and "np.float" not in lines[0], lines[0]
        if out is not None:
            assert not out.exists()
            assert set(out.parent.iterdir()) == before  # no temporary file left behind
    elif out is not None:
        assert out.exists()


CLI_SEEDS = {
    "a.csv": LONG,
    "a.txt": "\n".join(LONG_INT.replace(",", " ").splitlines()[1:]),
    "a.json": ANSWERS,
    "a.jsonl": JSONL,
}


@pytest.mark.parametrize("name", sorted(CLI_SEEDS))
@FUZZ
@given(data=st.data())
def test_cli_validate(tmp_path: Path, name: str, data: st.DataObject) -> None:
    p = write(tmp_path, name, data.draw(any_bytes(CLI_SEEDS[name])))
    extra = data.draw(st.sampled_from([[], ["--on-duplicate", "first"], ["--ids", "int"], ["--format", "wide-csv"]]))
    assert_cli(["validate", str(p), *extra])


@pytest.mark.parametrize("method", ["mv", "ds"])
@FUZZ
@given(data=st.data())
def test_cli_aggregate(tmp_path: Path, method: str, data: st.DataObject) -> None:
    inp = tmp_path / "in"
    outdir = tmp_path / "out"
    inp.mkdir(exist_ok=True)
    outdir.mkdir(exist_ok=True)
    for f in outdir.iterdir():
        f.unlink()
    p = write(inp, "a.csv", data.draw(any_bytes(LONG)))
    out = outdir / "agg.csv"
    assert_cli(["aggregate", str(p), "--method", method, "--out", str(out)], out)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from crowdlearn.estimators import CrowdClassifier
    from crowdlearn.io import align_features

    d = tmp_path_factory.mktemp("model")
    (d / "l.csv").write_text(LONG)
    (d / "x.csv").write_text(FEATURES)
    ann = read_annotations(d / "l.csv")
    ids, X = read_features(d / "x.csv")
    X_items, _ = align_features(ann, ids, X)
    clf = CrowdClassifier(method="ccem", epochs=1, batch_size=4, validation="none").fit(X_items, ann)
    clf.save(d / "m.cl")
    return d / "m.cl"


@FUZZ
@given(data=st.data())
def test_cli_predict_features(tmp_path: Path, model_file: Path, data: st.DataObject) -> None:
    outdir = tmp_path / "out"
    outdir.mkdir(exist_ok=True)
    for f in outdir.iterdir():
        f.unlink()
    x = write(tmp_path, "x.csv", data.draw(any_bytes(FEATURES)))
    out = outdir / "pred.csv"
    assert_cli(["predict", str(model_file), "-x", str(x), "--out", str(out)], out)


def _split_safetensors(blob: bytes) -> tuple[dict[str, Any], bytes]:
    (n,) = struct.unpack("<Q", blob[:8])
    return json.loads(blob[8 : 8 + n]), blob[8 + n :]


def _join_safetensors(header: dict[str, Any], body: bytes) -> bytes:
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + body


JSON_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**20), 10**20), st.floats(), st.text(max_size=5), st.just([]), st.just({})
)


@st.composite
def mutated_model(draw: st.DrawFn, blob: bytes) -> bytes:
    kind = draw(st.sampled_from(["meta", "meta", "meta", "truncate", "flip", "header_size", "random"]))
    if kind == "truncate":
        return blob[: draw(st.integers(0, len(blob) - 1))]
    if kind == "flip":
        i = draw(st.integers(0, len(blob) - 1))
        return blob[:i] + bytes([blob[i] ^ draw(st.integers(1, 255))]) + blob[i + 1 :]
    if kind == "header_size":
        return struct.pack("<Q", draw(st.integers(0, 2**64 - 1))) + blob[8:]
    if kind == "random":
        return draw(st.binary(max_size=200))
    header, body = _split_safetensors(blob)
    meta = json.loads(header["__metadata__"]["crowdlearn"])
    for _ in range(draw(st.integers(1, 3))):
        section = draw(st.sampled_from(["top", "params"]))
        target = meta if section == "top" or not isinstance(meta.get("params"), dict) else meta["params"]
        if not target:
            break
        key = draw(st.sampled_from(sorted(target)))
        if draw(st.booleans()):
            del target[key]
        else:
            target[key] = draw(JSON_VALUES)
    header["__metadata__"]["crowdlearn"] = json.dumps(meta)
    if draw(st.booleans()):
        header["__metadata__"]["crowdlearn"] = header["__metadata__"]["crowdlearn"][: draw(st.integers(0, 40))]
    return _join_safetensors(header, body)


@FUZZ
@given(data=st.data())
def test_load_and_predict_of_mutated_models(tmp_path: Path, model_file: Path, data: st.DataObject) -> None:
    from crowdlearn.estimators import CrowdClassifier

    p = write(tmp_path, "m.cl", data.draw(mutated_model(model_file.read_bytes())))
    try:
        CrowdClassifier.load(p)
    except (ValueError, FileNotFoundError) as exc:
        assert str(exc) and "Traceback" not in str(exc)
    x = tmp_path / "x.csv"
    x.write_text(FEATURES)
    outdir = tmp_path / "out"
    outdir.mkdir(exist_ok=True)
    for f in outdir.iterdir():
        f.unlink()
    assert_cli(["predict", str(p), "-x", str(x), "--out", str(outdir / "pred.csv")], outdir / "pred.csv")


def test_seeds_are_valid(tmp_path: Path) -> None:
    """The unmutated seeds parse: the fuzz tests start from valid files."""
    for name, seed, read in READERS.values():
        read(write(tmp_path, name, seed.encode()))
    assert np.isfinite(read_features(write(tmp_path, "x.csv", FEATURES.encode()))[1]).all()


PREDICTIONS = "item,label,confidence,p_cat,p_dog\n007,cat,0.9,0.9,0.1\n7,dog,0.6,0.4,0.6\nq4,cat,0.7,0.7,0.3\n"


@FUZZ
@given(data=st.data())
def test_cli_evaluate(tmp_path: Path, data: st.DataObject) -> None:
    """Mutated predictions (or truth) against a valid truth (or predictions) file."""
    which = data.draw(st.sampled_from(["predictions", "truth"]))
    pred = write(tmp_path, "pred.csv", data.draw(any_bytes(PREDICTIONS)) if which == "predictions" else b"")
    truth = write(tmp_path, "truth.csv", data.draw(any_bytes(TRUTH)) if which == "truth" else b"")
    if which == "predictions":
        truth.write_text(TRUTH)
    else:
        pred.write_text(PREDICTIONS)
    assert_cli(["evaluate", str(pred), "--truth", str(truth), *data.draw(st.sampled_from([[], ["--json"]]))])


TRAIN_FUZZ = settings(FUZZ, max_examples=15)


@TRAIN_FUZZ
@given(data=st.data())
def test_cli_train(tmp_path: Path, data: st.DataObject) -> None:
    """Mutated labels or features: a model and its predictions, or one error line and no output."""
    which = data.draw(st.sampled_from(["labels", "features"]))
    labels = write(tmp_path, "l.csv", data.draw(any_bytes(LONG)) if which == "labels" else LONG.encode())
    feats = write(tmp_path, "x.csv", data.draw(any_bytes(FEATURES)) if which == "features" else FEATURES.encode())
    outdir = tmp_path / "out"
    outdir.mkdir(exist_ok=True)
    for f in outdir.iterdir():
        f.unlink()
    out = outdir / "m.safetensors"
    args = ["train", str(labels), "-x", str(feats), "--out", str(out), "--epochs", "1", "--batch-size", "4"]
    # --allow-untrusted: this test is about the inputs; a 1-epoch model of a mutated file may well be
    # collapsed (exit 3, tested in tests/test_sanity.py)
    args += ["--validation", "none", "--predictions", str(outdir / "pred.csv"), "--quiet", "--allow-untrusted"]
    assert_cli(args, out)
    if not out.exists():
        assert not (outdir / "pred.csv").exists()  # all outputs or none


@FUZZ
@given(data=st.data())
def test_cli_report_of_mutated_models(tmp_path: Path, model_file: Path, data: st.DataObject) -> None:
    p = write(tmp_path, "m.cl", data.draw(mutated_model(model_file.read_bytes())))
    outdir = tmp_path / "out"
    outdir.mkdir(exist_ok=True)
    for f in outdir.iterdir():
        f.unlink()
    assert_cli(["report", str(p), "--out", str(outdir / "r.html")], outdir / "r.html")
