"""The ``crowdlearn`` command line: a thin shell over the public API.

Every command exits 0 on success, 1 on invalid input (one clear line on stderr, no traceback)
and 2 on a usage error; ``train`` exits 3 (:data:`UNTRUSTED_MODEL_EXIT`) when the trained model
fails the post-fit checks (collapsed, or flipped classes) unless ``--allow-untrusted`` is given.
"""

from __future__ import annotations

import inspect
import json
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import typer

from crowdlearn._checks import show
from crowdlearn.annotations import Annotations, AnnotationsError
from crowdlearn.io import FORMATS, AtomicOutputs, read_annotations

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


#: Exit code of ``crowdlearn train`` for a model that fails the post-fit checks (nothing written).
UNTRUSTED_MODEL_EXIT = 3


def fail(message: str, code: int = 1) -> None:
    """Print ``error: message`` on stderr and exit with ``code`` (no traceback)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


#: The library's messages name Python parameters (``item_col=``, ``sep=';'``); on the command
#: line they are shown as the flags that set them. The one table of that translation.
_FLAG_SPELLINGS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?<![\w-])(item|annotator|label)_col="), r"--\1-col"),
    (re.compile(r"(?<![\w-])format=(['\"])([\w-]+)\1"), r"--format \2"),
    (re.compile(r"(?<![\w-])sep=(['\"])(.*?)\1"), r"--sep '\2'"),
    (re.compile(r"(?<![\w-])on_duplicate=(['\"])(\w+)\1"), r"--on-duplicate \2"),
    (re.compile(r"(?<![\w-])ids=(['\"])(\w+)\1"), r"--ids \2"),
    (re.compile(r"(?<![\w-])ids="), "--ids "),
    (re.compile(r"(?<![\w-])header=True"), "--header"),
    (re.compile(r"(?<![\w-])header=False"), "--no-header"),
    (re.compile(r"(?<![\w-])classes="), "--classes"),
)


def cli_message(message: str) -> str:
    """A library message on one line, its Python parameter spellings replaced by the CLI's flags."""
    message = " ".join(message.split())
    for pattern, flag in _FLAG_SPELLINGS:
        message = pattern.sub(flag, message)
    return message


def user_errors(func: F) -> F:
    """Turn the library's input errors into one line on stderr and exit code 1."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except USER_ERRORS as exc:
            fail(cli_message(str(exc)))

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        from crowdlearn import __version__

        typer.echo(f"crowdlearn {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", "-V", callback=_version, is_eager=True, help="print the version and exit"
    ),
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


ReportOption = typer.Option(
    None, "--report", help="write an HTML report (data, annotators, confusion heatmaps; self-contained)"
)
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
ProgressOption = typer.Option(
    None, "--progress/--no-progress", help="progress bar on stderr (default: shown when stderr is a terminal)"
)
QuietOption = typer.Option(False, "--quiet", "-q", help="print nothing but errors (no progress bar, no summary)")


def _stderr_is_terminal() -> bool:
    """Whether standard error is an interactive terminal (the default for progress bars)."""
    return sys.stderr.isatty()


def _show_progress(progress: bool | None, quiet: bool) -> bool:
    """--quiet wins; then an explicit --progress/--no-progress; else only on a terminal."""
    if quiet:
        return False
    return _stderr_is_terminal() if progress is None else progress


@contextmanager
def _em_progress(aggregator: Any, show: bool) -> Iterator[Callable[[int, float], None] | None]:
    """A rich bar on stderr over the EM iterations of ``aggregator`` (None when not shown or not EM)."""
    n_iter = getattr(aggregator, "n_iter", None)
    if not show or not isinstance(n_iter, int) or n_iter < 1:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    name = type(aggregator).__name__
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("iteration {task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[ll]}"),
        console=Console(stderr=True),
    ) as bar:
        task = bar.add_task(f"{name} EM", total=n_iter, ll="")

        def update(done: int, log_likelihood: float) -> None:
            bar.update(task, completed=done, ll=f"log-likelihood {log_likelihood:.6g}")

        yield update
        final = bar.tasks[0]
        if final.completed < n_iter:  # converged early: say so instead of leaving a partial bar
            bar.update(task, total=final.completed, description=f"{name} EM converged")


IdsOption = typer.Option(
    "str", "--ids", help="str: item/annotator ids are text as written (007 and 7 differ); int: ids are numbers"
)


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
    ids: str = "str",
) -> Annotations:
    """Read FILE with the shared command-line options (used by every command that reads labels)."""
    if on_duplicate not in ("error", "first", "last"):
        fail(f"--on-duplicate must be error, first or last, got {on_duplicate!r}", code=2)
    if ids not in ("str", "int"):
        fail(f"--ids must be str or int, got {ids!r}", code=2)
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
        ids=ids,  # type: ignore[arg-type]
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
    ids: str = IdsOption,
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Check a label file and print its summary (exit 0 valid, 1 invalid, 2 usage error)."""
    ann = load_annotations_option(
        file, fmt, item_col, annotator_col, label_col, header, sep, classes, on_duplicate, ids
    )
    summary = ann.summary()
    if as_json:
        typer.echo(json.dumps(summary.to_dict(), indent=2))
    else:
        typer.echo(f"{file}: valid")
        typer.echo(str(summary))


@app.command()
@user_errors
def aggregate(
    file: Path = typer.Argument(
        ..., exists=True, readable=True, help="label file, or with --workers/--scheduler a Parquet dataset folder"
    ),
    method: str = typer.Option("ds", "--method", "-m", help="mv, wawa, ds, onecoin, clustered-ds, glad or mace"),
    out: Path | None = typer.Option(None, "--out", "-o", help="CSV of item, label, confidence (default: stdout)"),
    proba: bool = typer.Option(False, "--proba", help="add one posterior column per class (p_<class>)"),
    confusions: Path | None = typer.Option(None, "--confusions", help="write the confusion matrices as JSON"),
    force: bool = typer.Option(False, "--force", help="overwrite existing output files"),
    report: Path | None = ReportOption,
    progress: bool | None = ProgressOption,
    quiet: bool = QuietOption,
    fmt: str | None = FormatOption,
    item_col: str | None = ItemColOption,
    annotator_col: str | None = AnnotatorColOption,
    label_col: str | None = LabelColOption,
    header: bool | None = HeaderOption,
    sep: str | None = SepOption,
    classes: str | None = ClassesOption,
    on_duplicate: str = DuplicateOption,
    ids: str = IdsOption,
    scheduler: str | None = typer.Option(
        None,
        "--scheduler",
        help="address of a running Dask scheduler: fit there (Parquet input; mv, ds, onecoin, mace)",
    ),
    workers: int | None = typer.Option(
        None, "--workers", min=1, help="fit on a local Dask cluster of N worker processes (Parquet input)"
    ),
    worker_memory: str | None = typer.Option(
        None, "--worker-memory", help="with --workers: memory limit of each worker, e.g. 2GiB (spills to disk beyond)"
    ),
    out_of_core: bool = typer.Option(
        False,
        "--out-of-core",
        help="with --workers/--scheduler: re-read the files every EM pass (bounded memory)",
    ),
) -> None:
    """Infer each item's label from crowd labels (majority vote, Dawid-Skene, GLAD, MACE, ...).

    With --workers N or --scheduler ADDRESS the labels (a Parquet file or a folder of Parquet
    files, every item's labels in one file) are aggregated by the Dask backend (docs/scale.md).
    """
    from crowdlearn.aggregate import METHODS

    if method not in METHODS:
        fail(f"--method must be one of {', '.join(METHODS)}, got {method!r}", code=2)
    _check_outputs(force, {"--out": out, "--confusions": confusions, "--report": report}, {"FILE": file})
    if scheduler is not None or workers is not None:
        _aggregate_dask(
            file, method, out, proba, confusions, force, report, progress, quiet, fmt, item_col, annotator_col,
            label_col, scheduler=scheduler, workers=workers, worker_memory=worker_memory, out_of_core=out_of_core,
        )  # fmt: skip
        return
    for flag, value in (("--worker-memory", worker_memory), ("--out-of-core", out_of_core or None)):
        if value is not None:
            fail(f"{flag} needs --workers N or --scheduler ADDRESS", code=2)
    if file.is_dir():
        fail(
            f"{file} is a folder; a folder of Parquet files is read by the Dask backend: "
            "add --workers N or --scheduler ADDRESS"
        )
    ann = load_annotations_option(
        file, fmt, item_col, annotator_col, label_col, header, sep, classes, on_duplicate, ids
    )
    agg: Any = METHODS[method]()
    with _em_progress(agg, _show_progress(progress, quiet)) as callback:
        agg.fit(ann, callback=callback)
    from crowdlearn.io import atomic_outputs

    with atomic_outputs(overwrite=force, force_hint="--force") as staged:
        table = _write_table(
            _prediction_table(ann.item_ids, ann.classes, agg.probas_, proba, agg.labels_), out, force, staged
        )
        if confusions is not None:
            _write_confusions(
                confusions, method, ann.classes, agg.priors_, ann.annotator_ids, agg.confusions_, force, staged
            )
        if report is not None:
            from crowdlearn.report import render_html

            page = render_html(ann, aggregator=agg, title=f"crowdlearn aggregate --method {method}: {file.name}")
            with staged.open(report) as fh:
                fh.write(page)
    if table is not None:
        typer.echo(table, nl=False)


