"""A Bloom filter over the catalog's compacted dedup keys, in front of the store's exact probe.

Every group commit asks the catalog whether any of its new keys was compacted before (a retry
of an event stored long ago). Nearly all are new, and at millions of catalog keys each exact
probe is a B-tree descent over pages all over the file (``benchmarks/store_append.py
--catalog-keys``). :class:`CatalogKeyFilter` answers "certainly not there" for most keys in
memory, so only the few it cannot rule out are probed exactly. A false positive costs one
probe; a false negative would store a retry twice, so the filter must hold every catalog key:

- it is built from the whole ``dedup`` index at start, in one read transaction that also reads
  the highest ``dedup_log`` sequence number;
- compaction appends the keys it moves to ``dedup_log`` in the same catalog transaction that
  moves them (and sets ``upto``), and :meth:`CatalogKeyFilter.catch_up` reads the log rows past
  the last one read. The caller runs it in the same read transaction in which it reads
  ``upto`` and forgets the keys compaction moved from its in-memory set, so a key leaves
  memory only when the filter has it;
- old log rows are deleted (``LOG_KEEP_S``); a filter that finds rows it has not read deleted
  (a store idle that long) is rebuilt from the index, as is one grown past its capacity.

Keys deleted from the catalog (epochs past any valid retry) stay in the filter: false positives
only. Python's own string hash (SipHash, salted per process) feeds the filter, which is never
shared between processes. 10 bits and 7 probes per key: ~0.8 % false positives at capacity.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import numpy as np
import orjson

__all__ = ["LOG_KEEP_S", "CatalogKeyFilter"]

LOG_KEEP_S = 86400.0  # compaction deletes dedup_log rows older than this
_PROBES = 7
_BITS_PER_KEY = 10
_MIN_CAPACITY = 1 << 20
_STEPS = np.arange(_PROBES, dtype=np.uint64)[:, None]


def _log_top(catalog: sqlite3.Connection) -> int:
    """The highest ``dedup_log`` sequence number ever given (``AUTOINCREMENT`` keeps it when
    the rows are deleted)."""
    row = catalog.execute("SELECT seq FROM sqlite_sequence WHERE name = 'dedup_log'").fetchone()
    return int(row[0]) if row else 0


def _hashes(keys: Sequence[str]) -> np.ndarray:
    return np.fromiter(map(hash, keys), dtype=np.int64, count=len(keys)).view(np.uint64)


class CatalogKeyFilter:
    """See the module docstring. Used by one store's writer thread only."""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(_MIN_CAPACITY, capacity)
        bits = 1 << (self.capacity * _BITS_PER_KEY - 1).bit_length()
        self._mask = np.uint64(bits - 1)
        self._bytes = np.zeros(bits // 8, dtype=np.uint8)
        self.count = 0
        self.seq = 0  # the last dedup_log row read

    # -- building --------------------------------------------------------------------------
    @classmethod
    def load(cls, catalog: sqlite3.Connection) -> CatalogKeyFilter:
        """Every key of the catalog's ``dedup`` index, and the log position it corresponds to
        (in one read transaction)."""
        catalog.execute("BEGIN")
        try:
            return cls._build(catalog)
        finally:
            catalog.execute("COMMIT")

    @classmethod
    def _build(cls, catalog: sqlite3.Connection) -> CatalogKeyFilter:
        """:meth:`load` inside the caller's read transaction."""
        seq = _log_top(catalog)
        n = catalog.execute("SELECT count(*) FROM dedup").fetchone()[0]
        out = cls(2 * n)
        slots = np.zeros(len(out._bytes) * 8, dtype=np.uint8)  # a byte per bit while building
        cursor = catalog.execute("SELECT key FROM dedup")
        while rows := cursor.fetchmany(262144):
            slots[out._positions([k for (k,) in rows]).ravel()] = 1
        out._bytes = np.packbits(slots, bitorder="little")
        out.count, out.seq = n, seq
        return out

    def _positions(self, keys: Sequence[str]) -> np.ndarray:
        """``_PROBES`` bit positions per key (double hashing of one 64-bit hash)."""
        h = _hashes(keys)
        step = (h >> np.uint64(32)) | (h << np.uint64(32)) | np.uint64(1)
        return (h[None, :] + _STEPS * step[None, :]) & self._mask

    def add(self, keys: Sequence[str]) -> None:
        if not keys:
            return
        pos = self._positions(keys).ravel()
        np.bitwise_or.at(self._bytes, pos >> np.uint64(3),
                         (np.uint8(1) << (pos & np.uint64(7)).astype(np.uint8)))
        self.count += len(keys)

    # -- keeping up ------------------------------------------------------------------------
    def catch_up(self, catalog: sqlite3.Connection) -> CatalogKeyFilter:
        """Add the keys compaction logged since the last look; returns the filter to use from
        now on (a rebuilt one when log rows it had not read are gone or it is full). Call it
        inside the caller's read transaction on ``catalog``."""
        top = _log_top(catalog)
        if top == self.seq:
            return self
        first = catalog.execute("SELECT min(seq) FROM dedup_log").fetchone()[0]
        if first is None or first > self.seq + 1:  # rows it has not read were deleted
            return CatalogKeyFilter._build(catalog)
        for seq, keys in catalog.execute(
                "SELECT seq, keys FROM dedup_log WHERE seq > ? ORDER BY seq", (self.seq,)):
            self.add([key for key, _ in orjson.loads(keys)])  # [key, epoch] pairs
            self.seq = seq
        if self.count > self.capacity:
            return CatalogKeyFilter._build(catalog)
        return self

    # -- asking ----------------------------------------------------------------------------
    def may_hold(self, keys: Sequence[str]) -> list[str]:
        """Those of ``keys`` the catalog may hold (all it does hold, and ~0.8 % others)."""
        if not keys or not self.count:  # nothing added: no bit is set
            return []
        pos = self._positions(keys)
        bits = (self._bytes[pos >> np.uint64(3)] >> (pos & np.uint64(7)).astype(np.uint8)) & 1
        hit = np.flatnonzero(bits.all(axis=0))
        return [keys[i] for i in hit]
