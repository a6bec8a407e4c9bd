"""The consent ledger: what each device has said, kept in ``DIR/consent.sqlite``.

A device is keyed by ``HMAC-SHA256(standing consent key, device id)`` (128 bits, hex): the
key comes from :meth:`LocalKeyring.standing_key` and does *not* rotate with epochs, because an
opt-out must hold for good. The ledger holds nothing else about the device (its level and the
day it last changed), so this cross-epoch link joins no events.

Effective level of an event (see :func:`effective_level`): the lower of the level the event
claims and the ledger's level for its device; the policy's ``consent.default_level`` when
neither says anything; capped at ``essential`` when the request carries ``Sec-GPC: 1`` and the
policy honors it. ``none`` in the ledger is an opt-out: later events of that device are
discarded (and its stored events deleted, see ``ingest.pipeline``).

Several collector processes share the file; each caches levels in memory and drops its cache
whenever SQLite's ``data_version`` says another connection committed (checked once per call).
The cache is keyed by the raw device id (bounded, in memory only, never written or logged),
so a batch whose devices are all cached costs one dict lookup per distinct device and no
HMAC: measured 0.7 → 0.1 µs per event on the ingest benchmark's batches (53 devices each).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from anonymetry.policy import ConsentLevel
from anonymetry.privacy import Keyring, keyed_digest

__all__ = ["ConsentLedger", "effective_level"]

_CACHE_MAX = 200_000
_UNKNOWN = -1
_LEVELS = {int(level): level for level in ConsentLevel}


def effective_level(
    claimed: ConsentLevel | None,
    recorded: ConsentLevel | None,
    default: ConsentLevel,
    *,
    gpc: bool,
) -> ConsentLevel:
    """The consent level an event is stored under (module docstring)."""
    if claimed is None and recorded is None:
        level = default
    elif claimed is None:
        level = recorded
    elif recorded is None:
        level = claimed
    else:
        level = min(claimed, recorded)
    assert level is not None
    if gpc and level > ConsentLevel.ESSENTIAL:
        level = ConsentLevel.ESSENTIAL
    return level


class ConsentLedger:
    """Consent per device; safe to share between threads of one process and across processes."""

    def __init__(self, data_dir: str | Path, keyring: Keyring) -> None:
        self.path = Path(data_dir) / "consent.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        key = keyring.standing_key("consent")

        @lru_cache(maxsize=65536)
        def device_key(device_id: str) -> str:
            return keyed_digest(key, device_id.encode("utf-8"))

        self.device_key = device_key
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                     timeout=30)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS consent (device TEXT PRIMARY KEY, level INTEGER NOT NULL,"
            " day INTEGER NOT NULL) WITHOUT ROWID"
        )
        self._cache: dict[str, int] = {}  # device key → level (or _UNKNOWN)
        self._raw: dict[str, int] = {}  # raw device id → level (or _UNKNOWN); memory only
        self._version = self._data_version()

    def _data_version(self) -> int:
        return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def levels(self, device_ids: Iterable[str]) -> dict[str, ConsentLevel]:
        """The recorded level of each device that has one (others are absent)."""
        out: dict[str, ConsentLevel] = {}
        with self._lock:
            version = self._data_version()
            if version != self._version or len(self._cache) > _CACHE_MAX:
                self._cache.clear()
                self._raw.clear()
                self._version = version
            raw = self._raw
            if len(raw) > _CACHE_MAX:
                raw.clear()
            raw_get = raw.get
            cache = self._cache
            missing: dict[str, str] = {}
            for device in device_ids:
                level = raw_get(device)
                if level is None:
                    key = self.device_key(device)
                    level = cache.get(key)
                    if level is None:
                        missing[key] = device
                        continue
                    raw[device] = level
                if level != _UNKNOWN:
                    out[device] = _LEVELS[level]
            if missing:
                keys = list(missing)
                for start in range(0, len(keys), 500):
                    chunk = keys[start:start + 500]
                    marks = ",".join("?" * len(chunk))
                    rows = self._conn.execute(
                        f"SELECT device, level FROM consent WHERE device IN ({marks})", chunk
                    ).fetchall()
                    found = dict(rows)
                    for key in chunk:
                        level = found.get(key, _UNKNOWN)
                        cache[key] = raw[missing[key]] = level
                        if level != _UNKNOWN:
                            out[missing[key]] = ConsentLevel(level)
        return out

    def level(self, device_id: str) -> ConsentLevel | None:
        return self.levels([device_id]).get(device_id)

    def record(self, device_id: str, level: ConsentLevel) -> None:
        """Record ``level`` for the device, durably (fsync'd) before returning."""
        key = self.device_key(device_id)
        day = int(time.time() // 86400)
        with self._lock:
            self._conn.execute(
                "INSERT INTO consent(device, level, day) VALUES (?, ?, ?) "
                "ON CONFLICT(device) DO UPDATE SET level = excluded.level, day = excluded.day",
                (key, int(level), day),
            )
            self._cache[key] = self._raw[device_id] = int(level)

    def count(self) -> dict[str, int]:
        """How many devices are recorded at each level (for stats)."""
        with self._lock:
            rows = self._conn.execute("SELECT level, count(*) FROM consent GROUP BY level")
            return {ConsentLevel(level).label: n for level, n in rows}

    def close(self) -> None:
        with self._lock:
            self._conn.close()