#: Aggregators with a Dask backend, by command-line name.
DASK_METHODS = ("mv", "ds", "onecoin", "mace")


def _local_cluster(n_workers: int, memory_limit: str | None) -> Any:
    """A LocalCluster of ``n_workers`` processes, one thread each, HTTP server on a free port."""
    from distributed import LocalCluster

    return LocalCluster(  # type: ignore[no-untyped-call]
        n_workers=n_workers,
        threads_per_worker=1,
        processes=True,
        memory_limit=memory_limit if memory_limit is not None else "auto",
        dashboard_address=":0",
        scheduler_port=0,
    )


def _aggregate_dask(
    file: Path,
    method: str,
    out: Path | None,
    proba: bool,
    confusions: Path | None,
    force: bool,
    report: Path | None,
    progress: bool | None,
    quiet: bool,
    fmt: str | None,
    item_col: str | None,
    annotator_col: str | None,
    label_col: str | None,
    *,
    scheduler: str | None,
    workers: int | None,
    worker_memory: str | None,
    out_of_core: bool,
) -> None:
    """``aggregate`` on a Dask cluster: Parquet in, the prediction table streamed out partition by partition."""
    if scheduler is not None and workers is not None:
        fail("give either --scheduler ADDRESS or --workers N, not both", code=2)
    if worker_memory is not None and workers is None:
        fail("--worker-memory sets the workers of --workers N (a running scheduler's workers have their own)", code=2)
    if method not in DASK_METHODS:
        fail(f"--method {method} has no Dask backend; with --workers/--scheduler use one of {', '.join(DASK_METHODS)}")
    if report is not None:
        fail("--report needs the labels in memory; it is not available with --workers/--scheduler", code=2)
    if fmt not in (None, "parquet") or (file.is_file() and file.suffix.lower() not in (".parquet", ".pq")):
        fail(f"the Dask backend reads Parquet (a .parquet file or a folder of them); got {file}")
    try:
        import dask  # noqa: F401

        import distributed
    except ImportError:
        fail("--workers/--scheduler need dask: pip install 'crowdlearn[dask]'")
    from crowdlearn.aggregate import METHODS
    from crowdlearn.aggregate.dask_backend import fit_dask, read_parquet_labels

    frame = read_parquet_labels(file, item_col=item_col, annotator_col=annotator_col, label_col=label_col)
    cluster = _local_cluster(workers, worker_memory) if workers is not None else None
    try:
        try:
            client = distributed.Client(cluster if cluster is not None else scheduler, timeout="20s")  # type: ignore[no-untyped-call]
        except OSError as exc:
            fail(f"cannot reach the Dask scheduler at {scheduler!r}: {' '.join(str(exc).split())}")
        with client:
            agg: Any = METHODS[method]()
            with _em_progress(agg, _show_progress(progress, quiet)) as callback:
                fit_dask(agg, frame, callback=callback, persist=not out_of_core)
            _write_dask_outputs(agg, method, out, proba, confusions, force)
    finally:
        if cluster is not None:
            cluster.close()


def _write_dask_outputs(
    agg: Any, method: str, out: Path | None, proba: bool, confusions: Path | None, force: bool
) -> None:
    """The prediction table partition by partition (memory: one partition), committed atomically."""
    import numpy as np

    from crowdlearn.io import STDOUT, atomic_outputs

    classes = agg.classes_
    probas = agg.probas_frame_
    labels = agg.labels_frame_

    def tables() -> Iterator[Any]:
        for i in range(probas.npartitions):
            p, lab = probas.get_partition(i).compute(), labels.get_partition(i).compute()
            T = p.to_numpy()
            best = np.asarray(pd_index_of(classes, lab.to_numpy()))
            yield _prediction_table(p.index.to_numpy(), classes, T, proba, best)

    with atomic_outputs(overwrite=force, force_hint="--force") as staged:
        if out is None or str(out) == STDOUT:
            for k, table in enumerate(tables()):
                typer.echo(table.to_csv(index=False, header=k == 0, lineterminator="\n"), nl=False)
        else:
            with staged.open(out) as fh:
                for k, table in enumerate(tables()):
                    table.to_csv(fh, index=False, header=k == 0, lineterminator="\n")
        if confusions is not None:
            _write_confusions(
                confusions, method, classes, agg.priors_, agg.annotator_ids_, agg.confusions_, force, staged
            )


def pd_index_of(classes: Any, values: Any) -> Any:
    """Class indices of class ids ``values`` (n,) in ``classes`` (K,)."""
    import pandas as pd

    return pd.Index(classes).get_indexer(values)


def _write_confusions(
    path: Path,
    method: str,
    classes: Any,
    priors: Any,
    annotator_ids: Any,
    matrices: Any,
    force: bool,
    staged: AtomicOutputs | None = None,
) -> None:
    """JSON of the confusion matrices (M, K, K), one entry per annotator, written atomically
    (prepared in ``staged`` when given, committed with the command's other outputs)."""
    from crowdlearn.io import atomic_write

    doc = {
        "method": method,
        "convention": "matrix[i][j] = P(annotator says class i | true class j); columns sum to 1",
        "classes": classes.tolist(),
        "priors": priors.tolist(),
        "annotators": [
            {"annotator": a, "matrix": m.tolist()} for a, m in zip(annotator_ids.tolist(), matrices, strict=True)
        ],
    }
    with atomic_write(path, overwrite=force) if staged is None else staged.open(path) as fh:
        json.dump(doc, fh, indent=1)


#: What each output option holds, for the error on ``-`` where standard output is not accepted.
_OUTPUT_KINDS = {
    "--out": "model (a binary safetensors file)",
    "--confusions": "confusions (JSON)",
    "--report": "report (HTML)",
    "--search-results": "search results (CSV)",
}


def _check_outputs(force: bool, outputs: dict[str, Path | None], inputs: dict[str, Path | None] | None = None) -> None:
    """Before any work: every output writable, absent unless --force, distinct, not an input.

    ``-`` (standard output) is accepted for the table outputs (``--out`` of aggregate and
    predict, ``--predictions``), refused for the others (see :func:`crowdlearn.io.check_outputs`).
    """
    from crowdlearn.io import check_outputs

    tables = ("--predictions",) if "--predictions" in outputs else ("--out",)
    kinds = {k: v for k, v in _OUTPUT_KINDS.items() if k not in tables}
    check_outputs(
        dict(outputs), dict(inputs or {}), overwrite=force, force_hint="--force", stdout_ok=tables, kinds=kinds
    )


def _refuse_existing(force: bool, *paths: Path | None) -> None:
    """Fail before any work when an output exists (without --force) or cannot be written."""
    from crowdlearn.io import check_outputs

    check_outputs({str(p): p for p in paths if p is not None}, overwrite=force, force_hint="--force")


def _prediction_table(ids: Any, classes: Any, proba: Any, with_proba: bool, best: Any = None) -> Any:
    """DataFrame item, label, confidence (+ p_<class> columns) from (N, K) probabilities.

    ``best`` (N,) gives the chosen class indices (e.g. an aggregator's tie-broken labels);
    default the argmax of ``proba``.
    """
    import numpy as np
    import pandas as pd

    best = np.asarray(proba).argmax(axis=1) if best is None else np.asarray(best)
    table = pd.DataFrame({"item": ids, "label": classes[best], "confidence": proba[np.arange(len(best)), best]})
    if with_proba:
        for k, c in enumerate(classes.tolist()):
            table[f"p_{c}"] = proba[:, k]
    return table


def _write_table(table: Any, out: Path | None, force: bool, staged: AtomicOutputs | None = None) -> str | None:
    """CSV of ``table`` to ``out`` (atomic, refused if it exists unless ``force``) or to stdout.

    With ``staged`` the file is prepared there (committed with the command's other outputs) and
    the CSV text for standard output (``out`` None or ``-``) is returned for the caller to print
    after the commit; without it, it is printed at once and None is returned.
    """
    from crowdlearn.io import STDOUT, atomic_write

    if out is None or str(out) == STDOUT:
        text: str = table.to_csv(index=False, lineterminator="\n")
        if staged is not None:
            return text
        typer.echo(text, nl=False)
        return None
    with atomic_write(out, overwrite=force) if staged is None else staged.open(out) as fh:
        table.to_csv(fh, index=False, lineterminator="\n")
    return None


FeaturesOption = typer.Option(
    ...,
    "--features",
    "-x",
    exists=True,
    dir_okay=False,
    readable=True,
    help="item features: .npy (row i = item id i) or csv/tsv/parquet with an item column and numeric columns",
)


