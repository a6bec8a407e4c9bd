"""``anonymetry policy check|show``."""

from __future__ import annotations

from pathlib import Path

import typer

from anonymetry.cli._common import EXIT_USAGE, console, err_console, print_json
from anonymetry.errors import PolicyError
from anonymetry.policy import load_policy

app = typer.Typer(help="Check and show a policy file.\n\nExample: anonymetry policy check "
                  "examples/policy.yaml", no_args_is_help=True)


@app.command("check")
def check(
    file: Path = typer.Argument(..., help="Policy YAML file."),
    as_json: bool = typer.Option(False, "--json", help="Print problems as JSON."),
) -> None:
    """Validate a policy; name the key path and line of every problem (exit 2 if any).

    Example: anonymetry policy check examples/policy.yaml
    """
    try:
        policy = load_policy(file)
    except PolicyError as exc:
        if as_json:
            print_json({"ok": False, "problems": [
                {"path": p.path, "line": p.line, "message": p.message} for p in exc.problems]})
        else:
            err_console.print(f"[bold red]{file}: {len(exc.problems)} problem(s)[/]")
            for p in exc.problems:
                where = f"line {p.line}: " if p.line else ""
                err_console.print(f"  {where}[bold]{p.path}[/]: {p.message}", highlight=False)
        raise typer.Exit(EXIT_USAGE) from None
    if as_json:
        print_json({"ok": True, "events": len(policy.events)})
    else:
        console.print(f"[green]ok[/] {file}: policy '{policy.name}' with "
                      f"{len(policy.events)} events")


@app.command("show")
def show(
    file: Path = typer.Argument(..., help="Policy YAML file."),
    as_json: bool = typer.Option(False, "--json", help="Print the normalized policy as JSON."),
) -> None:
    """Print the normalized policy (defaults filled in).

    Example: anonymetry policy show examples/policy.yaml --json
    """
    policy = load_policy(file)
    data = policy.to_dict()
    if as_json:
        print_json(data)
        return
    from rich.table import Table

    table = Table(title=f"policy {policy.name} (v{policy.version})")
    for col in ("event", "consent", "owner", "expires", "fields"):
        table.add_column(col)
    for name, spec in data["events"].items():
        table.add_row(name, spec["consent"], spec["owner"], str(spec["expires"]),
                      ", ".join(spec["fields"]))
    console.print(table)
