"""The ``crowdlearn`` command line: a thin shell over the public API.

Every command exits 0 on success, 1 on invalid input (one clear line on stderr, no traceback)
and 2 on a usage error.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import typer

from crowdlearn._checks import show
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
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True, help="label file"),
    method: str = typer.Option("ds", "--method", "-m", help="mv, wawa, ds, onecoin, glad or mace"),
    out: Path | None = typer.Option(None, "--out", "-o", help="CSV of item, label, confidence (default: stdout)"),
    proba: bool = typer.Option(False, "--proba", help="add one posterior column per class (p_<class>)"),
    confusions: Path | None = typer.Option(None, "--confusions", help="write the confusion matrices as JSON"),
    force: bool = typer.Option(False, "--force", help="overwrite existing output files"),
    report: Path | None = ReportOption,
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
    """Infer each item's label from crowd labels (majority vote, Dawid-Skene, GLAD, MACE, ...)."""
    from crowdlearn.aggregate import METHODS

    if method not in METHODS:
        fail(f"--method must be one of {', '.join(METHODS)}, got {method!r}", code=2)
    _refuse_existing(force, report)
    ann = load_annotations_option(
        file, fmt, item_col, annotator_col, label_col, header, sep, classes, on_duplicate, ids
    )
    agg: Any = METHODS[method]().fit(ann)
    _write_table(_prediction_table(ann.item_ids, ann.classes, agg.probas_, proba, agg.labels_), out, force)
    if confusions is not None:
        _write_confusions(confusions, method, ann.classes, agg.priors_, ann.annotator_ids, agg.confusions_, force)
    if report is not None:
        from crowdlearn.report import write_html

        write_html(
            report, ann, aggregator=agg, title=f"crowdlearn aggregate --method {method}: {file.name}", overwrite=force
        )


def _write_confusions(
    path: Path, method: str, classes: Any, priors: Any, annotator_ids: Any, matrices: Any, force: bool
) -> None:
    """JSON of the confusion matrices (M, K, K), one entry per annotator, written atomically."""
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
    with atomic_write(path, overwrite=force) as fh:
        json.dump(doc, fh, indent=1)


def _refuse_existing(force: bool, *paths: Path | None) -> None:
    """Fail before any work when an output exists and --force is not given."""
    for path in paths:
        if path is not None and path.exists() and not force:
            fail(f"{path}: already exists (pass --force to replace it)")


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


def _write_table(table: Any, out: Path | None, force: bool) -> None:
    """CSV of ``table`` to ``out`` (atomic, refused if it exists unless ``force``) or to stdout."""
    from crowdlearn.io import atomic_write

    if out is None:
        typer.echo(table.to_csv(index=False, lineterminator="\n"), nl=False)
    else:
        with atomic_write(out, overwrite=force) as fh:
            table.to_csv(fh, index=False, lineterminator="\n")


FeaturesOption = typer.Option(
    ...,
    "--features",
    "-x",
    exists=True,
    dir_okay=False,
    readable=True,
    help="item features: .npy (row i = item id i) or csv/tsv/parquet with an item column and numeric columns",
)


