"""Compaction merges small Parquet files without changing what the store holds.

Properties:
- many small compactions leave few files once merged; rows, counters and dedup are unchanged;
- a crash after the merged file is written and before the catalog swap changes nothing readers
  see, and the next run cleans up and merges;
- a reader that listed the inputs before the swap still reads them (grace period); a later run
  unlinks them, and an erasure unlinks them at once (they hold the erased device's rows);
- only files of one size tier are merged together.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from anonymetry.ingest import compaction
from anonymetry.ingest.reader import store_stats
from anonymetry.ingest.store import EventStore, open_reader
from anonymetry.privacy import LocalKeyring

from .store_helpers import EPOCH, POLICY, event, keyed_event, seqs

ROUNDS = 12  # small compactions, ≥ MERGE_MIN_FILES


def _store(data: Path) -> EventStore:
    return EventStore(data, POLICY, LocalKeyring(data / "keys"))


def _files(data: Path, state: str = "live") -> list[str]:
    con = sqlite3.connect(data / "catalog.sqlite")
    try:
        return [r[0] for r in con.execute("SELECT path FROM files WHERE state = ?", (state,))]
    finally:
        con.close()


def _small_files(data: Path, rounds: int = ROUNDS, per: int = 5) -> None:
    """``rounds`` compactions of ``per`` events each, without merging: one small file each."""
    with _store(data) as store:
        for r in range(rounds):
            store.append_blocking([keyed_event(r * per + i) for i in range(per)])
            compaction.compact(data, POLICY, store.keyring, merge=False)


def test_small_files_are_merged_and_nothing_stored_changes(tmp_path: Path) -> None:
    _small_files(tmp_path)
    keyring = LocalKeyring(tmp_path / "keys")
    before = store_stats(tmp_path, keyring)
    assert len(_files(tmp_path)) == ROUNDS
    with _store(tmp_path) as store:
        store.compact()  # merges
    live = _files(tmp_path)
    assert len(live) == 1
    assert all((tmp_path / p).exists() for p in live)
    assert seqs(tmp_path) == list(range(ROUNDS * 5))
    after = store_stats(tmp_path, keyring)
    assert (after["stored"], after["by_event"]) == (before["stored"], before["by_event"])
    assert after["parquet"]["files"] == 1
    with _store(tmp_path) as store:  # the dedup keys of merged rows still catch retries
        assert store.append_blocking([keyed_event(3), keyed_event(1000)]) == [False, True]


def test_fewer_small_files_than_the_threshold_are_left_alone(tmp_path: Path) -> None:
    _small_files(tmp_path, rounds=compaction.MERGE_MIN_FILES - 1)
    with _store(tmp_path) as store:
        store.compact()
    assert len(_files(tmp_path)) == compaction.MERGE_MIN_FILES - 1


def test_a_crash_before_the_swap_changes_nothing_and_the_next_run_merges(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _small_files(tmp_path)
    real_write = compaction._write_parquet

    def write_then_crash(*args: object, **kw: object) -> tuple[int, str]:
        real_write(*args, **kw)  # type: ignore[arg-type]
        raise RuntimeError("killed after writing the merged file")

    monkeypatch.setattr(compaction, "_write_parquet", write_then_crash)
    keyring = LocalKeyring(tmp_path / "keys")
    with pytest.raises(RuntimeError, match="killed"):
        compaction.merge_small_files(tmp_path, POLICY, keyring)
    assert len(_files(tmp_path, "pending")) == 1  # written, never swapped in
    assert len(_files(tmp_path)) == ROUNDS
    assert seqs(tmp_path) == list(range(ROUNDS * 5))
    monkeypatch.setattr(compaction, "_write_parquet", real_write)
    assert compaction.merge_small_files(tmp_path, POLICY, keyring) == (ROUNDS, 1)
    assert _files(tmp_path, "pending") == []
    assert seqs(tmp_path) == list(range(ROUNDS * 5))
    parquet = sorted(p.relative_to(tmp_path).as_posix()
                     for p in (tmp_path / "parquet").rglob("*.parquet"))
    assert sorted(_files(tmp_path) + _files(tmp_path, "merged")) == parquet  # no orphan left


def test_a_reader_that_listed_the_inputs_still_reads_them_until_the_grace_ends(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _small_files(tmp_path)
    keyring = LocalKeyring(tmp_path / "keys")
    reader = open_reader(tmp_path, keyring, POLICY)  # lists the 12 small files
    assert compaction.merge_small_files(tmp_path, POLICY, keyring) == (ROUNDS, 1)
    inputs = _files(tmp_path, "merged")
    assert len(inputs) == ROUNDS
    assert all((tmp_path / p).exists() for p in inputs)
    assert sorted(reader.to_arrow_table()["duration_ms"].to_pylist()) == list(range(ROUNDS * 5))
    monkeypatch.setattr(compaction, "MERGED_GRACE_S", 0.0)
    compaction.merge_small_files(tmp_path, POLICY, keyring)
    assert _files(tmp_path, "merged") == []
    assert not any((tmp_path / p).exists() for p in inputs)
    # past the grace, the old snapshot fails saying which file went and what to do
    with pytest.raises(FileNotFoundError, match=r"parquet/epoch=.*open a new reader"):
        reader.to_arrow_table()
    fresh = open_reader(tmp_path, keyring, POLICY)
    assert sorted(fresh.to_arrow_table()["duration_ms"].to_pylist()) == list(range(ROUNDS * 5))


def test_an_erasure_unlinks_merged_inputs_at_once(tmp_path: Path) -> None:
    gone, kept = "a" * 32, "b" * 32
    with _store(tmp_path) as store:
        for r in range(ROUNDS):
            store.append_blocking([event(r, device=gone), event(100 + r, device=kept)])
            compaction.compact(tmp_path, POLICY, store.keyring, merge=False)
    keyring = LocalKeyring(tmp_path / "keys")
    compaction.merge_small_files(tmp_path, POLICY, keyring)
    inputs = _files(tmp_path, "merged")
    assert inputs
    assert compaction.delete_device(tmp_path, keyring, {EPOCH: gone}, policy=POLICY) == ROUNDS
    assert not any((tmp_path / p).exists() for p in inputs)  # within the grace period
    assert seqs(tmp_path) == [100 + r for r in range(ROUNDS)]


def test_files_of_different_size_tiers_are_not_merged_together(tmp_path: Path) -> None:
    big = compaction.MERGE_MIN_FILES ** 2  # rows: one tier above the small files
    with _store(tmp_path) as store:
        store.append_blocking([event(1000 + i) for i in range(big)])
        compaction.compact(tmp_path, POLICY, store.keyring, merge=False)
    (first,) = _files(tmp_path)
    _small_files(tmp_path, rounds=compaction.MERGE_MIN_FILES)
    assert compaction.merge_small_files(tmp_path, POLICY, LocalKeyring(tmp_path / "keys")) == \
        (compaction.MERGE_MIN_FILES, 1)
    assert first in _files(tmp_path)  # the bigger file was not rewritten


def test_store_compact_cli_reports_the_merge(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from anonymetry.cli.main import app

    _small_files(tmp_path)
    out = CliRunner().invoke(app, ["store", "compact", "--data", str(tmp_path), "--json"])
    assert out.exit_code == 0, out.stderr
    assert json.loads(out.stdout) == {"moved": 0, "merged_files": ROUNDS, "merged_into": 1}
    assert seqs(tmp_path) == list(range(ROUNDS * 5))


def test_files_of_a_destroyed_epoch_are_not_merged_nor_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _small_files(tmp_path)
    keyring = LocalKeyring(tmp_path / "keys")
    keyring.destroy(EPOCH)
    reads: list[object] = []
    monkeypatch.setattr(compaction.pq, "read_table", lambda *a, **k: reads.append(a))
    assert compaction.merge_small_files(tmp_path, POLICY, keyring) == (0, 0)
    assert reads == []  # not even tried: every compaction would fail on them again
    assert len(_files(tmp_path)) == ROUNDS  # left as they were: unreadable, counted as shredded
