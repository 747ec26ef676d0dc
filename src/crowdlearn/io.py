"""Readers and writers of crowdsourced labels, with validation that names file, line and value.

Formats
-------
long
    One row per label with an item, an annotator and a label column: CSV (``.csv``), TSV
    (``.tsv``), whitespace-separated text without header (``.txt``, columns item annotator
    label unless told otherwise), Parquet (``.parquet``, needs ``pyarrow``), JSON Lines
    (``.jsonl``) and pandas DataFrames. Column names are configurable; ``item/annotator/label``
    and crowd-kit's ``task/worker/label`` are recognised as they are.
wide
    A table or array of shape (n_items, n_annotators) holding a class per cell, with a missing
    marker (``-1``, ``NaN`` or an empty cell). Rows are items, columns annotators; rows and
    columns with no label are kept as items/annotators without labels.
answers-json
    peerannot's ``answers.json``: ``{task: {worker: label}}``.
truth
    Two columns, item and label, for evaluation (:func:`read_truth`, :func:`truth_array`).

Every writer is atomic: it writes a temporary file in the destination folder and renames it,
so a crash never leaves a half-written output, and it refuses to overwrite unless asked.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import math
import os
import re
import stat
import tempfile
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from crowdlearn._checks import show
from crowdlearn.annotations import Annotations, AnnotationsError, OnDuplicate, _Column, _factorize_dense, _Where

if TYPE_CHECKING:
    import pandas as pd
else:  # imported on first use: a CSV of integer ids is read without pandas (crowdlearn validate)
    from crowdlearn._lazy import lazy_module

    pd = lazy_module("pandas")

__all__ = [
    "FORMATS",
    "STDOUT",
    "AtomicOutputs",
    "align_features",
    "atomic_outputs",
    "atomic_write",
    "check_output",
    "check_outputs",
    "file_mode",
    "from_frame",
    "from_wide",
    "infer_format",
    "match_ids",
    "read_annotations",
    "read_answers_json",
    "read_features",
    "read_truth",
    "read_wide",
    "truth_array",
    "write_annotations",
    "write_answers_json",
    "write_truth",
    "write_wide",
]

Format = Literal["csv", "tsv", "txt", "parquet", "jsonl", "wide-csv", "wide-tsv", "wide-txt", "answers-json"]
FORMATS: tuple[str, ...] = ("csv", "tsv", "txt", "parquet", "jsonl", "wide-csv", "wide-tsv", "wide-txt", "answers-json")

_EXTENSIONS: dict[str, str] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".txt": "txt",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "answers-json",
}

#: Column names recognised without configuration, in order of preference.
ITEM_COLUMNS = ("item", "task", "item_id", "task_id")
ANNOTATOR_COLUMNS = ("annotator", "worker", "annotator_id", "worker_id")
LABEL_COLUMNS = ("label", "class", "answer")

_SEPARATORS = {"csv": ",", "tsv": "\t", "txt": r"\s+"}
_INT_PATTERN = r"[+-]?\d+"


# --------------------------------------------------------------------------- helpers
def infer_format(path: str | os.PathLike[str]) -> str:
    """Format name from the file extension (see :data:`FORMATS`)."""
    suffix = Path(path).suffix.lower()
    try:
        return _EXTENSIONS[suffix]
    except KeyError:
        raise AnnotationsError(
            f"{path}: cannot tell the format from the extension {suffix or '(none)'!r}; "
            f"pass format= one of {', '.join(FORMATS)}"
        ) from None


def _one_line(exc: BaseException) -> str:
    """An exception's message on one line (third-party messages may span several)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def _check_file(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a folder, expected a label file")
    if path.stat().st_size == 0:
        raise AnnotationsError(f"{path}: the file is empty (expected crowdsourced labels)")


#: Text encoding of every text format: UTF-8, with or without a byte-order mark.
ENCODING = "utf-8-sig"


@dataclass(frozen=True)
class _TextFacts:
    """What one pass over a text file found (:func:`_sniff_text`)."""

    quoted: bool  # a double quote somewhere (only then can a value span lines)
    newlines: int  # b"\n" bytes
    carriage_return: bool  # a b"\r" somewhere
    first_line_end: int  # offset just past the first b"\n" (-1: none)
    x_in_first_line: bool  # b"x" or b"X" before first_line_end (a hexadecimal 0x... can only be there)
    x_after_first_line: bool  # b"x" or b"X" after it
    size: int  # bytes


def _sniff_text(path: Path, fmt: str) -> _TextFacts:
    """Reject binary content and text that is not UTF-8 in a file whose format is text.

    The whole file is decoded once, incrementally, so an undecodable byte is reported with its
    line and byte offset (``file, line 3: not UTF-8 text (invalid start byte at byte 33)``)
    before any parsing. A UTF-8 byte-order mark is accepted (and skipped by the readers).
    Returns what the pass saw (:class:`_TextFacts`: quotes, newlines, ...).
    """
    with path.open("rb") as fh:
        head = fh.read(8192)
    kind = None
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise AnnotationsError(
            f"{path}: the file is UTF-16 text; crowdlearn reads UTF-8 (convert it, e.g. iconv -f UTF-16 -t UTF-8)"
        )
    if head.startswith(b"PAR1"):
        kind = "a Parquet file"
    elif head.startswith(b"\x1f\x8b"):
        kind = "gzip-compressed data"
    elif head.startswith(b"PK\x03\x04"):
        kind = "a zip archive"
    elif b"\x00" in head:
        kind = "binary data"
    if kind is not None:
        raise AnnotationsError(f"{path}: the extension says {fmt} text but the file holds {kind}")
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, lines, quoted, cr, first_end, x_first, x_rest = 0, 0, False, False, -1, False, False
    with path.open("rb") as fh:
        while True:
            chunk = fh.read(1 << 20)
            try:
                # ASCII is UTF-8: a chunk of it, with no character left open by the one before,
                # needs no decoding (bytes.isascii is one fast pass, creating no text)
                if not (chunk.isascii() and not decoder.getstate()[0]):
                    decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                # the decoder may hold back up to 3 bytes of an incomplete character
                pending = len(exc.object) - len(chunk)
                at = offset - pending + exc.start
                line = lines + exc.object[: exc.start].count(b"\n") + 1
                raise AnnotationsError(
                    f"{path}, line {line}: not UTF-8 text ({exc.reason} at byte {at}); save the file as UTF-8"
                ) from None
            if not chunk:
                return _TextFacts(quoted, lines, cr, first_end, x_first, x_rest, offset)
            rest = chunk
            if first_end < 0:
                nl = chunk.find(b"\n")
                head_part, rest = (chunk, b"") if nl < 0 else (chunk[: nl + 1], chunk[nl + 1 :])
                x_first = x_first or b"x" in head_part or b"X" in head_part
                if nl >= 0:
                    first_end = offset + nl + 1
            x_rest = x_rest or b"x" in rest or b"X" in rest
            offset += len(chunk)
            lines += chunk.count(b"\n")
            quoted = quoted or b'"' in chunk
            cr = cr or b"\r" in chunk


Ids = Literal["str", "int"]

_FLOAT_PATTERN = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_INT64_MAX = 2**63 - 1


def _check_ids(ids: Any) -> None:
    if not (isinstance(ids, str) and ids in ("str", "int")):
        raise AnnotationsError(f"ids= must be 'str' or 'int' (ids declared numeric), got {show(ids)}")


class _Loc:
    """'file, line N, column C' for messages about value ``i`` of one column.

    ``rows`` maps the position of a value to its data row when the values checked are a
    column's distinct values (:class:`~crowdlearn.annotations._Column`), not the column itself.
    """

    def __init__(self, source: str, first_line: int, column: str, rows: Callable[[int], int] | None = None) -> None:
        self.source, self.first_line, self.column = source, first_line, column
        self.rows = rows

    def line(self, i: int) -> int:
        return (self.rows(i) if self.rows is not None else i) + self.first_line

    def __call__(self, i: int) -> str:
        return f"{self.source}, line {self.line(i)}, column {self.column!r}"


