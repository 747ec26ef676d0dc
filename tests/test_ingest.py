"""Fast ingest (issue 13): hashed id encoding, the one-pass duplicate check, pyarrow vs pandas CSV parsing.

Each test compares the fast path with a plain-Python reference of the documented contract (ids in
order of first appearance, classes sorted, the first/last label of a repeated pair, the rows an
error names) or the pyarrow parser with pandas' parser on the same file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import crowdlearn.io as cio
from crowdlearn import Annotations, AnnotationsError
from crowdlearn.aggregate.base import as_annotations
from crowdlearn.io import read_annotations


def _first_appearance(values: list[object]) -> list[object]:
    return list(dict.fromkeys(values))


def _random_ids(rng: np.random.Generator, n: int, kind: str) -> list[object]:
    pool: list[object]
    if kind == "str":
        pool = [f"id{k:03d}" for k in rng.permutation(60)]
    elif kind == "int":
        pool = [int(k) for k in rng.permutation(1000)[:60] - 300]
    else:  # mixed str and int ids (allowed for items and annotators)
        pool = [f"s{k}" if k % 2 else int(k) for k in rng.permutation(60)]
    return [pool[int(k)] for k in rng.integers(0, len(pool), n)]


@pytest.mark.parametrize("kind", ["str", "int", "mixed"])
def test_hash_encoding_keeps_first_appearance_ids_and_sorted_classes(kind: str) -> None:
    rng = np.random.default_rng(3)
    n = 400
    items = _random_ids(rng, n, kind)
    annotators = [f"w{k}" for k in rng.integers(0, 7, n)]
    labels = [["b", "c", "a"][int(k)] for k in rng.integers(0, 3, n)] if kind == "str" else list(rng.integers(0, 4, n))
    ann = Annotations.from_ids(items, annotators, labels, on_duplicate="first")
    assert ann.item_ids.tolist() == _first_appearance(items)
    assert ann.annotator_ids.tolist() == _first_appearance(annotators)
    assert ann.classes.tolist() == sorted({int(v) if kind != "str" else v for v in labels})  # type: ignore[type-var]
    assert ann.item_ids.dtype == (np.int64 if kind == "int" else object)
    # every kept label maps back to its own ids: the codes were remapped with the right take
    kept = ann.to_frame()
    ref = pd.DataFrame({"item": items, "annotator": annotators, "label": labels})
    ref = ref.drop_duplicates(["item", "annotator"], keep="first").reset_index(drop=True)
    assert kept["item"].tolist() == ref["item"].tolist()
    assert kept["annotator"].tolist() == ref["annotator"].tolist()
    assert [str(v) for v in kept["label"]] == [str(v) for v in ref["label"]]


def test_frame_path_equals_the_array_path() -> None:
    rng = np.random.default_rng(0)
    task = rng.integers(0, 300, 2000) * 7
    worker = rng.integers(0, 40, 2000)
    label = rng.integers(0, 5, 2000)
    df = pd.DataFrame({"task": task, "worker": worker, "label": label}).drop_duplicates(["task", "worker"])
    ann, frame = as_annotations(df)
    assert frame
    items = pd.factorize(df["task"])[0]
    workers = pd.factorize(df["worker"])[0]
    assert np.array_equal(ann.items, items) and np.array_equal(ann.annotators, workers)
    assert np.array_equal(ann.labels, df["label"].to_numpy())
    assert ann.item_ids.tolist() == pd.unique(df["task"]).tolist()
    assert ann == Annotations(
        items, workers, df["label"].to_numpy(), item_ids=ann.item_ids, annotator_ids=ann.annotator_ids
    )


def _reference_keep(items: np.ndarray, annotators: np.ndarray, policy: str) -> list[int]:
    last: dict[tuple[int, int], int] = {}
    first: dict[tuple[int, int], int] = {}
    for r, key in enumerate(zip(items.tolist(), annotators.tolist())):
        first.setdefault(key, r)
        last[key] = r
    return sorted((first if policy == "first" else last).values())


@pytest.mark.parametrize("policy", ["first", "last"])
@pytest.mark.parametrize("n_items", [50, 70_000])  # int32 keys, and int64 keys (50 * 70,000 > 2**31 / 1000)
def test_duplicate_policies_keep_the_first_or_last_label(policy: str, n_items: int) -> None:
    rng = np.random.default_rng(n_items)
    n = 3000
    items = rng.integers(0, 50, n) * (n_items // 50)
    annotators = rng.integers(0, 40, n) * (1 if n_items == 50 else 40_000)
    labels = np.arange(n) % 3
    ann = Annotations(items, annotators, labels, on_duplicate=policy)  # type: ignore[arg-type]
    keep = _reference_keep(items, annotators, policy)
    assert np.array_equal(ann.items, items[keep]) and np.array_equal(ann.labels, labels[keep])
    assert ann.n_duplicates_dropped == n - len(keep) > 0


def test_duplicate_errors_name_the_same_rows() -> None:
    # repeats: pair (5, 1) at rows 1 and 4, pair (2, 0) at rows 2 and 6, pair (5, 1) again at row 7
    items = np.array([9, 5, 2, 3, 5, 8, 2, 5])
    annotators = np.array([0, 1, 0, 0, 1, 0, 0, 1])
    labels = np.zeros(8, dtype=np.int64)
    # Annotations(...): the smallest repeated (item, annotator) pair, at its first two rows
    with pytest.raises(AnnotationsError, match=r"^duplicate \(item, annotator\) pair \(2, 0\) at rows 2 and 6; "):
        Annotations(items, annotators, labels)
    # from_ids: the earliest row that repeats a pair, and where that pair was first seen
    with pytest.raises(
        AnnotationsError, match=r"^row 4: duplicate \(item, annotator\) pair \(5, 1\), first seen at row 1; "
    ):
        Annotations.from_ids(items, annotators, labels)
    with pytest.raises(AnnotationsError, match=r"^f.csv, line 6: duplicate .* \('i5', 'w1'\), first seen at line 3; "):
        Annotations.from_ids(
            [f"i{v}" for v in items], [f"w{v}" for v in annotators], labels, source="f.csv", first_line=2
        )


# --------------------------------------------------------------------------- pyarrow vs pandas
GOOD = {
    "plain.csv": "item,annotator,label\na,w1,1\nb,w1,2\na,w2,2\n",
    "bom.csv": "\ufefftask,worker,label\na,w1,x\nb,w1,y\n",
    "crlf.csv": "item,annotator,label\r\na,w1,1\r\nb,w1,2\r\n",
    "blank-lines.csv": "item,annotator,label\n\na,w1,1\n\n\nb,w1,2\n",
    "quotes.csv": 'item,annotator,label\n"a,x",w1,1\n"b""q",w1,2\n"c\nd",w2,1\n',
    "spaces.csv": "item,annotator,label\n a , w1 ,1\n\xa0b,w1, 2\n",
    "leading-zeros.csv": "item,annotator,label\n007,1,0\n7,1,1\n-3,2,1\n+4,2,0\n",
    "canonical-ints.csv": "item,annotator,label\n10,1,0\n7,1,1\n-3,2,1\n0,2,0\n10,2,1\n",
    # pyarrow's integer cast reads 0x hexadecimal: 0xFFFFF has the length of 1048575, yet is another id
    "hex-ints.csv": "item,annotator,label\n0xFFFFF,1,0\n1048575,1,1\n0x1F,2,1\n31,2,0\n0X1F,3,1\n",
    "long-ints.csv": (
        "item,annotator,label\n1000000000000000000,1,0\n9223372036854775807,1,1\n"
        "9223372036854775808,2,1\n-9223372036854775808,2,0\n"
    ),
    "signed-zero.csv": "item,annotator,label\n-0,1,0\n0,1,1\n00,2,1\n",
    "sorted-pairs.csv": "item,annotator,label\n0,0,1\n0,1,0\n1,0,1\n2,3,1\n",
    "floats.csv": "item,annotator,label\n1.5,1,0\n2.0,1,1.0\n",
    "no-eol.tsv": "item\tannotator\tlabel\na\tw1\t1\nb\tw1\t0",
    "extra-column.csv": "time,item,annotator,label\n3,a,w1,1\n4,b,w1,0\n",
    "trailing-comma.csv": "item,annotator,label,\na,w1,1,\n",  # pandas names the empty column: read by pandas
    "whitespace-line.csv": "item,annotator,label\na,w1,1\n   \nb,w1,0\n",  # pyarrow rejects it: read by pandas
}
BAD = {
    "empty-item.csv": "item,annotator,label\na,w1,1\n ,w1,0\n",
    "short-row.csv": "item,annotator,label\na,w1,1\nb,w1\n",
    "long-row.csv": "item,annotator,label\na,w1,1\nb,w1,1,9\n",
    "mixed-labels.csv": "item,annotator,label\na,w1,1\nb,w1,cat\nc,w1,2\n",
    "fraction-label.csv": "item,annotator,label\na,w1,1\nb,w1,1.5\n",
    "duplicate.csv": "item,annotator,label\na,w1,1\nb,w1,0\n a,w1 ,0\n",
    "repeated-column.csv": "item,item,label\na,w1,1\n",
    "header-only.csv": "item,annotator,label\n",
    "blank-only.csv": "\n\n\n",
    "missing-column.csv": "item,who,label\na,w1,1\n",
}


def _read_both(path: Path, monkeypatch: pytest.MonkeyPatch, **kwargs: object) -> tuple[object, object]:
    out = []
    for reader in ("pyarrow", "pandas"):
        monkeypatch.setenv("CROWDLEARN_READER", reader)
        try:
            out.append(read_annotations(path, **kwargs))  # type: ignore[arg-type]
        except AnnotationsError as exc:
            out.append(str(exc))
    return out[0], out[1]


@pytest.mark.parametrize("name", sorted(GOOD))
def test_pyarrow_and_pandas_readers_give_equal_annotations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    path = tmp_path / name
    path.write_text(GOOD[name], encoding="utf-8")
    a, b = _read_both(path, monkeypatch, on_duplicate="first", classes=[0, 1, 1.5] if "floats" in name else None)
    assert isinstance(a, Annotations) and isinstance(b, Annotations), (a, b)
    assert a == b
    assert [type(v) for v in a.item_ids.tolist()] == [type(v) for v in b.item_ids.tolist()]
    if name == "leading-zeros.csv":
        assert a.item_ids.tolist() == ["007", "7", "-3", "+4"]
    if name == "canonical-ints.csv":  # hashed through their integers, kept as text
        assert a.item_ids.tolist() == ["10", "7", "-3", "0"]
    if name == "hex-ints.csv":
        assert a.item_ids.tolist() == ["0xFFFFF", "1048575", "0x1F", "31", "0X1F"]
    if name == "long-ints.csv":
        assert a.item_ids.tolist() == [row.split(",")[0] for row in GOOD[name].split()[1:]]
    if name == "signed-zero.csv":
        assert a.item_ids.tolist() == ["-0", "0", "00"]


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_rows_are_named_identically_by_both_readers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    path = tmp_path / name
    path.write_text(BAD[name], encoding="utf-8")
    a, b = _read_both(path, monkeypatch)
    assert isinstance(a, str) and a == b
    assert str(path) in a


def test_bad_row_messages_name_line_column_and_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("item,annotator,label\na,w1,1\nb,w1,2\nc,w1,x\n" + "d,w1,1\n" * 5 + " ,w2,1\n")
    a, b = _read_both(path, monkeypatch)
    assert a == b == f"{path}, line 10, column 'item': missing item (NaN/empty); every label needs an item"
    path.write_text("item,annotator,label\na,w1,1\nb,w1,2\nc,w1,x\nd,w1,y\n")
    a, b = _read_both(path, monkeypatch)
    assert a == b and "numbers (e.g. '1' at line 2) and strings (e.g. 'x' at line 4)" in str(a)
    path.write_text("item,annotator,label\na,w1,1\nb,w1,2\nb,w2,3\n")
    a, b = _read_both(path, monkeypatch, classes=[1, 2])
    assert a == b and str(a).startswith(f"{path}, line 4: label 3 is not one of the declared classes")


def test_pyarrow_parses_well_formed_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With pyarrow installed, a well-formed file never reaches pandas' parser."""
    pytest.importorskip("pyarrow")
    path = tmp_path / "ok.csv"
    path.write_text(GOOD["quotes.csv"])

    def no_pandas(*args: object, **kwargs: object) -> None:
        raise AssertionError("pandas' CSV parser was used")

    monkeypatch.setattr(cio.pd, "read_csv", no_pandas)
    monkeypatch.setenv("CROWDLEARN_READER", "pyarrow")
    assert read_annotations(path).n_labels == 3
    monkeypatch.setenv("CROWDLEARN_READER", "pandas")
    with pytest.raises(AssertionError, match="pandas' CSV parser"):
        read_annotations(path)


