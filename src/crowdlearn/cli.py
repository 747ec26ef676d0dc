"""The ``crowdlearn`` command line: a thin shell over the public API.

Every command exits 0 on success, 1 on invalid input (one clear line on stderr, no traceback)
and 2 on a usage error.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import typer

from crowdlearn.annotations import Annotations, AnnotationsError
from crowdlearn.io import FORMATS, read_annotations

app = typer.Typer(
    name="crowdlearn",
    help="Deep learning from crowdsourced labels.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

F = TypeVar("F", bound=Callable[..., Any])

#: Exceptions that mean "the user's input is wrong": reported in one line, exit code 1.
USER_ERRORS: tuple[type[BaseException], ...] = (
    AnnotationsError,
    FileNotFoundError,
    FileExistsError,
    IsADirectoryError,
    PermissionError,
    ValueError,
)


def fail(message: str, code: int = 1) -> None:
    """Print ``error: message`` on stderr and exit with ``code`` (no traceback)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def user_errors(func: F) -> F:
    """Turn the library's input errors into one line on stderr and exit code 1."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except USER_ERRORS as exc:
            fail(str(exc))

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        from crowdlearn import __version__

        typer.echo(f"crowdlearn {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="print the version"),
) -> None:
    """Deep learning from crowdsourced labels: CCEM, GeoCrowdNet, Dawid-Skene and friends."""


def main() -> None:
    """Entry point of the ``crowdlearn`` script."""
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


def _column(value: str | None) -> str | int | None:
    """Column options accept names or 0-based positions."""
    if value is None:
        return None
    return int(value) if value.isdigit() else value


def _classes(value: str | None) -> list[str] | None:
    return None if value is None else [c.strip() for c in value.split(",") if c.strip()]


FormatOption = typer.Option(
    None,
    "--format",
    "-f",
    help="csv, tsv, txt, parquet, jsonl, wide-csv, wide-tsv, wide-txt or answers-json (default: from the extension)",
)
ItemColOption = typer.Option(None, "--item-col", help="item column name or 0-based position")
AnnotatorColOption = typer.Option(None, "--annotator-col", help="annotator column name or 0-based position")
LabelColOption = typer.Option(None, "--label-col", help="label column name or 0-based position")
HeaderOption = typer.Option(
    None, "--header/--no-header", help="first line names the columns (default: yes, except .txt and wide tables)"
)
SepOption = typer.Option(None, "--sep", help="field separator overriding the format's own")
ClassesOption = typer.Option(None, "--classes", help="declared classes in index order, comma-separated")
DuplicateOption = typer.Option("error", "--on-duplicate", help="error, first or last")


def load_annotations_option(
    file: Path,
    fmt: str | None,
    item_col: str | None,
    annotator_col: str | None,
    label_col: str | None,
    header: bool | None,
    sep: str | None,
    classes: str | None,
    on_duplicate: str,
) -> Annotations:
    """Read FILE with the shared command-line options (used by every command that reads labels)."""
    if on_duplicate not in ("error", "first", "last"):
        fail(f"--on-duplicate must be error, first or last, got {on_duplicate!r}", code=2)
    if fmt is not None and fmt not in FORMATS:
        fail(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}", code=2)
    return read_annotations(
        file,
        format=fmt,
        item_col=_column(item_col),
        annotator_col=_column(annotator_col),
        label_col=_column(label_col),
        header=header,
        sep=sep,
        classes=_classes(classes),
        on_duplicate=on_duplicate,  # type: ignore[arg-type]
    )


@app.command()
@user_errors
def validate(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True, help="label file"),
    fmt: str | None = FormatOption,
    item_col: str | None = ItemColOption,
    annotator_col: str | None = AnnotatorColOption,
    label_col: str | None = LabelColOption,
    header: bool | None = HeaderOption,
    sep: str | None = SepOption,
    classes: str | None = ClassesOption,
    on_duplicate: str = DuplicateOption,
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Check a label file and print its summary (exit 0 valid, 1 invalid, 2 usage error)."""
    ann = load_annotations_option(file, fmt, item_col, annotator_col, label_col, header, sep, classes, on_duplicate)
    summary = ann.summary()
    if as_json:
        typer.echo(json.dumps(summary.to_dict(), indent=2))
    else:
        typer.echo(f"{file}: valid")
        typer.echo(str(summary))


