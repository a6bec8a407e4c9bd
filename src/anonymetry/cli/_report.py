"""``anonymetry report SPEC --html out.html [--json out.json]``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from anonymetry.cli._common import EXIT_USAGE, console, err_console, fail, print_json
from anonymetry.report import build_dashboard, load_spec, write_html


def report(
    spec: Annotated[Path, typer.Argument(help="Report spec (YAML or JSON) naming the inputs.")],
    html: Annotated[Path | None, typer.Option(
        "--html", help="Write the self-contained page here.")] = None,
    json_out: Annotated[Path | None, typer.Option(
        "--json", help="Write the dashboard's numbers as JSON here ('-' for stdout).")] = None,
) -> None:
    """Render DP results, budget, risk and store stats as one self-contained page.

    Numbers are shown as given, never recomputed: ε, δ, noise scale, CI95.

    The page opens offline: plotly.js is inlined, nothing comes from a CDN.

    SPEC is YAML; its paths are relative to it. Keys: title; results (files,

    globs or {path, title}); risk (anonymetry risk --json); budget (anonymetry

    budget show --json) or ledger (a dir); store_stats (a file) or store (a dir);

    queries [{source, metric, by, epsilon, delta, unit, analyst, options}]:

    these run through the DP analytics and spend budget first.

    Exit codes: 0 written; 2 bad spec or input (each problem named with its path).

    Example: anonymetry report weekly.yaml --html out/dashboard.html
    """
    if html is None and json_out is None:
        raise fail("say where to write: --html out.html and/or --json out.json", EXIT_USAGE)
    data = build_dashboard(load_spec(spec))
    out = err_console if str(json_out) == "-" else console  # keep stdout pure JSON
    if html is not None:
        written = write_html(data, html)
        out.print(f"[green]wrote[/] {written} ({len(data.results)} results, "
                      f"{len(data.budgets)} budget lines, "
                      f"risk: {'yes' if data.risk else 'no'}, "
                      f"store: {'yes' if data.store else 'no'})", highlight=False)
    if json_out is not None:
        if str(json_out) == "-":
            print_json(data.to_dict())
        else:
            import orjson

            json_out.parent.mkdir(parents=True, exist_ok=True)
            json_out.write_bytes(orjson.dumps(data.to_dict(), option=orjson.OPT_INDENT_2))
            out.print(f"[green]wrote[/] {json_out}", highlight=False)