def _or(words: list[str] | tuple[str, ...]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _builtin_methods() -> tuple[str, ...]:
    """The registered methods, without loading plug-ins or torch (for the help texts)."""
    from crowdlearn.nn.registry import available_methods

    return available_methods(entry_points=False)


def _method_help() -> str:
    return f"{_or(_builtin_methods())}, or a method registered as a plug-in (docs/training.md)"


def _lam_help() -> str:
    from crowdlearn.nn.registry import get_method

    names = _builtin_methods()
    used = [n for n in names if "lam" in get_method(n).param_names]
    ignored = [n for n in names if n not in used]
    return f"regularization weight, used by {_or(used)}; ignored by {_or(ignored)}"


def _method_params_help() -> str:
    from crowdlearn.nn.registry import get_method

    parts = []
    for name in _builtin_methods():
        names = get_method(name).param_names
        if names:
            parts.append(f"{name}: {', '.join(names)}")
    return "; ".join(parts) + " (lam and eps also as --lam and the default eps)"


def _parse_method_params(pairs: list[str], spec: Any) -> dict[str, float | int]:
    """``--method-param NAME=VALUE`` values, checked against the method's declared parameters."""
    out: dict[str, float | int] = {}
    declared = {p.name: p for p in spec.params}
    for pair in pairs:
        name, eq, text = pair.partition("=")
        name = name.strip()
        if not eq or not name:
            fail(f"--method-param must be NAME=VALUE, got {pair!r}", code=2)
        if name not in declared:
            have = ", ".join(declared) or "none"
            fail(f"--method-param {name}: not a parameter of --method {spec.name} (its parameters: {have})", code=2)
        if name in out:
            fail(f"--method-param {name} is given twice", code=2)
        try:
            value = float(text)
        except ValueError:
            fail(f"--method-param {name}={text}: expected a number", code=2)
        if declared[name].integer and value.is_integer():
            value = int(value)
        try:
            out[name] = declared[name].check(value, "crowdlearn train", f"--method-param {name}")
        except ValueError as exc:
            fail(str(exc), code=2)
    return out


#: CrowdClassifier parameters a --search grid file may not set: the command sets them (or they
#: cannot vary between the search's fits; see crowdlearn.model_selection.FORBIDDEN_GRID_KEYS).
_CLI_ONLY_KEYS = {"verbose": "set by --progress / --quiet"}
#: The train flags that set a CrowdClassifier parameter, with their defaults: a grid key may not
#: also be given by its flag.
_GRID_FLAGS: dict[str, tuple[str, str]] = {
    "method": ("--method", "method"),
    "lam": ("--lam", "lam"),
    "epochs": ("--epochs", "epochs"),
    "lr": ("--lr", "lr"),
    "confusion_lr": ("--confusion-lr", "confusion_lr"),
    "batch_size": ("--batch-size", "batch_size"),
    "init": ("--init", "init"),
    "mixup": ("--mixup", "mixup"),
    "random_state": ("--seed", "seed"),
}


def _toml_key(key: str) -> str:
    """A grid key as the TOML file spells it (``method_params__lam`` -> ``method_params.lam``)."""
    return key.replace("method_params__", "method_params.", 1)


#: The named criteria of ``--search`` (``CrowdSearchCV(criterion=...)``; cli imports no model_selection).
SEARCH_CRITERIA = ("holdout", "kfold", "holdout-items", "kfold-items")


def read_search_grid(path: Path) -> tuple[dict[str, list[Any]], dict[str, Any]]:
    """The grid and the ``[search]`` table of a ``--search`` TOML file (checked; exit 1 naming the file).

    The file's top-level keys are CrowdClassifier parameters mapping to lists of values; a
    ``[method_params]`` table maps method parameter names to lists; a ``[search]`` table may set
    ``criterion`` ("holdout", "kfold", "holdout-items" or "kfold-items") and ``cv`` (an integer >= 2).
    """
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib

    if not path.is_file():
        fail(f"{path}: no such grid file (--search)" if not path.exists() else f"{path}: not a file (--search)")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        fail(f"{path}: not a UTF-8 text file ({exc.reason} at byte {exc.start}); --search expects a TOML grid")
    except tomllib.TOMLDecodeError as exc:
        fail(f"{path}: not valid TOML: {' '.join(str(exc).split())}")
    settings = data.pop("search", {})
    if not isinstance(settings, dict):
        fail(f"{path}: search must be a table ([search]) with criterion and cv, got {show(settings)}")
    for key in settings:
        if key not in ("criterion", "cv"):
            fail(f"{path}: [search] key {key!r} is unknown (expected criterion, cv)")
    grid: dict[str, list[Any]] = {}
    method_params = data.pop("method_params", None)
    for key, values in data.items():
        if key in _CLI_ONLY_KEYS:
            fail(f"{path}: key {key} cannot be searched ({_CLI_ONLY_KEYS[key]})")
        if isinstance(values, dict):
            fail(f"{path}: key {key} must be a list of values, got a table")
        grid[key] = values
    if method_params is not None:
        if not isinstance(method_params, dict):
            fail(f"{path}: method_params must be a table ([method_params]) of lists, got {show(method_params)}")
        for name, values in method_params.items():
            grid[f"method_params__{name}"] = values
    if not grid:
        fail(f"{path}: the grid has no keys; give CrowdClassifier parameters as lists, e.g. lr = [0.001, 0.01]")
    return grid, settings


@app.command()
@user_errors
def train(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True, help="label file"),
    features: Path = FeaturesOption,
    out: Path = typer.Option(..., "--out", "-o", help="model file to write (safetensors + JSON metadata)"),
    method: str = typer.Option("geocrowdnet-f", "--method", "-m", help=_method_help()),
    method_param: list[str] = typer.Option(
        [],
        "--method-param",
        metavar="NAME=VALUE",
        help="a parameter of --method (repeatable): " + _method_params_help(),
    ),
    lam: float = typer.Option(0.01, "--lam", help=_lam_help()),
    epochs: int | None = typer.Option(None, "--epochs", min=1, help="training epochs (default: the method's recipe)"),
    lr: float | None = typer.Option(
        None, "--lr", help="Adam learning rate of the classifier (default: the method's recipe)"
    ),
    confusion_lr: float | None = typer.Option(None, "--confusion-lr", help="learning rate of the confusions"),
    batch_size: int | None = typer.Option(
        None, "--batch-size", min=1, help="items per batch (default: the method's recipe)"
    ),
    init: str | None = typer.Option(
        None, "--init", help="initial confusions: identity, uniform, mv or ds (default: the method's recipe)"
    ),
    mixup: float | None = typer.Option(
        None, "--mixup", help="mixup Beta parameter, 0: off (default: the method's recipe)"
    ),
    validation: str = typer.Option(
        "holdout", "--validation", help="holdout (held-out crowd labels pick the epoch) or none (last epoch)"
    ),
    seed: int = typer.Option(
        0, "--seed", help="seed of the weights, shuffling and holdout split (CrowdClassifier's random_state)"
    ),
    truth: Path | None = typer.Option(
        None, "--truth", exists=True, dir_okay=False, help="true labels of some items: accuracy is reported only"
    ),
    predictions: Path | None = typer.Option(
        None, "--predictions", help="CSV of item, label, confidence for every feature row"
    ),
    confusions: Path | None = typer.Option(None, "--confusions", help="write the learned confusions as JSON"),
    force: bool = typer.Option(False, "--force", help="overwrite existing output files"),
    allow_untrusted: bool = typer.Option(
        False,
        "--allow-untrusted",
        help="write a model that fails the post-fit checks (collapsed, or classes flipped against the "
        "crowd) with a warning line and exit 0; without it such a run writes nothing and exits "
        f"{UNTRUSTED_MODEL_EXIT}",
    ),
    report: Path | None = ReportOption,
    progress: bool | None = ProgressOption,
    quiet: bool = QuietOption,
    search: Path | None = typer.Option(
        None,
        "--search",
        metavar="GRID.toml",
        help="search a grid of parameters without clean labels (a TOML file: parameter = [values]; "
        "docs/training.md) and write the best point refit on all labels",
    ),
    criterion: str | None = typer.Option(
        None,
        "--criterion",
        help="with --search: kfold (default), holdout, holdout-items or kfold-items (held-out crowd-label NLL; "
        "-items holds out whole items)",
    ),
    cv: int | None = typer.Option(None, "--cv", help="with --search and a kfold criterion: folds (default 3)"),
    search_results: Path | None = typer.Option(
        None, "--search-results", help="with --search: CSV of every grid point's scores (cv_results_)"
    ),
    distributed: bool = typer.Option(
        False,
        "--distributed",
        help="data-parallel over the processes of torchrun "
        "(python -m torch.distributed.run --nproc_per_node=N -m crowdlearn train ... --distributed)",
    ),
    fmt: str | None = FormatOption,
    item_col: str | None = ItemColOption,
    annotator_col: str | None = AnnotatorColOption,
    label_col: str | None = LabelColOption,
    header: bool | None = HeaderOption,
    sep: str | None = SepOption,
    classes: str | None = ClassesOption,
    on_duplicate: str = DuplicateOption,
    ids: str = IdsOption,
) -> None:
    """Learn a classifier and every annotator's confusion matrix end to end (CCEM, GeoCrowdNet, ...).

    Every input and output is checked before the first epoch; the outputs are written together
    at the end (all or nothing). ``--predictions -`` prints the table on stdout (the messages
    then go to stderr). A model that fails the post-fit checks (it predicts one class for nearly
    every item, or its classes look permuted against the crowd's majority vote) is reported in
    one line with the advice, nothing is written and the exit code is 3, unless
    ``--allow-untrusted`` is given (then a warning line, the outputs and exit 0).
    """
    from crowdlearn.estimators import CrowdClassifier
    from crowdlearn.io import STDOUT, align_features, atomic_outputs, read_features, read_truth, truth_array
    from crowdlearn.nn.registry import available_methods, get_method
    from crowdlearn.train import TrainingDivergedError
    from crowdlearn.train.trainer import MAX_LR

    try:
        registered = available_methods()
    except RuntimeError as exc:  # a broken crowdlearn.methods entry point
        fail(str(exc))
    if method not in registered:
        fail(f"--method must be one of {', '.join(registered)}, got {method!r}", code=2)
    spec = get_method(method)
    method_params = _parse_method_params(method_param, spec)
    if "lam" in method_params and lam != 0.01 and method_params["lam"] != lam:
        fail(f"--lam {lam:g} and --method-param lam={method_params['lam']:g} disagree; give one", code=2)
    inits = [i for i in spec.inits if i != "array"]
    if init is not None and init not in inits:
        fail(f"--init must be {_or(inits)} with --method {method}, got {init!r}", code=2)
    if validation not in ("holdout", "none"):
        fail(f"--validation must be holdout or none, got {validation!r}", code=2)
    if lr is not None:
        _check_number("--lr", lr, strict=True, hi=MAX_LR)
    if confusion_lr is not None:
        _check_number("--confusion-lr", confusion_lr, strict=True, hi=MAX_LR)
    _check_number("--lam", lam, strict=False)
    if mixup is not None:
        _check_number("--mixup", mixup, strict=False)
    if seed < 0:
        fail(f"--seed must be an integer >= 0, got {seed}", code=2)
    grid, search_settings = _search_options(
        search, criterion, cv, search_results, distributed, validation, method_param, locals()
    )
    _check_outputs(
        force,
        {
            "--out": out,
            "--predictions": predictions,
            "--confusions": confusions,
            "--report": report,
            "--search-results": search_results,
        },
        {"FILE": file, "--features": features, "--truth": truth, "--search": search},
    )
    to_stderr = predictions is not None and str(predictions) == STDOUT

    def say(message: str) -> None:
        if not quiet:
            typer.echo(message, err=to_stderr)

    ann = load_annotations_option(
        file, fmt, item_col, annotator_col, label_col, header, sep, classes, on_duplicate, ids
    )
    feature_ids, X = read_features(features, ids=ids)  # type: ignore[arg-type]
    X_items, unlabelled = align_features(ann, feature_ids, X)
    series = None  # the truth file, read and checked once before training
    truth_pos = None
    if truth is not None:
        import pandas as pd

        from crowdlearn.io import match_ids

        series = read_truth(truth, ids=ids)  # type: ignore[arg-type]
        truth_pos = match_ids(feature_ids, series.index.to_numpy())
        known = truth_pos >= 0
        if not known.any():
            fail(
                f"{truth}: none of the {len(series)} truth items is an item of the labels or a feature row "
                f"(e.g. truth item {show(series.index[0])}, feature row {show(feature_ids[0])}); "
                "is it the truth of another dataset?"
            )
        cls = pd.Index(ann.classes).get_indexer(pd.Index(series.to_numpy()[known]))
        if (cls < 0).any():
            j = int((cls < 0).argmax())
            item = series.index[known].tolist()[j]
            label = series.to_numpy()[known].tolist()[j]
            fail(
                f"{truth}: truth label {show(label)} of item {show(item)} is not one of the classes "
                f"{[show(c) for c in ann.classes.tolist()[:20]]}"
            )
    clf = CrowdClassifier(
        method=method,
        method_params=method_params or None,
        lam=lam,
        epochs=epochs,
        lr=lr,
        confusion_lr=confusion_lr,
        batch_size=batch_size,
        init=init,
        mixup=mixup,
        validation=validation,
        random_state=seed,
        verbose=1 if _show_progress(progress, quiet) else 0,
        sink=(lambda _: None) if quiet else None,
        distributed=distributed,
    )
    clf._validate_params()  # before the first epoch (and before a distributed group starts)
    searcher = None
    if search is not None:
        from crowdlearn.model_selection import CrowdSearchCV, expand_param_grid

        clf.set_params(verbose=0)  # one line per fit instead of a progress bar per fit
        try:
            expand_param_grid(clf, grid, key_name=_toml_key)
        except ValueError as exc:
            fail(f"{search}: {exc}")
        searcher = CrowdSearchCV(
            clf,
            grid,
            criterion=search_settings["criterion"],
            cv=search_settings["cv"],
            random_state=seed,
            verbose=0 if quiet else 1,
            sink=lambda line: typer.echo(f"search: {line}", err=True),
        )
    import warnings

    from crowdlearn.estimators import UntrustedModelWarning
    from crowdlearn.train.distributed import barrier, is_main_process, world_size

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UntrustedModelWarning)
            if searcher is None:
                clf.fit(X_items, ann)
            else:
                clf = searcher.fit(X_items, ann).best_estimator_
    except TrainingDivergedError as exc:
        if not is_main_process():  # every rank raises; rank 0 reports
            raise typer.Exit(1) from None
        fail(f"{exc} Nothing was written.")
    findings = clf.findings_.messages(flags=True) if clf.findings_ is not None else []
    if findings and not allow_untrusted:  # every rank fitted the same model and stops here
        if not is_main_process():
            raise typer.Exit(UNTRUSTED_MODEL_EXIT)
        fail(
            f"untrusted model: {'; '.join(findings)}. Nothing was written; --allow-untrusted writes it anyway",
            code=UNTRUSTED_MODEL_EXIT,
        )
    if not is_main_process():  # rank 0 writes in a distributed run
        barrier()  # every rank waits for rank 0's writes (a no-op in one process)
        return
    try:
        say(
            f"trained {clf.method} on {ann.n_items} items, {ann.n_labels} labels, {ann.n_annotators} annotators, "
            f"{ann.n_classes} classes; {X.shape[1]} features"
            + (f"; data-parallel over {world_size()} processes" if world_size() > 1 else "")
        )
        if len(unlabelled):
            say(f"{len(unlabelled)} feature rows have no labels: not used for training (predicted below)")
        if clf.best_epoch_ is not None:
            h = clf.history_[clf.best_epoch_]
            say(
                f"selected epoch {clf.best_epoch_ + 1} of {clf.training_params_['epochs']}: "
                f"held-out label NLL {h['valid_loss']:.4f}"
            )
        if searcher is not None:
            if not quiet:
                _print_search_table(searcher, err=to_stderr)
            say(_search_summary(searcher))
        for line in findings:  # --allow-untrusted: shown even with --quiet
            typer.echo(f"warning: {line}", err=True)
        for w in caught:  # the findings are shown above; other warnings go on to Python's handlers
            if not issubclass(w.category, UntrustedModelWarning):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        proba = clf.predict_proba(X)
        if series is not None and truth_pos is not None:
            import numpy as np

            known = truth_pos >= 0
            predicted = clf.classes_[proba[truth_pos[known]].argmax(axis=1)]
            acc = float(np.mean(predicted == series.to_numpy()[known]))
            say(
                f"accuracy on the {int(known.sum())} of {len(series)} items of {truth.name} "  # type: ignore[union-attr]
                f"with features: {acc:.4f}"
            )
        with atomic_outputs(overwrite=force, force_hint="--force") as staged:
            with staged.open(out, "wb") as fh:
                fh.write(clf.to_bytes())
            table = None
            if predictions is not None:
                table = _write_table(
                    _prediction_table(feature_ids, clf.classes_, proba, False), predictions, force, staged
                )
            if search_results is not None and searcher is not None:
                _write_table(searcher.results_frame(), search_results, force, staged)
            if confusions is not None:
                _write_confusions(
                    confusions,
                    clf.method,
                    clf.classes_,
                    clf.priors_,
                    clf.annotator_ids_,
                    clf.confusions_,
                    force,
                    staged,
                )
            if report is not None:
                from crowdlearn.io import match_ids
                from crowdlearn.report import render_html

                labelled = series is not None and bool((match_ids(ann.item_ids, series.index.to_numpy()) >= 0).any())
                page = render_html(
                    ann,
                    model=clf,
                    truth=truth_array(series, ann) if series is not None and labelled else None,
                    X=X_items,
                    title=f"crowdlearn train --method {clf.method}: {file.name}",
                )
                with staged.open(report) as fh:
                    fh.write(page)
    finally:
        barrier()  # every rank waits for rank 0's writes (a no-op in one process)
    say(f"model written to {out}")
    if predictions is not None:
        if table is not None:
            typer.echo(table, nl=False)
        else:
            say(f"predictions written to {predictions}")
    if confusions is not None:
        say(f"confusions written to {confusions}")
    if search_results is not None:
        say(f"search results written to {search_results}")
    if report is not None:
        say(f"report written to {report}")


