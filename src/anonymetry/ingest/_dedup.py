"""Which dedup keys are already stored: the store's view across segments and the catalog.

A segment records the keys of each group-commit chunk as one ``dedup_runs`` row (a JSON array),
so a commit appends a row or two, not one B-tree entry per key. Inserting a commit's keys one
row each into a table clustered by ``(chunk, key)`` cost ~1.4 µs of the writer's CPU per event
(``json_each`` → index insert), a third of the store's share of a stored event; clustered by
key, each of a commit's random keys dirtied its own page of an ever larger index (measured:
150k keys/s flat vs. under 40k keys/s at 600k stored). The price of either append-only layout:
segments cannot be probed by key, so each store keeps the keys of every segment's uncompacted
rows in memory (:class:`KnownKeys`, about 130 bytes per key: 1M uncompacted events cost
~130 MB in every collector process, so the store must be compacted regularly), reading what
other segments appended since its last look by chunk range. Compaction moves keys to the
catalog (still probed by key; it grows only by bulk sorted inserts) and records
``upto[segment]``; keys of chunks at or below it are then dropped from memory, because the
catalog has them.

Segments written before ``dedup_runs`` keep their per-key ``dedup`` table until compaction
drains it: one clustered by chunk is read by chunk range like the runs, one clustered by key
(the oldest layout) is probed by key. A chunk's keys are in exactly one of the two tables, so
one "highest chunk read" per segment covers both.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Sequence
from pathlib import Path

import orjson

from anonymetry.ingest import _wal
from anonymetry.ingest._key_filter import CatalogKeyFilter

__all__ = ["KnownKeys"]

# One primary-key search per asked key, driven by the list (CROSS JOIN fixes that loop order):
# ``key IN (SELECT value FROM json_each(?))`` first built a temporary index of the list, which
# cost more than the searches themselves while the table is small (0.6 vs 0.1 µs per key).
_PROBE = "SELECT d.key FROM json_each(?) AS j CROSS JOIN dedup AS d ON d.key = j.value"
# A segment's new keys, one row per chunk (a JSON array), not one Python tuple per key.
_TAIL_RUNS = "SELECT chunk, keys FROM dedup_runs WHERE chunk > ?"
_TAIL_ROWS = "SELECT chunk, json_group_array(key) FROM dedup WHERE chunk > ? GROUP BY chunk"


class _Peer:
    """Another process's segment: its read-only connection and which dedup tables it has."""

    __slots__ = ("conn", "per_key", "runs")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.per_key = _wal.dedup_layout(conn)  # the older per-key table, if any
        self.runs = _wal.has_dedup_runs(conn)


