"""Nothing under DIR in plaintext; a flipped or moved byte of sealed data is detected."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from anonymetry.errors import TamperDetected
from anonymetry.ingest.compaction import delete_device
from anonymetry.ingest.store import EventStore, open_reader
from anonymetry.privacy import LocalKeyring

from .store_helpers import EPOCH, POLICY, event, keyed_event

CANARY = "canary-7f3a9c"


def _grep(data: Path, needle: bytes) -> list[Path]:
    return [p for p in data.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_no_attribute_value_or_pseudonym_readable_anywhere_under_dir(tmp_path: Path) -> None:
    keyring = LocalKeyring(tmp_path / "keys")
    store = EventStore(tmp_path, POLICY, keyring)
    user, device = "c0ffee" * 5 + "aa", "facade" * 5 + "bb"

    def marked(i: int):
        e = event(i, version=f"{CANARY}-{i % 3}")
        return type(e)(e.dedup, e.epoch, e.event, e.time, user, device, e.consent, e.attrs)

    store.append_blocking([marked(i) for i in range(200)])
    needles = [CANARY.encode(), user.encode(), device.encode(), b"screen.view"[:6] + b"X"]
    # while the store is open: the -wal and -shm files exist too
    assert (tmp_path / "wal" / f"{store.instance}.sqlite-wal").exists()
    for needle in needles[:3]:
        assert _grep(tmp_path, needle) == [], f"{needle!r} in plaintext"
    store.compact()
    store.append_blocking([marked(i) for i in range(200, 300)])
    store.close()
    parquet = list((tmp_path / "parquet").rglob("*.parquet"))
    assert parquet
    for needle in needles[:3]:
        assert _grep(tmp_path, needle) == [], f"{needle!r} in plaintext after compaction"
    # the data is there, readable only with the keys
    table = open_reader(tmp_path, keyring, POLICY).to_arrow_table()
    assert table.num_rows == 300
    assert set(table["app_version"].to_pylist()) == {f"{CANARY}-{k}" for k in range(3)}
    with pytest.raises(OSError, match=r"(?i)encrypt|decrypt|key"):
        pq.read_table(parquet[0])  # no keys: the file cannot even be opened


def _segment(data: Path) -> Path:
    return next((data / "wal").glob("*.sqlite"))


def test_flipped_byte_in_a_sealed_chunk_is_detected(tmp_path: Path) -> None:
    keyring = LocalKeyring(tmp_path / "keys")
    with EventStore(tmp_path, POLICY, keyring) as store:
        store.append_blocking([keyed_event(i) for i in range(10)])
    with sqlite3.connect(_segment(tmp_path)) as conn:
        (blob,) = conn.execute("SELECT blob FROM chunks").fetchone()
        bad = bytearray(blob)
        bad[len(bad) // 2] ^= 0x01
        conn.execute("UPDATE chunks SET blob = ?", (bytes(bad),))
    with pytest.raises(TamperDetected, match="does not authenticate"):
        open_reader(tmp_path, keyring, POLICY)


def test_sealed_chunks_cannot_be_swapped(tmp_path: Path) -> None:
    keyring = LocalKeyring(tmp_path / "keys")
    with EventStore(tmp_path, POLICY, keyring) as store:
        store.append_blocking([keyed_event(i) for i in range(10)])
        store.append_blocking([keyed_event(i) for i in range(10, 20)])
    with sqlite3.connect(_segment(tmp_path)) as conn:
        (a, blob_a), (b, blob_b) = conn.execute("SELECT id, blob FROM chunks ORDER BY id")
        conn.execute("UPDATE chunks SET blob = ? WHERE id = ?", (blob_b, a))
        conn.execute("UPDATE chunks SET blob = ? WHERE id = ?", (blob_a, b))
    with pytest.raises(TamperDetected):
        open_reader(tmp_path, keyring, POLICY)


# -- Parquet files and WAL chunks altered after the fact: reads fail loudly, never return
# -- altered rows, and the error names the file or chunk but no value ----------------------


def _compacted_store(data: Path) -> tuple[LocalKeyring, Path]:
    """2,000 compacted events (app_version carries the canary) plus 10 uncompacted ones;
    returns the keyring and the one Parquet file."""
    keyring = LocalKeyring(data / "keys")
    with EventStore(data, POLICY, keyring) as store:
        store.append_blocking([event(i, version=f"{CANARY}-{i % 7}") for i in range(2000)])
        assert store.compact() == 2000
        store.append_blocking([event(i, version=CANARY) for i in range(2000, 2010)])
    (path,) = (data / "parquet").rglob("*.parquet")
    return keyring, path


def _regions(path: Path) -> tuple[range, range]:
    """Byte ranges of an encrypted-footer Parquet file: the column chunks (encrypted page
    headers and pages) and the end of the encrypted footer module (ciphertext and GCM tag;
    the plaintext key metadata before it holds fields pyarrow does not use)."""
    data = path.read_bytes()
    assert data[:4] == data[-4:] == b"PARE"  # encrypted footer
    footer_len = int.from_bytes(data[-8:-4], "little")
    footer_start = len(data) - 8 - footer_len
    return range(4, footer_start), range(len(data) - 8 - 200, len(data) - 8)


def _flip(path: Path, pos: int) -> bytes:
    original = path.read_bytes()
    altered = bytearray(original)
    altered[pos] ^= 0x01
    path.write_bytes(bytes(altered))
    return original


def test_flipped_byte_in_parquet_pages_fails_every_read_and_returns_no_altered_row(
        tmp_path: Path) -> None:
    """A flipped bit in any column chunk of an encrypted Parquet file: a full read through the
    reader raises TamperDetected naming the file (not a value); a DuckDB query through the
    reader fails with the decryption error; a read of fewer columns either fails the same way
    or returns exactly the original values (AES-GCM authenticates every page it reads)."""
    keyring, path = _compacted_store(tmp_path)
    expected = open_reader(tmp_path, keyring, POLICY).to_arrow_table()
    pages, _ = _regions(path)
    step = len(pages) // 6
    for pos in range(pages.start + 16, pages.stop, step):
        original = _flip(path, pos)
        try:
            reader = open_reader(tmp_path, keyring, POLICY)  # footer intact: opens
            with pytest.raises(TamperDetected, match="does not authenticate") as caught:
                reader.to_arrow_table()
            message = str(caught.value)
            assert path.name in message
            assert CANARY not in message
            conn = duckdb.connect()
            reader.duckdb_register(conn, "events")
            with pytest.raises(duckdb.Error, match=r"(?i)decryption"):
                conn.sql("SELECT * FROM events").to_arrow_table()
            conn.close()
            for column in expected.column_names:
                try:
                    got = reader.to_arrow_table(columns=[column])
                except TamperDetected:
                    continue
                assert got[column].equals(expected[column]), f"altered {column} at byte {pos}"
        finally:
            path.write_bytes(original)
    assert open_reader(tmp_path, keyring, POLICY).to_arrow_table().equals(expected)


def test_flipped_byte_in_parquet_footer_fails_opening_the_store(tmp_path: Path) -> None:
    """A flipped bit in the encrypted footer (or its GCM tag): opening a reader raises
    TamperDetected naming the file, so neither Arrow nor DuckDB reads get any row; erasure
    refuses the file the same way."""
    keyring, path = _compacted_store(tmp_path)
    _, footer = _regions(path)
    for pos in (footer.start, footer.start + 100, footer.stop - 1):
        original = _flip(path, pos)
        try:
            with pytest.raises(TamperDetected, match="does not authenticate") as caught:
                open_reader(tmp_path, keyring, POLICY)
            message = str(caught.value)
            assert path.name in message
            assert CANARY not in message
            with pytest.raises(TamperDetected, match=re.escape(path.name)):
                delete_device(tmp_path, keyring, {EPOCH: "e" * 32}, policy=POLICY)
        finally:
            path.write_bytes(original)
    assert open_reader(tmp_path, keyring, POLICY).to_arrow_table().num_rows == 2010


def test_flipped_gcm_tag_of_a_wal_chunk_fails_reads_and_compaction_naming_the_chunk(
        tmp_path: Path) -> None:
    """The last byte of a sealed chunk (its AES-GCM tag) flipped in the segment SQLite: the
    reader and compaction raise TamperDetected naming the segment file and chunk (no value),
    and compaction moves nothing (the chunk stays, no Parquet file appears)."""
    keyring = LocalKeyring(tmp_path / "keys")
    with EventStore(tmp_path, POLICY, keyring, instance="seg") as store:
        store.append_blocking([event(i, version=CANARY) for i in range(10)])
        store.append_blocking([event(i, version=CANARY) for i in range(10, 20)])
    with sqlite3.connect(_segment(tmp_path)) as conn:
        chunk, blob = conn.execute("SELECT id, blob FROM chunks ORDER BY id DESC").fetchone()
        conn.execute("UPDATE chunks SET blob = ? WHERE id = ?",
                     (blob[:-1] + bytes([blob[-1] ^ 0x80]), chunk))
    with pytest.raises(TamperDetected, match=rf"wal/seg\.sqlite: chunk {chunk} ") as caught:
        open_reader(tmp_path, keyring, POLICY)
    assert CANARY not in str(caught.value)
    assert "does not authenticate" in str(caught.value)
    with EventStore(tmp_path, POLICY, keyring, instance="seg") as store, \
            pytest.raises(TamperDetected, match=rf"chunk {chunk} "):
        store.compact()
    assert not list(tmp_path.rglob("*.parquet"))
    with sqlite3.connect(_segment(tmp_path)) as conn:
        assert conn.execute("SELECT count(*) FROM chunks").fetchone()[0] == 2
