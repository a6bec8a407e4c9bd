"""``anonymetry keys list|rotate|destroy``: the local keyring at ``DIR/keys``."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from anonymetry.cli._common import EXIT_REFUSED, console, existing_dir, fail, print_json
from anonymetry.cli._store import policy_for
from anonymetry.privacy import LocalKeyring, epoch_of, epoch_start

app = typer.Typer(help="List, rotate and destroy key epochs (crypto-shredding).\n\n"
                  "Example: anonymetry keys list --data ./data", no_args_is_help=True)

_DATA = typer.Option(..., "--data", help="The collector's data directory (keys in DATA/keys).")
_POLICY = typer.Option(None, "--policy", help="Policy YAML (default: the one recorded in DATA, "
                       "else the embedded default); gives the key epoch length.")


@app.command("list")
def list_keys(
    data: Path = _DATA,
    policy: Path | None = _POLICY,
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Every key epoch with its state (active or destroyed) and start date.

    Example: anonymetry keys list --data ./data --json
    """
    days = policy_for(existing_dir(data), policy).identity.key_epoch_days
    epochs = LocalKeyring(data / "keys").epochs()
    current = epoch_of(time.time(), days)
    rows = [{"epoch": e, "state": s, "starts": epoch_start(e, days).isoformat(),
             "current": e == current} for e, s in epochs.items()]
    if as_json:
        print_json({"epochs": rows, "current": current})
        return
    for row in rows:
        mark = " (current)" if row["current"] else ""
        console.print(f"epoch {row['epoch']}: {row['state']}, starts {row['starts']}{mark}")
    if not rows:
        console.print("no key epochs yet")


@app.command("rotate")
def rotate(
    data: Path = _DATA,
    policy: Path | None = _POLICY,
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Make sure the current epoch (and the next one) have keys, so pseudonyms and sealing move
    to them at the epoch boundary without a pause. Old epochs stay readable until destroyed.

    Example: anonymetry keys rotate --data ./data
    """
    days = policy_for(existing_dir(data), policy).identity.key_epoch_days
    keyring = LocalKeyring(data / "keys")
    current = epoch_of(time.time(), days)
    made = []
    for epoch in (current, current + 1):
        before = keyring.epochs().get(epoch)
        if before == "destroyed":
            raise fail(f"key epoch {epoch} was destroyed; it cannot be used again",
                       EXIT_REFUSED)
        keyring.keys(epoch, create=True)
        if before is None:
            made.append(epoch)
    if as_json:
        print_json({"current": current, "created": made})
    else:
        console.print(f"current epoch {current}; created keys for {made or 'none (present)'}")


@app.command("destroy")
def destroy(
    data: Path = _DATA,
    epoch: int = typer.Option(..., "--epoch", help="The key epoch to destroy."),
    yes: bool = typer.Option(False, "--yes", help="Confirm: this cannot be undone."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Crypto-shred an epoch: its key is erased, so its pseudonyms no longer link and its stored
    events (WAL and Parquet) can never be read again. Needs --yes.

    Example: anonymetry keys destroy --data ./data --epoch 668 --yes
    """
    keyring = LocalKeyring(existing_dir(data) / "keys")
    if keyring.epochs().get(epoch) is None:
        raise fail(f"key epoch {epoch} is unknown; see 'anonymetry keys list --data {data}'")
    if not yes:
        raise fail(f"destroying epoch {epoch} makes its data unreadable forever; "
                   "repeat with --yes to confirm", EXIT_REFUSED)
    keyring.destroy(epoch)
    if as_json:
        print_json({"epoch": epoch, "state": "destroyed"})
    else:
        console.print(f"epoch {epoch} destroyed: its data is crypto-shredded")
