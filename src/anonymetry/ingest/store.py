"""The durable, encrypted event store of the collector.

Acknowledged means durable: :meth:`EventStore.append` returns only after its events (and
discard counters) are in a committed, fsync'd SQLite transaction (WAL mode,
``synchronous=FULL``). One writer thread per store does group commits: every batch queued
while the previous commit was being fsync'd goes into the next transaction, whose futures are
then resolved together. Rows are sealed per chunk (one AES-256-GCM blob per epoch per commit),
so the per-event Python cost is a few attribute reads; dedup is one ``INSERT OR IGNORE … SELECT
FROM json_each`` per chunk against the UNIQUE dedup index, in the same transaction.

Dedup scope: a key already stored in this segment, in any other segment under ``DIR/wal`` or
(after compaction) in the catalog is a duplicate, so retries after a crash, a restart or a
compaction are stored once. Two live collectors that receive the same event at the very same
moment may both store it; compaction and the reader keep the first and drop the other (and
correct the counters), so what analytics sees is still exactly once.

Layout (see :mod:`anonymetry.ingest._wal`): ``DIR/wal/<instance>.sqlite`` per process,
``DIR/catalog.sqlite``, ``DIR/parquet/epoch=<e>/part-<seq>-<instance>.parquet``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from anonymetry.errors import InternalError, InvalidParameter, Overloaded
from anonymetry.ingest import _wal
from anonymetry.ingest._codec import encode_rows
from anonymetry.policy import Policy
from anonymetry.privacy import Keyring, Sealer

__all__ = ["DISCARD_REASONS", "EventStore", "StoredEvent", "open_reader"]

DISCARD_REASONS = ("consent", "undeclared", "expired", "invalid")
_MAX_GROUP_EVENTS = 50_000


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One event after the collector's first step (pseudonymized, coarsened, minimized)."""

    dedup: str  # keyed fingerprint of the client event id (or of the OTLP record content)
    epoch: int
    event: str
    time: int  # unix seconds, already coarsened
    user: str  # pseudonym
    device: str  # pseudonym
    consent: str  # effective level label
    attrs: Mapping[str, Any]  # declared fields only, already validated


class _Item:
    __slots__ = ("discards", "events", "future")

    def __init__(self, events: Sequence[StoredEvent], discards: Mapping[str, int] | None) -> None:
        self.events = events
        self.discards = discards
        self.future: concurrent.futures.Future[list[bool]] = concurrent.futures.Future()


