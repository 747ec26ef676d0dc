"""The HTML report: one self-contained page (inline CSS and SVG, no JavaScript, no network).

Every id, label and title that comes from the data is escaped with :func:`html.escape`. The
page needs only per-annotator statistics (confusions ``(n_annotators, K, K)``, label counts),
never an items x annotators array.

Convention (shared with :mod:`crowdlearn.metrics`): ``confusions[m, i, j] = P(annotator m says
class i | true class j)``; in the heatmaps a row is the given label and a column the true class.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from html import escape
from typing import Any

import numpy as np
import numpy.typing as npt

from crowdlearn.annotations import Annotations
from crowdlearn.io import atomic_write, check_output
from crowdlearn.metrics import accuracy, annotator_accuracy, spammer_score

__all__ = ["render_html", "write_html"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 70em; padding: 0 1em; color: #1b1b1b; line-height: 1.4; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; border-bottom: 1px solid #ccc; margin-top: 2em; }
h3 { font-size: 1.05em; }
table { border-collapse: collapse; margin: 0.5em 0 1em 0; }
th, td { padding: 0.2em 0.6em; border: 1px solid #ddd; text-align: right; }
th { background: #f3f3f3; }
td.id, th.id { text-align: left; font-family: ui-monospace, Menlo, Consolas, monospace; }
p.note { color: #555; font-size: 0.9em; }
p.untrusted { color: #8a1c1c; font-weight: 600; }
.heatmaps { display: flex; flex-wrap: wrap; gap: 1.2em; }
.heatmap table { font-size: 0.75em; }
.heatmap td { width: 2.6em; text-align: center; border: 1px solid #fff; }
.heatmap caption { text-align: left; font-size: 0.9em; padding-bottom: 0.2em; font-weight: 600; }
.legend { margin: 0.4em 0 1em 0; font-size: 0.8em; width: 22em; }
.legend-title { display: block; color: #555; margin-bottom: 0.2em; }
.legend-bar { height: 0.9em; border: 1px solid #bbb; }
.legend-ticks { position: relative; height: 1.2em; color: #333; }
.legend-ticks span { position: absolute; transform: translateX(-50%); }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; }
svg text { font-size: 11px; font-family: system-ui, Helvetica, Arial, sans-serif; }
"""


@dataclass
class _Source:
    """Per-annotator statistics of one fitted object (an aggregator or a model)."""

    key: str
    name: str
    annotator_ids: list[str]  # (M,) as shown
    classes: list[str]  # (K,) as shown
    confusions: FloatArray  # (M, K, K)
    n_labels: IntArray  # (M,)
    accuracy: FloatArray  # (M,)
    spammer: FloatArray  # (M,)


