"""What every CLI command shares: error → exit code mapping, JSON output, the console."""

from __future__ import annotations

import sys
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
    return result if isinstance(result, int) else EXIT_OK