# --------------------------------------------------------------------------- dense ids, grouped input, counts
@pytest.mark.parametrize("dtype", ["int8", "int16", "int32", "int64", "uint8", "uint32", "uint64"])
@pytest.mark.parametrize("where", ["low", "zero", "high"])
def test_dense_factorize_equals_pandas(dtype: str, where: str) -> None:
    from crowdlearn.annotations import _factorize_dense

    info = np.iinfo(dtype)
    lo = {"low": int(info.min), "zero": 0, "high": int(info.max) - 40}[where]
    values = np.array([lo + int(k) for k in np.random.default_rng(1).integers(0, 41, 500)], dtype=dtype)
    dense = _factorize_dense(values)
    assert dense is not None
    codes, uniques = pd.factorize(values, sort=False)
    assert np.array_equal(dense[0], codes) and dense[0].dtype == np.int64
    assert np.array_equal(dense[1], uniques) and dense[1].dtype == uniques.dtype


def test_dense_factorize_declines_a_wide_range() -> None:
    from crowdlearn.annotations import _factorize_dense

    assert _factorize_dense(np.array([0, 10**9, 5])) is None  # hashed instead
    wide = Annotations.from_ids(np.array([10**12, 3, 10**12]), np.array([0, 0, 1]), np.array([1, 0, 1]))
    assert wide.item_ids.tolist() == [10**12, 3] and wide.items.tolist() == [0, 1, 0]


