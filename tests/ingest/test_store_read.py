"""The columnar read side of the event store: chunks decoded as columns and built into Arrow
one column at a time, deduplicated on arrays, with the same rows (and order) as row by row."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pyarrow as pa

from anonymetry.ingest import _wal
from anonymetry.ingest._codec import (
    Row,
    StoredBatch,
    batches_to_table,
    decode_batch,
    encode_batch,
    stored_schema,
)
from anonymetry.ingest.compaction import compact, delete_device
from anonymetry.ingest.reader import store_stats
from anonymetry.ingest.store import EventStore, open_reader
from anonymetry.privacy import LocalKeyring, Sealer

from .store_helpers import EPOCH, POLICY, event

SCHEMA = stored_schema(POLICY)


def _row(key: str, seq: int, *, device: str = "d" * 32, name: str = "screen.view") -> Row:
    attrs: dict[str, Any] = ({"platform": "ios", "screen": "home", "duration_ms": seq}
                             if name == "screen.view" else {"feature": "sync", "count": seq})
    return Row(key, EPOCH, name, EPOCH * 30 * 86400 + 3600, "u" * 32, device, "usage", attrs)


def _put_chunk(data: Path, segment: str, rows: list[Row], *, legacy: bool = False,
               catalog_keys: tuple[str, ...] = ()) -> None:
    """Write one sealed chunk (columnar, or the older list of row maps) straight into a
    segment, with its dedup keys and counters, as a collector would have."""
    (data / "wal").mkdir(parents=True, exist_ok=True)
    sealer = Sealer(LocalKeyring(data / "keys"))
    plain = (msgspec.msgpack.encode(rows) if legacy
             else encode_batch(StoredBatch.from_rows(rows)))
    conn = _wal.connect(data / "wal" / f"{segment}.sqlite")
    try:
        _wal.init_segment(conn)
        with conn:
            chunk = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM chunks").fetchone()[0]
            blob = sealer.seal(EPOCH, plain, _wal.chunk_aad(segment, chunk, EPOCH, len(rows)))
            conn.execute("INSERT INTO chunks(id, epoch, n, blob) VALUES(?, ?, ?, ?)",
                         (chunk, EPOCH, len(rows), blob))
            _wal.add_dedup_run(conn, chunk, EPOCH, orjson.dumps([r.dedup for r in rows]))
            conn.executemany(_wal.COUNTER_UPSERT,
                             [("stored", r.event, EPOCH, 1) for r in rows])
    finally:
        conn.close()
    if catalog_keys:
        catalog = _wal.connect(data / _wal.CATALOG_NAME)
        try:
            _wal.init_catalog(catalog)
            with catalog:
                catalog.executemany("INSERT INTO dedup(key, epoch) VALUES(?, ?)",
                                    [(k, EPOCH) for k in catalog_keys])
        finally:
            catalog.close()


def _by_row(rows: list[Row]) -> pa.Table:
    """The reference: the Arrow table built row by row."""
    return pa.Table.from_pylist(
        [{"event": r.event, "time": r.time, "epoch": r.epoch, "user": r.user,
          "device": r.device, "consent": r.consent, **r.attrs} for r in rows], schema=SCHEMA)


def test_columnar_chunks_build_the_same_table_as_row_by_row() -> None:
    """Chunks with different field sets (each missing fields the other has), decoded as
    columns, give exactly the table built row by row (types, nulls, order)."""
    a = [_row(f"a{i}", i) for i in range(5)]
    b = [_row(f"b{i}", 100 + i, name="feature.used") for i in range(3)]
    batches = [decode_batch(encode_batch(StoredBatch.from_rows(rows))) for rows in (a, b)]
    table = batches_to_table(batches, SCHEMA)
    assert table.equals(_by_row(a + b))
    inferred = batches_to_table(batches, None)  # no policy: only fields that have a value
    assert inferred.column_names == [*SCHEMA.names[:6], "platform", "screen", "duration_ms",
                                     "feature", "count"]
    assert inferred["count"].to_pylist() == [None] * 5 + [100, 101, 102]


def test_older_row_list_chunks_are_read_compacted_and_erased(tmp_path: Path) -> None:
    """A chunk in the pre-columnar format (a msgpack list of row maps) is read like a columnar
    one, compacts to the same rows, and erasing a device in it rewrites it columnar."""
    rows = [_row(f"k{i}", i, device="d" * 32 if i % 2 else "e" * 32) for i in range(6)]
    _put_chunk(tmp_path, "old", rows, legacy=True)
    keyring = LocalKeyring(tmp_path / "keys")
    assert open_reader(tmp_path, keyring, POLICY).to_arrow_table().equals(_by_row(rows))
    assert delete_device(tmp_path, keyring, {EPOCH: "e" * 32}, policy=POLICY) == 3
    kept = [r for r in rows if r.device == "d" * 32]
    assert open_reader(tmp_path, keyring, POLICY).to_arrow_table().equals(_by_row(kept))
    assert compact(tmp_path, POLICY, keyring) == 3
    assert open_reader(tmp_path, keyring, POLICY).to_arrow_table().equals(_by_row(kept))
    assert store_stats(tmp_path, keyring)["stored"] == 3


def test_reader_keeps_the_first_row_of_each_key_in_stored_order(tmp_path: Path) -> None:
    """Keys repeated between segments and within one (collectors that raced) and keys already
    compacted: the reader keeps exactly the first WAL row of each key not yet compacted, in
    segment then chunk order; without repeats nothing is dropped."""
    _put_chunk(tmp_path, "a", [_row("k1", 1), _row("k2", 2)])
    _put_chunk(tmp_path, "a", [_row("k3", 3), _row("k1", 10)])
    _put_chunk(tmp_path, "b", [_row("k2", 20), _row("k4", 4), _row("k4", 40), _row("kc", 99)],
               catalog_keys=("kc",))
    keyring = LocalKeyring(tmp_path / "keys")
    table = open_reader(tmp_path, keyring, POLICY).to_arrow_table()
    assert table["duration_ms"].to_pylist() == [1, 2, 3, 4]


def test_compaction_drops_rows_already_compacted_and_corrects_counters(tmp_path: Path) -> None:
    """A key another segment compacted first (or the catalog already holds) is dropped by
    compaction, the stored counters are corrected, and the other rows keep their values."""
    _put_chunk(tmp_path, "a", [_row("k1", 1), _row("k2", 2)])
    _put_chunk(tmp_path, "b", [_row("k2", 20), _row("k3", 3, name="feature.used"),
                               _row("kc", 99)], catalog_keys=("kc",))
    keyring = LocalKeyring(tmp_path / "keys")
    assert store_stats(tmp_path, keyring)["stored"] == 5  # both collectors counted theirs
    assert compact(tmp_path, POLICY, keyring) == 3
    table = open_reader(tmp_path, keyring, POLICY).to_arrow_table()
    assert sorted(zip(table["event"].to_pylist(), table["duration_ms"].to_pylist(),
                      table["count"].to_pylist(), strict=True)) == [
        ("feature.used", None, 3), ("screen.view", 1, None), ("screen.view", 2, None)]
    stats = store_stats(tmp_path, keyring)
    assert stats["stored"] == 3
    assert stats["by_event"] == {"feature.used": 1, "screen.view": 2}
    with sqlite3.connect(tmp_path / "catalog.sqlite") as conn:
        assert conn.execute("SELECT sum(rows) FROM files WHERE state = 'live'").fetchone() == (3,)


def test_reader_without_a_policy_unifies_wal_and_parquet_columns(tmp_path: Path) -> None:
    """With no policy the reader infers the WAL columns and unifies them with the Parquet
    files' schema (every declared field there), so both parts read as one table."""
    keyring = LocalKeyring(tmp_path / "keys")
    with EventStore(tmp_path, POLICY, keyring) as store:
        store.append_blocking([event(i) for i in range(5)])
        store.compact()
        store.append_blocking([event(i) for i in range(5, 8)])
    table = open_reader(tmp_path, keyring).to_arrow_table()
    assert table.schema.names[:6] == SCHEMA.names[:6]
    assert {f.name: f.type for f in table.schema} == {f.name: f.type for f in SCHEMA}
    assert sorted(table["duration_ms"].to_pylist()) == list(range(8))
