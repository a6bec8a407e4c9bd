"""Segment dedup tables are clustered by chunk (appends stay sequential), and a key stored in any
segment, of either layout, is a duplicate for every other store."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from anonymetry.ingest import _wal
from anonymetry.ingest.store import EventStore
from anonymetry.privacy import LocalKeyring

from .store_helpers import POLICY, keyed_event


def _store(data: Path, instance: str) -> EventStore:
    return EventStore(data, POLICY, LocalKeyring(data / "keys"), instance=instance)


def test_new_segments_are_clustered_by_chunk(tmp_path: Path) -> None:
    with _store(tmp_path, "a") as store:
        store.append_blocking([keyed_event(i) for i in range(10)])
    with sqlite3.connect(tmp_path / "wal" / "a.sqlite") as conn:
        assert _wal.dedup_layout(conn) == "chunk"


def test_keys_of_a_live_other_segment_are_duplicates(tmp_path: Path) -> None:
    a, b = _store(tmp_path, "a"), _store(tmp_path, "b")
    try:
        assert a.append_blocking([keyed_event(i) for i in range(20)]) == [True] * 20
        # b learns a's keys by reading what a appended since b's last look
        assert b.append_blocking([keyed_event(i) for i in range(15, 25)]) == (
            [False] * 5 + [True] * 5)
        assert a.append_blocking([keyed_event(24), keyed_event(30)]) == [False, True]
    finally:
        a.close()
        b.close()


def test_a_segment_of_the_older_key_clustered_layout_is_still_probed(tmp_path: Path) -> None:
    with _store(tmp_path, "old") as store:
        store.append_blocking([keyed_event(i) for i in range(10)])
    with sqlite3.connect(tmp_path / "wal" / "old.sqlite") as conn:
        conn.executescript("""
            CREATE TABLE dedup_old(key TEXT PRIMARY KEY, chunk INTEGER NOT NULL,
                                   epoch INTEGER NOT NULL) WITHOUT ROWID;
            INSERT INTO dedup_old SELECT key, chunk, epoch FROM dedup;
            DROP TABLE dedup;
            ALTER TABLE dedup_old RENAME TO dedup;
        """)
        assert _wal.dedup_layout(conn) == "key"
    with _store(tmp_path, "new") as store:
        assert store.append_blocking([keyed_event(9), keyed_event(10)]) == [False, True]
