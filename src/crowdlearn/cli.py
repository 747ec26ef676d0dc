"""The ``crowdlearn`` command line: a thin shell over the public API.

Every command exits 0 on success, 1 on invalid input (one clear line on stderr, no traceback)
and 2 on a usage error.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import typer

from crowdlearn.annotations import AnnotationsError

app = typer.Typer(
    name="crowdlearn",
    help="Deep learning from crowdsourced labels.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

F = TypeVar("F", bound=Callable[..., Any])

#: Exceptions that mean "the user's input is wrong": reported in one line, exit code 1.
USER_ERRORS: tuple[type[BaseException], ...] = (AnnotationsError, FileNotFoundError, IsADirectoryError, ValueError)


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


def main() -> None:
    """Entry point of the ``crowdlearn`` script."""
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


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