def _arrow_text(values: pd.Series) -> Any | None:
    """The pyarrow array behind a column of pyarrow-backed strings without missing values, else None."""
    dtype = values.dtype
    if not (isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow") or values.hasnans:
        return None
    import pyarrow as pa

    return pa.chunked_array(values.array.__arrow_array__())


# A text whose first and last characters are printable ASCII other than space is unchanged by
# str.strip() (which removes only whitespace, ASCII or not): only the other values need Python.
_PLAIN_ENDS = r"^[!-~]((?s).*[!-~])?$"


def _text_mask(values: pd.Series, pattern: str) -> npt.NDArray[np.bool_] | None:
    """``re.search(pattern)`` for each value of a pyarrow-backed text column (vectorised), else None."""
    arr = _arrow_text(values)
    if arr is None:
        return None
    import pyarrow.compute as pc

    return np.asarray(pc.match_substring_regex(arr, pattern).to_numpy(zero_copy_only=False), dtype=bool)


def _canonical_int_column(values: pd.Series) -> _Column | None:
    """The column of a pyarrow-backed text column whose every value is a canonical integer, else None.

    Canonical: ``0`` or ``-?[1-9][0-9]*`` within int64 (no sign, leading zero or space: the text
    of exactly one integer, so texts and integers correspond one to one). Checked without a
    regular expression: pyarrow's cast parses every row, the integers are factorized
    (:func:`~crowdlearn.annotations._factorize_dense`), their distinct values are written back as
    text, and a row is canonical when its byte length is that of its integer's text (a ``+``, a
    leading zero or a space makes it longer) and it does not start with ``0`` unless it is ``0``
    (which rules out the ``0x`` hexadecimal that the cast also accepts). The returned column's
    values are the distinct texts (object dtype), in order of first appearance, and ``ints``
    their integers.
    """
    arr = _arrow_text(values)
    if arr is None or len(values) == 0:
        return None
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        ints = pc.cast(arr, pa.int64()).to_numpy()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None  # some value is not an integer at all
    length = pc.binary_length(arr).to_numpy()  # from the offsets: no pass over the text
    if (pc.starts_with(arr, "0").to_numpy(zero_copy_only=False) & (length != 1)).any():
        return None  # a leading zero (007, 0x1F)
    dense = _factorize_dense(ints)
    if dense is None:
        raw, uniques = pd.factorize(ints, sort=False)
        codes, distinct = raw.astype(np.int64, copy=False), np.asarray(uniques, dtype=np.int64)
    else:
        codes, distinct = dense[0], dense[1].astype(np.int64, copy=False)
    text = pc.cast(pa.array(distinct), pa.string())
    if not np.array_equal(length, pc.binary_length(text).to_numpy()[codes]):
        return None  # a sign or a space somewhere
    return _Column(codes, pd.Series(text.to_numpy(zero_copy_only=False), dtype=object), distinct=True, ints=distinct)


def _column(values: pd.Series) -> _Column:
    """Codes and distinct values of a column, by hashing.

    A text column in which every value is a canonical integer (``0``, ``42``, ``-7``; no sign,
    leading zero or space) is factorized through its integers (:func:`_canonical_int_column`):
    the same distinct texts in the same order of first appearance, at a fraction of the cost of
    hashing strings; the column then carries those integers (``ints``) and needs no
    normalisation (its texts are already stripped, present and distinct).
    """
    canonical = _canonical_int_column(values)
    return canonical if canonical is not None else _Column.of(values)


def _missing_error(values: pd.Series, what: str, loc: _Loc) -> None:
    s = values.astype(object)
    plain = _text_mask(values, "[!-~]")  # holds a printable non-space ASCII character: not empty
    if plain is not None and plain.all():
        return
    empty = s.isna().to_numpy() | (s.astype(str).str.strip() == "").to_numpy()
    if empty.any():
        row = int(np.flatnonzero(empty)[0])
        raise AnnotationsError(f"{loc(row)}: missing {what} (NaN/empty); every label needs an {what}")


def _check_scalars(values: pd.Series, what: str, loc: _Loc) -> None:
    """Objects (JSON lists/dicts, bools) are not ids or classes."""
    if values.dtype != object or pd.api.types.infer_dtype(values, skipna=True) in ("string", "integer"):
        return
    bad = values.map(lambda v: isinstance(v, (list, dict, tuple, set, bool, np.bool_, bytes))).to_numpy(dtype=bool)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        v = values.iloc[row]
        raise AnnotationsError(f"{loc(row)}: {what} {show(v)} is a {type(v).__name__}, expected a string or an integer")


def _as_text(values: pd.Series) -> pd.Series:
    """Each value as its text: floats by repr (``2.0``, ``1.5``, ``1e+30``), the rest by str, stripped."""
    plain = _text_mask(values, _PLAIN_ENDS)
    if plain is not None:
        out = values.astype(object)
        if not plain.all():
            out[~plain] = out[~plain].str.strip()
        return out
    return values.astype(str).astype(object).str.strip()  # str(1.5) == repr(1.5) == "1.5"


def _to_int64(text: pd.Series, loc: Callable[[int], str], what: str, expected: str) -> npt.NDArray[np.int64]:
    """Integer-looking (or integral float-looking) text to int64, exactly; others are errors."""
    ints = text.str.fullmatch(_INT_PATTERN).to_numpy(dtype=bool)
    out = np.zeros(len(text), dtype=np.int64)
    long = ints & (text.str.lstrip("+-").str.lstrip("0").str.len() > 18).to_numpy(dtype=bool)
    for r in np.flatnonzero(long).tolist():
        if abs(int(text.iloc[r])) > _INT64_MAX:
            raise AnnotationsError(
                f"{loc(r)}: {what} {text.iloc[r]!r} is out of range (expected {expected}, at most 18 digits)"
            )
    if ints.any():
        out[ints] = text[ints].astype(np.int64).to_numpy()
    rest = np.flatnonzero(~ints)
    if rest.size:
        floats = text.iloc[rest].str.fullmatch(_FLOAT_PATTERN).to_numpy(dtype=bool)
        if not floats.all():
            row = int(rest[np.flatnonzero(~floats)[0]])
            raise AnnotationsError(f"{loc(row)}: {what} {text.iloc[row]!r} is not {expected}")
        vals = text.iloc[rest].astype(np.float64).to_numpy()
        big = ~(np.abs(vals) <= _INT64_MAX)
        if big.any():
            row = int(rest[np.flatnonzero(big)[0]])
            raise AnnotationsError(f"{loc(row)}: {what} {text.iloc[row]!r} is out of range (expected {expected})")
        frac = vals != np.round(vals)
        if frac.any():
            row = int(rest[np.flatnonzero(frac)[0]])
            raise AnnotationsError(f"{loc(row)}: {what} {text.iloc[row]!r} is not {expected}")
        out[rest] = vals.astype(np.int64)
    return out


def _normalise_ids(
    values: pd.Series,
    what: str,
    source: str,
    first_line: int,
    column: str,
    ids: Ids = "str",
    rows: Callable[[int], int] | None = None,
) -> pd.Series:
    """Item or annotator ids: text stays text (``007`` and ``7`` differ) unless ``ids="int"``.

    Integer-typed columns (Parquet, JSON numbers, DataFrames) keep their integers, as do
    integral floats (a NaN-promoted integer column); with ``ids="int"`` every id must be an
    integer and ``007`` is ``7``. Empty ids are an error. ``rows`` maps a value's position to its
    data row (see :class:`_Loc`).
    """
    loc = _Loc(source, first_line, column, rows)
    values = values.reset_index(drop=True)
    if values.dtype.kind in "iu":
        if values.dtype.kind == "u" and len(values) and int(values.max()) > _INT64_MAX:
            raise AnnotationsError(f"{loc(int(values.argmax()))}: {what} {int(values.max())} is out of range")
        return values.astype(np.int64)
    _missing_error(values, what, loc)
    _check_scalars(values, what, loc)
    if values.dtype.kind == "f":
        vals = values.to_numpy(dtype=np.float64)
        if np.all((vals == np.round(vals)) & (np.abs(vals) <= _INT64_MAX)):
            return values.astype(np.int64)
        if ids == "str":
            return _as_text(values)
    text = _as_text(values)
    if ids == "int":
        return pd.Series(_to_int64(text, loc, what, "an integer (ids='int')"), dtype=np.int64)
    return text


def _normalise_labels(
    values: pd.Series,
    source: str,
    first_line: int,
    column: str,
    declared: bool = False,
    rows: Callable[[int], int] | None = None,
) -> pd.Series:
    """Labels: integer class ids (``2`` and ``2.0`` are class 2) or class names.

    A non-integral number (``1.5``) is an error unless ``declared`` (classes were given, then it
    stays a float to be matched against them). Integers and names mixed in one column are an
    error. ``rows`` maps a value's position to its data row (see :class:`_Loc`).
    """
    loc = _Loc(source, first_line, column, rows)
    values = values.reset_index(drop=True)
    if values.dtype.kind in "iu":
        return values.astype(np.int64)
    _missing_error(values, "label", loc)
    _check_scalars(values, "label", loc)
    text = _as_text(values)
    numeric = text.str.fullmatch(_FLOAT_PATTERN).to_numpy(dtype=bool)
    if numeric.all():
        if declared:
            vals = text.astype(np.float64).to_numpy()
            integral = (vals == np.round(vals)) & (np.abs(vals) <= _INT64_MAX)
            if not integral.all():
                out = np.empty(len(text), dtype=object)
                out[integral] = vals[integral].astype(np.int64).tolist()
                out[~integral] = vals[~integral].tolist()
                return pd.Series(out, dtype=object)
        expected = "an integer class id (declare the classes with classes= to use other numbers)"
        return pd.Series(_to_int64(text, loc, "label", expected), dtype=np.int64)
    if numeric.any():
        i = int(np.flatnonzero(numeric)[0])
        j = int(np.flatnonzero(~numeric)[0])
        raise AnnotationsError(
            f"{source}, column {column!r}: mixed label types: numbers (e.g. {text.iloc[i]!r} at line "
            f"{loc.line(i)}) and strings (e.g. {text.iloc[j]!r} at line {loc.line(j)}); labels must all be "
            "class ids or all names"
        )
    return text


def _normalise_classes(classes: Sequence[Hashable] | None) -> list[Hashable] | None:
    """Declared classes as labels are read: integer-looking -> int, other numbers -> float."""
    if classes is None:
        return None
    listed = isinstance(classes, (Sequence, np.ndarray)) or isinstance(classes, pd.Index)
    if isinstance(classes, (str, bytes)) or not listed:
        raise AnnotationsError(f"classes= must be a list of class ids, got {show(classes)}")
    out: list[Hashable] = []
    for c in classes:
        if isinstance(c, (bool, np.bool_)):
            out.append(str(c))
        elif isinstance(c, (int, np.integer)):
            out.append(int(c))
        elif isinstance(c, (float, np.floating)) or (isinstance(c, str) and re.fullmatch(_FLOAT_PATTERN, c.strip())):
            f = float(c)
            if not math.isfinite(f):
                raise AnnotationsError(f"classes= holds {show(c)}, which is not a class id")
            if isinstance(c, str) and re.fullmatch(_INT_PATTERN, c.strip()):
                if abs(int(c)) > _INT64_MAX:
                    raise AnnotationsError(f"classes= holds {c!r}, out of range")
                out.append(int(c))
            elif f == round(f) and abs(f) <= _INT64_MAX:
                out.append(int(f))
            else:
                out.append(f)
        else:
            out.append(c.strip() if isinstance(c, str) else c)
    return out


def _pick_column(
    columns: Sequence[Any], given: str | int | None, candidates: tuple[str, ...], what: str, source: str
) -> Any:
    if given is not None:
        if isinstance(given, int) and given not in columns:
            if 0 <= given < len(columns):
                return columns[given]
        if given in columns:
            return given
        raise AnnotationsError(
            f"{source}: missing column {given!r} for the {what}; found columns {list(map(str, columns))}"
        )
    lowered = {str(c).lower(): c for c in columns}
    for cand in candidates:
        if cand in lowered:
            return lowered[cand]
    raise AnnotationsError(
        f"{source}: missing the {what} column (expected one of {list(candidates)}, or pass {what}_col=); "
        f"found columns {list(map(str, columns))}"
    )


# --------------------------------------------------------------------------- long tables
def from_frame(
    df: pd.DataFrame,
    *,
    item_col: str | int | None = None,
    annotator_col: str | int | None = None,
    label_col: str | int | None = None,
    classes: Sequence[Hashable] | None = None,
    on_duplicate: OnDuplicate = "error",
    source: str = "DataFrame",
    first_line: int = 0,
    ids: Ids = "str",
) -> Annotations:
    """Annotations from a long DataFrame with one row per label.

    Parameters
    ----------
    df : DataFrame of shape (n_labels, >= 3)
        Columns ``item``/``annotator``/``label`` (or crowd-kit's ``task``/``worker``/``label``),
        or the names (or positions) given.
    classes : sequence, optional
        The class ids in their index order; a label outside them is an error. Default: the
        sorted distinct labels.
    on_duplicate : {"error", "first", "last"}
        What to do when an (item, annotator) pair occurs twice.
    ids : {"str", "int"}, default="str"
        ``"str"``: item and annotator ids are text as written (``"007"`` and ``"7"`` are two
        items; integer-typed columns keep their integers). ``"int"``: ids are declared numeric,
        every id must be an integer and ``"007"`` is item ``7``.
    source, first_line : str, int
        Used in error messages: data row ``r`` is reported as ``{source}, line {r + first_line}``.
    """
    if not isinstance(df, pd.DataFrame):
        raise AnnotationsError(f"expected a pandas DataFrame, got {type(df).__name__}")
    _check_ids(ids)
    if len(df) == 0:
        raise AnnotationsError(f"{source}: no labels (the table has columns but no rows)")
    cols = list(df.columns)
    ic = _pick_column(cols, item_col, ITEM_COLUMNS, "item", source)
    ac = _pick_column(cols, annotator_col, ANNOTATOR_COLUMNS, "annotator", source)
    lc = _pick_column(cols, label_col, LABEL_COLUMNS, "label", source)
    declared = _normalise_classes(classes)
    # each column is hashed once; the checks and the text normalisation then run on its
    # distinct values only, and an error names the first row holding the offending value
    columns = []
    for col, what in ((ic, "item"), (ac, "annotator"), (lc, "label")):
        raw = _column(df[col].reset_index(drop=True))
        if raw.ints is not None:
            # canonical integer texts: present, stripped and distinct already; labels and
            # ids="int" are those integers (what the normalisation below would give), ids="str" the texts
            ids_are_text = what != "label" and ids == "str"
            columns.append(_Column(raw.codes, raw.values if ids_are_text else pd.Series(raw.ints), distinct=True))
            continue
        if what == "label":
            norm = _normalise_labels(
                raw.series(), source, first_line, str(col), declared=declared is not None, rows=raw.first_row
            )
        else:
            norm = _normalise_ids(raw.series(), what, source, first_line, str(col), ids, rows=raw.first_row)
        columns.append(_Column(raw.codes, norm.reset_index(drop=True)))
    return Annotations._from_columns(
        *columns,
        classes=declared,
        item_ids=None,
        annotator_ids=None,
        on_duplicate=on_duplicate,
        where=_Where(source, first_line),
    )


def _arrow_reader(separator: str) -> bool:
    """Whether pyarrow's CSV reader may parse (one-character separator, CROWDLEARN_READER not pandas)."""
    return len(separator) == 1 and os.environ.get("CROWDLEARN_READER", "").lower() != "pandas"


def _read_delimited(
    path: Path, fmt: str, header: bool, sep: str | None, facts: _TextFacts | None = None
) -> tuple[pd.DataFrame, int]:
    """Every field as text (empty fields ``""``), columns named by the header or numbered 0, 1, ...

    Parsed by pyarrow's multi-threaded CSV reader when pyarrow is installed and the separator is
    one character, else (or with ``CROWDLEARN_READER=pandas``) by pandas'. The two give the same
    table; anything pyarrow's reader rejects or would read differently (a ragged row, a
    repeated or empty column name) is read again by pandas, so errors are pandas' in both cases.
    ``facts``: the file's :func:`_sniff_text` (run here when not given).
    """
    quoted = (facts or _sniff_text(path, fmt)).quoted
    separator = sep if sep is not None else _SEPARATORS[fmt]
    if _arrow_reader(separator):
        df = _read_delimited_arrow(path, separator, header, quoted)
        if df is not None:
            return df, 2 if header else 1
    try:
        df = pd.read_csv(
            path,
            sep=separator,
            header=0 if header else None,
            dtype=str,
            keep_default_na=False,
            skip_blank_lines=True,
            encoding=ENCODING,
            engine="python" if separator == r"\s+" else "c",
        )
    except pd.errors.EmptyDataError:
        raise AnnotationsError(f"{path}: the file is empty (expected crowdsourced labels)") from None
    except pd.errors.ParserError as exc:
        raise AnnotationsError(f"{path}: not a well-formed {fmt} table ({_one_line(exc)})") from None
    except UnicodeDecodeError as exc:
        raise AnnotationsError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return df, 2 if header else 1


def _read_delimited_arrow(path: Path, separator: str, header: bool, quoted: bool = True) -> pd.DataFrame | None:
    """:func:`_read_delimited` through ``pyarrow.csv``; None when pandas must read the file.

    ``quoted``: whether the file holds a double quote. Without one no value can span lines, and
    pyarrow splits the file into blocks at any newline (about twice as fast).
    """
    try:
        import pyarrow as pa
        import pyarrow.csv as pacsv
    except ImportError:
        return None
    parse = pacsv.ParseOptions(delimiter=separator, newlines_in_values=quoted)
    try:
        # the column names (or count) first, so that every column is read as text, as pandas' dtype=str
        with pacsv.open_csv(
            path, read_options=pacsv.ReadOptions(autogenerate_column_names=not header), parse_options=parse
        ) as reader:
            names = list(reader.schema.names)
        if header and (len(set(names)) != len(names) or "" in names):
            return None  # pandas renames repeated and empty names (a.1, Unnamed: 0)
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(autogenerate_column_names=not header),
            parse_options=parse,
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()),
                null_values=[],
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError):
        return None  # ragged rows, a bad quote, an empty file: pandas says what is wrong
    # the dtype pandas' read_csv(dtype=str) gives (pandas >= 3: its "str" dtype; before: object)
    text = pd.Series([], dtype=str).dtype
    mapper = {pa.string(): text}.get if isinstance(text, pd.api.extensions.ExtensionDtype) else None
    return pd.DataFrame(
        {(name if header else i): table.column(i).to_pandas(types_mapper=mapper) for i, name in enumerate(names)}
    )


