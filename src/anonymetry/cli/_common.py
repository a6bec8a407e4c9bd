"""What every CLI command shares: error → exit code mapping, JSON output, the console,
progress on long work.

Exit codes (documented in README "Commands"): 0 ok; 1 a check, gate or budget refused; 2 a
usage or input error. :func:`run_cli` guarantees that bad input never shows a traceback: our
own errors, click/Typer usage errors, unreadable or unwritable paths (``OSError``) and data
DuckDB cannot process all become one line on stderr and exit 2.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import orjson
import typer
from rich.console import Console

from anonymetry.errors import (
    AnonymetryError,
    BudgetExhausted,
    InvalidParameter,
    KeyUnavailable,
    PolicyError,
    ReleaseBlocked,
    SchemaViolation,
)

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

EXIT_OK = 0
EXIT_REFUSED = 1  # a check, gate or budget said no
EXIT_USAGE = 2  # usage or input error


def print_json(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode())
    sys.stdout.write("\n")
    sys.stdout.flush()


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    """Print ``message`` to stderr and return an Exit to raise."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


@contextmanager
def working(description: str, *, quiet: bool = False) -> Iterator[None]:
    """A Rich spinner with elapsed time on stderr while long work runs (off with ``quiet``,
    e.g. under ``--json``, and when stderr is not a terminal); it disappears when done."""
    if quiet or not err_console.is_terminal:
        yield
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=err_console, transient=True) as progress:
        progress.add_task(description, total=None)
        yield


def existing_dir(path: Path, flag: str = "--data",
                 hint: str = "pass the collector's data directory (anonymetry serve --data DIR "
                             "creates it)") -> Path:
    """``path`` if it is a directory, else a usage error (exit 2) naming ``flag``."""
    if not path.is_dir():
        raise fail(f"{flag}: {path} is not a directory; {hint}")
    return path


def exit_code_for(exc: AnonymetryError) -> int:
    if isinstance(exc, BudgetExhausted | ReleaseBlocked):
        return EXIT_REFUSED
    if isinstance(exc, PolicyError | SchemaViolation | InvalidParameter | KeyUnavailable):
        return EXIT_USAGE
    return EXIT_REFUSED


def _usage_errors() -> tuple[type[Exception], ...]:
    """click's usage-error base, and Typer's vendored copy of it where Typer has one."""
    try:
        from typer._click.exceptions import ClickException as Vendored  # Typer ≥ 0.20
    except ImportError:  # pragma: no cover - older Typer raises click's own
        return (click.ClickException,)
    return (click.ClickException, Vendored)


_EXIT = (typer.Exit, click.exceptions.Exit)
_ABORT = (typer.Abort, click.exceptions.Abort)
_USAGE = _usage_errors()


# DuckDB errors that come from the data (unreadable file, a value of the wrong type), not from
# our SQL; matched by name so that commands without DuckDB need not import it.
_DUCKDB_INPUT_ERRORS = frozenset({"ConversionException", "InvalidInputException", "IOException",
                                  "OutOfRangeException", "HTTPException"})


def _is_duckdb_input_error(exc: BaseException) -> bool:
    kind = type(exc)
    return kind.__module__.startswith(("duckdb", "_duckdb")) and kind.__name__ in (
        _DUCKDB_INPUT_ERRORS)


def run_cli(app: typer.Typer) -> int:
    """Run the Typer app; turn our errors into a message and the documented exit code."""
    try:
        result = app(standalone_mode=False)
    except _EXIT as exc:
        return int(exc.exit_code)
    except _USAGE as exc:
        exc.show()
        return EXIT_USAGE
    except _ABORT:
        err_console.print("aborted")
        return EXIT_REFUSED
    except AnonymetryError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return exit_code_for(exc)
    except OSError as exc:  # a path that cannot be read or written, a port in use: the caller's
        what = exc.strerror or type(exc).__name__
        hint = (f": {exc.filename}; check the path and its permissions" if exc.filename
                else "; check the arguments (path, port, address)")
        err_console.print(f"[bold red]error:[/] {what}{hint}", highlight=False, soft_wrap=True)
        return EXIT_USAGE
    except Exception as exc:
        if not _is_duckdb_input_error(exc):
            raise  # a bug: keep the traceback
        # DuckDB's message may quote a data value, so only its kind is shown.
        err_console.print(f"[bold red]error:[/] DuckDB could not process the input "
                          f"({type(exc).__name__}); check the file's format, the column names "
                          "and their types", highlight=False, soft_wrap=True)
        return EXIT_USAGE
    return result if isinstance(result, int) else EXIT_OK
