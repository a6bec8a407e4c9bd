"""Nothing under DIR in plaintext; a flipped or moved byte of sealed data is detected."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from anonymetry.errors import TamperDetected
from anonymetry.ingest.store import EventStore, open_reader
from anonymetry.privacy import LocalKeyring

from .store_helpers import POLICY, event, keyed_event

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