#: Bytes a separator may not be for :func:`_read_int_table` (they can be part of an integer's text).
_NOT_SEPARATORS = frozenset('0123456789-+xX \r\n"')

#: 10**p for p = 1..18: the decimal digits of |v| are 1 + the number of these <= |v|.
_POWERS_OF_TEN = np.array([10**p for p in range(1, 19)], dtype=np.int64)


@dataclass(frozen=True)
class _IntTable:
    """A delimited file whose every field is the canonical text of an integer (:func:`_read_int_table`).

    Attributes
    ----------
    names : list of str
        The header's column names (``header=True``), else ``[]``.
    columns : list of _Column
        One per column: codes (int64, shape (n_rows,)) into its distinct integers (int64, in
        order of first appearance; ``ints`` holds them too).
    first_rows : ndarray of int64 of shape (min(n_rows, 50), n_columns)
        The first rows' integers (for the shape check of :func:`_check_shape`).
    """

    names: list[str]
    columns: list[_Column]
    first_rows: npt.NDArray[np.int64]

    @property
    def n_rows(self) -> int:
        return len(self.columns[0].codes)


def _decimal_length(values: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Length of ``str(v)`` for each integer (int64 minimum excluded by the caller)."""
    digits = np.searchsorted(_POWERS_OF_TEN, np.abs(values), side="right") + 1
    return digits.astype(np.int64) + (values < 0)


def _read_int_table(path: Path, separator: str, header: bool, facts: _TextFacts) -> _IntTable | None:
    """A delimited file of integers only, parsed straight to int64 by pyarrow; None for any other file.

    Reading every field as text and checking it (what :func:`from_frame` does) costs most of a
    large file's time; a file of integer ids and labels, the common case, is read as integers
    instead, and shown to hold only their canonical texts (``0``, ``42``, ``-7``: what the text
    path checks) without looking at the text again:

    * pyarrow's int64 conversion accepts a field only if it is an integer, possibly written
      with leading zeros, surrounding spaces, quotes, ``-0`` or in hexadecimal (``0x1F``);
    * with no ``x``/``X`` in the data (no hexadecimal), each of those other spellings is longer
      than ``str(v)`` of its value ``v``, so every field is at least as long as ``str(v)``;
    * with no quote and no ``\r`` in the file, the data bytes are exactly the fields, one
      separator between fields and one ``\n`` per row (the last one optional; an empty line
      would be one more byte);
    * so the file's size equals the header, separators, newlines and the sum of ``len(str(v))``
      over the fields exactly when every field is the canonical text of its integer.

    Anything else (text, floats, empty fields, ragged rows, quotes, ``\r\n`` line ends, a
    byte-order mark without header, a repeated or empty column name) returns None and the file
    is read as text, with the messages of that path. ``CROWDLEARN_READER=pandas`` or a missing
    pyarrow also return None.
    """
    if facts.quoted or facts.carriage_return or not _arrow_reader(separator) or separator in _NOT_SEPARATORS:
        return None
    if facts.x_after_first_line or (not header and facts.x_in_first_line):
        return None
    if header and facts.first_line_end < 0:
        return None  # a header without a newline: no data rows
    try:
        import pyarrow as pa
        import pyarrow.csv as pacsv
    except ImportError:  # pragma: no cover - depends on the environment
        return None
    parse = pacsv.ParseOptions(delimiter=separator, newlines_in_values=False)
    read = pacsv.ReadOptions(autogenerate_column_names=not header)
    try:
        with pacsv.open_csv(path, read_options=read, parse_options=parse) as reader:
            schema = reader.schema  # the types pyarrow infers from the first block
        names = list(schema.names)
        if header and (len(set(names)) != len(names) or "" in names):
            return None
        if not all(pa.types.is_integer(t) for t in schema.types):
            return None  # text or floats in the first block: no full parse as integers
        table = pacsv.read_csv(
            path,
            read_options=read,
            parse_options=parse,
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.int64()),
                null_values=[],
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, UnicodeDecodeError):
        return None  # a field that is not an integer, a ragged row: the text path says what is wrong
    n_rows, n_cols = table.num_rows, table.num_columns
    if n_rows == 0:
        return None
    data_newlines = facts.newlines - (1 if header else 0)
    with path.open("rb") as fh:
        fh.seek(facts.size - 1)
        terminated = fh.read(1) == b"\n"
    if data_newlines != (n_rows if terminated else n_rows - 1):
        return None  # an empty line (or a stray newline): not the simple layout
    text_bytes = facts.size - (facts.first_line_end if header else 0) - n_rows * (n_cols - 1) - data_newlines
    columns: list[_Column] = []
    canonical_bytes = 0
    for i in range(n_cols):
        # the column's chunks as they are (pyarrow's memory, already written): no concatenated copy
        # (through the buffer protocol: pyarrow's to_numpy imports pandas); no nulls, so no bitmap
        chunks = [
            np.frombuffer(c.buffers()[1], dtype=np.int64, count=len(c), offset=8 * c.offset)
            for c in table.column(i).chunks
        ]
        dense = _factorize_dense(chunks)
        if dense is None:
            raw, uniques = pd.factorize(np.concatenate(chunks), sort=False)
            codes, distinct = raw.astype(np.int64, copy=False), np.asarray(uniques, dtype=np.int64)
        else:
            codes, distinct = dense[0], np.asarray(dense[1], dtype=np.int64)
        if len(distinct) and int(distinct.min()) == np.iinfo(np.int64).min:
            return None  # its abs() overflows; the text path handles it
        counts = np.bincount(codes, minlength=len(distinct))
        canonical_bytes += int(np.dot(_decimal_length(distinct), counts))
        columns.append(_Column(codes, distinct, distinct=True, ints=distinct))
    if canonical_bytes != text_bytes:
        return None  # some field is longer than its integer's text: a sign, zero, space or quote
    first = np.column_stack([c.ints[c.codes[:50]] for c in columns if c.ints is not None])
    return _IntTable(names if header else [], columns, first)


def _int_texts(values: npt.NDArray[np.int64]) -> np.ndarray[Any, Any]:
    """``str(v)`` of each integer, as an object array of Python strings.

    (``map(str)`` over the Python ints: in a fresh process as fast as pyarrow's cast to text
    and its ``to_pylist``; its ``to_numpy`` would be faster but imports pandas.)
    """
    out = np.empty(len(values), dtype=object)
    out[:] = list(map(str, values.tolist()))
    return out


def _from_int_table(
    table: _IntTable,
    *,
    item_col: str | int | None,
    annotator_col: str | int | None,
    label_col: str | int | None,
    classes: Sequence[Hashable] | None,
    on_duplicate: OnDuplicate,
    source: str,
    first_line: int,
    ids: Ids,
) -> Annotations:
    """:func:`from_frame` for a table of canonical integer texts: the same Annotations, without pandas.

    Item and annotator ids are the texts (``ids="str"``) or the integers (``ids="int"``) and
    labels the integers, as :func:`from_frame` gives them for these texts.
    """
    cols: list[Any] = list(table.names) if table.names else list(range(len(table.columns)))
    picked = [
        _pick_column(cols, item_col, ITEM_COLUMNS, "item", source),
        _pick_column(cols, annotator_col, ANNOTATOR_COLUMNS, "annotator", source),
        _pick_column(cols, label_col, LABEL_COLUMNS, "label", source),
    ]
    declared = _normalise_classes(classes)
    columns = []
    for col, what in zip(picked, ("item", "annotator", "label")):
        raw = table.columns[cols.index(col)]
        assert raw.ints is not None
        text = what != "label" and ids == "str"
        columns.append(_Column(raw.codes, _int_texts(raw.ints) if text else raw.ints, distinct=True))
    return Annotations._from_columns(
        *columns,
        classes=declared,
        item_ids=None,
        annotator_ids=None,
        on_duplicate=on_duplicate,
        where=_Where(source, first_line),
    )


def _read_jsonl(path: Path) -> pd.DataFrame:
    _sniff_text(path, "jsonl")
    rows: list[dict[str, Any]] = []
    with path.open(encoding=ENCODING) as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise AnnotationsError(f"{path}, line {lineno}: not valid JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise AnnotationsError(
                    f"{path}, line {lineno}: expected a JSON object per line, got {type(obj).__name__}"
                )
            rows.append(obj)
    if not rows:
        raise AnnotationsError(f"{path}: the file is empty (expected crowdsourced labels)")
    return pd.DataFrame(rows)


def _read_parquet(path: Path) -> pd.DataFrame:
    with path.open("rb") as fh:
        head = fh.read(4)
    if head != b"PAR1":
        raise AnnotationsError(f"{path}: the extension says Parquet but the file does not start with 'PAR1'")
    try:
        import pyarrow  # noqa: F401
    except ImportError:  # pragma: no cover - depends on the environment
        raise AnnotationsError(f"{path}: reading Parquet needs pyarrow: pip install 'crowdlearn[parquet]'") from None
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise AnnotationsError(f"{path}: not a readable Parquet file ({_one_line(exc)})") from None


def read_annotations(
    path: str | os.PathLike[str],
    *,
    format: str | None = None,
    item_col: str | int | None = None,
    annotator_col: str | int | None = None,
    label_col: str | int | None = None,
    classes: Sequence[Hashable] | None = None,
    on_duplicate: OnDuplicate = "error",
    header: bool | None = None,
    sep: str | None = None,
    missing: Any = None,
    ids: Ids = "str",
) -> Annotations:
    """Read crowdsourced labels from a file.

    Parameters
    ----------
    path : path-like
        The file.
    format : str, optional
        One of :data:`FORMATS`; inferred from the extension when omitted (``.json`` is read as
        peerannot's answers.json; wide tables need ``format="wide-csv"`` etc.).
    item_col, annotator_col, label_col : str or int, optional
        Column names (or 0-based positions) for long tables. Defaults: ``item``/``task``,
        ``annotator``/``worker``, ``label``/``class``/``answer``; files without header
        (``header=False``, the default for ``.txt``) use positions 0, 1, 2.
    classes : sequence, optional
        Declared classes in index order; a label outside them is an error.
    on_duplicate : {"error", "first", "last"}
        What to do with a repeated (item, annotator) pair.
    header : bool, optional
        Whether the first line names the columns. Default: True except for ``txt`` formats.
    sep : str, optional
        Field separator overriding the format's own (``,``, tab, whitespace).
    missing : scalar, optional
        Extra missing marker for wide tables (besides -1, NaN and empty cells).
    ids : {"str", "int"}, default="str"
        How item and annotator ids are read: ``"str"`` keeps the text of the file (``007``
        and ``7`` are two items, and ``007`` is written back as ``007``); ``"int"`` declares
        them numeric (every id must be an integer; ``007`` is ``7``). Labels are class ids
        either way: integers (``2`` and ``2.0`` are class 2) or names.

    Returns
    -------
    Annotations

    Raises
    ------
    AnnotationsError
        For content that is not valid labels; the message names file, line, column and value.
    FileNotFoundError
        When the file does not exist.
    """
    p = Path(path)
    fmt = format or infer_format(p)
    if fmt not in FORMATS:
        raise AnnotationsError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    _check_ids(ids)
    _check_file(p)
    if fmt.startswith("wide-"):
        return read_wide(p, sep=sep, header=bool(header), missing=missing, classes=classes, format=fmt, ids=ids)
    if fmt == "answers-json":
        return read_answers_json(p, classes=classes, ids=ids)
    if fmt == "parquet":
        df, first = _read_parquet(p), 2
    elif fmt == "jsonl":
        df, first = _read_jsonl(p), 1
    else:
        hdr = header if header is not None else fmt != "txt"
        facts = _sniff_text(p, fmt)
        ints = _read_int_table(p, sep if sep is not None else _SEPARATORS[fmt], hdr, facts)
        if ints is not None:
            if item_col is None and annotator_col is None and label_col is None:
                names = ints.names if hdr else [str(i) for i in range(len(ints.columns))]
                _check_shape(names, [str(v) for v in ints.first_rows.ravel().tolist()], p, fmt, hdr, sep)
            if not hdr:
                item_col = 0 if item_col is None else item_col
                annotator_col = 1 if annotator_col is None else annotator_col
                label_col = 2 if label_col is None else label_col
            return _from_int_table(
                ints,
                item_col=item_col,
                annotator_col=annotator_col,
                label_col=label_col,
                classes=classes,
                on_duplicate=on_duplicate,
                source=str(p),
                first_line=2 if hdr else 1,
                ids=ids,
            )
        df, first = _read_delimited(p, fmt, hdr, sep, facts)
        if item_col is None and annotator_col is None and label_col is None:
            _check_long_shape(df, p, fmt, hdr, sep)
        if not hdr:
            item_col = 0 if item_col is None else item_col
            annotator_col = 1 if annotator_col is None else annotator_col
            label_col = 2 if label_col is None else label_col
    if len(df) == 0:
        raise AnnotationsError(f"{p}: no labels (header only)")
    return from_frame(
        df,
        item_col=item_col,
        annotator_col=annotator_col,
        label_col=label_col,
        classes=classes,
        on_duplicate=on_duplicate,
        source=str(p),
        first_line=first,
        ids=ids,
    )


_NUMBER_CELL = re.compile(r"\s*(?:[+-]?\d+(?:\.\d*)?)?\s*")  # a number or an empty cell
_CANDIDATE_SEPARATORS = (",", ";", "\t", "|", ":")


def _first_line(path: Path) -> str:
    with path.open(encoding=ENCODING, errors="replace") as fh:
        for line in fh:
            if line.strip():
                return line.rstrip("\r\n")
    return ""


def _check_long_shape(df: pd.DataFrame, path: Path, fmt: str, header: bool, sep: str | None) -> None:
    """:func:`_check_shape` of a table read as text (its column names and first 50 rows)."""
    cells = [str(v) for v in df.head(50).to_numpy().ravel().tolist()]
    _check_shape([str(c) for c in df.columns], cells, path, fmt, header, sep)


def _check_shape(names: list[str], cells: list[str], path: Path, fmt: str, header: bool, sep: str | None) -> None:
    """Catch the long read of a file that is not a long table, before any column is dropped.

    ``names``: the column names (``"0"``, ``"1"``, ... without header); ``cells``: the first
    rows' fields as text, row by row.

    * A wide items x annotators table (many columns of numbers, no item/annotator/label
      header): the error says ``format='wide-txt'`` (or wide-csv / wide-tsv).
    * One column only whose first line splits on another separator: the error says ``sep=';'``.
    * A headerless table with more than 3 columns: which 3 are item, annotator and label is
      not guessed (the other columns would be silently ignored).
    """
    n = len(names)
    known = {*ITEM_COLUMNS, *ANNOTATOR_COLUMNS, *LABEL_COLUMNS}
    if header and any(c.strip().lower() in known for c in names):
        return
    cells = [*(names if header else []), *cells]
    numeric = all(_NUMBER_CELL.fullmatch(c) for c in cells)
    if n >= 4 and numeric:
        raise AnnotationsError(
            f"{path}: this looks like a wide table ({n} columns): use format='wide-{fmt}' "
            "(rows are items, columns annotators, -1 or empty = no label)"
        )
    if n < 3:
        line = _first_line(path)
        current = sep if sep is not None else _SEPARATORS[fmt]
        for cand in _CANDIDATE_SEPARATORS:
            if cand != current and len(line.split(cand)) >= 3:
                raise AnnotationsError(
                    f"{path}: found {n} column(s) where item, annotator and label were expected; the lines look "
                    f"separated by {cand!r}: use sep={cand!r}"
                )
    if not header and n > 3:
        raise AnnotationsError(
            f"{path}: {n} columns without a header: say which hold the item, annotator and label "
            "(item_col=, annotator_col=, label_col=, 0-based) or use header=True"
        )


# --------------------------------------------------------------------------- wide tables
def from_wide(
    table: npt.ArrayLike | pd.DataFrame,
    *,
    missing: Any = None,
    classes: Sequence[Hashable] | None = None,
    item_ids: Sequence[Hashable] | None = None,
    annotator_ids: Sequence[Hashable] | None = None,
    source: str = "array",
    first_line: int = 0,
) -> Annotations:
    """Annotations from a wide array of shape (n_items, n_annotators).

    Cells hold integer class indices into ``classes`` when given, else the class id itself
    (the classes are then the sorted distinct ids, as for long tables: a cell ``999999999``
    is one class, not a billion); ``-1``, NaN, None, empty strings and ``missing`` mark an
    absent label. Every row is an item and every column an annotator, even when it has no
    label; without ``item_ids`` the items are the row numbers ``0..n_items-1`` (ints). Only the
    observed cells are turned into triples (the dense table is the input format, not an
    internal one).
    """
    if isinstance(table, pd.DataFrame):
        annotator_ids = list(table.columns) if annotator_ids is None else annotator_ids
        values = table.to_numpy()
    else:
        values = np.asarray(table)
    if values.ndim != 2:
        raise AnnotationsError(f"{source}: a wide table must be 2-d (items x annotators), got shape {values.shape}")
    n_items, n_annotators = values.shape
    expected = "a class id (an integer >= 0, or -1 / NaN / empty for a missing label)"
    flat = pd.Series(values.ravel())
    if values.dtype.kind in "iu":
        obs = flat.to_numpy() != -1
        if missing is not None:
            with contextlib.suppress(TypeError, ValueError):
                obs &= flat.to_numpy() != float(missing)
        codes = flat.to_numpy().astype(np.int64)[obs]
        if values.dtype.kind == "u" and codes.size and int(values.max()) > _INT64_MAX:
            raise AnnotationsError(f"{source}: class id {int(values.max())} is out of range")
        pos = np.flatnonzero(obs)
        text: pd.Series | None = None
    elif values.dtype.kind in "fOUSb":
        if values.dtype.kind == "b":
            raise AnnotationsError(f"{source}: a wide table of booleans; expected class ids")
        text = _as_text(flat) if values.dtype.kind == "f" else flat.astype(object)
        blank = flat.isna().to_numpy() | text.map(lambda v: isinstance(v, str) and v.strip() == "").to_numpy(bool)
        text = text.where(~blank, "-1").map(lambda v: repr(v) if isinstance(v, float) else str(v)).str.strip()
        blank |= text.isin(["-1", "-1.0", "nan", "NaN"]).to_numpy()
        if missing is not None:
            blank |= (text == str(missing).strip()).to_numpy()
        pos = np.flatnonzero(~blank)

        def where(k: int) -> str:
            r, c = divmod(int(pos[k]), n_annotators)
            return f"{source}, line {r + first_line}, column {c + 1}"

        codes = _to_int64(text.iloc[pos].reset_index(drop=True), where, "value", expected)
    else:
        raise AnnotationsError(f"{source}: a wide table of dtype {values.dtype}; expected class ids")
    rows, cols = np.divmod(pos.astype(np.int64), max(n_annotators, 1))
    neg = codes < 0
    if neg.any():
        k = int(np.flatnonzero(neg)[0])
        raise AnnotationsError(
            f"{source}, line {int(rows[k]) + first_line}, column {int(cols[k]) + 1}: value {int(codes[k])} is not "
            + expected
        )
    cls: list[Hashable] | None = _normalise_classes(classes)
    if cls is not None:
        if codes.size and int(codes.max()) >= len(cls):
            k = int(np.argmax(codes))
            raise AnnotationsError(
                f"{source}, line {int(rows[k]) + first_line}, column {int(cols[k]) + 1}: class index {int(codes[k])} "
                f"is outside the {len(cls)} declared classes"
            )
        labels = codes
    else:
        uniq, labels = np.unique(codes, return_inverse=True)
        cls = [int(c) for c in uniq.tolist()]
    return Annotations(
        rows,
        cols,
        labels.astype(np.int64).reshape(-1),
        n_items=n_items,
        n_annotators=n_annotators,
        n_classes=len(cls),
        item_ids=item_ids,
        annotator_ids=annotator_ids,
        classes=cls,
    )


def read_wide(
    path: str | os.PathLike[str],
    *,
    format: str | None = None,
    sep: str | None = None,
    header: bool = False,
    missing: Any = None,
    classes: Sequence[Hashable] | None = None,
    ids: Ids = "str",
) -> Annotations:
    """Read a wide items x annotators table (see :func:`from_wide`).

    ``format`` is ``wide-csv``, ``wide-tsv`` or ``wide-txt`` (whitespace); by default taken from
    the extension. With ``header=True`` the first line holds annotator ids, read as text
    (``ids="str"``, the default: ``007`` stays ``007``) or as integers (``ids="int"``);
    without a header annotators are the column numbers 0, 1, ... Items are the row numbers.
    """
    p = Path(path)
    _check_ids(ids)
    _check_file(p)
    fmt = format or "wide-" + infer_format(p)
    base = fmt.removeprefix("wide-")
    if base not in _SEPARATORS:
        raise AnnotationsError(f"{p}: wide tables are csv, tsv or txt, got format {fmt!r}")
    _sniff_text(p, base)
    separator = sep if sep is not None else _SEPARATORS[base]
    rows: list[list[str]] = []
    width = None
    first_data_line = None
    header_line = 1
    annotator_ids: list[str] | None = None
    with p.open(encoding=ENCODING, newline="") as fh:
        for lineno, line in enumerate(fh, start=1):
            text = line.rstrip("\r\n")
            if not text.strip():
                continue
            cells = text.split() if separator == r"\s+" else text.split(separator)
            if header and annotator_ids is None:
                annotator_ids = [c.strip() for c in cells]
                header_line = lineno
                width = len(cells)
                continue
            if width is None:
                width = len(cells)
            if first_data_line is None:
                first_data_line = lineno
            if len(cells) != width:
                raise AnnotationsError(
                    f"{p}, line {lineno}: {len(cells)} fields, expected {width} (one per annotator) — ragged table"
                )
            rows.append(cells)
    if not rows:
        raise AnnotationsError(f"{p}: no rows (expected an items x annotators table)")
    table = np.asarray(rows, dtype=object)
    return from_wide(
        table,
        missing=missing,
        classes=classes,
        annotator_ids=_header_ids(annotator_ids, ids, str(p), header_line) if annotator_ids else None,
        source=str(p),
        first_line=first_data_line or 1,
    )


def _header_ids(names: list[str], ids: Ids, source: str, line: int) -> list[Hashable]:
    """Annotator ids of a wide header: text, or integers with ``ids="int"``; unique and present."""
    out: list[Hashable] = []
    seen: dict[Hashable, int] = {}
    for c, name in enumerate(names, start=1):
        where = f"{source}, line {line}, column {c}"
        if not name:
            raise AnnotationsError(f"{where}: empty annotator id in the header")
        key: Hashable = name
        if ids == "int":
            if not re.fullmatch(_INT_PATTERN, name) or abs(int(name)) > _INT64_MAX:
                raise AnnotationsError(f"{where}: annotator {name!r} is not an integer (ids='int')")
            key = int(name)
        if key in seen:
            raise AnnotationsError(f"{where}: annotator {name!r} repeats column {seen[key]} of the header")
        seen[key] = c
        out.append(key)
    return out


def write_wide(
    annotations: Annotations,
    path: str | os.PathLike[str],
    *,
    sep: str = ",",
    header: bool = True,
    overwrite: bool = False,
) -> None:
    """Write the items x annotators table of class indices, ``-1`` for missing.

    The output is dense by nature of the format (n_items x n_annotators cells); it is built row
    block by row block so memory stays bounded.
    """
    with atomic_write(path, overwrite=overwrite) as fh:
        if header:
            fh.write(sep.join(str(a) for a in annotations.annotator_ids.tolist()) + "\n")
        block = 4096
        for start in range(0, annotations.n_items, block):
            stop = min(start + block, annotations.n_items)
            rows, anns, labs = annotations.labels_of(np.arange(start, stop))
            dense = np.full((stop - start, annotations.n_annotators), -1, dtype=np.int64)
            dense[rows, anns] = labs
            for r in dense:
                fh.write(sep.join(map(str, r.tolist())) + "\n")


# --------------------------------------------------------------------------- answers.json
def read_answers_json(
    path: str | os.PathLike[str], *, classes: Sequence[Hashable] | None = None, ids: Ids = "str"
) -> Annotations:
    """Read peerannot's ``answers.json``: ``{task: {worker: label}}``.

    Task and worker ids are JSON keys, hence text: ``"007"`` and ``"7"`` are two tasks unless
    ``ids="int"`` declares them numeric.
    """
    p = Path(path)
    _check_ids(ids)
    _check_file(p)
    _sniff_text(p, "json")
    try:
        data = json.loads(p.read_text(encoding=ENCODING))
    except json.JSONDecodeError as exc:
        raise AnnotationsError(f"{p}, line {exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise AnnotationsError(f"{p}: expected a JSON object {{task: {{worker: label}}}}, got {type(data).__name__}")
    items: list[Any] = []
    annotators: list[Any] = []
    labels: list[Any] = []
    for task, answers in data.items():
        if not isinstance(answers, dict):
            raise AnnotationsError(
                f"{p}: task {show(task)} maps to {type(answers).__name__}, expected an object {{worker: label}}"
            )
        for worker, label in answers.items():
            items.append(task)
            annotators.append(worker)
            labels.append(label)
    if not items:
        raise AnnotationsError(f"{p}: no labels in the answers file")
    df = pd.DataFrame({"item": items, "annotator": annotators, "label": labels}, dtype=object)
    return from_frame(df, classes=classes, source=str(p), first_line=0, ids=ids)


def write_answers_json(annotations: Annotations, path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
    """Write peerannot's ``answers.json`` ({task: {worker: label}}), ids as strings."""
    out: dict[str, dict[str, Any]] = {}
    frame = annotations.to_frame()
    for it, an, lb in zip(frame["item"].tolist(), frame["annotator"].tolist(), frame["label"].tolist()):
        out.setdefault(str(it), {})[str(an)] = lb if isinstance(lb, (int, str)) else _json_scalar(lb)
    with atomic_write(path, overwrite=overwrite) as fh:
        json.dump(out, fh)


def _json_scalar(v: Any) -> Any:
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return str(v)


# --------------------------------------------------------------------------- writers (long)
def write_annotations(
    annotations: Annotations,
    path: str | os.PathLike[str],
    *,
    format: str | None = None,
    columns: tuple[str, str, str] = ("item", "annotator", "label"),
    overwrite: bool = False,
) -> None:
    """Write a long table (csv, tsv, txt, parquet, jsonl) or answers.json / wide formats, atomically."""
    p = Path(path)
    fmt = format or infer_format(p)
    if fmt == "answers-json":
        write_answers_json(annotations, p, overwrite=overwrite)
        return
    if fmt.startswith("wide-"):
        write_wide(annotations, p, sep={"wide-csv": ",", "wide-tsv": "\t"}.get(fmt, " "), overwrite=overwrite)
        return
    frame = annotations.to_frame()
    frame.columns = list(columns)
    if fmt == "parquet":
        with atomic_write(p, mode="wb", overwrite=overwrite) as fh:
            frame.to_parquet(fh, index=False)
    elif fmt == "jsonl":
        with atomic_write(p, overwrite=overwrite) as fh:
            frame.to_json(fh, orient="records", lines=True)
    elif fmt in ("csv", "tsv", "txt"):
        sep = {"csv": ",", "tsv": "\t", "txt": " "}[fmt]
        with atomic_write(p, overwrite=overwrite) as fh:
            frame.to_csv(fh, sep=sep, index=False, header=fmt != "txt", lineterminator="\n")
    else:
        raise AnnotationsError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")


# --------------------------------------------------------------------------- truth
def read_truth(
    path: str | os.PathLike[str],
    *,
    format: str | None = None,
    item_col: str | int | None = None,
    label_col: str | int | None = None,
    header: bool | None = None,
    sep: str | None = None,
    ids: Ids = "str",
) -> pd.Series:
    """Read a truth file (item, label) into a Series indexed by item id.

    Item ids are read like :func:`read_annotations` (text unless ``ids="int"``), labels like
    its labels, so the index matches ``Annotations.item_ids``. Repeated items are an error.
    The file name is kept in ``series.attrs["source"]`` for the messages of :func:`truth_array`.
    """
    p = Path(path)
    _check_ids(ids)
    _check_file(p)
    fmt = format or infer_format(p)
    if fmt == "parquet":
        df, first = _read_parquet(p), 2
    elif fmt == "jsonl":
        df, first = _read_jsonl(p), 1
    elif fmt in _SEPARATORS:
        hdr = header if header is not None else fmt != "txt"
        df, first = _read_delimited(p, fmt, hdr, sep)
        if not hdr:
            item_col = 0 if item_col is None else item_col
            label_col = 1 if label_col is None else label_col
    else:
        raise AnnotationsError(f"{p}: truth files are csv, tsv, txt, parquet or jsonl, got format {fmt!r}")
    if len(df) == 0:
        raise AnnotationsError(f"{p}: no rows in the truth file")
    cols = list(df.columns)
    ic = _pick_column(cols, item_col, (*ITEM_COLUMNS, "question"), "item", str(p))
    lc = _pick_column(cols, label_col, (*LABEL_COLUMNS, "truth", "gold"), "label", str(p))
    items = _normalise_ids(df[ic], "item", str(p), first, str(ic), ids)
    labels = _normalise_labels(df[lc], str(p), first, str(lc))
    dup = items.duplicated().to_numpy()
    if dup.any():
        row = int(np.flatnonzero(dup)[0])
        raise AnnotationsError(f"{p}, line {row + first}: item {show(items.iloc[row])} has a second truth label")
    out = pd.Series(labels.to_numpy(), index=pd.Index(items.to_numpy(), name="item"), name="label")
    out.attrs["source"] = str(p)
    return out


def _id_keys(ids: Any) -> pd.Index:
    """Ids as the text they are written as: ``7`` and ``"7"`` match, ``"007"`` and ``7`` do not."""
    arr = np.asarray(ids, dtype=object).reshape(-1)
    return pd.Index([str(int(v)) if isinstance(v, (int, np.integer)) else str(v) for v in arr.tolist()], dtype=object)


def match_ids(ids: npt.ArrayLike, query: npt.ArrayLike) -> npt.NDArray[np.intp]:
    """Position in ``ids`` of each id of ``query``, ``-1`` where absent.

    Ids match by their text, so ids read from different files agree exactly when they are
    written the same way: an integer ``7`` (a Parquet or JSON number, a row number) matches the
    text ``"7"`` but not ``"007"``.

    Parameters
    ----------
    ids : array-like of shape (N,)
        Unique ids (e.g. ``Annotations.item_ids``).
    query : array-like of shape (Q,)

    Returns
    -------
    ndarray of shape (Q,)
    """
    return np.asarray(_id_keys(ids).get_indexer(_id_keys(query)), dtype=np.intp)


def truth_array(truth: pd.Series, annotations: Annotations, *, strict: bool = False) -> npt.NDArray[np.int64]:
    """Align truth to the annotations' items.

    Returns
    -------
    ndarray of shape (n_items,)
        Class index of each item's true label, ``-1`` where the truth does not cover the item.

    Raises
    ------
    AnnotationsError
        When no truth item is an item of the annotations (truth of another dataset, or ids
        written differently: ``007`` is not ``7``); with ``strict=True`` when any truth item
        is not one; and for a truth label outside the annotations' classes. Truth items that
        are not among the annotations' items are otherwise ignored (a partial overlap is
        allowed: count the matches with ``(truth_array(...) >= 0).sum()``).
    """
    source = str(truth.attrs.get("source", "truth"))
    pos = match_ids(annotations.item_ids, truth.index.to_numpy())
    if len(truth) and not (pos >= 0).any():
        raise AnnotationsError(
            f"{source}: none of the {len(truth)} truth items is an item of the labels (e.g. truth item "
            f"{show(truth.index[0])}, label item {show(annotations.item_ids[0]) if annotations.n_items else 'none'}); "
            "is it the truth of another dataset?"
        )
    if strict and (pos < 0).any():
        k = int(np.flatnonzero(pos < 0)[0])
        raise AnnotationsError(f"{source}: truth item {show(truth.index[k])} is not an item of the annotations")
    classes = pd.Index(annotations.classes)
    cls = classes.get_indexer(pd.Index(truth.to_numpy()))
    known = pos >= 0
    if (cls[known] < 0).any():
        k = int(np.flatnonzero(known & (cls < 0))[0])
        raise AnnotationsError(
            f"{source}: truth label {show(truth.iloc[k])} of item {show(truth.index[k])} is not one of the classes "
            f"{show(annotations.classes.tolist()[:20])}"
        )
    out = np.full(annotations.n_items, -1, dtype=np.int64)
    out[pos[known]] = cls[known]
    return out


# --------------------------------------------------------------------------- features
def read_features(
    path: str | os.PathLike[str],
    *,
    format: str | None = None,
    item_col: str | int | None = None,
    header: bool | None = None,
    sep: str | None = None,
    ids: Ids = "str",
) -> tuple[npt.NDArray[Any], npt.NDArray[np.float32]]:
    """Read per-item feature vectors.

    Formats: ``.npy`` (a 2-d numeric array, read with ``allow_pickle=False``; row ``i`` is the
    item with integer id ``i``), or a csv / tsv / txt / parquet table with one item-id column
    (``item_col``; default a column named ``item`` or ``task``, else the first column) and
    numeric feature columns.

    Returns
    -------
    item_ids : ndarray of shape (N,)
        Item ids, read like :func:`read_annotations` (text unless ``ids="int"``; the row
        numbers, as ints, for ``.npy``). :func:`align_features` matches them to the labels'
        ids by their text: ``007`` matches ``007``, not ``7``.
    X : ndarray of float32, shape (N, D)

    Raises
    ------
    AnnotationsError
        Naming the file, line, column and value: a non-numeric or non-finite feature value, a
        repeated or missing item id, an array that is not 2-d.
    """
    p = Path(path)
    _check_ids(ids)
    _check_file(p)
    fmt = format or (p.suffix.lower() == ".npy" and "npy") or infer_format(p)
    if fmt == "npy":
        with p.open("rb") as fh:
            magic = fh.read(6)
        if magic != b"\x93NUMPY":
            raise AnnotationsError(f"{p}: not a .npy array (the file does not start with the .npy magic bytes)")
        try:
            arr = np.load(p, allow_pickle=False)
        except (ValueError, OSError, EOFError, SyntaxError) as exc:
            raise AnnotationsError(f"{p}: not a plain numeric .npy array ({_one_line(exc)})") from None
        if arr.ndim != 2 or arr.dtype.kind not in "iuf" or arr.shape[0] == 0:
            raise AnnotationsError(
                f"{p}: expected a 2-d numeric array (items x features), got shape {arr.shape} dtype {arr.dtype}"
            )
        bad = ~np.isfinite(arr)
        if bad.any():
            row, col = (int(v[0]) for v in np.nonzero(bad))
            raise AnnotationsError(
                f"{p}: row {row}, column {col}: feature value {float(arr[row, col])!r} is not finite"
            )
        return np.arange(arr.shape[0], dtype=np.int64), arr.astype(np.float32)
    if fmt == "parquet":
        df, first = _read_parquet(p), 2
    elif fmt in _SEPARATORS:
        hdr = header if header is not None else fmt != "txt"
        df, first = _read_delimited(p, fmt, hdr, sep)
    else:
        raise AnnotationsError(f"{p}: feature files are npy, csv, tsv, txt or parquet, got format {fmt!r}")
    if len(df) == 0:
        raise AnnotationsError(f"{p}: no rows in the feature file")
    cols = list(df.columns)
    lowered = {str(c).lower() for c in cols}
    if item_col is None and not lowered & set(ITEM_COLUMNS):
        item_col = 0
    ic = _pick_column(cols, item_col, ITEM_COLUMNS, "item", str(p))
    item_ids = _normalise_ids(df[ic], "item", str(p), first, str(ic), ids)
    dup = item_ids.duplicated().to_numpy()
    if dup.any():
        r = int(np.flatnonzero(dup)[0])
        raise AnnotationsError(f"{p}, line {r + first}: item {show(item_ids.iloc[r])} appears twice (one row per item)")
    feature_cols = [c for c in cols if c != ic]
    if not feature_cols:
        raise AnnotationsError(f"{p}: no feature columns besides the item column {show(ic)}")
    X = np.empty((len(df), len(feature_cols)), dtype=np.float32)
    for j, c in enumerate(feature_cols):
        values = pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values)
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            raise AnnotationsError(
                f"{p}, line {r + first}, column {c!r}: feature value {show(df[c].iloc[r])} is not a finite number"
            )
        X[:, j] = values
    return item_ids.to_numpy(), X


def align_features(
    annotations: Annotations, item_ids: npt.ArrayLike, X: npt.NDArray[Any]
) -> tuple[npt.NDArray[Any], npt.NDArray[np.int64]]:
    """Rows of ``X`` in the annotations' item order.

    Parameters
    ----------
    annotations : Annotations
    item_ids : array-like of shape (N,)
        Item id of each row of ``X``.
    X : ndarray of shape (N, ...)

    Returns
    -------
    X_items : ndarray of shape (n_items, ...)
        Row ``n`` is the input of ``annotations.item_ids[n]``.
    unlabelled : ndarray of int64
        Rows of ``X`` whose item has no label (not used for training; can be predicted).

    Raises
    ------
    AnnotationsError
        When an item with labels has no feature row (names the first such item and the count).
    """
    ids = np.asarray(item_ids, dtype=object).reshape(-1)
    if len(ids) != len(X):
        raise AnnotationsError(f"{len(ids)} item ids for {len(X)} feature rows")
    pos = match_ids(ids, annotations.item_ids)
    missing = pos < 0
    if missing.any():
        first = annotations.item_ids[int(np.flatnonzero(missing)[0])]
        raise AnnotationsError(
            f"item {show(first)} has labels but no feature row ({int(missing.sum())} of {annotations.n_items} labelled "
            "items have no features); every labelled item needs one"
        )
    used = np.zeros(len(ids), dtype=bool)
    used[pos] = True
    return X[pos], np.flatnonzero(~used).astype(np.int64)


def write_truth(
    truth: pd.Series | npt.ArrayLike,
    path: str | os.PathLike[str],
    annotations: Annotations | None = None,
    *,
    overwrite: bool = False,
) -> None:
    """Write a truth file (item, label) as CSV.

    ``truth`` is a Series indexed by item id, or an array of class indices (``-1`` = unknown)
    aligned with ``annotations``' items.
    """
    if isinstance(truth, pd.Series):
        frame = pd.DataFrame({"item": truth.index.to_numpy(), "label": truth.to_numpy()})
    else:
        if annotations is None:
            raise AnnotationsError("write_truth with an index array needs the annotations to map ids")
        arr = np.asarray(truth, dtype=np.int64)
        known = arr >= 0
        frame = pd.DataFrame({"item": annotations.item_ids[known], "label": annotations.classes[arr[known]]})
    with atomic_write(path, overwrite=overwrite) as fh:
        frame.to_csv(fh, index=False, lineterminator="\n")


# --------------------------------------------------------------------------- atomic output
#: The path that means "standard output" to the command line's table-like outputs.
STDOUT = "-"


def file_mode(path: str | os.PathLike[str]) -> int:
    """Permission bits for a new version of ``path``: those of the existing file, else ``0o666 & ~umask``."""
    p = Path(path)
    if p.is_file() and not p.is_symlink():
        return stat.S_IMODE(p.stat().st_mode)
    mask = os.umask(0)  # reading the umask means setting it; restore at once
    os.umask(mask)
    return 0o666 & ~mask


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def check_output(
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    force_hint: str = "overwrite=True",
    stdout_ok: bool = False,
    name: str | None = None,
    kind: str = "output",
) -> None:
    """Check, before any work, that ``path`` can be written by :func:`atomic_write`.

    Parameters
    ----------
    path : path-like
        The output file; ``"-"`` (:data:`STDOUT`) means standard output.
    overwrite : bool, default=False
        Whether an existing regular file may be replaced.
    force_hint : str, default="overwrite=True"
        How the caller asks for replacement, quoted in the error (the CLI passes ``"--force"``).
    stdout_ok : bool, default=False
        Whether ``"-"`` is accepted (table-like outputs); otherwise it is an error.
    name : str, optional
        The option or parameter naming the output (e.g. ``"--out"``), quoted in the ``"-"`` error.
    kind : str, default="output"
        What the output is (e.g. ``"model (a binary safetensors file)"``), for the ``"-"`` error.

    Raises
    ------
    FileExistsError
        ``path`` exists and ``overwrite`` is False.
    ValueError
        ``path`` is a symbolic link (refused even with ``overwrite``: the link would be replaced
        by a regular file), a folder, a device, a pipe or anything but a regular file; or ``"-"``
        where standard output is not accepted.
    FileNotFoundError
        The output folder does not exist (or is not a folder).
    PermissionError
        The output folder is not writable.
    """
    if os.fspath(path) == STDOUT:
        if stdout_ok:
            return
        raise ValueError(f"{name or 'path'} -: the {kind} cannot go to standard output; give a file path")
    p = Path(path)
    if p.is_symlink():
        raise ValueError(
            f"{p}: is a symbolic link; outputs are never written through or over a link (give the real path)"
        )
    if p.exists():
        mode = p.stat().st_mode
        if not stat.S_ISREG(mode):
            raise ValueError(f"{p}: is {_kind(mode)}; outputs are written only to regular files")
        if not overwrite:
            raise FileExistsError(f"{p}: already exists (pass {force_hint} to replace it)")
    parent = p.parent
    if not parent.exists():
        raise FileNotFoundError(f"{parent}: the output folder does not exist")
    if not parent.is_dir():
        raise FileNotFoundError(f"{parent}: is not a folder (the output folder of {p.name})")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"{parent}: the output folder is not writable")


