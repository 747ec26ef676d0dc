"""Delimited files of integers read straight as integers (issue 13), and the lazy imports of the CLI.

A file whose every field is the canonical text of an integer is parsed by pyarrow as int64 and
proven canonical by its byte count (:func:`crowdlearn.io._read_int_table`); every other file is
read as text. Each test compares the result with pandas' reader on the same file (the text path),
and says which files must take the integer path and which must not.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import crowdlearn.io as cio
from crowdlearn import Annotations, AnnotationsError
from crowdlearn.annotations import _factorize_dense
from crowdlearn.io import read_annotations

pytest.importorskip("pyarrow")

SRC = Path(cio.__file__).resolve().parents[1]

# name -> (content, whether the integer path reads it)
FILES: dict[str, tuple[str, bool]] = {
    "canonical.csv": ("item,annotator,label\n10,1,0\n7,1,1\n-3,2,1\n0,2,0\n10,2,1\n", True),
    "no-final-newline.csv": ("item,annotator,label\n10,1,0\n7,1,1", True),
    "tab.tsv": ("item\tannotator\tlabel\n3\t1\t0\n4\t1\t1\n", True),
    "x-in-header.csv": ("index,item,annotator,label\n0,3,1,0\n1,4,1,1\n", True),
    "int64-max.csv": ("item,annotator,label\n9223372036854775807,1,0\n-9223372036854775807,1,1\n", True),
    "leading-zero.csv": ("item,annotator,label\n007,1,0\n7,1,1\n", False),
    "zero-zero.csv": ("item,annotator,label\n00,1,0\n0,2,1\n", False),
    "minus-zero.csv": ("item,annotator,label\n-0,1,0\n0,1,1\n", False),
    "plus.csv": ("item,annotator,label\n+7,1,0\n7,1,1\n", False),
    "space.csv": ("item,annotator,label\n 7,1,0\n8,1,1\n", False),
    "trailing-space.csv": ("item,annotator,label\n7 ,1,0\n8,1,1\n", False),
    # 0xFFFFF is as long as 1048575, the integer it is read as: refused for its x
    "hex.csv": ("item,annotator,label\n0xFFFFF,1,0\n1048575,1,1\n", False),
    "hex-upper.csv": ("item,annotator,label\n0X1F,1,0\n31,1,1\n", False),
    "quoted.csv": ('item,annotator,label\n"7",1,0\n8,1,1\n', False),
    "crlf.csv": ("item,annotator,label\r\n7,1,0\r\n8,1,1\r\n", False),
    "blank-line.csv": ("item,annotator,label\n7,1,0\n\n8,1,1\n", False),
    "two-final-newlines.csv": ("item,annotator,label\n7,1,0\n8,1,1\n\n", False),
    "bom.csv": ("\ufeffitem,annotator,label\n7,1,0\n8,1,1\n", True),
    "beyond-int64.csv": ("item,annotator,label\n9223372036854775808,1,0\n7,1,1\n", False),
    "int64-min.csv": ("item,annotator,label\n-9223372036854775808,1,0\n7,1,1\n", False),
    "text-later.csv": ("item,annotator,label\n" + "7,1,0\n" * 3 + "a,2,1\n", False),
    "float-label.csv": ("item,annotator,label\n7,1,0\n8,1,1.0\n", False),
    "wide-range.csv": ("item,annotator,label\n1000000000000,1,0\n7,1,1\n", True),
}


def _read(path: Path, monkeypatch: pytest.MonkeyPatch, reader: str, **kwargs: object) -> Annotations | str:
    monkeypatch.setenv("CROWDLEARN_READER", reader)
    try:
        return read_annotations(path, **kwargs)  # type: ignore[arg-type]
    except AnnotationsError as exc:
        return str(exc)


@pytest.mark.parametrize("name", sorted(FILES))
@pytest.mark.parametrize("ids", ["str", "int"])
def test_integer_path_equals_the_text_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, ids: str
) -> None:
    content, integer = FILES[name]
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8"))
    monkeypatch.setenv("CROWDLEARN_READER", "pyarrow")
    facts = cio._sniff_text(path, cio.infer_format(path))
    sep = cio._SEPARATORS[cio.infer_format(path)]
    assert (cio._read_int_table(path, sep, True, facts) is not None) == integer
    a = _read(path, monkeypatch, "pyarrow", ids=ids, on_duplicate="first")
    b = _read(path, monkeypatch, "pandas", ids=ids, on_duplicate="first")
    if isinstance(b, str):  # not ids at all with ids="int" (0x1F, a, beyond int64): the same message
        assert ids == "int" and a == b
        return
    assert isinstance(a, Annotations), a
    assert a == b
    for x, y in ((a.item_ids, b.item_ids), (a.annotator_ids, b.annotator_ids), (a.classes, b.classes)):
        assert x.dtype == y.dtype and x.tolist() == y.tolist()
        assert [type(v) for v in x.tolist()] == [type(v) for v in y.tolist()]
    if ids == "str":
        assert all(isinstance(v, str) for v in a.item_ids.tolist())


def test_headerless_integers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "plain.csv"
    path.write_text("5,1,0\n6,1,1\n5,2,1\n")
    facts = cio._sniff_text(path, "csv")
    assert cio._read_int_table(path, ",", False, facts) is not None
    a = _read(path, monkeypatch, "pyarrow", header=False)
    b = _read(path, monkeypatch, "pandas", header=False)
    assert isinstance(a, Annotations) and a == b and a.item_ids.tolist() == ["5", "6"]
    # the first line is data without a header: an x there is a hexadecimal id, never taken as integers
    path.write_text("0x5,1,0\n6,1,1\n")
    assert cio._read_int_table(path, ",", False, cio._sniff_text(path, "csv")) is None


@pytest.mark.parametrize(
    ("content", "kwargs"),
    [
        ("item,annotator,label\n1,1,0\n2,1,1\n3,2,1\n1,1,1\n", {}),  # a repeated pair
        ("item,annotator,label\n1,1,0\n2,1,7\n", {"classes": [0, 1]}),  # a label outside the classes
        ("item,annotator,label\n1,1,0\n", {"item_col": "task"}),  # a missing column
        ("1,2,3,4\n5,6,7,8\n", {"header": False}),  # four headerless columns
        ("a,b,c,d,e\n1,2,3,4,5\n6,7,8,9,10\n", {}),  # a wide table read as long
        ("item,item,label\n1,2,3\n", {}),  # a repeated column name
    ],
)
def test_integer_files_get_the_text_paths_messages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str, kwargs: dict[str, object]
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    a = _read(path, monkeypatch, "pyarrow", **kwargs)
    b = _read(path, monkeypatch, "pandas", **kwargs)
    assert isinstance(a, str) and a == b and str(path) in a


def test_repeated_pairs_kept_first_or_last_as_the_text_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    rows = [
        f"{i},{a},{lab}"
        for i, a, lab in zip(rng.integers(0, 40, 400), rng.integers(0, 9, 400), rng.integers(0, 3, 400))
    ]
    path = tmp_path / "rep.csv"
    path.write_text("item,annotator,label\n" + "\n".join(rows) + "\n")
    assert cio._read_int_table(path, ",", True, cio._sniff_text(path, "csv")) is not None
    for policy in ("first", "last"):
        a = _read(path, monkeypatch, "pyarrow", on_duplicate=policy)
        b = _read(path, monkeypatch, "pandas", on_duplicate=policy)
        assert isinstance(a, Annotations) and a == b and a.n_duplicates_dropped == b.n_duplicates_dropped > 0


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int32", "int64", "uint64"])
def test_dense_factorize_of_chunks_equals_one_array(dtype: str) -> None:
    rng = np.random.default_rng(0)
    info = np.iinfo(dtype)
    lo = int(info.max) - 99 if info.min == 0 else int(info.min)
    values = np.array([lo + int(v) for v in rng.integers(0, 100, 200_000)], dtype=dtype)
    whole = _factorize_dense(values)
    parts = _factorize_dense(np.split(values, [0, 7, 70_000, 70_001, 150_000]))
    assert whole is not None and parts is not None
    assert np.array_equal(whole[0], parts[0]) and np.array_equal(whole[1], parts[1])
    assert parts[1].dtype == values.dtype
    first = list(dict.fromkeys(values.tolist()))
    assert parts[1].tolist() == first
    assert np.array_equal(parts[1][parts[0]], values)


def _modules_after(code: str, cwd: Path) -> dict[str, bool]:
    probe = (
        "import sys, json\n"
        + code
        + "\nprint(json.dumps({m: m in sys.modules for m in ('pandas', 'torch', 'scipy', 'sklearn', 'rich')}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=cwd,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, bool] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_cli_import_needs_no_pandas_torch_or_scipy(tmp_path: Path) -> None:
    loaded = _modules_after("import crowdlearn.cli", tmp_path)
    assert not any(loaded.values()), loaded


def test_validate_of_an_integer_csv_imports_no_pandas_or_torch(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("item,annotator,label\n" + "".join(f"{i},{i % 7},{i % 3}\n" for i in range(500)))
    code = (
        "from crowdlearn.cli import app\n"
        f"try:\n    app(['validate', {str(path)!r}])\nexcept SystemExit as e:\n    assert e.code == 0, e.code"
    )
    loaded = _modules_after(code, tmp_path)
    assert not any(loaded.values()), loaded
    # and a text file still reads (pandas imported on first use)
    path.write_text("item,annotator,label\na,w1,cat\n")
    assert _modules_after(f"import crowdlearn.io as c; c.read_annotations({str(path)!r})", tmp_path)["pandas"]


def test_utf8_check_across_ascii_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ASCII chunks skip the decoder, but a character cut by a chunk boundary is still checked."""
    chunk = 1 << 20
    head = "item,annotator,label\n"
    filler = "a,w1,1\n" * ((chunk - len(head)) // 7)
    pad = "b" * (chunk - len(head) - len(filler) - 1)  # the item of the next row, up to the boundary
    good = tmp_path / "good.csv"
    good.write_bytes((head + filler + pad + "\u00e9,w1,0\n" + "c,w2,1\n" * 10).encode("utf-8"))
    monkeypatch.setenv("CROWDLEARN_READER", "pyarrow")
    assert read_annotations(good, on_duplicate="first").n_items == 3
    bad = tmp_path / "bad.csv"
    bad.write_bytes((head + filler + pad).encode() + b"\xc3" + b",w1,0\n" + b"c,w2,1\n" * 10)
    with pytest.raises(
        AnnotationsError, match=r"line \d+: not UTF-8 text \(invalid continuation byte at byte 1048575\)"
    ):
        read_annotations(bad)
    cut = tmp_path / "cut.csv"
    cut.write_bytes((head + "a,w1,1\n").encode() + b"\xc3")
    with pytest.raises(AnnotationsError, match=r"not UTF-8 text \(unexpected end of data"):
        read_annotations(cut)