# ---------------------------------------------------------------------------- public API
def render_html(
    annotations: Annotations | None,
    *,
    model: Any = None,
    aggregator: Any = None,
    diagnosis: Any = None,
    truth: npt.ArrayLike | None = None,
    X: Any = None,
    title: str = "crowdlearn report",
    top: int = 12,
    max_annotators: int = 50,
    quality: bool = True,
) -> str:
    """The HTML report of a crowd, and of the aggregator / model fitted on it.

    Sections, each present only when its input is given: data summary (always); per-annotator
    table (label count, estimated accuracy, spammer score; by label count, at most
    ``max_annotators`` rows) and confusion heatmaps (the ``top`` annotators with most labels and
    the label-weighted mean matrix) for ``aggregator`` and for ``model``; training curves
    (``model``); the model's post-fit checks (a ``model`` with ``findings_``: collapse, flipped
    classes); identifiability diagnostics (``diagnosis``); accuracy against ``truth``; quality
    control (:mod:`crowdlearn.quality`: agreement always, and with the ``aggregator``'s
    posteriors or the ``model``'s predictions on ``X`` the ``top`` items to re-label and the
    ``top`` weakest annotators).

    Parameters
    ----------
    annotations : Annotations or None
        The labels the aggregator / model was fitted on. None (only with ``model``, e.g. one read
        by :meth:`~crowdlearn.CrowdClassifier.load`): no data section, no ``aggregator``, ``truth``
        or ``diagnosis``; the model's annotator and class ids and label counts are used.
    model : fitted CrowdClassifier, optional
        Duck-typed: needs ``confusions_`` (n_annotators, n_classes, n_classes), ``priors_``
        (n_classes,), ``annotator_ids_`` (n_annotators,), ``classes_`` (n_classes,),
        ``annotator_report()`` and ``history_``; ``best_epoch_`` marks the selected epoch. Its
        annotator and class ids must equal those of ``annotations``. With ``truth`` and ``X``
        its predictions on the items are scored.
    aggregator : fitted aggregator from :mod:`crowdlearn.aggregate`, optional
        Needs ``labels_`` (n_items,); ``confusions_`` (n_annotators, n_classes, n_classes) and
        ``priors_`` (n_classes,) give the annotator table and heatmaps when present.
    diagnosis : DiagnosisReport, optional
        From :func:`crowdlearn.diagnose.diagnose` (``to_dict()`` and ``str()`` are used).
    truth : array-like of int of shape (n_items,), optional
        True class index of each item of ``annotations``, ``-1`` where unknown.
    X : array-like of shape (n_items, ...), optional
        Features of the items of ``annotations`` (row i = item i), to score ``model`` on
        ``truth``.
    title : str, default="crowdlearn report"
    top : int, default=12
        Number of annotators (most labels first) whose confusion matrices are drawn.
    max_annotators : int, default=50
        Rows of the annotator table; a line says how many were left out.
    quality : bool, default=True
        Add the quality-control section (needs ``annotations``).

    Returns
    -------
    str
        A complete HTML document.

    Examples
    --------
    >>> from crowdlearn import Annotations
    >>> ann = Annotations.from_ids(["a", "a", "b"], ["w1", "w2", "w1"], ["x", "y", "y"])
    >>> page = render_html(ann, title="tiny")
    >>> page.startswith("<!DOCTYPE html>") and "Data" in page
    True
    """
    if annotations is None:
        if model is None:
            raise ValueError("a report without annotations needs a model (annotations=None, model=...)")
        for name, value in (("aggregator", aggregator), ("truth", truth), ("diagnosis", diagnosis)):
            if value is not None:
                raise ValueError(f"{name}= needs the annotations (the labels the model was trained on)")
    elif not isinstance(annotations, Annotations):
        raise TypeError(f"annotations must be an Annotations object or None, got {type(annotations).__name__}")
    for name, value in (("top", top), ("max_annotators", max_annotators)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    truth_arr = _check_truth(truth, annotations) if annotations is not None else None
    sources: list[_Source] = []
    if aggregator is not None and annotations is not None:
        if not hasattr(aggregator, "labels_"):
            raise ValueError("aggregator is not fitted (it has no labels_): call fit(annotations) first")
        if getattr(aggregator, "confusions_", None) is not None:
            sources.append(_aggregator_source(aggregator, annotations))
    if model is not None:
        if not hasattr(model, "confusions_"):
            raise ValueError("model is not fitted (it has no confusions_): call fit(X, annotations) first")
        sources.append(_model_source(model, annotations))

    body: list[str] = [f"<h1>{escape(title)}</h1>"]
    body.append(_summary_section(annotations) if annotations is not None else _model_summary_section(model))
    if model is not None and getattr(model, "findings_", None) is not None:
        body.append(_checks_section(model.findings_))
    if truth_arr is not None and annotations is not None:
        body.append(_truth_section(annotations, truth_arr, aggregator, model, X))
    for src in sources:
        body.append(_annotator_section(src, int(max_annotators)))
        body.append(_heatmap_section(src, int(top)))
    if model is not None and getattr(model, "history_", None) is not None:
        body.append(_curves_section(model))
    if diagnosis is not None:
        body.append(_diagnosis_section(diagnosis))
    if quality and annotations is not None and annotations.n_labels:
        body.append(_quality_section(annotations, aggregator, model, X, int(top)))
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + '\n<p class="note">Made by crowdlearn. Self-contained: no scripts, no external resources.</p>\n'
        "</body>\n</html>\n"
    )


def write_html(
    path: str | os.PathLike[str],
    annotations: Annotations | None,
    *,
    overwrite: bool = False,
    **kwargs: Any,
) -> None:
    """Write :func:`render_html` ``(annotations, **kwargs)`` to ``path`` atomically.

    Parameters
    ----------
    path : str or path-like
        Output file; its folder must exist.
    annotations : Annotations or None
        None only with ``model=`` (see :func:`render_html`).
    overwrite : bool, default=False
        Replace an existing file; otherwise an existing ``path`` raises :class:`FileExistsError`
        (checked before the page is rendered, like the rest of :func:`crowdlearn.io.check_output`:
        a symbolic link or a non-regular file is refused either way).
    **kwargs
        Keyword arguments of :func:`render_html` (``model``, ``aggregator``, ``diagnosis``,
        ``truth``, ``X``, ``title``, ``top``, ``max_annotators``).
    """
    check_output(path, overwrite=overwrite)  # before rendering: exists, symlink, device, folder
    page = render_html(annotations, **kwargs)
    with atomic_write(path, overwrite=overwrite) as fh:
        fh.write(page)