def _flag_default(name: str) -> Any:
    """The default of the train command's parameter ``name`` (its typer option's default)."""
    default = inspect.signature(train).parameters[name].default
    return getattr(default, "default", default)


def _search_options(
    search: Path | None,
    criterion: str | None,
    cv: int | None,
    search_results: Path | None,
    distributed: bool,
    validation: str,
    method_param: list[str],
    given: dict[str, Any],
) -> tuple[dict[str, list[Any]], dict[str, Any]]:
    """The --search grid and its criterion and cv, checked against the other flags before any work."""
    if search is None:
        for flag, value in (("--criterion", criterion), ("--cv", cv), ("--search-results", search_results)):
            if value is not None:
                fail(f"{flag} needs --search GRID.toml", code=2)
        return {}, {}
    if distributed:
        fail("--search runs its fits in one process; it cannot be combined with --distributed", code=2)
    if validation != _flag_default("validation"):
        fail("--validation does not apply with --search (its --criterion selects the epochs); drop it", code=2)
    grid, settings = read_search_grid(search)
    for key in grid:
        param = "method_params" if key.startswith("method_params__") else key
        set_by = _GRID_FLAGS.get(param)
        if set_by is not None and given[set_by[1]] != _flag_default(set_by[1]):
            fail(f"{search}: key {_toml_key(key)} and {set_by[0]} both set {param}; give it once", code=2)
        if param == "method_params" and method_param:
            fail(
                f"{search}: key {_toml_key(key)} and --method-param both set method parameters; give them once", code=2
            )
    out: dict[str, Any] = {}
    choices: tuple[tuple[str, str, Any, Any], ...] = (
        ("criterion", "--criterion", criterion, "kfold"),
        ("cv", "--cv", cv, 3),
    )
    for name, flag, value, default in choices:
        in_file = settings.get(name)
        if value is not None and in_file is not None and value != in_file:
            fail(f"{flag} {value} and {search} [search] {name} = {show(in_file)} disagree; give one", code=2)
        chosen = value if value is not None else in_file if in_file is not None else default
        where = flag if value is not None else f"{search}: [search] {name}"
        if name == "criterion" and chosen not in SEARCH_CRITERIA:
            fail(
                f"{where} must be one of {', '.join(SEARCH_CRITERIA)}, got {show(chosen)}",
                code=2 if value is not None else 1,
            )
        if name == "cv" and (isinstance(chosen, bool) or not isinstance(chosen, int) or chosen < 2):
            fail(f"{where} must be an integer >= 2, got {show(chosen)}", code=2 if value is not None else 1)
        out[name] = chosen
    return grid, out