@app.command()
@user_errors
def train(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True, help="label file"),
    features: Path = FeaturesOption,
    out: Path = typer.Option(..., "--out", "-o", help="model file to write (safetensors + JSON metadata)"),
    method: str = typer.Option(
        "geocrowdnet-f",
        "--method",
        "-m",
        help="ccem, geocrowdnet-f, geocrowdnet-w, tracereg, crowdlayer-mw, crowdlayer-vw, crowdlayer-vb or ce",
    ),
    lam: float = typer.Option(0.01, "--lam", help="regularization weight (GeoCrowdNet, TraceReg)"),
    epochs: int = typer.Option(100, "--epochs", min=1, help="training epochs"),
    lr: float = typer.Option(1e-3, "--lr", help="Adam learning rate of the classifier"),
    confusion_lr: float | None = typer.Option(None, "--confusion-lr", help="learning rate of the confusions"),
    batch_size: int = typer.Option(128, "--batch-size", min=1, help="items per batch"),
    init: str = typer.Option("identity", "--init", help="initial confusions: identity, uniform, mv or ds"),
    mixup: float = typer.Option(0.0, "--mixup", help="mixup Beta parameter (0: off)"),
    validation: str = typer.Option(
        "holdout", "--validation", help="holdout (held-out crowd labels pick the epoch) or none (last epoch)"
    ),
    seed: int = typer.Option(0, "--seed", help="seed of the weights, shuffling and holdout split"),
    truth: Path | None = typer.Option(
        None, "--truth", exists=True, dir_okay=False, help="true labels of some items: accuracy is reported only"
    ),
    predictions: Path | None = typer.Option(
        None, "--predictions", help="CSV of item, label, confidence for every feature row"
    ),
    confusions: Path | None = typer.Option(None, "--confusions", help="write the learned confusions as JSON"),
    force: bool = typer.Option(False, "--force", help="overwrite existing output files"),
    report: Path | None = ReportOption,
    progress: bool = typer.Option(False, "--progress", help="show a progress bar"),
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
    """Learn a classifier and every annotator's confusion matrix end to end (CCEM, GeoCrowdNet, ...)."""
    from crowdlearn.estimators import METHODS, CrowdClassifier
    from crowdlearn.io import align_features, read_features, read_truth
    from crowdlearn.train import TrainingDivergedError

    if method not in METHODS:
        fail(f"--method must be one of {', '.join(METHODS)}, got {method!r}", code=2)
    if init not in ("identity", "uniform", "mv", "ds"):
        fail(f"--init must be identity, uniform, mv or ds, got {init!r}", code=2)
    if validation not in ("holdout", "none"):
        fail(f"--validation must be holdout or none, got {validation!r}", code=2)
    _refuse_existing(force, out, predictions, confusions, report)
    ann = load_annotations_option(
        file, fmt, item_col, annotator_col, label_col, header, sep, classes, on_duplicate, ids
    )
    feature_ids, X = read_features(features, ids=ids)  # type: ignore[arg-type]
    X_items, unlabelled = align_features(ann, feature_ids, X)
    series = None  # the truth file, read (and matched to the items) before training
    if truth is not None:
        from crowdlearn.io import match_ids

        series = read_truth(truth, ids=ids)  # type: ignore[arg-type]
        truth_pos = match_ids(feature_ids, series.index.to_numpy())
        if not (truth_pos >= 0).any():
            fail(
                f"{truth}: none of the {len(series)} truth items is an item of the labels or a feature row "
                f"(e.g. truth item {show(series.index[0])}, feature row {show(feature_ids[0])}); "
                "is it the truth of another dataset?"
            )
    clf = CrowdClassifier(
        method=method,  # type: ignore[arg-type]
        lam=lam,
        epochs=epochs,
        lr=lr,
        confusion_lr=confusion_lr,
        batch_size=batch_size,
        init=init,
        mixup=mixup,
        validation=validation,
        seed=seed,
        verbose=1 if progress else 0,
        distributed=distributed,
    )
    from crowdlearn.train.distributed import is_main_process, world_size

    try:
        clf.fit(X_items, ann)
    except TrainingDivergedError as exc:
        if not is_main_process():  # every rank raises; rank 0 reports
            raise typer.Exit(1) from None
        fail(f"{exc} Nothing was written.")
    clf.save(out)  # rank 0 writes in a distributed run
    if not is_main_process():
        return
    typer.echo(
        f"trained {method} on {ann.n_items} items, {ann.n_labels} labels, {ann.n_annotators} annotators, "
        f"{ann.n_classes} classes; {X.shape[1]} features"
        + (f"; data-parallel over {world_size()} processes" if world_size() > 1 else "")
    )
    if len(unlabelled):
        typer.echo(f"{len(unlabelled)} feature rows have no labels: not used for training (predicted below)")
    if clf.best_epoch_ is not None:
        h = clf.history_[clf.best_epoch_]
        typer.echo(f"selected epoch {clf.best_epoch_ + 1} of {epochs}: held-out label NLL {h['valid_loss']:.4f}")
    proba = clf.predict_proba(X)
    if truth is not None and series is not None:
        import numpy as np

        known = truth_pos >= 0
        predicted = clf.classes_[proba[truth_pos[known]].argmax(axis=1)]
        acc = float(np.mean(predicted == series.to_numpy()[known]))
        typer.echo(
            f"accuracy on the {int(known.sum())} of {len(series)} items of {truth.name} with features: {acc:.4f}"
        )
    typer.echo(f"model written to {out}")
    if predictions is not None:
        _write_table(_prediction_table(feature_ids, clf.classes_, proba, False), predictions, force)
        typer.echo(f"predictions written to {predictions}")
    if confusions is not None:
        _write_confusions(confusions, method, clf.classes_, clf.priors_, clf.annotator_ids_, clf.confusions_, force)
        typer.echo(f"confusions written to {confusions}")
    if report is not None:
        from crowdlearn.io import match_ids, truth_array
        from crowdlearn.report import write_html

        labelled_truth = series is not None and bool((match_ids(ann.item_ids, series.index.to_numpy()) >= 0).any())

        write_html(
            report,
            ann,
            model=clf,
            truth=truth_array(series, ann) if series is not None and labelled_truth else None,
            X=X_items,
            title=f"crowdlearn train --method {method}: {file.name}",
            overwrite=force,
        )
        typer.echo(f"report written to {report}")


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

    _refuse_existing(force, out)
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
