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


def run_cli(app: typer.Typer) -> int:
    """Run the Typer app; turn our errors into a message and the documented exit code."""
    try:
        result = app(standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return EXIT_USAGE
    except click.exceptions.Abort:
        err_console.print("aborted")
        return EXIT_REFUSED
    except AnonymetryError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return exit_code_for(exc)
    return result if isinstance(result, int) else EXIT_OK
