"""The in-memory filter over the catalog's compacted dedup keys never rules out a key the catalog
holds (else a retry would be stored twice), whichever way the key got there, and rules out
nearly all the others (else it saves no probes)."""

from __future__ import annotations

import secrets
import sqlite3
from pathlib import Path

import orjson
import pytest

from anonymetry.ingest import _key_filter, _wal, compaction
from anonymetry.ingest._key_filter import CatalogKeyFilter
from anonymetry.ingest.store import EventStore
from anonymetry.privacy import LocalKeyring

from .store_helpers import POLICY, keyed_event, seqs


def _catalog(tmp_path: Path) -> sqlite3.Connection:
    conn = _wal.connect(tmp_path / _wal.CATALOG_NAME)
    _wal.init_catalog(conn)
    return conn


def _put(catalog: sqlite3.Connection, keys: list[str], *, log: bool, at: float = 0.0) -> None:
    """Keys into the catalog's index, and (``log``) into its log as compaction puts them."""
    catalog.execute("BEGIN IMMEDIATE")  # the connection is in autocommit mode
    catalog.executemany("INSERT OR IGNORE INTO dedup(key, epoch) VALUES(?, 1)",
                        [(k,) for k in sorted(keys)])
    if log:
        catalog.execute("INSERT INTO dedup_log(at, keys) VALUES(?, ?)",
                        (at, orjson.dumps([[k, 1] for k in keys]).decode()))
    catalog.execute("COMMIT")


def _keys(n: int) -> list[str]:
    return [secrets.token_hex(16) for _ in range(n)]


def _caught_up(f: CatalogKeyFilter, catalog: sqlite3.Connection) -> CatalogKeyFilter:
    catalog.execute("BEGIN")
    try:
        return f.catch_up(catalog)
    finally:
        catalog.execute("COMMIT")


def test_holds_every_loaded_and_logged_key_and_few_others(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path)
    first, later = _keys(50_000), _keys(30_000)
    _put(catalog, first, log=False)  # there before the filter: found by the full load
    f = CatalogKeyFilter.load(catalog)
    _put(catalog, later, log=True)  # compacted afterwards: found through the log
    assert f.may_hold(later) != later  # not yet read
    f = _caught_up(f, catalog)
    assert f.may_hold(first) == first
    assert f.may_hold(later) == later
    others = _keys(100_000)
    assert len(f.may_hold(others)) < 0.01 * len(others)  # ~0.8 % at capacity; far below here


def test_rebuilds_when_log_rows_it_had_not_read_are_gone(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path)
    f = CatalogKeyFilter.load(catalog)
    missed = _keys(1000)
    _put(catalog, missed, log=True)
    catalog.execute("DELETE FROM dedup_log")  # trimmed before this filter read them
    f = _caught_up(f, catalog)
    assert f.may_hold(missed) == missed
    newer = _keys(10)
    _put(catalog, newer, log=True)
    assert _caught_up(f, catalog).may_hold(newer) == newer


def test_rebuilds_bigger_when_full(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_key_filter, "_MIN_CAPACITY", 5000)
    catalog = _catalog(tmp_path)
    f = CatalogKeyFilter.load(catalog)
    many = _keys(f.capacity + 1)
    _put(catalog, many, log=True)
    grown = _caught_up(f, catalog)
    assert grown is not f
    assert grown.capacity > len(many)
    assert grown.may_hold(many) == many


def test_a_retry_compacted_by_another_process_while_a_store_was_idle_is_a_duplicate(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Store ``b`` loads its filter before the keys exist and never sees them in a segment:
    ``a`` stores them and compaction moves them while ``b`` is idle. Then the log rows are
    trimmed too, so ``b`` must rebuild from the index."""
    keyring = LocalKeyring(tmp_path / "keys")
    b = EventStore(tmp_path, POLICY, keyring, instance="b")
    try:
        with EventStore(tmp_path, POLICY, keyring, instance="a") as a:
            assert a.append_blocking([keyed_event(i) for i in range(20)]) == [True] * 20
        assert compaction.compact(tmp_path, POLICY, keyring) == 20
        assert b.append_blocking([keyed_event(5), keyed_event(20)]) == [False, True]
        with EventStore(tmp_path, POLICY, keyring, instance="a") as a:
            a.append_blocking([keyed_event(i) for i in range(30, 40)])
        monkeypatch.setattr(compaction, "LOG_KEEP_S", -1.0)  # trim every log row
        compaction.compact(tmp_path, POLICY, keyring)
        with sqlite3.connect(tmp_path / _wal.CATALOG_NAME) as catalog:
            assert catalog.execute("SELECT count(*) FROM dedup_log").fetchone()[0] == 0
        assert b.append_blocking([keyed_event(35), keyed_event(41)]) == [False, True]
    finally:
        b.close()
    assert seqs(tmp_path) == [*range(21), *range(30, 40), 41]
