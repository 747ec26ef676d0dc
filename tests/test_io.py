"""Readers and writers: round trips (property-tested) and one test per bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crowdlearn import Annotations, AnnotationsError
from crowdlearn.io import (
    atomic_write,
    from_frame,
    from_wide,
    read_annotations,
    read_answers_json,
    read_truth,
    read_wide,
    truth_array,
    write_annotations,
    write_answers_json,
    write_truth,
    write_wide,
)


@pytest.fixture(autouse=True, params=["pyarrow", "pandas"])
def reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test here runs with both CSV parsers (pyarrow's, and pandas' forced by CROWDLEARN_READER)."""
    monkeypatch.setenv("CROWDLEARN_READER", request.param)
    return str(request.param)


ids = st.one_of(
    st.integers(0, 10_000),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyzABC_-.", min_size=1, max_size=6).filter(lambda s: not s[0].isdigit()),
)


@st.composite
def annotations_strategy(draw: st.DrawFn) -> Annotations:
    n = draw(st.integers(1, 40))
    item_pool = draw(st.lists(ids, min_size=1, max_size=15, unique=True))
    ann_pool = draw(st.lists(ids, min_size=1, max_size=8, unique=True))
    class_pool = draw(
        st.one_of(
            st.lists(st.integers(0, 9), min_size=1, max_size=5, unique=True),
            st.lists(st.sampled_from(["cat", "dog", "fox", "owl", "emu"]), min_size=1, max_size=5, unique=True),
        )
    )
    pairs = draw(
        st.lists(st.tuples(st.sampled_from(item_pool), st.sampled_from(ann_pool)), min_size=1, max_size=n, unique=True)
    )
    labels = [draw(st.sampled_from(class_pool)) for _ in pairs]
    # keep id types homogeneous per column, as files do
    it = [str(p[0]) if any(isinstance(q[0], str) for q in pairs) else p[0] for p in pairs]
    an = [str(p[1]) if any(isinstance(q[1], str) for q in pairs) else p[1] for p in pairs]
    it = [f"i{x}" if isinstance(x, str) else x for x in it]
    an = [f"w{x}" if isinstance(x, str) else x for x in an]
    return Annotations.from_ids(it, an, labels, classes=sorted(set(labels)))


LONG_FORMATS = ["csv", "tsv", "txt", "parquet", "jsonl", "answers-json"]
EXT = {"csv": ".csv", "tsv": ".tsv", "txt": ".txt", "parquet": ".parquet", "jsonl": ".jsonl", "answers-json": ".json"}


@pytest.mark.parametrize("fmt", LONG_FORMATS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ann=annotations_strategy())
def test_long_round_trip(tmp_path: Path, fmt: str, ann: Annotations) -> None:
    path = tmp_path / f"labels{EXT[fmt]}"
    write_annotations(ann, path, overwrite=True)
    back = read_annotations(path, classes=ann.classes.tolist())
    assert back.same_content(ann)
    assert back.classes.tolist() == ann.classes.tolist()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ann=annotations_strategy())
def test_wide_round_trip(tmp_path: Path, ann: Annotations) -> None:
    path = tmp_path / "wide.csv"
    write_wide(ann, path, overwrite=True)
    back = read_wide(path, header=True, classes=list(range(ann.n_classes)))
    # wide files hold class indices and annotator ids; items are the row numbers
    assert back.n_items == ann.n_items and back.n_annotators == ann.n_annotators
    assert [str(a) for a in back.annotator_ids.tolist()] == [str(a) for a in ann.annotator_ids.tolist()]
    assert back.items.size == ann.items.size
    order_a = np.lexsort((ann.annotators, ann.items))
    order_b = np.lexsort((back.annotators, back.items))
    for x, y in ((ann.items, back.items), (ann.annotators, back.annotators), (ann.labels, back.labels)):
        assert np.array_equal(x[order_a], y[order_b])


def test_dataframe_crowdkit_columns() -> None:
    df = pd.DataFrame({"task": ["t1", "t1", "t2"], "worker": [7, 8, 7], "label": [0, 1, 1]})
    ann = from_frame(df)
    assert ann.item_ids.tolist() == ["t1", "t2"]
    assert ann.annotator_ids.tolist() == [7, 8]
    assert ann.n_labels == 3


def test_wide_array_with_missing_markers() -> None:
    table = np.array([[0, -1, 2], [np.nan, 1, -1], [-1, -1, -1]])
    ann = from_wide(table)
    assert (ann.n_items, ann.n_annotators, ann.n_labels) == (3, 3, 3)
    assert ann.summary().n_items_unlabeled == 1
    assert sorted(zip(ann.items.tolist(), ann.annotators.tolist(), ann.labels.tolist())) == [
        (0, 0, 0),
        (0, 2, 2),
        (1, 1, 1),
    ]


def test_wide_empty_cells(tmp_path: Path) -> None:
    p = tmp_path / "w.csv"
    p.write_text("1,,0\n,2,\n")
    ann = read_wide(p)
    assert ann.n_labels == 3 and ann.n_annotators == 3


