"""The event store: durable group commits, idempotent retries, compaction, erasure, stats."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import time
from pathlib import Path

import duckdb
import pytest

from anonymetry.errors import InvalidParameter, KeyUnavailable
from anonymetry.ingest.reader import store_stats
from anonymetry.ingest.store import EventStore, open_reader
from anonymetry.privacy import LocalKeyring

from .store_helpers import EPOCH, POLICY, event, keyed_event, read_table, seqs


def _store(data: Path, **kw: object) -> EventStore:
    return EventStore(data, POLICY, LocalKeyring(data / "keys"), **kw)  # type: ignore[arg-type]


def test_retry_of_a_stored_event_is_a_duplicate_and_stored_once(tmp_path: Path) -> None:
    with _store(tmp_path) as store:
        first = store.append_blocking([keyed_event(i) for i in range(10)])
        again = store.append_blocking([keyed_event(i) for i in range(5, 15)])
        inside = store.append_blocking([keyed_event(20), keyed_event(20)])
    assert first == [True] * 10
    assert again == [False] * 5 + [True] * 5
    assert inside == [True, False]  # a repeat within one batch is a duplicate too
    assert seqs(tmp_path) == [*range(15), 20]


def test_dedup_survives_compaction_and_restart(tmp_path: Path) -> None:
    with _store(tmp_path) as store:
        store.append_blocking([keyed_event(i) for i in range(100)])
        assert store.compact() == 100
        assert store_stats(tmp_path, store.keyring)["wal"]["rows"] == 0
        late = store.append_blocking([keyed_event(i) for i in range(90, 110)])
    assert late == [False] * 10 + [True] * 10
    with _store(tmp_path) as store:  # a new process: its own (adopted) segment, same catalog
        assert store.append_blocking([keyed_event(i) for i in range(0, 120, 10)]) == (
            [False] * 11 + [True])
        store.compact()
    assert seqs(tmp_path) == [*range(110), 110]
    assert store_stats(tmp_path, LocalKeyring(tmp_path / "keys"))["stored"] == 111


def test_concurrent_async_appends_share_group_commits(tmp_path: Path) -> None:
    store = _store(tmp_path)

    async def main() -> list[list[bool]]:
        return await asyncio.gather(*[
            store.append([keyed_event(t * 100 + i) for i in range(100)]) for t in range(60)])

    try:
        results = asyncio.run(main())
    finally:
        store.close()
    assert all(all(r) and len(r) == 100 for r in results)
    assert seqs(tmp_path) == list(range(6000))
    with sqlite3.connect(tmp_path / "wal" / f"{store.instance}.sqlite") as conn:
        chunks = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
    assert chunks < 60, "60 concurrent appends should have been grouped into fewer commits"


def test_two_processes_append_overlapping_events_exactly_once(tmp_path: Path) -> None:
    import subprocess
    import sys

    worker = str(Path(__file__).with_name("store_worker.py"))
    # named segments: an unnamed store may reuse a segment its finished peer released
    procs = [subprocess.Popen([sys.executable, worker, str(tmp_path), str(start), "3000", "100",
                               name], stdout=subprocess.PIPE, text=True)
             for start, name in ((0, "w0"), (2000, "w1"))]  # keys 2000..2999 are sent by both
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    new = [int(o.strip().splitlines()[-1].split()[1]) for o in outs]
    assert len(list((tmp_path / "wal").glob("*.sqlite"))) == 2  # one segment per process
    assert seqs(tmp_path) == list(range(5000))  # the reader shows each event once
    compacted = _store(tmp_path)
    compacted.compact()
    stats = store_stats(tmp_path, compacted.keyring)
    compacted.close()
    assert seqs(tmp_path) == list(range(5000))
    assert stats["stored"] == 5000
    assert sum(new) >= 5000  # both may count a key they raced on; storage has it once


def test_stats_sum_segments_and_discards(tmp_path: Path) -> None:
    a, b = _store(tmp_path, instance="a"), _store(tmp_path, instance="b")
    a.append_blocking([event(1), event(2)], {"consent": 3, "invalid": 1})
    b.append_blocking([event(3)], {"consent": 2, "expired": 4, "undeclared": 5})
    b.append_blocking([], {"invalid": 1})
    a.close()
    b.close()
    stats = store_stats(tmp_path, LocalKeyring(tmp_path / "keys"))
    assert stats["stored"] == 3
    assert stats["by_event"] == {"screen.view": 3}
    assert stats["discarded"] == {"consent": 5, "undeclared": 5, "expired": 4, "invalid": 2}
    assert stats["wal"] == {"segments": 2, "rows": 3}


def test_instance_names_never_collide_between_live_processes(tmp_path: Path) -> None:
    with _store(tmp_path, instance="w0"), pytest.raises(InvalidParameter, match="in use"):
        _store(tmp_path, instance="w0")
    with _store(tmp_path) as one, _store(tmp_path) as two:
        assert one.instance != two.instance
    with _store(tmp_path) as again:  # a restarted process adopts a free segment
        assert again.instance in {one.instance, two.instance, "w0"}


def test_delete_device_erases_wal_and_parquet_rows(tmp_path: Path) -> None:
    gone, kept = "a" * 32, "b" * 32
    with _store(tmp_path) as store:
        store.append_blocking([event(i, device=gone if i % 3 == 0 else kept) for i in range(30)])
        store.compact()
        store.append_blocking([event(i, device=gone if i % 3 == 0 else kept)
                               for i in range(30, 60)])
        assert store.delete_device({EPOCH: gone}) == 20
        assert store.delete_device({EPOCH: gone}) == 0
        stats = store.stats()
    table = read_table(tmp_path)
    assert set(table["device"].to_pylist()) == {kept}
    assert sorted(table["duration_ms"].to_pylist()) == [i for i in range(60) if i % 3]
    assert stats["stored"] == 40


def test_compaction_interrupted_before_segment_cleanup_counts_nothing_twice(
        tmp_path: Path) -> None:
    """A crash after the catalog commit but before the segment delete: restore the
    pre-compaction segment file and check readers, stats and the next compaction."""
    with _store(tmp_path, instance="s") as store:
        store.append_blocking([keyed_event(i) for i in range(50)])
    seg = tmp_path / "wal" / "s.sqlite"
    saved = tmp_path / "saved.sqlite"
    shutil.copy(seg, saved)
    with _store(tmp_path, instance="s") as store:
        assert store.compact() == 50
    for suffix in ("-wal", "-shm"):
        Path(f"{seg}{suffix}").unlink(missing_ok=True)
    shutil.copy(saved, seg)  # the segment as if its delete never happened
    assert seqs(tmp_path) == list(range(50))
    keyring = LocalKeyring(tmp_path / "keys")
    assert store_stats(tmp_path, keyring)["stored"] == 50
    with _store(tmp_path, instance="s") as store:
        assert store.append_blocking([keyed_event(3), keyed_event(50)]) == [False, True]
        assert store.compact() == 1
    assert seqs(tmp_path) == list(range(51))
    assert store_stats(tmp_path, keyring)["wal"]["rows"] == 0


def test_pending_parquet_of_a_crashed_compaction_is_discarded(tmp_path: Path) -> None:
    with _store(tmp_path) as store:
        store.append_blocking([event(i) for i in range(5)])
    catalog = sqlite3.connect(tmp_path / "catalog.sqlite")
    orphan = tmp_path / "parquet" / f"epoch={EPOCH}" / "part-99999999-x.parquet"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"half-written")
    with catalog:
        catalog.execute("INSERT INTO files(path, epoch, state) VALUES(?, ?, 'pending')",
                        (str(orphan.relative_to(tmp_path)), EPOCH))
    catalog.close()
    assert seqs(tmp_path) == list(range(5))  # readers ignore pending files
    with _store(tmp_path) as store:
        assert store.compact() == 5
    assert not orphan.exists()
    assert seqs(tmp_path) == list(range(5))


def test_reader_is_scanned_by_duckdb(tmp_path: Path) -> None:
    with _store(tmp_path) as store:
        store.append_blocking([event(i) for i in range(40)])
        store.compact()
        store.append_blocking([event(i) for i in range(40, 50)])
    reader = open_reader(tmp_path, LocalKeyring(tmp_path / "keys"), POLICY)
    conn = duckdb.connect()
    reader.duckdb_register(conn, "events")
    n, total, version = conn.execute(
        "SELECT count(*), sum(duration_ms), any_value(app_version) FROM events").fetchone()
    assert (n, total, version) == (50, sum(range(50)), "1.0.0")
    schema = reader.dataset().schema
    assert str(schema.field("time").type) == "timestamp[s, tz=UTC]"
    assert str(schema.field("epoch").type) == "int32"
    assert str(schema.field("duration_ms").type) == "int64"
    assert str(schema.field("amount").type) == "double"


def test_appending_to_a_destroyed_epoch_is_refused(tmp_path: Path) -> None:
    keyring = LocalKeyring(tmp_path / "keys")
    keyring.keys(EPOCH - 1, create=True)
    keyring.destroy(EPOCH - 1)
    with _store(tmp_path) as store, pytest.raises(KeyUnavailable, match="destroyed"):
        store.append_blocking([event(1, epoch=EPOCH - 1)])


def test_the_wal_is_copied_into_the_segment_off_the_commit_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Commits never checkpoint (``wal_autocheckpoint=0``), so without the store's checkpointer
    thread the WAL would grow for as long as the collector runs: while the store is open, its
    committed pages must reach the database file."""
    from anonymetry.ingest import _wal

    monkeypatch.setattr(_wal, "CHECKPOINT_EVERY_S", 0.02)
    segment = tmp_path / "wal" / "a.sqlite"
    with EventStore(tmp_path, POLICY, LocalKeyring(tmp_path / "keys"), instance="a") as store:
        empty = segment.stat().st_size
        for start in range(0, 6000, 500):
            store.append_blocking([keyed_event(i) for i in range(start, start + 500)])
        deadline = time.monotonic() + 10
        while segment.stat().st_size <= empty + 65536 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert segment.stat().st_size > empty + 65536  # pages copied while the store runs
    assert seqs(tmp_path) == list(range(6000))