def _same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    pa, pb = Path(a), Path(b)
    try:
        return pa.samefile(pb)
    except OSError:  # one does not exist: compare the normalised paths
        return os.path.normcase(os.path.abspath(pa)) == os.path.normcase(os.path.abspath(pb))


def check_outputs(
    outputs: dict[str, str | os.PathLike[str] | None],
    inputs: dict[str, str | os.PathLike[str] | None] | None = None,
    *,
    overwrite: bool = False,
    force_hint: str = "overwrite=True",
    stdout_ok: Sequence[str] = (),
    kinds: dict[str, str] | None = None,
) -> None:
    """Check every output (see :func:`check_output`) and that they are distinct, before any work.

    Parameters
    ----------
    outputs : dict of str to path or None
        Option (or parameter) name -> output path; None entries are skipped.
    inputs : dict of str to path or None, optional
        Option name -> input path; an output that is one of them is an error.
    overwrite, force_hint
        As in :func:`check_output`.
    stdout_ok : sequence of str
        The names in ``outputs`` that may be ``"-"`` (standard output).
    kinds : dict of str to str, optional
        Name -> what the output is, for the error on a ``"-"`` that is not accepted.

    Raises
    ------
    ValueError
        Two outputs are the same file (or both standard output), or an output is an input;
        plus every error of :func:`check_output`.
    """
    given = [(n, p) for n, p in outputs.items() if p is not None]
    for n, p in given:
        kind = (kinds or {}).get(n, "output")
        check_output(p, overwrite=overwrite, force_hint=force_hint, stdout_ok=n in stdout_ok, name=n, kind=kind)
    for i, (n1, p1) in enumerate(given):
        for n2, p2 in given[i + 1 :]:
            if os.fspath(p1) == STDOUT and os.fspath(p2) == STDOUT:
                raise ValueError(f"{n1} and {n2} both go to standard output; give one of them a file path")
            if STDOUT not in (os.fspath(p1), os.fspath(p2)) and _same_file(p1, p2):
                raise ValueError(f"{n1} and {n2} name the same file {p1}; give each output its own path")
    for n_in, p_in in (inputs or {}).items():
        if p_in is None or os.fspath(p_in) == STDOUT:
            continue
        for n_out, p_out in given:
            if os.fspath(p_out) != STDOUT and _same_file(p_in, p_out):
                raise ValueError(f"{n_out} {p_out} is the input {n_in}; an output never replaces an input")


