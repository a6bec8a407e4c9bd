"""``anonymetry tokens create|list|revoke``: bearer tokens for the collector and the API.

``--role`` takes a role of the policy recorded in ``--data`` (``collector``, ``analyst``, …;
see ``roles:`` in the policy) or a single permission (``ingest``, ``query``, …). The token is
printed once; only its hash is stored in ``DATA/tokens.sqlite``.
"""

from __future__ import annotations

from pathlib import Path

import typer

from anonymetry.cli._common import console, existing_dir, print_json
from anonymetry.cli._serve import recorded_policy
from anonymetry.governance.tokens import TokenStore

app = typer.Typer(help="Create, list and revoke bearer tokens.\n\nExample: anonymetry tokens "
                  "create --data ./data --role ingest", no_args_is_help=True)

_DATA = typer.Option(..., "--data", help="Data directory of the collector.")


@app.command("create")
def create(
    data: Path = _DATA,
    role: str = typer.Option(..., "--role", help="A policy role or a single permission."),
    as_json: bool = typer.Option(False, "--json", help="Print token and id as JSON."),
) -> None:
    """Create a token and print it (shown only this once). Creates DIR if it does not exist
    yet, so tokens can be made before the collector first starts.

    Example: anonymetry tokens create --data ./data --role ingest
    """
    data.mkdir(parents=True, exist_ok=True)
    store = TokenStore(data, recorded_policy(data))
    token, info = store.create(role)
    store.close()
    if as_json:
        print_json({"token": token, **info.to_dict()})
    else:
        print(token)  # plain stdout so scripts can capture it


@app.command("list")
def list_(data: Path = _DATA,
          as_json: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """List tokens (ids, roles, dates; never the tokens).

    Example: anonymetry tokens list --data ./data --json
    """
    store = TokenStore(existing_dir(data), recorded_policy(data))
    infos = store.list()
    store.close()
    if as_json:
        print_json([i.to_dict() for i in infos])
        return
    from rich.table import Table

    table = Table(title="tokens")
    for col in ("id", "role", "kind", "created", "revoked"):
        table.add_column(col)
    for i in infos:
        table.add_row(i.id, i.role, i.kind, i.created, i.revoked or "")
    console.print(table)


@app.command("revoke")
def revoke(data: Path = _DATA, token_id: str = typer.Argument(..., help="Token id (see list)."),
           as_json: bool = typer.Option(False, "--json", help="Print the revoked token as JSON.")
           ) -> None:
    """Revoke a token by id; collectors refuse it within a few seconds.

    Example: anonymetry tokens revoke --data ./data tok_3f2a
    """
    store = TokenStore(existing_dir(data), recorded_policy(data))
    info = store.revoke(token_id)
    store.close()
    if as_json:
        print_json(info.to_dict())
    else:
        console.print(f"revoked {info.id} ({info.role}) at {info.revoked}")