def _print_search_table(searcher: Any, *, err: bool) -> None:
    """Every grid point of a finished search as a rich table (rank, the point, score, epochs)."""
    import math

    from rich.console import Console
    from rich.table import Table

    res = searcher.cv_results_
    keys = [k[len("param_") :] for k in res if k.startswith("param_")]
    table = Table(title=f"crowdlearn train --search: {len(res['params'])} grid points (score = -held-out label NLL)")
    table.add_column("rank", justify="right")
    for key in keys:
        table.add_column(_toml_key(key))
    table.add_column("mean score", justify="right")
    table.add_column("std", justify="right")
    table.add_column("epochs", justify="right")
    table.add_column("fit s", justify="right")
    for i in range(len(res["params"])):
        mean = float(res["mean_test_score"][i])
        cells = [str(int(res["rank_test_score"][i]))]
        cells += ["-" if res[f"param_{k}"][i] is None else str(res[f"param_{k}"][i]) for k in keys]
        cells += [
            "diverged" if bool(res["diverged"][i]) else (f"{mean:.4f}" if math.isfinite(mean) else "nan"),
            f"{float(res['std_test_score'][i]):.4f}",
            str(int(res["refit_epochs"][i])),
            f"{float(res['mean_fit_time'][i]):.1f}",
        ]
        table.add_row(*cells)
    Console(stderr=err, width=max(100, 12 * (len(keys) + 5)), highlight=False).print(table)


def _search_summary(searcher: Any) -> str:
    point = ", ".join(f"{_toml_key(k)}={show(v)}" for k, v in searcher.best_params_.items())
    n = len(searcher.cv_results_["params"])
    crit = searcher.criterion
    over = "one held-out split" if crit.startswith("holdout") else f"{searcher.n_splits_} folds"
    return (
        f"search ({crit}): best grid point {searcher.best_index_ + 1} of {n} ({point}), "
        f"score {searcher.best_score_:.4f} "
        f"(mean held-out label NLL {-searcher.best_score_:.4f} over {over}); refit on all labels for "
        f"{searcher.refit_epochs_} epochs"
    )


def _check_number(flag: str, value: float, *, strict: bool, hi: float | None = None) -> None:
    """Usage error naming ``flag`` unless ``value`` is finite, > 0 (``strict``) or >= 0, and <= ``hi``."""
    import math

    ok = math.isfinite(value) and (value > 0 if strict else value >= 0) and (hi is None or value <= hi)
    if not ok:
        bound = f" and <= {hi:.2g} (Adam's step lr / (1 - beta1) must fit in float32)" if hi is not None else ""
        fail(f"{flag} must be a finite number {'>' if strict else '>='} 0{bound}, got {value:g}", code=2)


@app.command()
@user_errors
def predict(
    model: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True, help="model file from `train`"),
    features: Path = FeaturesOption,
    out: Path | None = typer.Option(None, "--out", "-o", help="CSV of item, label, confidence (default: stdout)"),
    proba: bool = typer.Option(False, "--proba", help="add one probability column per class (p_<class>)"),
    force: bool = typer.Option(False, "--force", help="overwrite an existing output file"),
) -> None:
    """Predict the class of every feature row with a model written by `crowdlearn train`."""
    from crowdlearn.estimators import CrowdClassifier
    from crowdlearn.io import read_features

    _check_outputs(force, {"--out": out}, {"MODEL": model, "--features": features})
    clf = CrowdClassifier.load(model)
    ids, X = read_features(features)
    _write_table(_prediction_table(ids, clf.classes_, clf.predict_proba(X), proba), out, force)


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
    ids: str = IdsOption,
    min_labels: int | None = typer.Option(None, "--min-labels", help="fewest labels to estimate a matrix"),
    min_class_labels: int = typer.Option(5, "--min-class-labels", help="fewest labels of a class for a specialist"),
    threshold: float = typer.Option(0.9, "--threshold", help="near-specialist closeness threshold in (0, 1]"),
    directions: int = typer.Option(64, "--directions", help="directions sampled by the scatter proxy"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
) -> None:
    """Identifiability diagnostics from Dawid-Skene confusions: specialists, coverage, connectivity."""
    from crowdlearn.diagnose import diagnose as run_diagnose

    ann = load_annotations_option(
        file, fmt, item_col, annotator_col, label_col, header, sep, classes, on_duplicate, ids
    )
    report = run_diagnose(
        ann,
        min_labels=min_labels,
        min_class_labels=min_class_labels,
        specialist_threshold=threshold,
        n_directions=directions,
    )
    typer.echo(json.dumps(report.to_dict(), indent=2) if as_json else str(report))


# --------------------------------------------------------------------------- crowdlearn simulate
#: The files of ``crowdlearn simulate OUTDIR`` (features: features.npy or features.csv).
SIMULATE_FILES = ("labels.csv", "truth.csv", "true_confusions.json", "settings.json")
#: Fewest classes the default parameters of a family / design allow (accuracy ranges above 1/K,
#: w-ssc's one or two zeros per row beside the diagonal).
_SIMULATE_MIN_CLASSES = {"diagonally-dominant": 3, "class-specialist": 3, "control": 3, "f-ssc": 3, "w-ssc": 4}


