"""The ``anonymetry`` command line.

Exit codes, the same for every command: 0 ok; 1 a check, gate or budget refused; 2 a usage or
input error (bad flag, bad file, invalid policy). Each command or group lives in its own module
and is registered in ``COMMANDS`` below; none holds privacy logic (that lives in the layers
below). Only the module of the command being run is imported, so ``anonymetry serve`` does not
pay for SciPy and ``anonymetry policy check`` starts at once.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import typer

from anonymetry.cli._common import run_cli

# name -> (module under anonymetry.cli, attribute, is a Typer group)
COMMANDS: dict[str, tuple[str, str, bool]] = {
    "demo": ("_demo", "demo", False),
    "serve": ("_serve", "serve", False),
    "policy": ("_policy", "app", True),
    "tokens": ("_tokens", "app", True),
    "store": ("_store", "app", True),
    "keys": ("_keys", "app", True),
    "query": ("_query", "query", False),
    "suggest-bounds": ("_query", "suggest_bounds", False),
    "budget": ("_budget", "app", True),
    "risk": ("_risk", "risk", False),
    "check": ("_risk", "check", False),
    "traces": ("_assess", "traces", False),
    "anonymize": ("_assess", "anonymize", False),
    "linkage": ("_assess", "linkage", False),
    "report": ("_report", "report", False),
}


def build_app(only: str | None = None) -> typer.Typer:
    """The Typer app with every command, or with just ``only`` (what ``main`` runs)."""
    app = typer.Typer(
        name="anonymetry",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode="rich",
    )

    @app.callback()
    def _root() -> None:
        """Privacy-first product telemetry: collect, analyze with differential privacy,
        assess re-identification risk.

        Exit codes: 0 ok, 1 a check, gate or budget refused, 2 a usage or input error.

        Example: anonymetry demo
        """

    for name, (module, attr, group) in COMMANDS.items():
        if only is not None and name != only:
            continue
        target = getattr(importlib.import_module(f"anonymetry.cli.{module}"), attr)
        if group:
            app.add_typer(target, name=name)
        else:
            app.command(name)(target)
    return app


def _command_in(argv: list[str]) -> str | None:
    first = next((a for a in argv if not a.startswith("-")), None)
    return first if first in COMMANDS else None


def __getattr__(name: str) -> Any:
    if name == "app":  # the full app, for in-process callers and tests
        return build_app()
    raise AttributeError(name)


def main() -> None:
    sys.exit(run_cli(build_app(_command_in(sys.argv[1:]))))


if __name__ == "__main__":
    main()
