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
