"""The durable, encrypted event store of the collector.

Acknowledged means durable: :meth:`EventStore.append` returns only after its events (and
discard counters) are in a committed, fsync'd SQLite transaction (WAL mode,
``synchronous=FULL``). One writer thread per store does group commits: every batch queued
while the previous commit was being fsync'd goes into the next transaction, whose futures are
then resolved together. Events travel as columns (:class:`StoredBatch`; a list of
:class:`StoredEvent` is converted on entry), and rows are sealed per chunk (one AES-256-GCM
blob of msgpack columns per epoch per commit), so a commit costs a few C calls per column, not
Python per row. Dedup: the commit's keys are checked against the keys of every segment's
uncompacted rows (held in memory, :mod:`._dedup`) and the catalog, then recorded in the same
transaction as one ``dedup_runs`` row per chunk.

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
import logging
import sqlite3
import threading
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from anonymetry.errors import InvalidParameter, Overloaded
from anonymetry.ingest import _wal
from anonymetry.ingest._codec import StoredBatch, encode_batch
from anonymetry.ingest._dedup import KnownKeys
from anonymetry.policy import Policy
from anonymetry.privacy import Keyring, Sealer

__all__ = ["DISCARD_REASONS", "EventStore", "StoredBatch", "StoredEvent", "open_reader"]

DISCARD_REASONS = ("consent", "undeclared", "expired", "invalid")
_MAX_GROUP_EVENTS = 50_000
_IDLE_REFRESH_S = 1.0  # an idle writer catches up with compaction this often
log = logging.getLogger("anonymetry.ingest")


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
    """A queued batch; its answer goes to an asyncio future of ``loop`` (``append``) or to a
    thread-safe future (``append_blocking``, ``loop`` None)."""

    __slots__ = ("batch", "discards", "future", "loop")

    def __init__(self, batch: StoredBatch, discards: Mapping[str, int] | None,
                 loop: asyncio.AbstractEventLoop | None) -> None:
        self.batch = batch
        self.discards = discards
        self.loop = loop
        self.future: asyncio.Future[list[bool]] | concurrent.futures.Future[list[bool]] = (
            loop.create_future() if loop is not None else concurrent.futures.Future())

    def take(self) -> bool:
        """Whether the writer may still take the batch (its caller was not cancelled)."""
        if self.loop is None:
            return self.future.set_running_or_notify_cancel()  # type: ignore[union-attr]
        return not self.future.cancelled()  # once taken, a cancellation comes too late


def _resolve(future: Any, result: Any, exc: BaseException | None) -> None:
    """Give ``future`` its result or ``exc``, unless it is done (cancelled) already."""
    if future.done():
        return
    if exc is None:
        future.set_result(result)
    else:
        future.set_exception(exc)


def _settle(answers: list[tuple[asyncio.Future[list[bool]], Any, BaseException | None]]
            ) -> None:
    """In the event loop: resolve the futures of one group commit (one wake-up per group)."""
    for future, result, exc in answers:
        _resolve(future, result, exc)


def _answer(group: list[_Item], results: Sequence[list[bool]] | None,
            exc: BaseException | None) -> None:
    """Hand each item its result (or ``exc``): thread-safe futures directly, asyncio futures in
    one ``call_soon_threadsafe`` per event loop (each call wakes the loop through a pipe)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
    for index, item in enumerate(group):
        result = results[index] if results is not None else None
        if item.loop is None:
            _resolve(item.future, result, exc)
        else:
            by_loop.setdefault(item.loop, []).append((item.future, result, exc))
    for loop, answers in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
            loop.call_soon_threadsafe(_settle, answers)


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
            _wal.tune_appender(self._conn)
            self._catalog = _wal.connect(self.data_dir / _wal.CATALOG_NAME)
            _wal.init_catalog(self._catalog)
            _wal.tune_catalog_prober(self._catalog)
            self._next_chunk = self._first_free_chunk()
            self._known = KnownKeys(self.wal_dir, self.instance, self._conn, self._catalog)
        except BaseException:
            self._lock.release()
            raise
        self._queue: deque[_Item] = deque()
        self._cv = threading.Condition()
        self._pending = 0
        self._closing = False
        self._closed = False
        self._epochs_ok: set[int] = set()
        self._thread = threading.Thread(target=self._run, name=f"store-{self.instance}",
                                        daemon=True)
        self._thread.start()
        self._stop_checkpoints = threading.Event()
        self._checkpointer = threading.Thread(
            target=self._checkpoints, name=f"checkpoint-{self.instance}", daemon=True)
        self._checkpointer.start()

    def _first_free_chunk(self) -> int:
        seq = self._conn.execute(
            "SELECT seq FROM sqlite_sequence WHERE name = 'chunks'").fetchone()
        top = self._conn.execute("SELECT max(id) FROM chunks").fetchone()[0]
        keys_top = _wal.dedup_top(self._conn)
        done = self._catalog.execute(
            "SELECT chunk FROM upto WHERE segment = ?", (self.instance,)).fetchone()
        return 1 + max(seq[0] if seq else 0, top or 0, keys_top or 0, done[0] if done else 0)

    # -- appending -----------------------------------------------------------------------
    def _submit(self, events: Sequence[StoredEvent] | StoredBatch,
                discards: Mapping[str, int] | None,
                loop: asyncio.AbstractEventLoop | None = None) -> Any:
        if self._closing:
            raise InvalidParameter("the event store is closed; open a new one")
        if discards:
            unknown = set(discards) - set(DISCARD_REASONS)
            if unknown:
                raise InvalidParameter(
                    f"discard reasons {sorted(unknown)} unknown; use {list(DISCARD_REASONS)}")
        batch = events if type(events) is StoredBatch else StoredBatch.from_rows(events)
        for epoch in set(batch.epoch) - self._epochs_ok:
            self.keyring.keys(epoch, create=True)  # KeyUnavailable for a destroyed epoch
            self._epochs_ok.add(epoch)
        item = _Item(batch, discards, loop)
        n = len(batch)
        with self._cv:
            if self.max_pending is not None and self._pending + n > self.max_pending:
                raise Overloaded(f"event store has {self._pending} events waiting to be "
                                 "written; retry shortly", retry_after=1.0)
            self._queue.append(item)
            self._pending += n
            self._cv.notify()
        return item.future

    async def append(self, events: Sequence[StoredEvent] | StoredBatch,
                     discards: Mapping[str, int] | None = None) -> list[bool]:
        """Store ``events`` durably; per event ``True`` = newly stored, ``False`` = duplicate.

        Returns after the batch and ``discards`` (reason → count) are fsync'd. If the caller is
        cancelled before the writer took the batch, nothing of it is stored.
        """
        if not len(events) and not discards:
            return []
        return await self._submit(events, discards, asyncio.get_running_loop())  # type: ignore[no-any-return]

    def append_blocking(self, events: Sequence[StoredEvent] | StoredBatch,
                        discards: Mapping[str, int] | None = None) -> list[bool]:
        """:meth:`append` for synchronous callers."""
        if not len(events) and not discards:
            return []
        return self._submit(events, discards).result()

    def pending(self) -> int:
        """Events queued or being committed (for backpressure)."""
        return self._pending

    def uncompacted(self) -> int:
        """Acknowledged events of every segment not yet compacted, as of this store's last
        commit (or its last second idle): each one's dedup key is held in this process's
        memory (~130 bytes), so the collector stops accepting past a bound until compaction
        catches up."""
        return len(self._known.keys)

    # -- the writer thread ---------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._queue and not self._closing:
                    if not self._cv.wait(_IDLE_REFRESH_S):
                        break
                if not self._queue:
                    if self._closing:
                        return
                    idle = True
                else:
                    idle = False
            if idle:  # no commit for a while: still learn what compaction moved
                try:
                    self._known.refresh()
                except Exception as exc:  # the next commit refreshes (and reports) again
                    log.debug("idle refresh of the dedup keys failed: %s", type(exc).__name__)
                continue
            with self._cv:
                group: list[_Item] = []
                taken = 0
                while self._queue and (not group or taken < _MAX_GROUP_EVENTS):
                    item = self._queue.popleft()
                    taken += len(item.batch)
                    if item.take():
                        group.append(item)
            try:
                if group:
                    results = self._commit(group)
                    _answer(group, results, None)
            except BaseException as exc:
                _answer(group, None, exc)
            finally:
                with self._cv:
                    self._pending -= taken

    def _commit(self, group: list[_Item]) -> list[list[bool]]:
        batch = StoredBatch.concat([item.batch for item in group])
        keys = batch.dedup
        n = len(keys)
        conn = self._conn
        appended: list[tuple[int, list[str]]] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            probe = self._known.refresh()
            stored = self._known.stored(keys, probe)
            if not stored and len(set(keys)) == n:  # the common case: all new
                flags = [True] * n
            else:
                flags = []
                for key in keys:
                    flags.append(key not in stored)
                    stored.add(key)  # a repeat inside the group is a duplicate
            epochs = set(batch.epoch)
            if len(epochs) == 1:
                groups: dict[int, Sequence[int]] = {epochs.pop(): range(n)}
            else:
                groups = {}
                for i, epoch in enumerate(batch.epoch):
                    groups.setdefault(epoch, []).append(i)  # type: ignore[attr-defined]
            counts: Counter[tuple[str, str, int]] = Counter()
            for epoch, idx in groups.items():
                take = [i for i in idx if flags[i]] if len(idx) != n or stored else idx
                if not take:
                    continue
                rows = batch if len(take) == n else batch.take(take)
                chunk = self._next_chunk
                self._next_chunk += 1
                _wal.add_dedup_run(conn, chunk, epoch, orjson.dumps(rows.dedup))
                aad = _wal.chunk_aad(self.instance, chunk, epoch, len(rows))
                blob = self._sealer.seal(epoch, encode_batch(rows), aad)
                conn.execute("INSERT INTO chunks(id, epoch, n, blob) VALUES(?, ?, ?, ?)",
                             (chunk, epoch, len(rows), blob))
                appended.append((chunk, rows.dedup))
                for name, k in Counter(rows.event).items():
                    counts["stored", name, epoch] += k
            for item in group:
                if item.discards:
                    for reason, k in item.discards.items():
                        if k:
                            counts["discarded", reason, -1] += int(k)
            if counts:
                conn.executemany(_wal.COUNTER_UPSERT,
                                 [(k, name, ep, c) for (k, name, ep), c in counts.items()])
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        for chunk, chunk_keys in appended:
            self._known.add(self.instance, chunk, chunk_keys)
        out: list[list[bool]] = []
        pos = 0
        for item in group:
            size = len(item.batch)
            out.append(flags[pos:pos + size])
            pos += size
        return out

    def _checkpoints(self) -> None:
        """Copy the segment's WAL into its database file off the commit path (see
        :func:`anonymetry.ingest._wal.tune_appender`)."""
        conn = _wal.connect(self._lock.path)
        try:
            while not self._stop_checkpoints.wait(_wal.CHECKPOINT_EVERY_S):
                try:
                    _wal.checkpoint(conn)
                except sqlite3.OperationalError:
                    continue  # busy or locked for a moment: the next round copies it
        finally:
            conn.close()

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
        self._stop_checkpoints.set()
        self._checkpointer.join()
        self._closed = True
        self._known.close()
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