@pytest.mark.parametrize("order", ["sorted", "grouped", "shuffled"])
def test_duplicate_errors_name_rows_in_any_order(order: str) -> None:
    # 40 items x 6 annotators, one repeated (item, annotator) pair; rows laid out three ways
    items = np.repeat(np.arange(40), 6)
    annotators = np.tile(np.arange(6), 40)
    rng = np.random.default_rng(0)
    if order == "grouped":  # grouped by item, annotators shuffled within each item
        annotators = np.concatenate([rng.permutation(6) for _ in range(40)])
    perm = rng.permutation(240) if order == "shuffled" else np.arange(240)
    items, annotators = np.append(items[perm], 17), np.append(annotators[perm], 4)  # repeats (17, 4)
    labels = np.zeros(241, dtype=np.int64)
    first = int(np.flatnonzero((items == 17) & (annotators == 4))[0])
    with pytest.raises(
        AnnotationsError, match=rf"^duplicate \(item, annotator\) pair \(17, 4\) at rows {first} and 240; "
    ):
        Annotations(items, annotators, labels)
    with pytest.raises(AnnotationsError, match=rf"^row 240: duplicate .* \(17, 4\), first seen at row {first}; "):
        Annotations.from_ids(items, annotators, labels)
    kept = Annotations(items, annotators, labels, on_duplicate="last")
    assert kept.n_labels == 240 and kept.n_duplicates_dropped == 1
    assert Annotations(items[:240], annotators[:240], labels[:240]).n_labels == 240  # no repeat: no error


