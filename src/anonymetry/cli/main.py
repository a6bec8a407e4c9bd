"""The ``anonymetry`` command line.

Exit codes, the same for every command: 0 ok; 1 a check, gate or budget refused; 2 a usage or
input error (bad flag, bad file, invalid policy). Each command group lives in its own module and
registers itself below; none holds privacy logic (that lives in the layers below).
"""

from __future__ import annotations

import sys

import typer

from anonymetry.cli import (
    _budget,
    _demo,
    _keys,
    _policy,
    _query,
    _report,
    _risk,
    _serve,
    _store,
    _tokens,
)
from anonymetry.cli._common import run_cli

app = typer.Typer(
    name="anonymetry",
    help="Privacy-first product telemetry: collect, analyze with differential privacy, "
    "assess re-identification risk.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Command groups register here, one line each.
app.add_typer(_policy.app, name="policy")
app.command("risk")(_risk.risk)
app.command("check")(_risk.check)
app.command("serve")(_serve.serve)
app.add_typer(_tokens.app, name="tokens")
app.command("report")(_report.report)
app.add_typer(_store.app, name="store")
app.add_typer(_keys.app, name="keys")
app.command("demo")(_demo.demo)
app.command("query")(_query.query)
app.command("suggest-bounds")(_query.suggest_bounds)
app.add_typer(_budget.app, name="budget")


def main() -> None:
    sys.exit(run_cli(app))


if __name__ == "__main__":
    main()
