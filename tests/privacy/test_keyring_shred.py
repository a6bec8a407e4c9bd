"""Crypto-shredding: destroying an epoch's key makes its WAL and Parquet rows unreadable, the
reader and stats report them as shredded, and other epochs stay intact. Also the key CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from anonymetry.errors import KeyUnavailable
from anonymetry.ingest.reader import store_stats
from anonymetry.ingest.store import EventStore, StoredEvent, open_reader
from anonymetry.policy import default_policy
from anonymetry.privacy import LocalKeyring
from anonymetry.privacy.parquet_crypto import ParquetCrypto

POLICY = default_policy()
OLD, NEW = 20000, 20001


def _event(i: int, epoch: int) -> StoredEvent:
    return StoredEvent(f"{epoch}-{i:028x}", epoch, "app.launch", epoch * 30 * 86400, "u" * 32,
                       "d" * 32, "essential", {"platform": "web", "app_version": str(i)})


def _cli(*args: str):
    """The real command line, in process (a subprocess per call costs seconds of imports)."""
    from anonymetry.cli.main import app

    return CliRunner().invoke(app, list(args))


def _fill(data: Path) -> None:
    with EventStore(data, POLICY, LocalKeyring(data / "keys")) as store:
        store.append_blocking([_event(i, OLD) for i in range(30)] +
                              [_event(i, NEW) for i in range(20)])
        assert store.compact() == 50
        store.append_blocking([_event(i, OLD) for i in range(30, 40)] +
                              [_event(i, NEW) for i in range(20, 25)])


def test_destroyed_epoch_is_unreadable_and_reported_as_shredded(tmp_path: Path) -> None:
    _fill(tmp_path)
    keyring = LocalKeyring(tmp_path / "keys")
    old_file = next((tmp_path / "parquet" / f"epoch={OLD}").glob("*.parquet"))
    before = pq.read_table(old_file, decryption_properties=ParquetCrypto(
        keyring).decryption_properties())
    assert before.num_rows == 30

    keyring.destroy(OLD)

    reader = open_reader(tmp_path, LocalKeyring(tmp_path / "keys"), POLICY)
    table = reader.to_arrow_table()
    assert set(table["epoch"].to_pylist()) == {NEW}
    assert table.num_rows == 25
    assert reader.shredded == {OLD: 40}
    with pytest.raises((KeyUnavailable, OSError)):  # even a fresh decryptor cannot read it
        pq.read_table(old_file, decryption_properties=ParquetCrypto(
            LocalKeyring(tmp_path / "keys")).decryption_properties())
    stats = store_stats(tmp_path, keyring)
    assert stats["stored"] == 25
    assert stats["shredded"] == {"rows": 40, "epochs": [OLD]}

    with EventStore(tmp_path, POLICY, LocalKeyring(tmp_path / "keys")) as store:
        assert store.compact() == 5  # the live epoch moves; the shredded chunks are dropped
    assert open_reader(tmp_path, keyring, POLICY).to_arrow_table().num_rows == 25

    out = _cli("store", "stats", "--data", str(tmp_path), "--json")
    assert out.exit_code == 0, out.stderr
    printed = json.loads(out.stdout)
    assert printed["stored"] == 25
    assert printed["by_event"] == {"app.launch": 25}
    assert set(printed["discarded"]) == {"consent", "undeclared", "expired", "invalid"}
    assert printed["shredded"]["epochs"] == [OLD]


def test_keys_cli_lists_rotates_and_destroys_only_with_yes(tmp_path: Path) -> None:
    assert _cli("keys", "rotate", "--data", str(tmp_path), "--json").exit_code == 0
    listed = json.loads(_cli("keys", "list", "--data", str(tmp_path), "--json").stdout)
    current = listed["current"]
    assert [e["epoch"] for e in listed["epochs"]] == [current, current + 1]
    assert all(e["state"] == "active" for e in listed["epochs"])

    refused = _cli("keys", "destroy", "--data", str(tmp_path), "--epoch", str(current))
    assert refused.exit_code == 1
    assert "--yes" in refused.stderr
    assert LocalKeyring(tmp_path / "keys").epochs()[current] == "active"

    done = _cli("keys", "destroy", "--data", str(tmp_path), "--epoch", str(current), "--yes")
    assert done.exit_code == 0, done.stderr
    assert LocalKeyring(tmp_path / "keys").epochs()[current] == "destroyed"
    again = _cli("keys", "rotate", "--data", str(tmp_path))
    assert again.exit_code == 1  # a destroyed epoch is never brought back


def test_store_compact_cli_moves_wal_rows(tmp_path: Path) -> None:
    with EventStore(tmp_path, POLICY, LocalKeyring(tmp_path / "keys")) as store:
        store.append_blocking([_event(i, NEW) for i in range(12)])
    out = _cli("store", "compact", "--data", str(tmp_path), "--json")
    assert out.exit_code == 0, out.stderr
    assert json.loads(out.stdout) == {"moved": 12, "merged_files": 0, "merged_into": 0}
    stats = store_stats(tmp_path, LocalKeyring(tmp_path / "keys"))
    assert stats["parquet"]["rows"] == 12
    assert stats["wal"]["rows"] == 0