# ---------------------------------------------------------------------------- inputs
def _check_truth(truth: npt.ArrayLike | None, annotations: Annotations) -> IntArray | None:
    if truth is None:
        return None
    t = np.asarray(truth)
    if t.shape != (annotations.n_items,):
        raise ValueError(f"truth must have shape ({annotations.n_items},) (one class index per item), got {t.shape}")
    if t.dtype.kind not in "iu":
        raise ValueError(f"truth must hold integer class indices (-1 = unknown), got dtype {t.dtype}")
    t = t.astype(np.int64)
    bad = (t < -1) | (t >= annotations.n_classes)
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"truth[{pos}] = {int(t[pos])}: expected -1 (unknown) or a class index in [0, {annotations.n_classes})"
        )
    return t


def _check_confusions(conf: Any, annotations: Annotations, what: str) -> FloatArray:
    A = np.asarray(conf, dtype=np.float64)
    expected = (annotations.n_annotators, annotations.n_classes, annotations.n_classes)
    if A.shape != expected:
        raise ValueError(
            f"{what}.confusions_ has shape {A.shape} but the annotations need {expected} "
            "(n_annotators, n_classes, n_classes): was it fitted on these annotations?"
        )
    return A


def _aggregator_source(agg: Any, annotations: Annotations) -> _Source:
    A = _check_confusions(agg.confusions_, annotations, "aggregator")
    priors = getattr(agg, "priors_", None)
    counts = annotations.annotator_counts.astype(np.int64)
    name = type(agg).__name__
    acc = annotator_accuracy(A, priors)
    spam = spammer_score(A) if annotations.n_classes >= 2 else np.zeros(len(A))
    ids, classes = _names(annotations.annotator_ids), _names(annotations.classes)
    return _Source("aggregator", f"aggregator ({name})", ids, classes, A, counts, acc, spam)


def _model_source(model: Any, annotations: Annotations | None) -> _Source:
    ids, classes = _names(model.annotator_ids_), _names(model.classes_)
    if annotations is not None:
        _check_confusions(model.confusions_, annotations, "model")
        for what, mine, theirs in (
            ("annotators", ids, _names(annotations.annotator_ids)),
            ("classes", classes, _names(annotations.classes)),
        ):
            if mine != theirs:
                k = next((i for i, (a, b) in enumerate(zip(mine, theirs)) if a != b), min(len(mine), len(theirs)))
                raise ValueError(
                    f"the model's {what} differ from the annotations' (position {k}: "
                    f"{mine[k] if k < len(mine) else 'none'!r} vs {theirs[k] if k < len(theirs) else 'none'!r}): "
                    "pass the labels the model was trained on"
                )
    A = np.asarray(model.confusions_, dtype=np.float64)
    table = model.annotator_report()
    counts = np.asarray(table["n_labels"], dtype=np.int64)
    method = getattr(model, "method", None)
    name = type(model).__name__ + (f", {method}" if isinstance(method, str) else "")
    return _Source(
        "model",
        f"model ({name})",
        ids,
        classes,
        A,
        counts,
        np.asarray(table["accuracy"], dtype=np.float64),
        np.asarray(table["spammer_score"], dtype=np.float64),
    )


def _names(values: Any) -> list[str]:
    """Ids as the page shows them (``str``; numpy scalars as plain numbers)."""
    return [str(v) for v in np.asarray(values).tolist()]


# ---------------------------------------------------------------------------- small helpers
def _num(v: float | None, digits: int = 3) -> str:
    return "–" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"


def _row(cells: list[str], header: bool = False) -> str:
    tag = "th" if header else "td"
    return "<tr>" + "".join(f"<{tag}>{c}</{tag}>" for c in cells) + "</tr>"


def _kv_table(rows: list[tuple[str, str]]) -> str:
    body = "".join(f'<tr><th class="id">{escape(k)}</th><td>{v}</td></tr>' for k, v in rows)
    return f"<table>{body}</table>"


def _colour(v: float) -> tuple[str, str]:
    """Background and text colour for a probability in [0, 1] (white to dark blue)."""
    t = min(max(v, 0.0), 1.0) if math.isfinite(v) else 0.0
    r, g, b = (round(255 + (c - 255) * t) for c in (8, 69, 148))
    return f"#{r:02x}{g:02x}{b:02x}", ("#ffffff" if t > 0.55 else "#1b1b1b")