def test_truth_alignment(tmp_path: Path) -> None:
    ann = Annotations.from_ids(["a", "b", "c"], ["w", "w", "w"], ["x", "y", "x"])
    p = tmp_path / "truth.csv"
    write_truth(pd.Series(["y", "x"], index=["b", "zz"]), p)
    truth = read_truth(p)
    assert truth.to_dict() == {"b": "y", "zz": "x"}
    assert truth_array(truth, ann).tolist() == [-1, 1, -1]
    with pytest.raises(AnnotationsError, match="truth item 'zz' is not an item"):
        truth_array(truth, ann, strict=True)
    p2 = tmp_path / "truth2.csv"
    write_truth(np.array([0, -1, 1]), p2, ann)
    assert read_truth(p2).to_dict() == {"a": "x", "c": "y"}


def test_truth_repeated_item(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    p.write_text("item,label\na,1\na,2\n")
    with pytest.raises(AnnotationsError, match=r"t.csv, line 3: item 'a' has a second truth label"):
        read_truth(p)


def test_atomic_write_refuses_overwrite_and_cleans_up(tmp_path: Path) -> None:
    p = tmp_path / "out.csv"
    p.write_text("old")
    with pytest.raises(FileExistsError, match="already exists"):
        with atomic_write(p, overwrite=False) as fh:
            fh.write("new")
    with pytest.raises(RuntimeError):
        with atomic_write(p) as fh:
            fh.write("partial")
            raise RuntimeError("boom")
    assert p.read_text() == "old"
    assert [f.name for f in tmp_path.iterdir()] == ["out.csv"]


def test_writers_do_not_overwrite_by_default(tmp_path: Path) -> None:
    ann = Annotations([0], [0], [0])
    p = tmp_path / "a.csv"
    write_annotations(ann, p)
    with pytest.raises(FileExistsError):
        write_annotations(ann, p)


# ----------------------------------------------------------------------------- bad input
def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_missing_columns(tmp_path: Path) -> None:
    p = _write(tmp_path, "l.csv", "item,who,label\na,w,1\n")
    with pytest.raises(
        AnnotationsError, match=r"l.csv: missing the annotator column .*found columns \['item', 'who', 'label'\]"
    ):
        read_annotations(p)
    with pytest.raises(AnnotationsError, match=r"missing column 'rater' for the annotator"):
        read_annotations(p, annotator_col="rater")


def test_empty_file(tmp_path: Path) -> None:
    p = _write(tmp_path, "e.csv", "")
    with pytest.raises(AnnotationsError, match=r"e.csv: the file is empty"):
        read_annotations(p)
    p2 = _write(tmp_path, "h.csv", "item,annotator,label\n")
    with pytest.raises(AnnotationsError, match=r"h.csv: no labels"):
        read_annotations(p2)


def test_label_outside_declared_classes(tmp_path: Path) -> None:
    p = _write(tmp_path, "l.csv", "item,annotator,label\na,w,cat\nb,w,owl\n")
    with pytest.raises(
        AnnotationsError, match=r"l.csv, line 3: label 'owl' is not one of the declared classes \('cat', 'dog'\)"
    ):
        read_annotations(p, classes=["cat", "dog"])


def test_empty_ids(tmp_path: Path) -> None:
    p = _write(tmp_path, "l.csv", "item,annotator,label\na,w,1\n,w,0\n")
    with pytest.raises(AnnotationsError, match=r"l.csv, line 3, column 'item': missing item \(NaN/empty\)"):
        read_annotations(p)
    df = pd.DataFrame({"item": ["a", np.nan], "annotator": ["w", "v"], "label": [1, 0]})
    with pytest.raises(AnnotationsError, match=r"DataFrame, line 1, column 'item': missing item"):
        from_frame(df)


def test_mixed_label_types(tmp_path: Path) -> None:
    p = _write(tmp_path, "l.csv", "item,annotator,label\na,w,1\nb,w,cat\n")
    with pytest.raises(
        AnnotationsError,
        match=r"column 'label': mixed label types: numbers \(e.g. '1' at line 2\) and strings \(e.g. 'cat' at line 3\)",
    ):
        read_annotations(p)


def test_duplicate_pairs(tmp_path: Path) -> None:
    p = _write(tmp_path, "l.csv", "item,annotator,label\na,w,1\nb,w,0\na,w,0\n")
    with pytest.raises(
        AnnotationsError, match=r"l.csv, line 4: duplicate \(item, annotator\) pair \('a', 'w'\), first seen at line 2"
    ):
        read_annotations(p)
    assert read_annotations(p, on_duplicate="first").to_frame()["label"].tolist() == [1, 0]
    last = read_annotations(p, on_duplicate="last")
    assert sorted(last.to_frame().itertuples(index=False, name=None)) == [("a", "w", 0), ("b", "w", 0)]
    assert last.n_duplicates_dropped == 1


def test_ragged_wide(tmp_path: Path) -> None:
    p = _write(tmp_path, "w.txt", "0 -1 1\n1 1\n")
    with pytest.raises(AnnotationsError, match=r"w.txt, line 2: 2 fields, expected 3 .* ragged table"):
        read_annotations(p, format="wide-txt")


def test_non_numeric_wide(tmp_path: Path) -> None:
    p = _write(tmp_path, "w.csv", "0,-1,1\n1,x,0\n")
    with pytest.raises(AnnotationsError, match=r"w.csv, line 2, column 2: value 'x' is not a class id"):
        read_annotations(p, format="wide-csv")
    with pytest.raises(AnnotationsError, match=r"line 1, column 2: value '1.5' is not a class id"):
        from_wide(np.array([[0, 1.5]]), first_line=1)


def test_wrong_extension(tmp_path: Path) -> None:
    p = _write(tmp_path, "l.parquet", "item,annotator,label\na,w,1\n")
    with pytest.raises(
        AnnotationsError, match=r"l.parquet: the extension says Parquet but the file does not start with 'PAR1'"
    ):
        read_annotations(p)
    ann = Annotations([0], [0], [0])
    pq = tmp_path / "real.parquet"
    write_annotations(ann, pq)
    fake_csv = tmp_path / "fake.csv"
    fake_csv.write_bytes(pq.read_bytes())
    with pytest.raises(
        AnnotationsError, match=r"fake.csv: the extension says csv text but the file holds a Parquet file"
    ):
        read_annotations(fake_csv)
    js = _write(tmp_path, "a.json", "item,annotator\n")
    with pytest.raises(AnnotationsError, match=r"a.json, line 1: not valid JSON"):
        read_annotations(js)
    jl = _write(tmp_path, "a.jsonl", '{"item": 1, "annotator": 2, "label": 0}\n[1, 2]\n')
    with pytest.raises(AnnotationsError, match=r"a.jsonl, line 2: expected a JSON object per line, got list"):
        read_annotations(jl)
    with pytest.raises(AnnotationsError, match="cannot tell the format from the extension '.dat'"):
        read_annotations(_write(tmp_path, "x.dat", "1"))


def test_answers_json_shape_errors(tmp_path: Path) -> None:
    p = _write(tmp_path, "answers.json", json.dumps({"t1": {"w1": 0}, "t2": [1, 2]}))
    with pytest.raises(AnnotationsError, match=r"task 't2' maps to list, expected an object"):
        read_answers_json(p)


def test_answers_json_peerannot_layout(tmp_path: Path) -> None:
    p = _write(tmp_path, "answers.json", json.dumps({"0": {"3": 1, "5": 0}, "1": {"3": 1}}))
    ann = read_annotations(p)
    assert ann.n_items == 2 and ann.n_annotators == 2 and ann.n_labels == 3
    out = tmp_path / "again.json"
    write_answers_json(ann, out)
    assert json.loads(out.read_text()) == {"0": {"3": 1, "5": 0}, "1": {"3": 1}}


def test_missing_file_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_annotations(tmp_path / "nope.csv")


@settings(max_examples=30, deadline=None)
@given(ann=annotations_strategy())
def test_dataframe_round_trip(ann: Annotations) -> None:
    back = from_frame(ann.to_frame(), classes=ann.classes.tolist())
    assert back == ann


@pytest.mark.parametrize("fmt", ["csv", "tsv", "parquet", "jsonl"])
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ann=annotations_strategy(), seed=st.integers(0, 2**16))
def test_truth_round_trip(tmp_path: Path, fmt: str, ann: Annotations, seed: int) -> None:
    rng = np.random.default_rng(seed)
    truth = rng.integers(-1, ann.n_classes, ann.n_items)
    path = tmp_path / f"truth{EXT[fmt]}"
    frame = pd.DataFrame({"item": ann.item_ids[truth >= 0], "label": ann.classes[truth[truth >= 0]]})
    if fmt == "csv":
        write_truth(truth, path, ann, overwrite=True)
    else:
        with atomic_write(path, mode="wb" if fmt == "parquet" else "w") as fh:
            if fmt == "parquet":
                frame.to_parquet(fh)
            elif fmt == "jsonl":
                frame.to_json(fh, orient="records", lines=True)
            else:
                frame.to_csv(fh, sep="\t", index=False)
    if not (truth >= 0).any():
        with pytest.raises(AnnotationsError, match="no rows|the file is empty"):
            read_truth(path)
        return
    assert truth_array(read_truth(path), ann).tolist() == truth.tolist()


def test_atomic_write_gives_new_files_the_umask_mode_and_keeps_an_existing_mode(tmp_path: Path) -> None:
    import os
    import stat

    from crowdlearn.io import atomic_write

    old = os.umask(0o022)
    try:
        with atomic_write(tmp_path / "new.csv") as fh:
            fh.write("a\n")
        assert stat.S_IMODE((tmp_path / "new.csv").stat().st_mode) == 0o644  # not mkstemp's 0600
        os.chmod(tmp_path / "new.csv", 0o640)
        with atomic_write(tmp_path / "new.csv", overwrite=True) as fh:
            fh.write("b\n")
        assert stat.S_IMODE((tmp_path / "new.csv").stat().st_mode) == 0o640
        assert (tmp_path / "new.csv").read_text() == "b\n"
    finally:
        os.umask(old)
