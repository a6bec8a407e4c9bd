"""A segment records each chunk's dedup keys as one ``dedup_runs`` row (appends stay one row per
chunk), and a key stored in any segment, of any layout a version of this store wrote, is a
duplicate for every store, before and after compaction."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from anonymetry.ingest import _wal
from anonymetry.ingest.store import EventStore
from anonymetry.privacy import LocalKeyring

from .store_helpers import POLICY, keyed_event, seqs


def _store(data: Path, instance: str) -> EventStore:
    return EventStore(data, POLICY, LocalKeyring(data / "keys"), instance=instance)


_PER_KEY_DDL = {
    "chunk": "CREATE TABLE dedup(key TEXT NOT NULL, chunk INTEGER NOT NULL, "
             "epoch INTEGER NOT NULL, PRIMARY KEY(chunk, key)) WITHOUT ROWID",
    "key": "CREATE TABLE dedup(key TEXT PRIMARY KEY, chunk INTEGER NOT NULL, "
           "epoch INTEGER NOT NULL) WITHOUT ROWID",
}


def _as_older_version(path: Path, clustered_by: str) -> None:
    """Rewrite a segment as the versions before ``dedup_runs`` left it: the same keys, one per
    row of a ``dedup`` table clustered by ``clustered_by``, and no ``dedup_runs``."""
    with sqlite3.connect(path) as conn:
        runs = conn.execute("SELECT chunk, epoch, keys FROM dedup_runs").fetchall()
        conn.execute(_PER_KEY_DDL[clustered_by])
        conn.execute("INSERT INTO dedup(key, chunk, epoch) SELECT j.value, r.chunk, r.epoch "
                     "FROM dedup_runs AS r, json_each(r.keys) AS j")
        conn.execute("DROP TABLE dedup_runs")
    assert runs, "the segment had keys to rewrite"
    with sqlite3.connect(path) as conn:
        assert _wal.dedup_layout(conn) == clustered_by
        assert not _wal.has_dedup_runs(conn)


def test_new_segments_record_one_run_per_chunk(tmp_path: Path) -> None:
    with _store(tmp_path, "a") as store:
        store.append_blocking([keyed_event(i) for i in range(10)])
        store.append_blocking([keyed_event(i) for i in range(8, 12)])  # 8, 9 are retries
    with sqlite3.connect(tmp_path / "wal" / "a.sqlite") as conn:
        assert _wal.dedup_layout(conn) is None  # no per-key table at all
        runs = conn.execute("SELECT chunk, json_array_length(keys) FROM dedup_runs "
                            "ORDER BY chunk").fetchall()
    assert [n for _, n in runs] == [10, 2]  # one row per chunk, holding only stored keys
    assert runs[0][0] < runs[1][0]


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


@pytest.mark.parametrize("clustered_by", ["chunk", "key"])
def test_keys_in_an_older_per_key_table_stay_duplicates(tmp_path: Path, clustered_by: str
                                                        ) -> None:
    """Read by another store, by the process that adopts the file (whose new keys then go to
    ``dedup_runs`` beside the old ones) and by a third store that sees both tables."""
    with _store(tmp_path, "old") as store:
        store.append_blocking([keyed_event(i) for i in range(10)])
    _as_older_version(tmp_path / "wal" / "old.sqlite", clustered_by)
    with _store(tmp_path, "peer") as peer:
        assert peer.append_blocking([keyed_event(9), keyed_event(10)]) == [False, True]
        with _store(tmp_path, "old") as adopter:  # the file gets dedup_runs now
            assert adopter.append_blocking([keyed_event(3), keyed_event(11)]) == [False, True]
            # the peer notices the adopted file's new table and reads its new keys
            assert peer.append_blocking([keyed_event(11), keyed_event(12)]) == [False, True]
    with sqlite3.connect(tmp_path / "wal" / "old.sqlite") as conn:
        assert _wal.has_dedup_runs(conn)
        assert conn.execute("SELECT count(*) FROM dedup").fetchone()[0] == 10  # left as it was
    with _store(tmp_path, "third") as third:
        assert third.append_blocking([keyed_event(i) for i in (0, 11, 12, 13)]) == [
            False, False, False, True]
    assert seqs(tmp_path) == list(range(14))


@pytest.mark.parametrize("clustered_by", ["chunk", "key"])
def test_compaction_drains_an_older_per_key_table_into_the_catalog(tmp_path: Path,
                                                                    clustered_by: str) -> None:
    with _store(tmp_path, "old") as store:
        store.append_blocking([keyed_event(i) for i in range(10)])
    _as_older_version(tmp_path / "wal" / "old.sqlite", clustered_by)
    with _store(tmp_path, "other") as other:
        other.append_blocking([keyed_event(i) for i in range(10, 15)])
        assert other.compact() == 15
    with sqlite3.connect(tmp_path / "wal" / "old.sqlite") as conn:
        assert conn.execute("SELECT count(*) FROM dedup").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM dedup_runs").fetchone()[0] == 0
    with sqlite3.connect(tmp_path / _wal.CATALOG_NAME) as catalog:
        assert catalog.execute("SELECT count(*) FROM dedup").fetchone()[0] == 15
    with _store(tmp_path, "late") as late:  # retries after compaction: found in the catalog
        assert late.append_blocking([keyed_event(i) for i in (2, 12, 15)]) == [
            False, False, True]
    assert seqs(tmp_path) == list(range(16))