# ---------------------------------------------------------------------------- sections
def _summary_section(annotations: Annotations) -> str:
    s = annotations.summary()
    counts = [
        ("items", f"{s.n_items} ({s.n_items_unlabeled} without labels)"),
        ("annotators", f"{s.n_annotators} ({s.n_annotators_without_labels} without labels)"),
        ("classes", str(s.n_classes)),
        ("labels", str(s.n_labels)),
    ]
    if s.n_duplicates_dropped:
        counts.append(("repeated (item, annotator) labels dropped", str(s.n_duplicates_dropped)))
    keys = list(s.labels_per_item)
    dist = (
        "<table>"
        + _row([""] + [escape(k) for k in keys], header=True)
        + _row(["labels per item"] + [f"{s.labels_per_item[k]:g}" for k in keys])
        + _row(["labels per annotator"] + [f"{s.labels_per_annotator[k]:g}" for k in keys])
        + "</table>"
    )
    total = max(s.n_labels, 1)
    classes = (
        "<table>"
        + _row(["class", "labels", "share"], header=True)
        + "".join(
            f'<tr><td class="id">{escape(c)}</td><td>{n}</td><td>{n / total:.1%}</td></tr>'
            for c, n in s.class_counts.items()
        )
        + "</table>"
    )
    return (
        '<section id="data">\n<h2>Data</h2>\n'
        + _kv_table(counts)
        + "\n<h3>Labels per item and per annotator</h3>\n"
        + dist
        + "\n<h3>Labels per class</h3>\n"
        + classes
        + "\n</section>"
    )


def _model_summary_section(model: Any) -> str:
    counts = np.asarray(model.annotator_report()["n_labels"], dtype=np.int64)
    rows = [
        ("annotators", str(len(counts))),
        ("classes", escape(", ".join(_names(model.classes_)[:20]))),
        ("labels it was trained on", str(int(counts.sum()))),
    ]
    return (
        '<section id="data">\n<h2>Data</h2>\n<p class="note">No label file was given: the counts come from the '
        "model. Give the labels (and the truth and features) for the data summary and the accuracy.</p>\n"
        + _kv_table(rows)
        + "\n</section>"
    )


def _truth_section(annotations: Annotations, truth: IntArray, aggregator: Any, model: Any, X: Any) -> str:
    known = truth >= 0
    n_known = int(known.sum())
    rows: list[tuple[str, str]] = [("items with known truth", f"{n_known} of {annotations.n_items}")]
    notes: list[str] = []
    if n_known:
        if aggregator is not None:
            labels = np.asarray(aggregator.labels_)
            if labels.shape != (annotations.n_items,):
                raise ValueError(f"aggregator.labels_ has shape {labels.shape}, expected ({annotations.n_items},)")
            rows.append(
                (
                    f"aggregator ({type(aggregator).__name__}): inferred labels",
                    _num(accuracy(truth[known], labels[known])),
                )
            )
        if model is not None:
            if X is None:
                notes.append("the model's accuracy needs the items' features (X); none were given")
            else:
                proba = np.asarray(model.predict_proba(X))
                if proba.shape != (annotations.n_items, annotations.n_classes):
                    raise ValueError(
                        f"model.predict_proba(X) has shape {proba.shape}, expected "
                        f"({annotations.n_items}, {annotations.n_classes}): X must hold one row per item"
                    )
                pred = proba.argmax(axis=1)
                rows.append(
                    (
                        f"model ({type(model).__name__}): predictions on the items",
                        _num(accuracy(truth[known], pred[known])),
                    )
                )
    else:
        notes.append("no item has a known true label: nothing to score")
    return (
        '<section id="truth">\n<h2>Accuracy against the truth</h2>\n'
        + _kv_table(rows)
        + "".join(f'\n<p class="note">{escape(n)}</p>' for n in notes)
        + "\n</section>"
    )


def _order(counts: IntArray) -> IntArray:
    """Annotator indices by label count, most first (ties: index order)."""
    return np.argsort(-counts, kind="stable").astype(np.int64)