def _keep_aside(target: Path) -> str:
    """A hard link (else a copy) of ``target`` under a hidden name in its folder."""
    import shutil
    import uuid

    aside = str(target.parent / f".{target.name}.{uuid.uuid4().hex[:8]}.old")
    try:
        os.link(target, aside)
    except OSError:
        shutil.copy2(target, aside)
    return aside


class AtomicOutputs:
    """Outputs prepared as temporary files and committed together (see :func:`atomic_outputs`)."""

    def __init__(self, *, overwrite: bool, force_hint: str = "overwrite=True") -> None:
        self.overwrite = overwrite
        self.force_hint = force_hint
        self._staged: list[tuple[str, Path]] = []  # (temporary file, target)

    @contextlib.contextmanager
    def open(self, path: str | os.PathLike[str], mode: str = "w", *, encoding: str = "utf-8") -> Iterator[IO[Any]]:
        """A file handle on a temporary file in ``path``'s folder; renamed onto ``path`` at commit.

        ``path`` is checked first (:func:`check_output`); on an exception inside the block the
        temporary file is removed.
        """
        p = Path(path)
        if any(_same_file(p, t) for _, t in self._staged):
            raise ValueError(f"{p}: written twice in one set of outputs")
        check_output(p, overwrite=self.overwrite, force_hint=self.force_hint)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
        os.close(fd)
        try:
            # opened by name, so ``fh.name`` is the temporary file's path (e.g. to checksum it)
            with open(tmp, mode, encoding=None if "b" in mode else encoding) as fh:
                yield fh
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, file_mode(p))  # mkstemp creates 0600; give the file the usual permissions
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        self._staged.append((tmp, p))

    def discard(self) -> None:
        """Remove every prepared temporary file (nothing is committed)."""
        for tmp, _ in self._staged:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        self._staged.clear()

    def commit(self) -> list[Path]:
        """Rename every prepared file onto its target; all or nothing.

        Each target is checked again (:func:`check_output`) and replaced by one ``os.replace``,
        so it always holds its old or its new content, never a part. With several outputs the
        previous version of each is first kept aside (a hard link, else a copy); if any rename
        fails, the targets already committed are restored (their previous version, or removed
        when there was none) and the error is raised.

        Returns
        -------
        list of Path
            The targets, in the order they were opened.
        """
        done: list[tuple[Path, str | None, bool]] = []  # (target, its previous version kept aside, existed)
        try:
            for tmp, target in self._staged:
                check_output(target, overwrite=self.overwrite, force_hint=self.force_hint)
                # the previous version stays in place until the rename (a hard link, or a copy,
                # keeps it for a rollback when several files are committed together)
                existed = target.exists()
                backup = _keep_aside(target) if len(self._staged) > 1 and existed else None
                try:
                    os.replace(tmp, target)
                except BaseException:
                    if backup is not None:
                        with contextlib.suppress(OSError):
                            os.unlink(backup)
                    raise
                done.append((target, backup, existed))
        except BaseException:
            for target, backup, existed in reversed(done):  # the ones already renamed: back to before
                with contextlib.suppress(OSError):
                    if backup is not None:
                        os.replace(backup, target)
                    elif not existed:
                        os.unlink(target)
            self.discard()
            raise
        for _, backup, _ in done:
            if backup is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(backup)
        targets = [t for _, t in self._staged]
        self._staged.clear()
        return targets


