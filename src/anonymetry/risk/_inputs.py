"""Opening a table for the trace, linkage and generalization measures inside DuckDB.

A *table-like* is one of:

- a :class:`pyarrow.Table` (registered as a view; nothing is copied),
- a path (``str`` or :class:`os.PathLike`) to a ``.parquet`` / ``.csv`` file (or a glob),
- with ``con=``, the name of a table or view in that DuckDB connection.

:func:`open_input` yields a :class:`Workspace`: a DuckDB connection (the caller's, or a private
in-memory one set to UTC) and a unique prefix for temporary objects, all dropped on exit. Heavy
work then runs as SQL in that connection; no per-row Python loops.
"""

from __future__ import annotations

import glob
import itertools
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from anonymetry.errors import InvalidParameter

__all__ = ["TableLike", "Workspace", "first_row", "open_input", "quote"]

TableLike = pa.Table | str | os.PathLike[str]

_counter = itertools.count()
_FILE = re.compile(r"\.(parquet|pq|csv|tsv)(\.gz)?$", re.IGNORECASE)


def quote(name: str) -> str:
    """Quote an SQL identifier (column or table name) for DuckDB."""
    return '"' + name.replace('"', '""') + '"'


def first_row(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[Any, ...] | None:
    """The first row of a query, reading the result to its end (DuckDB ≥ 2 refuses new work
    on a connection while a result is partly fetched)."""
    rows = con.execute(sql).fetchall()
    return tuple(rows[0]) if rows else None


def _quote_dotted(name: str) -> str:
    return ".".join(quote(part) for part in name.split("."))


@dataclass(slots=True)
class Workspace:
    """A connection plus a unique prefix; :meth:`temp` names objects dropped at exit."""

    con: duckdb.DuckDBPyConnection
    prefix: str
    what: str
    _objects: list[tuple[str, str]] = field(default_factory=list)

    def temp(self, name: str, kind: str = "TABLE") -> str:
        """A fresh temporary object name (quoted), remembered for cleanup."""
        full = quote(f"{self.prefix}_{name}")
        self._objects.append((kind, full))
        return full

    def register(self, name: str, data: TableLike, *, caller_con: bool) -> str:
        """Make ``data`` available as a view; return its quoted name."""
        view = self.temp(name, "VIEW")
        if isinstance(data, pa.Table):
            raw = f"{self.prefix}_{name}_arrow"
            self.con.register(raw, data)
            self._objects.append(("ARROW", raw))
            self.con.execute(f"CREATE TEMP VIEW {view} AS SELECT * FROM {quote(raw)}")
            return view
        text = os.fspath(data)
        if caller_con and not _FILE.search(text) and not Path(text).exists():
            self.con.execute(f"CREATE TEMP VIEW {view} AS SELECT * FROM {_quote_dotted(text)}")
            return view
        if not glob.glob(text):
            raise InvalidParameter(
                f"{self.what}: no file at the given {name} path; pass a Parquet/CSV path, "
                "a pyarrow Table, or a table name together with con="
            )
        lower = text.lower()
        if lower.endswith((".csv", ".csv.gz", ".tsv", ".tsv.gz")):
            reader = "read_csv_auto"
        elif lower.endswith((".parquet", ".pq")):
            reader = "read_parquet"
        else:
            raise InvalidParameter(
                f"{self.what}: cannot tell the format of the {name} file; use a .parquet or "
                ".csv name"
            )
        literal = "'" + text.replace("'", "''") + "'"
        self.con.execute(f"CREATE TEMP VIEW {view} AS SELECT * FROM {reader}({literal})")
        return view

    def columns(self, relation: str) -> dict[str, str]:
        """Column name → DuckDB type name of a relation, in order."""
        rows = self.con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
        return {str(r[0]): str(r[1]) for r in rows}

    def require(self, relation: str, cols: Sequence[str], role: str) -> dict[str, str]:
        """Check that ``cols`` exist in ``relation``; return all its column types."""
        have = self.columns(relation)
        missing = [c for c in cols if c not in have]
        if missing:
            raise InvalidParameter(
                f"{self.what}: {role} column(s) {', '.join(map(repr, missing))} not found; "
                f"available: {', '.join(map(repr, have))}"
            )
        return have

    def close(self) -> None:
        for kind, name in reversed(self._objects):
            try:
                if kind == "ARROW":
                    self.con.unregister(name)
                else:
                    self.con.execute(f"DROP {kind} IF EXISTS {name}")
            except duckdb.Error:  # pragma: no cover - best-effort cleanup of temp objects
                pass
        self._objects.clear()


@contextmanager
def open_input(what: str, con: duckdb.DuckDBPyConnection | None = None) -> Iterator[Workspace]:
    """A :class:`Workspace` on ``con`` (or a private UTC in-memory connection)."""
    own = con is None
    connection = duckdb.connect(":memory:") if con is None else con
    if own:
        connection.execute("SET TimeZone = 'UTC'")
    ws = Workspace(connection, f"__anon_{os.getpid()}_{next(_counter)}", what)
    try:
        yield ws
    finally:
        ws.close()
        if own:
            connection.close()