@app.command()
@user_errors
def simulate(
    outdir: Path = typer.Argument(..., help="folder to write (created if missing; its parent must exist)"),
    design: str | None = typer.Option(
        None,
        "--design",
        help="control, f-ssc, w-ssc or separable-uniform: confusions and item kind of a named design "
        "(with --obs-prob only)",
    ),
    family: str | None = typer.Option(
        None,
        "--family",
        help="confusion family (default diagonally-dominant): separable-uniform, hammer-spammer, "
        "diagonally-dominant, symmetric-flip, pair-flip, random, class-specialist or w-ssc",
    ),
    n_items: int = typer.Option(1000, "--n-items", min=1, help="items"),
    n_annotators: int = typer.Option(10, "--n-annotators", min=1, help="annotators"),
    n_classes: int = typer.Option(3, "--n-classes", min=2, help="classes (ids 0 .. n-1)"),
    per_item: int | None = typer.Option(
        None,
        "--per-item",
        min=1,
        help="exactly this many distinct annotators label each item (default 3, at most --n-annotators)",
    ),
    obs_prob: float | None = typer.Option(
        None, "--obs-prob", help="instead of --per-item: each (item, annotator) pair is labelled with this probability"
    ),
    n_features: int = typer.Option(10, "--n-features", min=1, help="feature dimension"),
    features_format: str = typer.Option("npy", "--features-format", help="npy (row i = item i) or csv"),
    seed: int = typer.Option(0, "--seed", help="seed of the confusions, truth, labels and features"),
    force: bool = typer.Option(False, "--force", help="replace existing files in OUTDIR"),
) -> None:
    """Write a simulated crowd: labels, truth, features, true confusions and the settings (JSON)."""
    import numpy as np
    import pandas as pd

    from crowdlearn import simulate as sim

    if design is not None and design not in sim.DESIGNS:
        fail(f"--design must be one of {', '.join(sim.DESIGNS)}, got {design!r}", code=2)
    if design is not None and family is not None:
        fail("give --design or --family, not both (a design fixes its confusion family)", code=2)
    if family is not None and family not in sim.CONFUSION_FAMILIES:
        fail(f"--family must be one of {', '.join(sim.CONFUSION_FAMILIES)}, got {family!r}", code=2)
    if per_item is not None and obs_prob is not None:
        fail("give --per-item or --obs-prob, not both", code=2)
    if design is not None and per_item is not None:
        fail("--design draws labels with --obs-prob; --per-item works with --family only", code=2)
    if obs_prob is not None and not 0 < obs_prob <= 1:
        fail(f"--obs-prob must be in (0, 1], got {obs_prob:g}", code=2)
    if per_item is not None and per_item > n_annotators:
        fail(f"--per-item ({per_item}) must be at most --n-annotators ({n_annotators})", code=2)
    kind, name = ("--design", design) if design is not None else ("--family", family or "diagonally-dominant")
    least = _SIMULATE_MIN_CLASSES.get(name, 2)
    if n_classes < least:
        fail(
            f"{kind} {name} needs --n-classes >= {least} (with its default parameters); with {n_classes} classes "
            "use --family hammer-spammer, symmetric-flip, pair-flip, random or separable-uniform",
            code=2,
        )
    if features_format not in ("npy", "csv"):
        fail(f"--features-format must be npy or csv, got {features_format!r}", code=2)
    if outdir.exists() and not outdir.is_dir():
        fail(f"{outdir}: exists and is not a folder")
    if not outdir.parent.is_dir():
        fail(f"{outdir.parent}: the parent folder of OUTDIR does not exist")
    names = (*SIMULATE_FILES, f"features.{features_format}")
    paths = {name: outdir / name for name in names}
    if outdir.is_dir():  # a missing OUTDIR is created below, after the checks
        _refuse_existing(force, *paths.values())

    g = np.random.default_rng(seed)
    observation: dict[str, Any]
    if design is not None:
        p = 0.3 if obs_prob is None else obs_prob
        observation = {"obs_prob": p}
        crowd = sim.simulate_design(
            design, n_items=n_items, n_annotators=n_annotators, n_classes=n_classes, p=p, random_state=g
        )
    else:
        family = family or "diagonally-dominant"
        fn = sim.CONFUSION_FAMILIES[family]
        takes_rng = "random_state" in inspect.signature(fn).parameters
        A = fn(n_annotators, n_classes, **({"random_state": g} if takes_rng else {}))
        if obs_prob is not None:
            observation = {"obs_prob": obs_prob}
            crowd = sim.simulate_crowd(A, n_items=n_items, p=obs_prob, random_state=g)
        else:
            observation = {"per_item": per_item or min(3, n_annotators)}
            crowd = sim.simulate_crowd(A, n_items=n_items, per_item=observation["per_item"], random_state=g)
    X = sim.item_features(crowd.true_posteriors, n_features, random_state=g)
    ann = crowd.annotations
    if ann.n_labels == 0:
        fail("the simulated crowd has no labels: raise --obs-prob")

    from crowdlearn.io import atomic_write, write_annotations, write_truth

    outdir.mkdir(exist_ok=True)
    write_annotations(ann, paths["labels.csv"], overwrite=force)
    write_truth(crowd.true_labels, paths["truth.csv"], ann, overwrite=force)
    features_path = paths[f"features.{features_format}"]
    if features_format == "npy":
        with atomic_write(features_path, mode="wb", overwrite=force) as fh:
            np.save(fh, X, allow_pickle=False)
    else:
        table = pd.DataFrame(X, columns=[f"f{j}" for j in range(X.shape[1])])
        table.insert(0, "item", ann.item_ids)
        _write_table(table, features_path, force)
    _write_confusions(
        paths["true_confusions.json"],
        "true (crowdlearn simulate)",
        ann.classes,
        crowd.true_posteriors.mean(axis=0),
        ann.annotator_ids,
        crowd.confusions,
        force,
    )
    settings = {
        "design": design,
        "family": None if design is not None else family,
        "n_items": n_items,
        "n_annotators": n_annotators,
        "n_classes": n_classes,
        **observation,
        "n_features": n_features,
        "seed": seed,
        "n_labels": ann.n_labels,
        "n_items_without_labels": int((ann.item_counts == 0).sum()),
        "files": {
            "labels": "labels.csv",
            "truth": "truth.csv",
            "features": features_path.name,
            "true_confusions": "true_confusions.json",
        },
    }
    with atomic_write(paths["settings.json"], overwrite=force) as fh:
        json.dump(settings, fh, indent=1)
    typer.echo(
        f"simulated {ann.n_labels} labels of {n_items} items by {n_annotators} annotators, {n_classes} classes "
        f"({design or family}); wrote {', '.join(str(paths[n]) for n in (*SIMULATE_FILES[:3], features_path.name))} "
        f"and {paths['settings.json']}"
    )


# --------------------------------------------------------------------------- crowdlearn evaluate
def _read_confusions(path: Path) -> tuple[list[Any], list[Any], Any]:
    """Classes, annotator ids and matrices (M, K, K) of a JSON written by ``--confusions`` / ``simulate``."""
    import numpy as np

    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a confusions JSON file ({exc})") from None
    if (
        not isinstance(doc, dict)
        or not isinstance(doc.get("classes"), list)
        or not isinstance(doc.get("annotators"), list)
    ):
        raise ValueError(
            f"{path}: expected a JSON object with 'classes' and 'annotators' lists (as --confusions writes)"
        )
    classes = doc["classes"]
    k = len(classes)
    ids: list[Any] = []
    matrices = []
    for n, entry in enumerate(doc["annotators"]):
        matrix = entry.get("matrix") if isinstance(entry, dict) else None
        try:
            arr = np.asarray(matrix, dtype=np.float64)
        except (TypeError, ValueError):
            arr = np.zeros(0)
        if not isinstance(entry, dict) or "annotator" not in entry or arr.shape != (k, k):
            raise ValueError(
                f"{path}: annotators[{n}] must be {{'annotator': id, 'matrix': {k} x {k} numbers}} "
                f"({k} classes), got {str(entry)[:80]}"
            )
        if not np.isfinite(arr).all():
            raise ValueError(f"{path}: annotator {entry['annotator']!r}: the matrix has non-finite entries")
        ids.append(entry["annotator"])
        matrices.append(arr)
    if not ids:
        raise ValueError(f"{path}: no annotators")
    return classes, ids, np.stack(matrices)


def _confusion_error(est_path: Path, true_path: Path) -> dict[str, Any]:
    """Relative Frobenius error of estimated vs true confusions, matched by annotator and class id."""
    from crowdlearn.metrics import confusion_estimation_error

    est_classes, est_ids, est = _read_confusions(est_path)
    true_classes, true_ids, true = _read_confusions(true_path)
    if sorted(map(str, est_classes)) != sorted(map(str, true_classes)):
        fail(
            f"{est_path} has classes {est_classes[:20]} but {true_path} has {true_classes[:20]}: "
            "the confusion matrices cannot be compared"
        )
    order = [list(map(str, true_classes)).index(str(c)) for c in est_classes]
    true = true[:, order][:, :, order]  # true matrices in the estimate's class order
    position = {str(a): m for m, a in enumerate(true_ids)}
    common = [(m, position[str(a)]) for m, a in enumerate(est_ids) if str(a) in position]
    if not common:
        fail(f"no annotator of {est_path} is in {true_path} (ids like {est_ids[:3]} vs {true_ids[:3]})")
    e_idx, t_idx = (list(v) for v in zip(*common, strict=True))
    per = confusion_estimation_error(est[e_idx], true[t_idx], per_annotator=True)
    return {
        "mean": float(per.mean()),
        "norm": "fro",
        "n_annotators": len(common),
        "n_estimated_without_truth": len(est_ids) - len(common),
        "n_true_not_estimated": len(true_ids) - len(common),
        "per_annotator": {str(est_ids[m]): float(v) for m, v in zip(e_idx, per.tolist(), strict=True)},
    }