def test_counts_are_the_csr_row_lengths() -> None:
    rng = np.random.default_rng(4)
    items, annotators = rng.integers(0, 30, 500), rng.integers(0, 25, 500)
    ann = Annotations(items, annotators, rng.integers(0, 3, 500), n_items=35, n_annotators=27, on_duplicate="first")
    assert np.array_equal(ann.item_counts, np.diff(ann.by_item.indptr)) and ann.item_counts.dtype == np.int64
    assert np.array_equal(ann.annotator_counts, np.diff(ann.by_annotator.indptr))
    assert ann.item_counts.shape == (35,) and ann.annotator_counts.shape == (27,)
    assert not ann.item_counts.flags.writeable


def test_validate_output_does_not_depend_on_row_order(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from crowdlearn.cli import app

    rng = np.random.default_rng(7)
    items, annotators = np.repeat(np.arange(300), 3), np.tile(np.arange(3), 300)
    frame = pd.DataFrame({"item": items, "annotator": annotators, "label": rng.integers(0, 4, 900)})
    outputs = []
    for name, rows in (("sorted.csv", frame), ("shuffled.csv", frame.sample(frac=1.0, random_state=1))):
        rows.to_csv(tmp_path / name, index=False)
        result = CliRunner().invoke(app, ["validate", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
        outputs.append(result.output.split("\n", 1)[1])  # after "<file>: valid"
    counts = np.bincount(frame["label"], minlength=4)
    assert (
        outputs[0]
        == outputs[1]
        == (
            "items:      300 (0 without labels)\nannotators: 3 (0 without labels)\nclasses:    4\nlabels:     900\n"
            "labels per item:      min 3, median 3, mean 3, max 3\n"
            "labels per annotator: min 300, median 300, mean 300, max 300\n"
            "class counts: " + ", ".join(f"{k}: {int(c)}" for k, c in enumerate(counts)) + "\n"
        )
    )


@pytest.mark.parametrize(
    ("texts", "canonical"),
    [
        (["10", "7", "-3", "0", "10", "9223372036854775807"], True),
        (["7", "007"], False),
        (["7", "+7"], False),
        (["7", " 7"], False),
        (["-0", "0"], False),
        (["0xFFFFF", "1048575"], False),  # the cast reads hexadecimal; same length as the decimal
        (["9223372036854775808"], False),  # beyond int64
        (["7", "x"], False),
    ],
)
def test_canonical_integer_texts_take_the_integer_path(texts: list[str], canonical: bool) -> None:
    pytest.importorskip("pyarrow")
    values = pd.Series(texts, dtype=pd.StringDtype("pyarrow"))
    column = cio._canonical_int_column(values)
    assert (column is not None) == canonical
    if column is not None:
        assert column.ints is not None and column.values.tolist() == _first_appearance(texts)
        assert column.ints.tolist() == [int(t) for t in _first_appearance(texts)]
        assert [column.value(r) for r in range(len(texts))] == texts
