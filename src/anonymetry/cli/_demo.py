"""``anonymetry demo``: the whole path end to end on the embedded default."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from anonymetry.cli._common import console, print_json
from anonymetry.demo.run import DemoConfig, Step, default_out_dir, run_demo


class _RichStep(Step):
    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: int | None = None

    def start(self, name: str, total: int | None = None) -> None:
        self.task = self.progress.add_task(name, total=total if total is not None else 1)

    def advance(self, n: int = 1) -> None:
        if self.task is not None:
            self.progress.advance(self.task, n)

    def done(self, message: str = "") -> None:
        if self.task is not None:
            task = self.progress.tasks[self.task]
            self.progress.update(self.task, total=task.total or 1,
                                 completed=task.total or 1)
        self.task = None


def demo(
    out: Path | None = typer.Option(None, "--out", help="Folder for the demo's data, results "
                                    "and dashboard.html (default: ./anonymetry-demo-<time>)."),
    people: int = typer.Option(300, "--people", help="People to simulate (each has 1–3 "
                               "devices)."),
    days: int = typer.Option(14, "--days", help="Days of activity to simulate (≤ 28)."),
    seed: int = typer.Option(7, "--seed", help="Seed of the synthetic population's shape."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Run the whole path on the embedded default: simulate devices, collect through a real
    collector, run DP reports, assess risk, and write dashboard.html.

    Example: anonymetry demo --out /tmp/demo --people 200
    """
    config = DemoConfig(out=(out or default_out_dir()).resolve(), people=people, days=days,
                        seed=seed)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  TextColumn("{task.completed:>9,.0f}/{task.total:,.0f}"), TimeElapsedColumn(),
                  console=console, transient=False, disable=as_json) as progress:
        summary = run_demo(config, _RichStep(progress))
    if as_json:
        print_json(summary.to_dict())
        return
    table = Table(title="anonymetry demo", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("people / devices", f"{summary.people:,} / {summary.devices:,}")
    table.add_row("events generated", f"{summary.events_generated:,}")
    table.add_row("events stored", f"{summary.stored:,}")
    table.add_row("dropped by consent", f"{summary.dropped_by_consent:,} (on device and at the "
                  "collector)")
    table.add_row("opted-out devices", f"{summary.opted_out_devices:,}")
    table.add_row("ε spent / left", f"{summary.epsilon_spent:.3f} / "
                  f"{summary.epsilon_remaining:.3f}")
    risk = summary.risk
    table.add_row("risk of the partner extract", f"{risk['verdict']} (k={risk['k']}; failed: "
                  f"{', '.join(risk['failed']) or 'none'})")
    table.add_row("trace uniqueness at hour/day/week",
                  " / ".join(f"{v:.1%}" for v in risk["trace_uniqueness"].values()))
    table.add_row("after generalization", f"{risk['remedied_verdict']} "
                  f"(k={risk['remedied_k']})")
    console.print(table)
    console.print(f"dashboard: [bold]{summary.dashboard}[/]")
    console.print(f"everything is in {summary.out}")