@app.command()
@user_errors
def evaluate(
    predictions: Path = typer.Argument(
        ..., exists=True, dir_okay=False, readable=True, help="CSV of item, label[, confidence, p_<class>...]"
    ),
    truth: Path = typer.Option(..., "--truth", exists=True, dir_okay=False, readable=True, help="true labels"),
    confusions: Path | None = typer.Option(
        None, "--confusions", exists=True, dir_okay=False, help="estimated confusions JSON (aggregate/train)"
    ),
    true_confusions: Path | None = typer.Option(
        None, "--true-confusions", exists=True, dir_okay=False, help="true confusions JSON (simulate)"
    ),
    bins: int = typer.Option(15, "--bins", min=1, help="confidence bins of the ECE"),
    as_json: bool = typer.Option(False, "--json", help="print the results as JSON"),
) -> None:
    """Score predictions or aggregated labels against the truth (accuracy, per class, ECE, confusion error)."""
    import numpy as np
    import pandas as pd

    from crowdlearn.io import infer_format, read_truth
    from crowdlearn.metrics import expected_calibration_error

    if (confusions is None) != (true_confusions is None):
        fail("--confusions and --true-confusions go together (estimated and true matrices)", code=2)
    pred = read_truth(predictions)
    true = read_truth(truth)
    pred_keys = [str(i) for i in pred.index]
    true_pos = {str(i): n for n, i in enumerate(true.index)}
    rows = [(n, true_pos[k]) for n, k in enumerate(pred_keys) if k in true_pos]
    if not rows:
        fail(
            f"none of the {len(pred)} items of {predictions} is in {truth} "
            f"(item ids like {pred.index[:3].tolist()} vs {true.index[:3].tolist()})"
        )
    p_rows = np.array([r[0] for r in rows], dtype=np.int64)
    t_rows = np.array([r[1] for r in rows], dtype=np.int64)
    y_pred = np.array([str(v) for v in pred.to_numpy()[p_rows]])
    y_true = np.array([str(v) for v in true.to_numpy()[t_rows]])
    shown = {str(v): v.item() if isinstance(v, np.generic) else v for v in true.to_numpy()[t_rows]}
    per_class = [
        {"class": shown[c], "n": int((y_true == c).sum()), "accuracy": float(np.mean(y_pred[y_true == c] == c))}
        for c in sorted(shown, key=lambda c: (len(c), c))
    ]
    result: dict[str, Any] = {
        "predictions": str(predictions),
        "truth": str(truth),
        "n_scored": len(rows),
        "n_predicted_without_truth": len(pred) - len(rows),
        "n_truth_without_prediction": len(true) - len(rows),
        "accuracy": float(np.mean(y_pred == y_true)),
        "per_class": per_class,
        "ece": None,
        "ece_bins": bins,
        "confusion_error": None,
    }
    sep = {"tsv": "\t", "txt": " "}.get(infer_format(predictions), ",")
    columns = [str(c) for c in pd.read_csv(predictions, sep=sep, nrows=0).columns]
    p_cols = [c for c in columns if c.startswith("p_")]
    if p_cols:
        raw = pd.read_csv(predictions, sep=sep, usecols=p_cols, dtype=str, keep_default_na=False)[p_cols]
        proba = raw.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)[p_rows]
        bad = ~np.isfinite(proba) | (proba < 0) | (proba > 1)
        if bad.any():
            r, c = (int(v[0]) for v in np.nonzero(bad))
            fail(
                f"{predictions}, line {p_rows[r] + 2}, column {p_cols[c]!r}: value {raw.iloc[p_rows[r], c]!r} "
                "is not a probability in [0, 1]"
            )
        sums = proba.sum(axis=1)
        if not np.allclose(sums, 1.0, atol=1e-3):
            r = int(np.flatnonzero(~np.isclose(sums, 1.0, atol=1e-3))[0])
            fail(f"{predictions}, line {p_rows[r] + 2}: the p_<class> columns sum to {sums[r]:.6g}, expected 1")
        cls = [c[2:] for c in p_cols]
        missing = sorted(set(y_true) - set(cls))
        if missing:
            fail(f"{truth}: true class {shown[missing[0]]!r} has no probability column p_{missing[0]} in {predictions}")
        y_idx = np.array([cls.index(c) for c in y_true], dtype=np.int64)
        result["ece"] = expected_calibration_error(y_idx, proba, n_bins=bins)
    if confusions is not None and true_confusions is not None:
        result["confusion_error"] = _confusion_error(confusions, true_confusions)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    typer.echo(
        f"{predictions.name} vs {truth.name}: {result['n_scored']} items scored "
        f"({result['n_predicted_without_truth']} predicted items have no truth, "
        f"{result['n_truth_without_prediction']} true items no prediction)"
    )
    typer.echo(f"accuracy {result['accuracy']:.4f}")
    typer.echo("per class (true class: accuracy on its items):")
    for row in per_class:
        typer.echo(f"  {row['class']}: {row['accuracy']:.4f} (n={row['n']})")
    if result["ece"] is not None:
        typer.echo(f"ECE ({bins} bins) {result['ece']:.4f}")
    else:
        typer.echo("ECE: needs p_<class> columns (aggregate/predict --proba)")
    ce = result["confusion_error"]
    if ce is not None:
        typer.echo(
            f"confusion estimation error (mean relative Frobenius, one shared class alignment) {ce['mean']:.4f} "
            f"over {ce['n_annotators']} annotators"
        )


# --------------------------------------------------------------------------- crowdlearn report
@app.command("report")
@user_errors
def report_command(
    model: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True, help="model file from `train`"),
    out: Path = typer.Option(..., "--out", "-o", help="HTML file to write (self-contained)"),
    labels: Path | None = typer.Option(
        None, "--labels", exists=True, dir_okay=False, readable=True, help="the label file the model was trained on"
    ),
    truth: Path | None = typer.Option(
        None, "--truth", exists=True, dir_okay=False, readable=True, help="true labels (needs --labels)"
    ),
    features: Path | None = typer.Option(
        None,
        "--features",
        "-x",
        exists=True,
        dir_okay=False,
        readable=True,
        help="item features, to score the model's predictions against --truth",
    ),
    title: str | None = typer.Option(None, "--title", help="page title (default: from the model file name)"),
    force: bool = typer.Option(False, "--force", help="overwrite an existing output file"),
    fmt: str | None = FormatOption,
    item_col: str | None = ItemColOption,
    annotator_col: str | None = AnnotatorColOption,
    label_col: str | None = LabelColOption,
    header: bool | None = HeaderOption,
    sep: str | None = SepOption,
    classes: str | None = ClassesOption,
    on_duplicate: str = DuplicateOption,
    ids: str = IdsOption,
) -> None:
    """Write the HTML report of a saved model: annotators, confusion heatmaps, training curves, accuracy."""
    from crowdlearn.estimators import CrowdClassifier
    from crowdlearn.io import align_features, read_features, read_truth, truth_array
    from crowdlearn.report import write_html

    if labels is None and (truth is not None or features is not None):
        fail("--truth and --features need --labels (the label file the model was trained on)", code=2)
    _refuse_existing(force, out)
    clf = CrowdClassifier.load(model)
    ann = None
    truth_idx = X_items = None
    if labels is not None:
        ann = load_annotations_option(
            labels, fmt, item_col, annotator_col, label_col, header, sep, classes, on_duplicate, ids
        )
        if truth is not None:
            truth_idx = truth_array(read_truth(truth, ids=ids), ann)  # type: ignore[arg-type]
        if features is not None:
            feature_ids, X = read_features(features, ids=ids)  # type: ignore[arg-type]
            X_items, _ = align_features(ann, feature_ids, X)
    write_html(
        out,
        ann,
        model=clf,
        truth=truth_idx,
        X=X_items,
        title=title or f"crowdlearn report: {model.name}",
        overwrite=force,
    )
    typer.echo(f"report written to {out}")


# --------------------------------------------------------------------------- crowdlearn quality
#: The files ``crowdlearn quality --out DIR`` writes (all or none).
QUALITY_FILES = ("agreement.json", "items.csv", "annotators.csv", "annotator_pairs.csv")


def _check_model_matches(clf: Any, ann: Annotations) -> None:
    """The model's annotator and class ids must be the label file's (as in the report)."""
    for what, mine, theirs in (
        ("annotators", clf.annotator_ids_, ann.annotator_ids),
        ("classes", clf.classes_, ann.classes),
    ):
        a, b = [str(v) for v in mine.tolist()], [str(v) for v in theirs.tolist()]
        if a != b:
            k = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            raise ValueError(
                f"the model's {what} differ from FILE's (position {k}: {a[k] if k < len(a) else 'none'!r} vs "
                f"{b[k] if k < len(b) else 'none'!r}): pass the label file the model was trained on"
            )