def _annotator_section(src: _Source, cap: int) -> str:
    order = _order(src.n_labels)
    shown = order[:cap]
    ids = src.annotator_ids
    rows = "".join(
        f'<tr><td>{r + 1}</td><td class="id">{escape(ids[m])}</td><td>{int(src.n_labels[m])}</td>'
        f"<td>{_num(float(src.accuracy[m]))}</td><td>{_num(float(src.spammer[m]))}</td></tr>"
        for r, m in enumerate(shown.tolist())
    )
    left = len(order) - len(shown)
    more = f'\n<p class="note more">... {left} more annotators not shown</p>' if left > 0 else ""
    return (
        f'<section id="annotators-{src.key}">\n<h2>Annotators: {escape(src.name)}</h2>\n'
        '<p class="note">By number of labels, most first. <em>accuracy</em>: estimated probability of giving '
        "the true class, sum<sub>k</sub> prior<sub>k</sub> A[k, k]; <em>spammer score</em>: distance of the "
        "confusion matrix from the nearest matrix whose answers ignore the true class (0 spammer, 1 perfect).</p>\n"
        f'<table id="annotator-table-{src.key}">'
        + _row(["#", "annotator", "labels", "accuracy", "spammer score"], header=True)
        + rows
        + "</table>"
        + more
        + "\n</section>"
    )


def _heatmap(matrix: FloatArray, classes: list[str], caption: str, table_id: str) -> str:
    head = (
        '<tr><th class="id" title="row: the label given; column: the true class">given \\ true</th>'
        + "".join(f"<th>{c}</th>" for c in classes)
        + "</tr>"
    )
    body = []
    for i, c in enumerate(classes):
        cells = []
        for j in range(len(classes)):
            v = float(matrix[i, j])
            bg, fg = _colour(v)
            cells.append(f'<td style="background:{bg};color:{fg}">{_num(v, 2)}</td>')
        body.append(f'<tr><th class="id">{c}</th>' + "".join(cells) + "</tr>")
    return (
        f'<div class="heatmap"><table id="{table_id}"><caption>{caption}</caption>'
        + head
        + "".join(body)
        + "</table></div>"
    )


def _legend(legend_id: str) -> str:
    """The colour scale of the heatmaps: white (0) to dark blue (1), with ticks at 0, 0.25, ..., 1."""
    stops = ", ".join(f"{_colour(t / 4)[0]} {t * 25}%" for t in range(5))
    ticks = "".join(f'<span style="left:{t * 25}%">{t / 4:g}</span>' for t in range(5))
    return (
        f'<div class="legend" id="{legend_id}"><span class="legend-title">cell colour = '
        "P(annotator gives the row's label | the column's true class)</span>"
        f'<div class="legend-bar" style="background: linear-gradient(to right, {stops})"></div>'
        f'<div class="legend-ticks">{ticks}</div></div>'
    )


def _heatmap_section(src: _Source, top: int) -> str:
    classes = [escape(c) for c in src.classes]
    ids = src.annotator_ids
    total = int(src.n_labels.sum())
    weights = src.n_labels.astype(np.float64) if total > 0 else np.ones(len(src.n_labels))
    if len(src.confusions):
        mean = np.tensordot(weights, src.confusions, axes=1) / weights.sum()
        caption = f"mean of all {len(ids)} annotators, weighted by their {total} labels"
        tables = [_heatmap(mean, classes, caption, f"cm-{src.key}-mean")]
    else:
        tables = []
    for m in _order(src.n_labels)[:top].tolist():
        n = int(src.n_labels[m])
        caption = f"annotator {escape(ids[m])} – {n} label{'' if n == 1 else 's'}"
        tables.append(_heatmap(src.confusions[m], classes, caption, f"cm-{src.key}-{m}"))
    shown = min(top, len(src.n_labels))
    return (
        f'<section id="confusions-{src.key}">\n<h2>Confusion matrices: {escape(src.name)}</h2>\n'
        '<p class="note">A[i, j] = P(annotator says i | true class j): a row is the label given, a column the '
        f"true class; columns sum to 1. Shown: the label-weighted mean and the {shown} annotators with most "
        f"labels (of {len(src.n_labels)}).</p>\n"
        + _legend(f"legend-{src.key}")
        + '\n<div class="heatmaps">'
        + "".join(tables)
        + "</div>\n</section>"
    )