class EventStore:
    """Append-only store of one collector process; see the module docstring.

    ``max_pending``: if set, :meth:`append` raises :class:`Overloaded` instead of queueing more
    than this many events (the service answers 429/503 with ``Retry-After``).
    """

    def __init__(self, data_dir: Path, policy: Policy, keyring: Keyring, *,
                 instance: str | None = None, max_pending: int | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.policy = policy
        self.keyring = keyring
        self.max_pending = max_pending
        self.wal_dir = self.data_dir / "wal"
        self._sealer = Sealer(keyring)
        self._lock = _wal.SegmentLock.claim(self.wal_dir, instance)
        self.instance = self._lock.name
        try:
            self._conn = _wal.connect(self._lock.path)
            _wal.init_segment(self._conn)
            self._catalog = _wal.connect(self.data_dir / _wal.CATALOG_NAME)
            _wal.init_catalog(self._catalog)
            self._next_chunk = self._first_free_chunk()
        except BaseException:
            self._lock.release()
            raise
        self._others: dict[Path, Any] = {}
        self._queue: deque[_Item] = deque()
        self._cv = threading.Condition()
        self._pending = 0
        self._closing = False
        self._closed = False
        self._epochs_ok: set[int] = set()
        self._thread = threading.Thread(target=self._run, name=f"store-{self.instance}",
                                        daemon=True)
        self._thread.start()

    def _first_free_chunk(self) -> int:
        seq = self._conn.execute(
            "SELECT seq FROM sqlite_sequence WHERE name = 'chunks'").fetchone()
        top = self._conn.execute("SELECT max(id) FROM chunks").fetchone()[0]
        keys_top = self._conn.execute("SELECT max(chunk) FROM dedup").fetchone()[0]
        done = self._catalog.execute(
            "SELECT chunk FROM upto WHERE segment = ?", (self.instance,)).fetchone()
        return 1 + max(seq[0] if seq else 0, top or 0, keys_top or 0, done[0] if done else 0)

    # -- appending -----------------------------------------------------------------------
    def _submit(self, events: Sequence[StoredEvent],
                discards: Mapping[str, int] | None) -> concurrent.futures.Future[list[bool]]:
        if self._closing:
            raise InvalidParameter("the event store is closed; open a new one")
        if discards:
            unknown = set(discards) - set(DISCARD_REASONS)
            if unknown:
                raise InvalidParameter(
                    f"discard reasons {sorted(unknown)} unknown; use {list(DISCARD_REASONS)}")
        for epoch in {e.epoch for e in events} - self._epochs_ok:
            self.keyring.keys(epoch, create=True)  # KeyUnavailable for a destroyed epoch
            self._epochs_ok.add(epoch)
        item = _Item(events, discards)
        with self._cv:
            if self.max_pending is not None and self._pending + len(events) > self.max_pending:
                raise Overloaded(f"event store has {self._pending} events waiting to be "
                                 "written; retry shortly", retry_after=1.0)
            self._queue.append(item)
            self._pending += len(events)
            self._cv.notify()
        return item.future

    async def append(self, events: Sequence[StoredEvent],
                     discards: Mapping[str, int] | None = None) -> list[bool]:
        """Store ``events`` durably; per event ``True`` = newly stored, ``False`` = duplicate.

        Returns after the batch and ``discards`` (reason → count) are fsync'd. If the caller is
        cancelled before the writer took the batch, nothing of it is stored.
        """
        if not events and not discards:
            return []
        return await asyncio.wrap_future(self._submit(events, discards))

    def append_blocking(self, events: Sequence[StoredEvent],
                        discards: Mapping[str, int] | None = None) -> list[bool]:
        """:meth:`append` for synchronous callers."""
        if not events and not discards:
            return []
        return self._submit(events, discards).result()

    def pending(self) -> int:
        """Events queued or being committed (for backpressure)."""
        return self._pending

    # -- the writer thread ---------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._queue and not self._closing:
                    self._cv.wait()
                if not self._queue:
                    return
                group: list[_Item] = []
                taken = 0
                while self._queue and (not group or taken < _MAX_GROUP_EVENTS):
                    item = self._queue.popleft()
                    taken += len(item.events)
                    if item.future.set_running_or_notify_cancel():
                        group.append(item)
            try:
                if group:
                    results = self._commit(group)
                    for item, result in zip(group, results, strict=True):
                        item.future.set_result(result)
            except BaseException as exc:
                for item in group:
                    if not item.future.done():
                        item.future.set_exception(exc)
            finally:
                with self._cv:
                    self._pending -= taken

    def _other_segments(self) -> list[Any]:
        conns = []
        present = set()
        for path in _wal.segment_paths(self.wal_dir):
            if path.stem == self.instance:
                continue
            present.add(path)
            conn = self._others.get(path)
            if conn is None:
                conn = _wal.connect(path)
                self._others[path] = conn
            conns.append(conn)
        for path in set(self._others) - present:
            self._others.pop(path).close()
        return conns

    def _existing_elsewhere(self, keys_json: bytes) -> set[str]:
        """Keys already stored in other segments, then in the catalog (that order matters: a
        key moves from a segment to the catalog, never back)."""
        found: set[str] = set()
        query = "SELECT key FROM dedup WHERE key IN (SELECT value FROM json_each(?))"
        for conn in self._other_segments():
            try:
                found.update(k for (k,) in conn.execute(query, (keys_json,)))
            except Exception as exc:  # a segment still being created has no table yet
                if "no such table" not in str(exc):
                    raise
        found.update(k for (k,) in self._catalog.execute(query, (keys_json,)))
        return found

    def _commit(self, group: list[_Item]) -> list[list[bool]]:
        events: list[StoredEvent] = []
        for item in group:
            events.extend(item.events)
        keys = [e.dedup for e in events]
        flags = [False] * len(events)
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            existing = self._existing_elsewhere(orjson.dumps(keys)) if keys else set()
            epochs = {e.epoch for e in events}
            if len(epochs) == 1:
                groups = {epochs.pop(): range(len(events))}
            else:
                groups = {}
                for i, e in enumerate(events):
                    groups.setdefault(e.epoch, []).append(i)  # type: ignore[attr-defined]
            counts: Counter[tuple[str, str, int]] = Counter()
            for epoch, idx in groups.items():
                chunk = self._next_chunk
                self._next_chunk += 1
                cand = [keys[i] for i in idx] if not existing else [
                    keys[i] for i in idx if keys[i] not in existing]
                if not cand:
                    continue
                cand_json = orjson.dumps(cand)
                inserted = conn.execute(
                    "INSERT OR IGNORE INTO dedup(key, chunk, epoch) "
                    "SELECT value, ?, ? FROM json_each(?)", (chunk, epoch, cand_json)).rowcount
                if inserted == len(idx):  # the common case: all new
                    rows = [events[i] for i in idx]
                    for i in idx:
                        flags[i] = True
                else:
                    new = {k for (k,) in conn.execute(
                        "SELECT key FROM dedup WHERE chunk = ? AND key IN "
                        "(SELECT value FROM json_each(?))", (chunk, cand_json))}
                    rows = []
                    for i in idx:
                        if keys[i] in new:
                            new.discard(keys[i])  # a repeat inside the batch is a duplicate
                            flags[i] = True
                            rows.append(events[i])
                    if len(rows) != inserted:
                        raise InternalError(f"dedup of chunk {chunk}: {inserted} keys inserted "
                                            f"but {len(rows)} rows matched")
                if not rows:
                    continue
                aad = _wal.chunk_aad(self.instance, chunk, epoch, len(rows))
                blob = self._sealer.seal(epoch, encode_rows(rows), aad)
                conn.execute("INSERT INTO chunks(id, epoch, n, blob) VALUES(?, ?, ?, ?)",
                             (chunk, epoch, len(rows), blob))
                for name, n in Counter(e.event for e in rows).items():
                    counts["stored", name, epoch] += n
            for item in group:
                if item.discards:
                    for reason, n in item.discards.items():
                        if n:
                            counts["discarded", reason, -1] += int(n)
            if counts:
                conn.executemany(_wal.COUNTER_UPSERT,
                                 [(k, name, ep, n) for (k, name, ep), n in counts.items()])
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        out: list[list[bool]] = []
        pos = 0
        for item in group:
            out.append(flags[pos:pos + len(item.events)])
            pos += len(item.events)
        return out

    # -- maintenance -----------------------------------------------------------------------
    def delete_device(self, device_by_epoch: Mapping[int, str]) -> int:
        """Erase every stored row of one device (its pseudonym per epoch), in every WAL segment
        and Parquet file; returns how many rows were deleted. Blocking: call it in a thread."""
        from anonymetry.ingest.compaction import delete_device

        return delete_device(self.data_dir, self.keyring, device_by_epoch, policy=self.policy,
                             instance=self.instance)

    def compact(self) -> int:
        """Move compactable rows of every segment into encrypted Parquet; returns rows moved."""
        from anonymetry.ingest.compaction import compact

        return compact(self.data_dir, self.policy, self.keyring, instance=self.instance)

    def stats(self) -> dict[str, Any]:
        from anonymetry.ingest.reader import store_stats

        return store_stats(self.data_dir, self.keyring)

    def close(self) -> None:
        """Write what is queued, stop the writer and release the segment."""
        if self._closed:
            return
        with self._cv:
            self._closing = True
            self._cv.notify_all()
        self._thread.join()
        self._closed = True
        for conn in self._others.values():
            conn.close()
        self._others.clear()
        with contextlib.suppress(Exception):
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._conn.close()
        self._catalog.close()
        self._lock.release()

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_reader(data_dir: Path, keyring: Keyring, policy: Policy | None = None):
    """The stored rows for analytics; see :class:`anonymetry.ingest.reader.StoreReader`."""
    from anonymetry.ingest.reader import open_reader as _open

    return _open(data_dir, keyring, policy)