def _fmt(v: Any, digits: int = 3) -> str:
    import math

    if v is None:
        return "-"
    if isinstance(v, float) and math.isnan(v):
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


@app.command("quality")
@user_errors
def quality_command(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True, help="label file"),
    method: str = typer.Option("ds", "--method", "-m", help="aggregator giving the item posteriors"),
    model: Path | None = typer.Option(
        None, "--model", exists=True, dir_okay=False, readable=True, help="model file from `train` (its confusions)"
    ),
    features: Path | None = typer.Option(
        None,
        "--features",
        "-x",
        exists=True,
        dir_okay=False,
        readable=True,
        help="item features (needs --model): the model's predictions join the labels (CROWDLAB quality)",
    ),
    top: int = typer.Option(10, "--top", min=0, help="rows of the hardest-item and annotator tables"),
    levels: str = typer.Option(
        "nominal", "--levels", help="Krippendorff alpha levels, comma-separated: nominal, ordinal, interval, ratio"
    ),
    min_overlap: int = typer.Option(5, "--min-overlap", min=1, help="fewest shared items of an annotator pair"),
    out: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        help="folder (created if missing) for " + ", ".join(QUALITY_FILES) + " (written together, atomically)",
    ),
    force: bool = typer.Option(False, "--force", help="overwrite existing output files"),
    fmt: str | None = FormatOption,
    item_col: str | None = ItemColOption,
    annotator_col: str | None = AnnotatorColOption,
    label_col: str | None = LabelColOption,
    header: bool | None = HeaderOption,
    sep: str | None = SepOption,
    classes: str | None = ClassesOption,
    on_duplicate: str = DuplicateOption,
    ids: str = IdsOption,
) -> None:
    """Agreement, the hardest items and the annotator table of a label file (with a model, CROWDLAB scores)."""
    from rich.console import Console
    from rich.table import Table

    from crowdlearn import quality as q
    from crowdlearn.aggregate import METHODS

    if method not in METHODS:
        fail(f"--method must be one of {', '.join(METHODS)}, got {method!r}", code=2)
    if features is not None and model is None:
        fail("--features needs --model (the features feed the model's predictions)", code=2)
    level_list = [lv.strip() for lv in levels.split(",") if lv.strip()]
    bad = [lv for lv in level_list if lv not in ("nominal", "ordinal", "interval", "ratio")]
    if bad or not level_list:
        fail(f"--levels must be a comma-separated list of nominal, ordinal, interval, ratio; got {levels!r}", code=2)
    outputs = {name: (out / name if out is not None else None) for name in QUALITY_FILES}
    if out is not None:
        if out.exists() and not out.is_dir():
            fail(f"--out {out} exists and is not a folder")
        out.mkdir(parents=True, exist_ok=True)
        _check_outputs(force, {f"--out {n}": p for n, p in outputs.items()}, {"FILE": file})
    ann = load_annotations_option(
        file, fmt, item_col, annotator_col, label_col, header, sep, classes, on_duplicate, ids
    )
    if ann.n_labels == 0:
        fail(f"{file}: no labels; nothing to measure")
    summary = q.agreement_summary(ann, levels=tuple(level_list), min_overlap=min_overlap)  # type: ignore[arg-type]
    agg: Any = METHODS[method]().fit(ann)
    posteriors = agg.probas_
    confusions = getattr(agg, "confusions_", None)
    proba = None
    source = f"{method} posteriors"
    if model is not None:
        from crowdlearn.estimators import CrowdClassifier, item_posteriors

        clf = CrowdClassifier.load(model)
        _check_model_matches(clf, ann)
        confusions = clf.confusions_
        source = f"{method} posteriors, the model's confusions"
        if features is not None:
            from crowdlearn.io import align_features, read_features

            feature_ids, X = read_features(features, ids=ids)  # type: ignore[arg-type]
            X_items, _ = align_features(ann, feature_ids, X)
            proba = clf.predict_proba(X_items)
            posteriors = item_posteriors(proba, ann, clf.confusions_)
            source = "the model's posteriors (f(x) and its confusions) and CROWDLAB quality"
    items = q.item_scores(ann, posteriors, proba=proba)
    annotators = q.annotator_scores(ann, posteriors, confusions=confusions, proba=proba)
    pairs = q.cohen_kappa_pairs(ann, min_overlap=min_overlap)
    ranked = q.relabel_ranking(items)  # by quality with a model's predictions, else by confidence
    by_ann = "quality" if "quality" in annotators.columns else "accuracy"
    worst_annotators = annotators[annotators["n_labels"] > 0].sort_values(by_ann, kind="stable")

    console = Console(soft_wrap=False)
    agree = Table(title=f"Agreement ({summary.n_items_scored} items with 2+ labels)")
    agree.add_column("measure")
    agree.add_column("value", justify="right")
    for lv, v in summary.alpha.items():
        agree.add_row(f"Krippendorff's alpha ({lv})", _fmt(v))
    agree.add_row("Fleiss' kappa", _fmt(summary.fleiss_kappa))
    agree.add_row("percent agreement", _fmt(summary.percent_agreement))
    agree.add_row(
        f"mean Cohen's kappa ({summary.n_annotator_pairs} pairs, >= {min_overlap} shared items)",
        _fmt(summary.mean_cohen_kappa),
    )
    console.print(agree)
    by_item = "quality" if "quality" in items.columns else "confidence"
    typer.echo(f"item scores from {source}")
    hard = Table(title=f"Hardest items (lowest {by_item} first)")
    cols = ["rank", "item", "n_labels", "consensus", "confidence", "agreement"] + (
        ["quality"] if "quality" in items.columns else []
    )
    for c in cols:
        if c in ("item", "consensus"):
            hard.add_column(c, overflow="fold")
        else:
            hard.add_column(c, justify="right")
    head = ranked.head(top)  # records keep each column's dtype (iterrows would turn the counts into floats)
    for item_id, row in zip(head.index, head.to_dict("records"), strict=True):
        hard.add_row(*[_fmt(item_id) if c == "item" else _fmt(row[c]) for c in cols])
    console.print(hard)
    table = Table(title=f"Annotators (lowest {by_ann} first)")
    acols = ["annotator", "n_labels", "agreement", "accuracy", "spammer_score", "worst_class"] + (
        ["quality"] if "quality" in annotators.columns else []
    )
    shown = {"spammer_score": "spammer", "worst_class": "worst class"}  # short headers for 80 columns
    for c in acols:
        if c in ("annotator", "worst_class"):
            table.add_column(shown.get(c, c), overflow="fold")
        else:
            table.add_column(shown.get(c, c), justify="right")
    head = worst_annotators.head(top)
    for aid, row in zip(head.index, head.to_dict("records"), strict=True):
        table.add_row(*[_fmt(aid) if c == "annotator" else _fmt(row[c]) for c in acols])
    console.print(table)
    left = len(worst_annotators) - min(top, len(worst_annotators))
    if left > 0:
        typer.echo(
            f"({left} more annotators" + (f"; all in {outputs['annotators.csv']})" if out else "; --out writes all)")
        )
    if out is not None:
        from crowdlearn.io import atomic_outputs

        with atomic_outputs(overwrite=force, force_hint="--force") as staged:
            with staged.open(out / "agreement.json") as fh:
                json.dump(summary.to_dict(), fh, indent=2)
                fh.write("\n")
            with staged.open(out / "items.csv") as fh:
                items.to_csv(fh, lineterminator="\n")
            with staged.open(out / "annotators.csv") as fh:
                annotators.to_csv(fh, lineterminator="\n")
            with staged.open(out / "annotator_pairs.csv") as fh:
                pairs.to_csv(fh, index=False, lineterminator="\n")
        typer.echo(f"wrote {', '.join(QUALITY_FILES)} to {out}")


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
    out: Path = typer.Option(
        Path("demo-report"), "--out", help="folder for report.md, report.html, results.json, confusions.png"
    ),
    epochs: int = typer.Option(60, "--epochs", min=1, help="training epochs of every deep model"),
    seed: int = typer.Option(
        0, "--seed", help="seed of the data split, the crowd and the models (run_demo's random_state)"
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="print only the table"),
) -> None:
    """Run every method on scikit-learn's digits with a simulated crowd; print a table, write a report."""
    try:
        import sklearn  # noqa: F401
    except ImportError:
        fail("the demo needs scikit-learn for its data: pip install 'crowdlearn[sklearn]'")
    from crowdlearn.demo import run_demo, table_markdown, write_report

    # before the run: the folder (created if missing) and the files the demo replaces
    if out.exists() and not out.is_dir():
        fail(f"{out}: is not a folder (--out is the folder of the demo's report)")
    if out.is_dir():
        names = ("results.json", "report.md", "report.html", "confusions.png")
        _check_outputs(True, {f"--out {n}": out / n for n in names})
    result = run_demo(random_state=seed, epochs=epochs, log=None if quiet else lambda m: typer.echo(m, err=True))
    typer.echo(table_markdown(result))
    written = write_report(result, out)
    typer.echo("report: " + ", ".join(str(p) for p in written))
