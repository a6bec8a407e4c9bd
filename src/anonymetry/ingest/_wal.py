"""The on-disk format of the event store's write-ahead segments and of its catalog.

One SQLite file per collector process, ``DIR/wal/<instance>.sqlite`` (WAL journal mode,
``synchronous=FULL``), holds acknowledged events not yet compacted:

- ``chunks(id, epoch, n, blob)``: one AES-256-GCM blob per group-commit chunk of one epoch,
  sealed under the epoch's ``seal`` key; the plaintext is the msgpack list of the chunk's rows.
  The associated data binds a blob to its segment, chunk id, epoch and row count.
- ``dedup_runs(chunk, epoch, keys)``: the dedup keys of every chunk's rows, one row per chunk
  holding a JSON array (a commit appends one row per chunk, not one B-tree entry per key; see
  :mod:`._dedup`). Keys outlive their rows when erasure deletes rows, so they stay here until
  compaction moves them to the catalog.
- ``dedup(key, chunk, epoch)``, in files made before ``dedup_runs``: the same keys one per row,
  clustered by chunk (or, older still, by key). Nothing is added to it any more; compaction
  drains it, and every reader takes keys from both tables.
- ``counters(kind, name, epoch, n)``: ``stored`` per event and epoch, ``discarded`` per reason.

The catalog, ``DIR/catalog.sqlite``, is shared by all processes: the Parquet files (``files``,
with a ``pending`` state as the compaction's idempotency marker), how far each segment was
compacted (``upto``), the dedup keys of compacted rows (``dedup``, and ``dedup_log``: the
``[key, epoch]`` pairs each compaction added, as JSON, in order, kept a day, from which stores
keep their in-memory filters current, see :mod:`._key_filter`) and counter adjustments.

A segment is locked (``flock`` on ``<instance>.lock``) by the process that appends to it; a
later process may adopt a segment whose lock is free, so their number stays bounded by the
number of concurrent collectors. Chunk ids only grow (``AUTOINCREMENT``), which is what makes
``upto`` a sound "already compacted" marker.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

from anonymetry._fs import fsync_dir
from anonymetry.errors import InvalidParameter

__all__ = [
    "CATALOG_NAME",
    "CHECKPOINT_EVERY_S",
    "SegmentLock",
    "add_dedup_run",
    "checkpoint",
    "chunk_aad",
    "compaction_lock",
    "connect",
    "connect_lookup",
    "dedup_keys_upto",
    "dedup_layout",
    "dedup_top",
    "drop_dedup_upto",
    "fsync_dir",
    "has_dedup_runs",
    "init_catalog",
    "init_segment",
    "segment_paths",
    "tune_appender",
    "tune_catalog_prober",
]

CATALOG_NAME = "catalog.sqlite"
FORMAT = "1"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

_SEGMENT_DDL = """
CREATE TABLE IF NOT EXISTS chunks(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    epoch INTEGER NOT NULL,
    n INTEGER NOT NULL,
    blob BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS dedup_runs(
    chunk INTEGER PRIMARY KEY,
    epoch INTEGER NOT NULL,
    keys TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counters(
    kind TEXT NOT NULL, name TEXT NOT NULL, epoch INTEGER NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY(kind, name, epoch)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v TEXT NOT NULL) WITHOUT ROWID;
"""

_CATALOG_DDL = """
CREATE TABLE IF NOT EXISTS files(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    path TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    state TEXT NOT NULL,
    rows INTEGER NOT NULL DEFAULT 0,
    by_event TEXT NOT NULL DEFAULT '{}',
    retired_at REAL);
CREATE TABLE IF NOT EXISTS upto(segment TEXT PRIMARY KEY, chunk INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dedup(key TEXT PRIMARY KEY, epoch INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dedup_log(
    seq INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, keys TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counters(
    kind TEXT NOT NULL, name TEXT NOT NULL, epoch INTEGER NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY(kind, name, epoch)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v TEXT NOT NULL) WITHOUT ROWID;
"""

COUNTER_UPSERT = (
    "INSERT INTO counters(kind, name, epoch, n) VALUES(?, ?, ?, ?) "
    "ON CONFLICT(kind, name, epoch) DO UPDATE SET n = n + excluded.n"
)


def connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode (we issue BEGIN/COMMIT), WAL, ``synchronous=FULL``.

    New files are created 0600 (SQLite gives its -wal and -shm files the same mode)."""
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute("PRAGMA auto_vacuum=INCREMENTAL")  # takes effect on a new, empty file only
    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if mode.lower() != "wal":
        conn.close()
        raise InvalidParameter(f"{path}: SQLite refused WAL mode ({mode}); use a local disk")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA secure_delete=ON")  # erased rows leave no ciphertext in free pages
    conn.execute("PRAGMA journal_size_limit=67108864")
    return conn


CHECKPOINT_EVERY_S = 0.5  # the store's checkpointer thread copies the WAL this often


def tune_appender(conn: sqlite3.Connection) -> None:
    """Settings for the one connection that appends to a segment: a page cache of up to 128 MB
    (allocated as used), and no automatic checkpoint: an automatic checkpoint writes and
    fsyncs the database file inside the commit that crosses the threshold, so every request
    of that group commit waits for it. The store's checkpointer thread runs :func:`checkpoint`
    from its own connection instead (``benchmarks/store_append.py --tasks 8``: p99 append
    latency 10.1 ms with a 64 MB automatic checkpoint, 4.9-6.7 ms with none in the commit
    path). Durability is unchanged: every commit still fsyncs the WAL."""
    conn.execute("PRAGMA cache_size=-131072")  # KiB: up to 128 MB, allocated as used
    conn.execute("PRAGMA wal_autocheckpoint=0")


def checkpoint(conn: sqlite3.Connection) -> None:
    """Copy committed WAL frames into the database file without waiting for readers or the
    writer (``PASSIVE``); the writer restarts the WAL from its beginning at its next commit
    after a complete one, and ``journal_size_limit`` then truncates the file."""
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


def tune_catalog_prober(conn: sqlite3.Connection) -> None:
    """Settings for a store's catalog connection, which probes the compacted dedup keys by key
    before every commit: the file memory-mapped (SQLite caps the map at 2 GiB), so the random
    B-tree pages each probe touches are read from the shared OS page cache without a system
    call each. Measured (``benchmarks/store_append.py --seconds 8 --tasks 32 --data DIR`` with
    5M keys in the catalog, 2026-11-23): 119k durable events/s at 8.7 µs of CPU per event
    (4.5 µs of it system time) without the map, 171k-180k at 6.3 µs with it; 251k-264k at
    4.2 µs with an empty catalog."""
    conn.execute("PRAGMA mmap_size=2147418112").fetchall()


def connect_lookup(path: Path) -> sqlite3.Connection:
    """A read-only connection to another process's segment, for dedup lookups.

    It changes no setting of the file (changing one takes a write lock, which could deadlock
    against that process's writer while ours holds its own segment) and never creates it."""
    conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, isolation_level=None,
                           check_same_thread=False, timeout=30.0)
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute("PRAGMA query_only=ON")
    conn.execute("PRAGMA mmap_size=268435456")
    return conn


def dedup_layout(conn: sqlite3.Connection) -> str | None:
    """How a segment's older per-key ``dedup`` table is clustered: ``"chunk"`` or ``"key"``
    (the oldest files), or ``None`` if the file has none (made since ``dedup_runs``)."""
    row = conn.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'dedup'").fetchone()
    if row is None:
        return None
    return "chunk" if "PRIMARY KEY(chunk, key)" in row[0] else "key"


def has_dedup_runs(conn: sqlite3.Connection) -> bool:
    """Whether the segment has its ``dedup_runs`` table (a file still being created, or one
    last written by a version before it, has not)."""
    return conn.execute("SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE type = 'table' "
                        "AND name = 'dedup_runs')").fetchone()[0] == 1


def add_dedup_run(conn: sqlite3.Connection, chunk: int, epoch: int, keys_json: bytes) -> None:
    """Record the dedup keys of one chunk (``keys_json``: a JSON array of strings)."""
    conn.execute("INSERT INTO dedup_runs(chunk, epoch, keys) VALUES(?, ?, ?)",
                 (chunk, epoch, keys_json.decode()))


def dedup_top(conn: sqlite3.Connection) -> int:
    """The highest chunk id that has dedup keys in the segment (0 if none)."""
    top = conn.execute("SELECT coalesce(max(chunk), 0) FROM dedup_runs").fetchone()[0]
    if dedup_layout(conn) is not None:
        top = max(top, conn.execute("SELECT coalesce(max(chunk), 0) FROM dedup").fetchone()[0])
    return int(top)


def dedup_keys_upto(conn: sqlite3.Connection, top: int) -> list[str]:
    """JSON arrays of ``[key, epoch]`` pairs of every dedup key of chunks ≤ ``top``, from
    ``dedup_runs`` and the older per-key table."""
    out = [conn.execute(
        "SELECT coalesce(json_group_array(json_array(j.value, r.epoch)), '[]') "
        "FROM dedup_runs AS r, json_each(r.keys) AS j WHERE r.chunk <= ?", (top,)).fetchone()[0]]
    if dedup_layout(conn) is not None:
        out.append(conn.execute(
            "SELECT coalesce(json_group_array(json_array(key, epoch)), '[]') FROM dedup "
            "WHERE chunk <= ?", (top,)).fetchone()[0])
    return out


def drop_dedup_upto(conn: sqlite3.Connection, top: int) -> None:
    """Delete the dedup keys of chunks ≤ ``top`` (in the caller's transaction)."""
    conn.execute("DELETE FROM dedup_runs WHERE chunk <= ?", (top,))
    if dedup_layout(conn) is not None:
        conn.execute("DELETE FROM dedup WHERE chunk <= ?", (top,))


def _init(conn: sqlite3.Connection, ddl: str) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in ddl.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute("INSERT OR IGNORE INTO meta(k, v) VALUES('format', ?)", (FORMAT,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def init_segment(conn: sqlite3.Connection) -> None:
    _init(conn, _SEGMENT_DDL)


def init_catalog(conn: sqlite3.Connection) -> None:
    _init(conn, _CATALOG_DDL)
    # catalogs made before merging existed: when a merge retired a file (unlinked later)
    if "retired_at" not in {row[1] for row in conn.execute("PRAGMA table_info(files)")}:
        with contextlib.suppress(sqlite3.OperationalError):  # a peer process added it first
            conn.execute("ALTER TABLE files ADD COLUMN retired_at REAL")


def chunk_aad(segment: str, chunk: int, epoch: int, n: int) -> bytes:
    return f"anonymetry/wal/v1|{segment}|{chunk}|{epoch}|{n}".encode()


def segment_paths(wal_dir: Path) -> list[Path]:
    """Every segment file under ``DIR/wal`` (sorted by name)."""
    if not wal_dir.is_dir():
        return []
    return sorted(p for p in wal_dir.glob("*.sqlite") if _NAME_RE.match(p.stem))


class SegmentLock:
    """The exclusive claim of one process on one segment (``flock``, released on exit)."""

    def __init__(self, wal_dir: Path, name: str, fd: int) -> None:
        self.wal_dir = wal_dir
        self.name = name
        self._fd: int | None = fd

    @property
    def path(self) -> Path:
        return self.wal_dir / f"{self.name}.sqlite"

    @classmethod
    def try_take(cls, wal_dir: Path, name: str) -> SegmentLock | None:
        fd = os.open(wal_dir / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return cls(wal_dir, name, fd)

    @classmethod
    def claim(cls, wal_dir: Path, instance: str | None) -> SegmentLock:
        """Take ``instance``'s segment, else adopt a free one, else start a new one."""
        wal_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if instance is not None:
            if not _NAME_RE.match(instance):
                raise InvalidParameter(
                    f"instance {instance!r}: use 1-64 letters, digits, '.', '_' or '-'"
                )
            lock = cls.try_take(wal_dir, instance)
            if lock is None:
                raise InvalidParameter(
                    f"instance {instance!r} is in use by another live process; "
                    "give each collector its own instance name"
                )
            return lock
        for path in segment_paths(wal_dir):
            lock = cls.try_take(wal_dir, path.stem)
            if lock is not None:
                return lock
        while True:
            lock = cls.try_take(wal_dir, uuid.uuid4().hex[:16])
            if lock is not None:
                return lock

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


@contextlib.contextmanager
def compaction_lock(wal_dir: Path) -> Iterator[None]:
    """Serializes compaction and erasure (they rewrite stored data) across processes."""
    wal_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(wal_dir / "compaction.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
