"""``anonymetry serve``: run the collector.

The policy used is recorded as ``DIR/policy.yaml`` so that later commands on the same data
directory (``tokens``, ``store``) find it: ``--policy FILE`` replaces the recorded copy; without
it the recorded copy is used, else the embedded default policy.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import typer

from anonymetry.policy import Policy, default_policy_text, load_policy

POLICY_FILE = "policy.yaml"


def record_policy(data_dir: Path, policy_file: Path | None) -> Path:
    """Validate the policy and record it in ``data_dir``; return the recorded path."""
    data_dir.mkdir(parents=True, exist_ok=True)
    recorded = data_dir / POLICY_FILE
    if policy_file is not None:
        load_policy(policy_file)  # raises PolicyError naming every problem
        text = policy_file.read_text("utf-8")
    elif recorded.exists():
        return recorded
    else:
        text = default_policy_text()
    tmp = recorded.with_suffix(".tmp")
    tmp.write_text(text, "utf-8")
    os.replace(tmp, recorded)
    return recorded


def recorded_policy(data_dir: Path) -> Policy:
    """The policy recorded in ``data_dir`` by ``serve`` (the embedded default if none)."""
    recorded = data_dir / POLICY_FILE
    if recorded.exists():
        return load_policy(recorded)
    from anonymetry.policy import default_policy

    return default_policy()


_DATA = typer.Option(..., "--data", help="Data directory (created if missing).")
_POLICY = typer.Option(None, "--policy", help="Policy YAML (default: the one recorded in DATA, "
                       "else the embedded default).")


def serve(
    data: Path = _DATA,
    policy: Path | None = _POLICY,
    port: int = typer.Option(4318, "--port", min=0, max=65535,
                             help="TCP port (0: any free port)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind."),
    workers: int = typer.Option(1, "--workers", min=1, max=64,
                                help="Worker processes, each with its own store segment."),
    max_body: int = typer.Option(4 * 1024 * 1024, "--max-body", min=1024,
                                 help="Largest request body in bytes (413 above)."),
    max_pending: int = typer.Option(50_000, "--max-pending", min=1,
                                    help="Events queued for commit before answering 503."),
    max_uncompacted: int = typer.Option(
        4_000_000, "--max-uncompacted", min=1,
        help="Acknowledged events awaiting compaction before answering 503 (each costs every "
        "worker ~130 bytes of memory); compaction starts early at half of it."),
    dashboard: Path | None = typer.Option(
        None, "--dashboard", help="Report spec (see anonymetry report --help) served read-only "
        "at /dashboard/ to tokens with read_dashboard; default: the store's own counters."),
    compact_every: float = typer.Option(
        60.0, "--compact-every", min=0.0,
        help="Seconds between background compactions of the WAL into Parquet (0: never)."),
) -> None:
    """Run the collector until interrupted. It also serves the dashboard, read-only, at
    /dashboard/ to bearer tokens with the read_dashboard permission.

    Example: anonymetry serve --data ./data --policy examples/policy.yaml --port 4318
    """
    from anonymetry.service.app import ServiceConfig
    from anonymetry.service.server import run

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    path = record_policy(data, policy)
    if dashboard is not None:
        from anonymetry.report.web import dashboard_app

        dashboard_app(dashboard)  # a broken or query-running spec fails now, with exit 2
    config = ServiceConfig(data_dir=data, policy=load_policy(path), max_body=max_body,
                           max_pending=max_pending, max_uncompacted=max_uncompacted,
                           dashboard=dashboard,
                           compact_every=compact_every)
    run(config, host=host, port=port, workers=workers)


if __name__ == "__main__":  # `python -m anonymetry.cli._serve` = `anonymetry serve`, minus the
    typer.run(serve)  # other command groups' imports (faster restarts in the crash tests)