class KnownKeys:
    """The dedup keys stored in the segments under ``wal_dir`` and in the catalog.

    Used by one store's writer thread only. :meth:`refresh` before each commit (in its
    transaction), :meth:`stored` for a commit's keys, :meth:`add` after the commit succeeded.
    """

    def __init__(self, wal_dir: Path, own: str, own_conn: sqlite3.Connection,
                 catalog: sqlite3.Connection) -> None:
        self.wal_dir = wal_dir
        self.own = own
        self.catalog = catalog
        self.keys: set[str] = set()
        self._runs: dict[str, deque[tuple[int, Sequence[str]]]] = {}  # segment → (chunk, keys)
        self._seen: dict[str, int] = {}  # segment → highest chunk read
        self._others: dict[str, _Peer] = {}
        self._paths: list[Path] = []
        self._listed_at = -1
        self._tail(own, own_conn, runs=True, rows=_wal.dedup_layout(own_conn) is not None)
        self._filter = CatalogKeyFilter.load(catalog)
        self._catch_up_with_compaction()

    # -- keeping up ------------------------------------------------------------------------
    def add(self, segment: str, chunk: int, keys: Sequence[str]) -> None:
        self.keys.update(keys)
        self._runs.setdefault(segment, deque()).append((chunk, keys))
        if chunk > self._seen.get(segment, 0):
            self._seen[segment] = chunk

    def _tail(self, segment: str, conn: sqlite3.Connection, *, runs: bool, rows: bool) -> None:
        """Read the keys ``segment`` appended since the last look (from ``dedup_runs`` and/or
        the older per-key table read by chunk)."""
        seen = (self._seen.get(segment, 0),)
        found = conn.execute(_TAIL_RUNS, seen).fetchall() if runs else []
        if rows:
            found += conn.execute(_TAIL_ROWS, seen).fetchall()
            found.sort()
        for chunk, keys in found:
            self.add(segment, chunk, orjson.loads(keys))

    def _forget(self, segment: str, upto: int | None = None) -> None:
        runs = self._runs.get(segment)
        while runs and (upto is None or runs[0][0] <= upto):
            self.keys.difference_update(runs.popleft()[1])
        if upto is None:
            self._runs.pop(segment, None)
            self._seen.pop(segment, None)

    def _catch_up_with_compaction(self) -> None:
        """Add what compaction moved to the catalog filter, then forget those keys here, both
        from one catalog snapshot: a key leaves memory only once the filter holds it."""
        self.catalog.execute("BEGIN")
        try:
            self._filter = self._filter.catch_up(self.catalog)
            for segment, chunk in self.catalog.execute("SELECT segment, chunk FROM upto"):
                self._forget(segment, chunk)
        finally:
            self.catalog.execute("COMMIT")

    def refresh(self) -> list[sqlite3.Connection]:
        """Catch up with other segments and with compaction; returns the connections that must
        still be probed by key (old-layout segments)."""
        present: set[str] = set()
        probe: list[sqlite3.Connection] = []
        for path in self._segment_paths():
            name = path.stem
            if name == self.own:
                continue
            peer = self._others.get(name)
            if peer is None:
                try:
                    conn = _wal.connect_lookup(path)
                except sqlite3.OperationalError:
                    if path.exists():
                        raise
                    continue  # removed since it was listed: nothing to look up
                peer = _Peer(conn)
                if peer.per_key is None and not peer.runs:
                    conn.close()  # still being created by its process: nothing stored yet
                    continue
                self._others[name] = peer
            elif not peer.runs:  # an older segment gets the table when a process adopts it
                peer.runs = _wal.has_dedup_runs(peer.conn)
            present.add(name)
            self._tail(name, peer.conn, runs=peer.runs, rows=peer.per_key == "chunk")
            if peer.per_key == "key":
                probe.append(peer.conn)
        for name in set(self._others) - present:
            self._others.pop(name).conn.close()
            self._forget(name)
        self._catch_up_with_compaction()
        return probe

    def _segment_paths(self) -> list[Path]:
        """The segment files, listed again only when the directory changed."""
        stamp = self.wal_dir.stat().st_mtime_ns
        if stamp != self._listed_at:
            self._paths = _wal.segment_paths(self.wal_dir)
            self._listed_at = stamp
        return self._paths

    # -- asking ----------------------------------------------------------------------------
    def stored(self, keys: Sequence[str], probe: Sequence[sqlite3.Connection]) -> set[str]:
        """Those of ``keys`` already stored anywhere (in memory, old-layout segments, the
        catalog); probing the catalog after the segments matters: a key moves from a segment
        to the catalog, never back. The catalog is probed only for the keys its filter cannot
        rule out."""
        found = self.keys.intersection(keys)
        rest = [k for k in keys if k not in found] if found else keys
        if probe:
            asked = orjson.dumps(rest)
            for conn in probe:
                found.update(k for (k,) in conn.execute(_PROBE, (asked,)))
        ask = self._filter.may_hold(rest)
        if ask:
            found.update(k for (k,) in self.catalog.execute(_PROBE, (orjson.dumps(ask),)))
        return found

    def close(self) -> None:
        for peer in self._others.values():
            peer.conn.close()
        self._others.clear()