@contextlib.contextmanager
def atomic_outputs(*, overwrite: bool = False, force_hint: str = "overwrite=True") -> Iterator[AtomicOutputs]:
    """Write several outputs all or nothing.

    Files opened with ``outputs.open(path)`` inside the block are prepared as temporary files
    in their folders; when the block ends normally they are renamed onto their paths together
    (:meth:`AtomicOutputs.commit`); on an exception none is written.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_outputs() as out:
    ...     with out.open(d / "a.txt") as fh:
    ...         _ = fh.write("a")
    ...     with out.open(d / "b.txt") as fh:
    ...         _ = fh.write("b")
    >>> sorted(p.name for p in d.iterdir())
    ['a.txt', 'b.txt']
    """
    outputs = AtomicOutputs(overwrite=overwrite, force_hint=force_hint)
    try:
        yield outputs
    except BaseException:
        outputs.discard()
        raise
    outputs.commit()


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike[str], mode: str = "w", *, overwrite: bool = True, encoding: str = "utf-8"
) -> Iterator[IO[Any]]:
    """Write ``path`` atomically: a temporary file in the same folder, then ``os.replace``.

    The one writer of the library: every file it writes goes through here (or through
    :func:`atomic_outputs`, its several-files form). ``path`` is checked first
    (:func:`check_output`): with ``overwrite=False`` an existing file is an error, and a
    symbolic link, a device (``/dev/null``), a pipe or a folder is refused even with
    ``overwrite=True`` (it would be replaced by a regular file). On an exception the temporary
    file is removed and ``path`` is left untouched. The new file gets the permissions of the file
    it replaces, else ``0o666 & ~umask`` (:func:`file_mode`).
    """
    with atomic_outputs(overwrite=overwrite) as out, out.open(path, mode, encoding=encoding) as fh:
        yield fh
