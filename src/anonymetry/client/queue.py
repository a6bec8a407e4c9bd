"""The persistent offline queue: events wait here until the collector acknowledged them.

SQLite in WAL mode, one file ``DIR/queue.sqlite`` (mode 0600). An event is written once, when it
is tracked (already minimized and coarsened), and deleted only after the collector answered for
it (stored, duplicate, discarded or rejected) or when consent no longer allows it. So a crash,
a restart or a week offline loses nothing that was queued.

The queue is bounded (``max_events``): when full, the oldest events are dropped and counted
(``dropped_full``, kept in the file so it survives restarts too).

Durability: ``synchronous=NORMAL`` by default survives the app crashing or being killed at any
point; ``durable=True`` (``synchronous=FULL``) also survives power loss, at the price of an fsync
per tracked event.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from anonymetry.errors import InvalidParameter

__all__ = ["OfflineQueue", "QueuedEvent"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq  INTEGER PRIMARY KEY AUTOINCREMENT,
    id   TEXT NOT NULL UNIQUE,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class QueuedEvent:
    """One queued event: its client event id and the wire body (a JSON object)."""

    id: str
    body: dict[str, Any]


class OfflineQueue:
    """A bounded FIFO of wire events in SQLite (WAL), safe to use from several threads."""

    def __init__(self, path: Path, *, max_events: int = 10_000, durable: bool = False) -> None:
        if max_events < 1:
            raise InvalidParameter(f"queue max_events: need ≥ 1, got {max_events}")
        self.path = Path(path)
        self.max_events = max_events
        if not self.path.exists():
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.execute("PRAGMA secure_delete=ON")  # deleted events are overwritten on disk
        self._db.executescript(_SCHEMA)

    # -- writing ---------------------------------------------------------------------------

    def put(self, events: Iterable[dict[str, Any]]) -> int:
        """Append wire events (each with an ``id``); returns how many old ones were dropped
        because the queue was full. An id already queued is not queued twice."""
        rows = [(e["id"], orjson.dumps(e)) for e in events]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT OR IGNORE INTO events(id, body) VALUES (?, ?)", rows)
                (count,) = self._db.execute("SELECT count(*) FROM events").fetchone()
                over = max(0, count - self.max_events)
                if over:
                    self._db.execute(
                        "DELETE FROM events WHERE seq IN "
                        "(SELECT seq FROM events ORDER BY seq LIMIT ?)",
                        (over,),
                    )
                    self._bump("dropped_full", over)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return over

    def _bump(self, name: str, n: int) -> None:
        self._db.execute(
            "INSERT INTO counters(name, value) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
            (name, n),
        )

    def remove(self, ids: Iterable[str]) -> int:
        """Delete events the collector answered for; returns how many were deleted."""
        keys = [(i,) for i in ids]
        if not keys:
            return 0
        with self._lock:
            before = self._db.total_changes
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("DELETE FROM events WHERE id = ?", keys)
            self._db.execute("COMMIT")
            return self._db.total_changes - before

    def rewrite(self, change: Callable[[dict[str, Any]], dict[str, Any] | None]) -> int:
        """Apply ``change`` to every queued body (``None`` deletes it) in one transaction;
        returns how many were deleted. Used when consent is lowered."""
        deleted = 0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for seq, body in self._db.execute("SELECT seq, body FROM events").fetchall():
                    new = change(orjson.loads(body))
                    if new is None:
                        self._db.execute("DELETE FROM events WHERE seq = ?", (seq,))
                        deleted += 1
                    else:
                        self._db.execute(
                            "UPDATE events SET body = ? WHERE seq = ?", (orjson.dumps(new), seq)
                        )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return deleted

    def purge(self) -> int:
        """Delete every queued event (opt-out); returns how many there were."""
        with self._lock:
            cur = self._db.execute("DELETE FROM events")
            n = cur.rowcount
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return n

    # -- reading ---------------------------------------------------------------------------

    def peek(self, limit: int) -> list[QueuedEvent]:
        """The oldest ``limit`` events, oldest first, without removing them."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, body FROM events ORDER BY seq LIMIT ?", (limit,)
            ).fetchall()
        return [QueuedEvent(i, orjson.loads(b)) for i, b in rows]

    def __len__(self) -> int:
        with self._lock:
            (n,) = self._db.execute("SELECT count(*) FROM events").fetchone()
        return int(n)

    def counter(self, name: str) -> int:
        with self._lock:
            row = self._db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        with self._lock:
            self._db.close()