@app.command()
@user_errors
def aggregate(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True, help="label file"),
    method: str = typer.Option("ds", "--method", "-m", help="mv, wawa, ds, onecoin, glad or mace"),
    out: Path | None = typer.Option(None, "--out", "-o", help="CSV of item, label, confidence (default: stdout)"),
    proba: bool = typer.Option(False, "--proba", help="add one posterior column per class (p_<class>)"),
    confusions: Path | None = typer.Option(None, "--confusions", help="write the confusion matrices as JSON"),
    force: bool = typer.Option(False, "--force", help="overwrite existing output files"),
    fmt: str | None = FormatOption,
    item_col: str | None = ItemColOption,
    annotator_col: str | None = AnnotatorColOption,
    label_col: str | None = LabelColOption,
    header: bool | None = HeaderOption,
    sep: str | None = SepOption,
    classes: str | None = ClassesOption,
    on_duplicate: str = DuplicateOption,
) -> None:
    """Infer each item's label from crowd labels (majority vote, Dawid-Skene, GLAD, MACE, ...)."""
    import pandas as pd

    from crowdlearn.aggregate import METHODS
    from crowdlearn.io import atomic_write

    if method not in METHODS:
        fail(f"--method must be one of {', '.join(METHODS)}, got {method!r}", code=2)
    ann = load_annotations_option(file, fmt, item_col, annotator_col, label_col, header, sep, classes, on_duplicate)
    agg: Any = METHODS[method]().fit(ann)
    probas = agg.probas_
    table = pd.DataFrame(
        {"item": ann.item_ids, "label": ann.classes[agg.labels_], "confidence": probas[range(len(probas)), agg.labels_]}
    )
    if proba:
        for k, c in enumerate(ann.classes.tolist()):
            table[f"p_{c}"] = probas[:, k]
    if out is None:
        typer.echo(table.to_csv(index=False, lineterminator="\n"), nl=False)
    else:
        with atomic_write(out, overwrite=force) as fh:
            table.to_csv(fh, index=False, lineterminator="\n")
    if confusions is not None:
        doc = {
            "method": method,
            "convention": "matrix[i][j] = P(annotator says class i | true class j); columns sum to 1",
            "classes": ann.classes.tolist(),
            "priors": agg.priors_.tolist(),
            "annotators": [
                {"annotator": a, "matrix": m.tolist()}
                for a, m in zip(ann.annotator_ids.tolist(), agg.confusions_, strict=True)
            ],
        }
        with atomic_write(confusions, overwrite=force) as fh:
            json.dump(doc, fh, indent=1)


@app.command()
@user_errors
def diagnose(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True, help="label file"),
    fmt: str | None = FormatOption,
    item_col: str | None = ItemColOption,
    annotator_col: str | None = AnnotatorColOption,
    label_col: str | None = LabelColOption,
    header: bool | None = HeaderOption,
    sep: str | None = SepOption,
    classes: str | None = ClassesOption,
    on_duplicate: str = DuplicateOption,
    min_labels: int | None = typer.Option(None, "--min-labels", help="fewest labels to estimate a matrix"),
    min_class_labels: int = typer.Option(5, "--min-class-labels", help="fewest labels of a class for a specialist"),
    threshold: float = typer.Option(0.9, "--threshold", help="near-specialist closeness threshold in (0, 1]"),
    directions: int = typer.Option(64, "--directions", help="directions sampled by the scatter proxy"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
) -> None:
    """Identifiability diagnostics from Dawid-Skene confusions: specialists, coverage, connectivity."""
    from crowdlearn.diagnose import diagnose as run_diagnose

    ann = load_annotations_option(file, fmt, item_col, annotator_col, label_col, header, sep, classes, on_duplicate)
    report = run_diagnose(
        ann,
        min_labels=min_labels,
        min_class_labels=min_class_labels,
        specialist_threshold=threshold,
        n_directions=directions,
    )
    typer.echo(json.dumps(report.to_dict(), indent=2) if as_json else str(report))


# --------------------------------------------------------------------------- crowdlearn datasets
datasets_app = typer.Typer(help="Public crowdsourcing datasets: list them, download them.", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")
RootOption = typer.Option(None, "--root", help="data root (default: $CROWDLEARN_DATA, else the cache folder)")


@datasets_app.command("list")
def datasets_list(root: str | None = RootOption) -> None:
    """Print every dataset with its counts and whether its files are present under the root."""
    from rich.console import Console
    from rich.table import Table

    from crowdlearn.datasets import data_root, present, registry

    table = Table(title=f"crowdlearn datasets (root: {data_root(root)})")
    for col in ("name", "task", "items", "annotators", "labels", "classes", "features", "present"):
        table.add_column(col, justify="right" if col in ("items", "annotators", "labels", "classes") else "left")
    for name, info in registry().items():
        here = all(present(s, root) for s in info.sources)
        counts = (info.n_items, info.n_annotators, info.n_labels, info.n_classes)
        table.add_row(
            name, info.task, *("-" if c is None else f"{c:,}" for c in counts), info.features, "yes" if here else "no"
        )
    Console().print(table)


@datasets_app.command("download")
@user_errors
def datasets_download(name: str = typer.Argument(..., help="dataset name"), root: str | None = RootOption) -> None:
    """Fetch, verify (SHA-256) and unpack the files of dataset NAME under the data root."""
    from crowdlearn.datasets import DownloadError, download

    try:
        where = download(name, root)
    except DownloadError as exc:
        fail(str(exc))
    typer.echo(f"{name}: files verified under {where}")


# --------------------------------------------------------------------------- crowdlearn demo
@app.command()
@user_errors
def demo(
    out: Path = typer.Option(Path("demo-report"), "--out", help="folder for report.md, results.json, confusions.png"),
    epochs: int = typer.Option(60, "--epochs", min=1, help="training epochs of every deep model"),
    seed: int = typer.Option(0, "--seed", help="seed of the data split, the crowd and the models"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="print only the table"),
) -> None:
    """Run every method on scikit-learn's digits with a simulated crowd; print a table, write a report."""
    try:
        import sklearn  # noqa: F401
    except ImportError:
        fail("the demo needs scikit-learn for its data: pip install 'crowdlearn[sklearn]'")
    from crowdlearn.demo import run_demo, table_markdown, write_report

    result = run_demo(seed=seed, epochs=epochs, log=None if quiet else lambda m: typer.echo(m, err=True))
    typer.echo(table_markdown(result))
    written = write_report(result, out)
    typer.echo("report: " + ", ".join(str(p) for p in written))
