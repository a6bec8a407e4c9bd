"""Open what the risk commands assess as a DuckDB relation: a file, a DuckDB table, or the event
store; and pick quasi-identifiers and the sensitive attribute from the policy's tags.

SOURCE forms (``anonymetry risk SOURCE`` / ``anonymetry check SOURCE``):

- ``PATH.parquet`` / ``PATH.pq`` / a directory or glob of Parquet files; ``PATH.csv`` /
  ``.tsv`` (optionally ``.gz``) — read by DuckDB;
- ``duckdb:DB_PATH::TABLE`` — a table or view of a DuckDB database file, attached read-only;
- the event store: no SOURCE and ``--data DIR`` — the decrypted stored rows from
  :func:`anonymetry.ingest.store.open_reader` (needs the keyring in ``DIR/keys``).

``--qi auto``: the declared event fields tagged ``technical`` or ``interaction`` that are columns
of the table (the attributes an outsider can observe or infer). ``--sensitive auto``: the one
declared field tagged ``highly_sensitive`` in the table (an error if there are several: name
one). Fields tagged ``stored_content`` are neither.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

from anonymetry.errors import InvalidParameter
from anonymetry.policy import Policy, Sensitivity
from anonymetry.risk._engine import column_types, quote

__all__ = ["Source", "choose_columns", "open_source"]

_counter = itertools.count()


@dataclass(slots=True)
class Source:
    """A relation in a DuckDB connection: ``name`` is a view, ``relation`` the same quoted."""

    con: duckdb.DuckDBPyConnection
    name: str
    description: str

    @property
    def relation(self) -> str:
        return quote(self.name)

    def columns(self) -> dict[str, str]:
        return column_types(self.con, self.relation)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _file_reader(path: str) -> str:
    lower = path.lower()
    if lower.endswith((".csv", ".csv.gz", ".tsv", ".tsv.gz")):
        return f"read_csv_auto({_literal(path)})"
    if lower.endswith((".parquet", ".pq")):
        return f"read_parquet({_literal(path)})"
    if os.path.isdir(path):
        return f"read_parquet({_literal(os.path.join(path, '**', '*.parquet'))})"
    raise InvalidParameter(
        "SOURCE: cannot tell the format; use a .parquet/.csv file, a directory of Parquet "
        "files, or duckdb:DB_PATH::TABLE"
    )


@contextmanager
def open_source(
    source: str | None,
    *,
    data_dir: Path | None = None,
    policy: Policy | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
) -> Iterator[Source]:
    """Yield a :class:`Source` for ``source`` (or the store under ``data_dir``)."""
    own = con is None
    connection = duckdb.connect(":memory:") if con is None else con
    if own:
        connection.execute("SET TimeZone = 'UTC'")
    name = f"__risk_src_{os.getpid()}_{next(_counter)}"
    view = quote(name)
    cleanup: list[str] = [f"DROP VIEW IF EXISTS {view}"]
    try:
        if source is None and data_dir is None:
            raise InvalidParameter("give a SOURCE (file or duckdb:DB::TABLE) or --data DIR")
        if source is not None and data_dir is not None:
            raise InvalidParameter("give either a SOURCE or --data DIR, not both")
        if data_dir is not None:
            description = _register_store(connection, view, data_dir, policy)
        elif source is not None and source.startswith("duckdb:"):
            db_path, sep, table = source[len("duckdb:"):].partition("::")
            if not sep or not db_path or not table:
                raise InvalidParameter("SOURCE: write a DuckDB table as duckdb:DB_PATH::TABLE")
            if not Path(db_path).is_file():
                raise InvalidParameter("SOURCE: no DuckDB database file at the given path")
            alias = quote(f"__risk_db_{next(_counter)}")
            connection.execute(f"ATTACH {_literal(db_path)} AS {alias} (READ_ONLY)")
            cleanup.append(f"DETACH {alias}")
            dotted = ".".join(quote(p) for p in table.split("."))
            try:
                connection.execute(f"CREATE TEMP VIEW {view} AS SELECT * FROM {alias}.{dotted}")
            except duckdb.CatalogException:
                raise InvalidParameter(
                    "SOURCE: the DuckDB database has no table of that name"
                ) from None
            description = "duckdb table"
        else:
            assert source is not None
            if not glob.glob(source) and not os.path.isdir(source):
                raise InvalidParameter("SOURCE: no file at the given path")
            try:
                connection.execute(
                    f"CREATE TEMP VIEW {view} AS SELECT * FROM {_file_reader(source)}")
                connection.execute(f"DESCRIBE SELECT * FROM {view}").fetchall()
            except duckdb.Error as exc:
                raise InvalidParameter(
                    f"SOURCE: DuckDB cannot read the file ({type(exc).__name__}); check its "
                    "format and extension"
                ) from None
            description = "file"
        yield Source(connection, name, description)
    finally:
        for stmt in reversed(cleanup):
            with contextlib.suppress(duckdb.Error):  # best-effort cleanup of temp objects
                connection.execute(stmt)
        if own:
            connection.close()


def _register_store(
    con: duckdb.DuckDBPyConnection, view: str, data_dir: Path, policy: Policy | None
) -> str:
    from anonymetry.ingest.store import open_reader
    from anonymetry.privacy import LocalKeyring

    if not (data_dir / "keys").is_dir():
        raise InvalidParameter("--data: no keys/ folder in the data directory; is it one?")
    reader = open_reader(data_dir, LocalKeyring(data_dir / "keys"), policy)
    raw = view.strip('"') + "_store"
    reader.duckdb_register(con, raw)
    con.execute(f"CREATE TEMP VIEW {view} AS SELECT * FROM {quote(raw)}")
    return "event store"


def choose_columns(
    columns: Sequence[str],
    qi: Sequence[str] | None,
    sensitive: str | None,
    policy: Policy,
) -> tuple[list[str], str | None]:
    """Resolve ``--qi`` (a list, or ``["auto"]``) and ``--sensitive`` (a name, ``auto``, None)."""
    tags: dict[str, Sensitivity] = {}
    for event in policy.events.values():
        for name, spec in event.fields.items():
            tags.setdefault(name, spec.sensitivity)
    present = [c for c in columns if c in tags]
    if not qi:
        raise InvalidParameter("--qi: name the quasi-identifier columns, or --qi auto")
    if list(qi) == ["auto"]:
        chosen = [c for c in present
                  if tags[c] in (Sensitivity.TECHNICAL, Sensitivity.INTERACTION)]
        if not chosen:
            raise InvalidParameter(
                "--qi auto: no column of the table is a declared technical/interaction field; "
                "name the QIs with --qi A,B"
            )
    else:
        chosen = list(qi)
    if sensitive == "auto":
        candidates = [c for c in present
                      if tags[c] is Sensitivity.HIGHLY_SENSITIVE and c not in chosen]
        if len(candidates) > 1:
            raise InvalidParameter(
                f"--sensitive auto: several highly_sensitive fields ({', '.join(candidates)}); "
                "name one with --sensitive"
            )
        sensitive = candidates[0] if candidates else None
    return chosen, sensitive