def _series(history: Any, key: str) -> list[float | None]:
    try:
        values = history[:, key]
    except (KeyError, TypeError, IndexError):
        return []
    out: list[float | None] = []
    for v in values:
        ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(float(v))
        out.append(float(v) if ok else None)
    return out if any(v is not None for v in out) else []


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values (steps of 1, 2 or 5 times a power of ten) covering [lo, hi]."""
    raw = (hi - lo) / max(n - 1, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1.0, 2.0, 5.0, 10.0) if m * power >= raw * 0.7)
    first = math.floor(lo / step + 1e-9) * step
    ticks = [first]
    while ticks[-1] < hi - 1e-9 * step:
        ticks.append(first + len(ticks) * step)
    return [round(t, 12) for t in ticks]


def _svg_curve(values: list[float | None], label: str, selected: int | None, svg_id: str) -> str:
    """An inline SVG line chart of one value per epoch: y ticks with values, x ticks at epochs."""
    width, height, left, right, top_m, bottom = 480, 220, 74, 14, 14, 40
    pw, ph = width - left - right, height - top_m - bottom
    finite = [v for v in values if v is not None]
    lo, hi = min(finite), max(finite)
    if hi == lo:
        lo, hi = lo - 0.5, hi + 0.5
    yticks = _nice_ticks(lo, hi)
    lo, hi = min(lo, yticks[0]), max(hi, yticks[-1])  # the axis ends on ticks
    n = len(values)

    def x(e: int) -> float:
        return left + (pw * e / (n - 1) if n > 1 else pw / 2)

    def y(v: float) -> float:
        return top_m + ph * (1 - (v - lo) / (hi - lo))

    segments: list[list[str]] = [[]]
    for e, v in enumerate(values):
        if v is None:
            segments.append([])
        else:
            segments[-1].append(f"{x(e):.1f},{y(v):.1f}")
    lines = "".join(
        f'<polyline fill="none" stroke="#08458f" stroke-width="1.8" points="{" ".join(s)}"/>'
        if len(s) > 1
        else f'<circle cx="{s[0].split(",")[0]}" cy="{s[0].split(",")[1]}" r="2" fill="#08458f"/>'
        for s in segments
        if s
    )
    mark = ""
    if selected is not None and 0 <= selected < n:
        sx = x(selected)
        mark = (
            f'<line x1="{sx:.1f}" y1="{top_m}" x2="{sx:.1f}" y2="{top_m + ph}" stroke="#c0392b" '
            'stroke-dasharray="4 3"/>'
        )
        v = values[selected]
        if v is not None:
            mark += f'<circle cx="{sx:.1f}" cy="{y(v):.1f}" r="4" fill="#c0392b"><title>selected epoch '
            mark += f"{selected + 1}: {v:.4g}</title></circle>"
    digits = max(0, -math.floor(math.log10(yticks[1] - yticks[0]))) if len(yticks) > 1 else 3
    ytick_marks = "".join(
        f'<line class="ytick" x1="{left - 5}" y1="{y(t):.1f}" x2="{left + pw}" y2="{y(t):.1f}" stroke="#e4e4e4"/>'
        f'<line x1="{left - 5}" y1="{y(t):.1f}" x2="{left}" y2="{y(t):.1f}" stroke="#888"/>'
        f'<text class="ytick-label" x="{left - 8}" y="{y(t) + 4:.1f}" text-anchor="end">{t:.{digits}f}</text>'
        for t in yticks
    )
    epochs = sorted({1, *(int(e) for e in _nice_ticks(1, n, 6) if float(e).is_integer() and 1 <= e <= n)})
    xtick_marks = "".join(
        f'<line x1="{x(e - 1):.1f}" y1="{top_m + ph}" x2="{x(e - 1):.1f}" y2="{top_m + ph + 5}" stroke="#888"/>'
        f'<text x="{x(e - 1):.1f}" y="{top_m + ph + 17}" text-anchor="middle">{e}</text>'
        for e in epochs
    )
    axes = (
        ytick_marks + f'<line x1="{left}" y1="{top_m + ph}" x2="{left + pw}" y2="{top_m + ph}" stroke="#888"/>'
        f'<line x1="{left}" y1="{top_m}" x2="{left}" y2="{top_m + ph}" stroke="#888"/>'
        + xtick_marks
        + f'<text x="{left + pw / 2:.1f}" y="{height - 6}" text-anchor="middle">epoch</text>'
        f'<text class="ylabel" x="14" y="{top_m + ph / 2:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 14 {top_m + ph / 2:.1f})">{escape(label)}</text>'
    )
    return (
        f'<figure><svg id="{svg_id}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img"><title>{escape(label)} per epoch</title>'
        + axes
        + lines
        + mark
        + f"</svg><figcaption>{escape(label)}</figcaption></figure>"
    )


def _curves_section(model: Any) -> str:
    history = model.history_
    best = getattr(model, "best_epoch_", None)
    selected = int(best) if best is not None else None
    charts: list[str] = []
    train = _series(history, "train_loss")
    if train:
        charts.append(_svg_curve(train, "training loss", selected, "curve-train_loss"))
    for key, label in (("valid_acc", "validation accuracy"), ("valid_loss", "validation loss")):
        series = _series(history, key)
        if series:
            charts.append(_svg_curve(series, label, selected, f"curve-{key}"))
            break
    n = len(history)
    if selected is not None:
        chosen = f"selected epoch (dashed red line): {selected + 1} of {n}"
    else:
        chosen = f"no validation: the model of the last epoch ({n}) is kept"
    if not charts:
        charts.append('<p class="note">the history records no losses</p>')
    return (
        '<section id="training">\n<h2>Training</h2>\n'
        f'<p class="note">{escape(chosen)}.</p>\n' + "\n".join(charts) + "\n</section>"
    )


def _checks_section(findings: Any) -> str:
    """The post-fit checks of a model (a :class:`crowdlearn.sanity.ModelCheck`)."""
    f = findings
    if f.untrusted:
        verdict = "".join(f'<p class="untrusted">{escape(line)}</p>\n' for line in f.messages())
    else:
        verdict = "<p>No collapse and no flipped classes found.</p>\n"
    ratio = f.agreement / f.chance_agreement if f.chance_agreement > 0 else float("nan")
    rows = [
        ("labelled training items checked", str(f.n_items)),
        (
            f"most predicted class (collapse: >= {f.collapse_share:.0%} while the crowd's majority vote "
            f"gives it to <= {f.crowd_share_max:.0%})",
            f"{escape(f.classes[f.top_class])}: {f.top_share:.1%} of the items "
            f"(majority vote: {f.crowd_top_share:.1%})",
        ),
        (
            f"agreement with the majority vote / chance (flip: < {f.agreement_ratio:g})",
            f"{f.agreement:.1%} / {f.chance_agreement:.1%} = {_num(ratio, 2)}",
        ),
    ]
    if f.below_diagonal_share is not None:
        rows.append(
            (
                "labels from annotators with confusion diagonal below the off-diagonal "
                f"(flip: > {f.below_diagonal_max:.0%})",
                f"{f.below_diagonal_share:.1%} (mean diagonal {_num(f.mean_diagonal, 2)})",
            )
        )
    return (
        '<section id="checks">\n<h2>Model checks</h2>\n'
        + verdict
        + _kv_table(rows)
        + '\n<p class="note">See docs/training.md, "Untrusted models": the rules compare the model with the '
        "crowd's majority vote, so they cannot see a flip of a crowd whose majority is itself wrong.</p>\n</section>"
    )


def _diagnosis_section(diagnosis: Any) -> str:
    d = diagnosis.to_dict()
    w = d["w_scatter"]
    f = d.get("f_scatter")
    classes = d.get("classes", [])
    names = {c["index"]: str(c["name"]) for c in classes}
    rows = [
        ("confusions from", escape(str(d["confusions_source"]))),
        (
            "item-annotator graph",
            f"{d['n_components']} connected component(s), "
            f"largest holds {d['largest_component_share']:.1%} of the labels",
        ),
        (f"annotators with fewer than {d['min_labels']} labels", str(len(d["few_label_annotators"]))),
        (
            f"classes without a near-specialist (closeness < {d['specialist_threshold']:g})",
            escape(", ".join(names.get(k, str(k)) for k in d["missing_specialists"]) or "none"),
        ),
        ("W scatter proxy", f"min radius {w['min_radius']:.3f}, coverage {w['coverage']:.1%}"),
    ]
    if f is not None:
        rows.append(("F scatter proxy", f"min radius {f['min_radius']:.3f}, coverage {f['coverage']:.1%}"))
    rows.append(("recommendation", escape(str(d["recommendation"]))))
    per_class = (
        "<table>"
        + _row(["class", "labels", "best specialist", "closeness", "rate", "best anchor", "closeness"], header=True)
        + "".join(
            f'<tr><td class="id">{escape(str(c["name"]))}</td><td>{c["n_labels"]}</td>'
            f'<td class="id">{escape("–" if c["best_specialist"] is None else str(c["best_specialist"]))}</td>'
            f"<td>{_num(c['specialist_closeness'])}</td><td>{_num(c['specialist_rate'], 2)}</td>"
            f'<td class="id">{escape("–" if c["best_anchor"] is None else str(c["best_anchor"]))}</td>'
            f"<td>{_num(c['anchor_closeness']) if c['anchor_closeness'] is not None else 'n/a'}</td></tr>"
            for c in classes
        )
        + "</table>"
    )
    return (
        '<section id="diagnosis">\n<h2>Identifiability diagnostics</h2>\n'
        '<p class="note">Proxies of the conditions under which CCEM / GeoCrowdNet recover the truth '
        "(computed from estimated confusions; see docs/identifiability.md).</p>\n"
        + _kv_table(rows)
        + "\n"
        + per_class
        + f"\n<details><summary>text form</summary><pre>{escape(str(diagnosis))}</pre></details>\n</section>"
    )


def _quality_section(annotations: Annotations, aggregator: Any, model: Any, X: Any, top: int) -> str:
    """Agreement; with posteriors, the items to re-label and the weakest annotators (crowdlearn.quality)."""
    from crowdlearn import quality as q

    s = q.agreement_summary(annotations)
    rows = [
        ("items with two or more labels", str(s.n_items_scored)),
        ("Krippendorff's alpha (nominal)", _num(s.alpha["nominal"])),
        ("Fleiss' kappa", _num(s.fleiss_kappa)),
        ("percent agreement", _num(s.percent_agreement)),
        (f"mean Cohen's kappa ({s.n_annotator_pairs} annotator pairs sharing 5+ items)", _num(s.mean_cohen_kappa)),
    ]
    parts = [
        '<section id="quality">\n<h2>Quality control</h2>\n<h3>Agreement</h3>\n',
        _kv_table(rows),
        '\n<p class="note">Computed on the items with at least two labels; 1 is perfect agreement, 0 the '
        "agreement expected by chance. See docs/quality.md.</p>",
    ]
    posteriors = proba = None
    confusions = None
    source = ""
    if model is not None and X is not None:
        proba = np.asarray(model.predict_proba(X), dtype=np.float64)
        if proba.shape != (annotations.n_items, annotations.n_classes):
            raise ValueError(
                f"model.predict_proba(X) has shape {proba.shape}, expected "
                f"({annotations.n_items}, {annotations.n_classes}): X must hold one row per item"
            )
        posteriors = q.crowdlab(annotations, proba).probas
        confusions = np.asarray(model.confusions_, dtype=np.float64)
        source = "the model's predictions and the labels (CROWDLAB-style ensemble)"
    elif aggregator is not None and getattr(aggregator, "probas_", None) is not None:
        posteriors = np.asarray(aggregator.probas_, dtype=np.float64)
        confusions = getattr(aggregator, "confusions_", None)
        source = f"the posteriors of {type(aggregator).__name__}"
    if posteriors is None:
        parts.append(
            '\n<p class="note">Item and annotator scores need an aggregator or a model with the items\' '
            "features.</p>\n</section>"
        )
        return "".join(parts)
    items = q.item_scores(annotations, posteriors, proba=proba)
    ranked = q.relabel_ranking(items, n=top)
    cols = ["n_labels", "consensus", "confidence", "agreement"] + (["quality"] if "quality" in items.columns else [])
    body = "".join(
        "<tr>"
        + f'<td>{int(r["rank"])}</td><td class="id">{escape(str(idx))}</td>'
        + "".join(
            f'<td class="id">{escape(str(r[c]))}</td>' if c == "consensus" else f"<td>{_cell(r[c])}</td>" for c in cols
        )
        + "</tr>"
        for idx, r in ranked.iterrows()
    )
    by_item = "quality" if "quality" in items.columns else "confidence"
    parts.append(
        f"\n<h3>Items to re-label (lowest {by_item} first)</h3>\n"
        f'<p class="note">Scores from {escape(source)}. <em>confidence</em>: posterior of the consensus class; '
        "<em>agreement</em>: share of the item's labels equal to it.</p>\n"
        '<table id="relabel-table">' + _row(["#", "item", *cols], header=True) + body + "</table>"
    )
    table = q.annotator_scores(annotations, posteriors, confusions=confusions, proba=proba)
    by_ann = "quality" if "quality" in table.columns else "accuracy"
    weakest = table[table["n_labels"] > 0].sort_values(by_ann, kind="stable").head(top)
    acols = ["n_labels", "agreement", "accuracy", "spammer_score", "worst_class"] + (
        ["quality"] if "quality" in table.columns else []
    )
    abody = "".join(
        "<tr>"
        + f'<td class="id">{escape(str(idx))}</td>'
        + "".join(
            f'<td class="id">{escape("-" if r[c] is None else str(r[c]))}</td>'
            if c == "worst_class"
            else f"<td>{_cell(r[c])}</td>"
            for c in acols
        )
        + "</tr>"
        for idx, r in weakest.iterrows()
    )
    parts.append(
        f"\n<h3>Weakest annotators (lowest {by_ann} first)</h3>\n"
        '<p class="note"><em>worst class</em>: the true class this annotator gets right least often.</p>\n'
        '<table id="weak-annotators">' + _row(["annotator", *acols], header=True) + abody + "</table>\n</section>"
    )
    return "".join(parts)


def _cell(v: Any) -> str:
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return str(int(v))
    return _num(float(v))
