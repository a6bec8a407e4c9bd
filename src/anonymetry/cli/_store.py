"""``anonymetry store stats|compact``: inspect and compact the collector's event store."""

from __future__ import annotations

from pathlib import Path

import typer

from anonymetry.cli._common import console, print_json
from anonymetry.ingest.compaction import compact as compact_store
from anonymetry.ingest.compaction import merge_small_files
from anonymetry.ingest.reader import store_stats
from anonymetry.policy import Policy, default_policy, load_policy
from anonymetry.privacy import LocalKeyring

app = typer.Typer(help="Inspect and compact the event store.\n\nExample: anonymetry store "
                  "stats --data ./data", no_args_is_help=True)

RECORDED_POLICY = "policy.yaml"  # where ``anonymetry serve`` records the policy it runs with


def policy_for(data_dir: Path, policy_file: Path | None) -> Policy:
    """``--policy FILE``, else the policy ``serve`` recorded in DIR, else the embedded default."""
    if policy_file is not None:
        return load_policy(policy_file)
    recorded = data_dir / RECORDED_POLICY
    return load_policy(recorded) if recorded.exists() else default_policy()


_DATA = typer.Option(..., "--data", help="The collector's data directory.")
_POLICY = typer.Option(None, "--policy", help="Policy YAML (default: the one recorded in DATA, "
                       "else the embedded default).")


def _data_dir(data: Path) -> Path:
    if not data.is_dir():
        raise typer.BadParameter(f"{data} is not a directory; pass the collector's --data DIR",
                                 param_hint="--data")
    return data


@app.command("stats")
def stats(
    data: Path = _DATA,
    as_json: bool = typer.Option(False, "--json", help="Print the counters as JSON."),
    policy: Path | None = _POLICY,
) -> None:
    """Rows stored (by event), discarded (by reason), shredded, and where they are.

    Example: anonymetry store stats --data ./data --json
    """
    data = _data_dir(data)
    policy_for(data, policy)  # a broken policy file is reported here, as for every command
    result = store_stats(data, LocalKeyring(data / "keys"))
    if as_json:
        print_json(result)
        return
    from rich.table import Table

    console.print(f"stored [bold]{result['stored']}[/] events "
                  f"({result['wal']['rows']} in WAL, {result['parquet']['rows']} in "
                  f"{result['parquet']['files']} Parquet files)")
    table = Table(title="stored by event")
    table.add_column("event")
    table.add_column("rows", justify="right")
    for name, n in result["by_event"].items():
        table.add_row(name, str(n))
    console.print(table)
    console.print("discarded: " + ", ".join(f"{k} {v}" for k, v in result["discarded"].items()))
    if result["shredded"]["epochs"]:
        console.print(f"shredded: {result['shredded']['rows']} rows of destroyed epochs "
                      f"{result['shredded']['epochs']} (unreadable)")


@app.command("compact")
def compact(
    data: Path = _DATA,
    policy: Path | None = _POLICY,
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Move acknowledged events from the WAL segments into encrypted Parquet partitions, then
    merge each epoch's small Parquet files (size-tiered; rows do not change).

    Safe while collectors are running. Example: anonymetry store compact --data ./data
    """
    data = _data_dir(data)
    pol, keyring = policy_for(data, policy), LocalKeyring(data / "keys")
    moved = compact_store(data, pol, keyring, instance="cli", merge=False)
    merged, written = merge_small_files(data, pol, keyring, instance="cli")
    if as_json:
        print_json({"moved": moved, "merged_files": merged, "merged_into": written})
    else:
        console.print(f"compacted {moved} rows into Parquet"
                      + (f"; merged {merged} small files into {written}" if merged else ""))
