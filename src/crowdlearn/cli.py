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
