"""Compaction (WAL chunks → encrypted Parquet) and erasure (delete a device's rows).

Both rewrite stored data, so they run under one cross-process lock (``DIR/wal/compaction.lock``);
appends continue meanwhile. Compaction of one segment, crash-safe at every step:

1. read a snapshot of the segment's chunks (ids ≤ M) and of its dedup keys with chunk ≤ M;
2. decrypt, drop rows whose key the catalog already holds (a duplicate two collectors raced on);
3. reserve a file id per epoch in the catalog (state ``pending``), write each Parquet file,
   ``fsync`` it and its directory;
4. one catalog transaction: files ``live``, dedup keys added (and logged in ``dedup_log``),
   ``upto[segment] = M``, counter
   corrections for dropped duplicates;
5. one segment transaction: delete chunks and dedup keys ≤ M.

A crash before 4 leaves ``pending`` files, removed by the next run (nothing was moved); a crash
between 4 and 5 leaves chunks ≤ M in the segment, which readers, stats and the next compaction
ignore by ``upto`` (nothing is counted twice). Dedup keys live on in the catalog, so a late
retry of a compacted event is still a duplicate; keys of epochs older than the policy's
``max_age_days`` (whose events the collector rejects anyway) are pruned.

Chunks of destroyed epochs cannot be decrypted; compaction deletes them (they were shredded).

Compaction every minute writes many small files. After moving WAL rows, compaction merges an
epoch's small live files (< ``SMALL_ROWS`` rows) once there are ``MERGE_MIN_FILES`` of them, into
files of up to ``TARGET_ROWS`` rows (size-tiered: only files of one size tier are merged
together). The swap is crash-safe: the merged file is written ``pending``; one catalog
transaction marks it ``live`` and its inputs ``merged`` with the time (readers list either all
inputs or the merged file, never both). The inputs stay on disk for ``MERGED_GRACE_S`` so that a
reader that listed them before the swap can still read them, and a later run unlinks them; an
erasure unlinks them at once (they hold the erased rows too). Rows, counters and dedup keys do
not change. A file that does not authenticate is left where it is (readers name it).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections import Counter
from collections.abc import Collection, Mapping
from itertools import chain, compress
from operator import not_
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from anonymetry.errors import KeyUnavailable
from anonymetry.ingest import _wal
from anonymetry.ingest._codec import (
    StoredBatch,
    batches_to_table,
    conform,
    encode_batch,
    open_chunk,
    stored_schema,
)
from anonymetry.ingest._key_filter import LOG_KEEP_S
from anonymetry.ingest.reader import compacted_keys, damaged_parquet
from anonymetry.policy import Policy
from anonymetry.privacy import Keyring, Sealer
from anonymetry.privacy.parquet_crypto import ParquetCrypto

__all__ = ["compact", "delete_device", "merge_small_files"]

_ROUND_CHUNKS = 2000  # chunks per compaction round (bounds memory)
SMALL_ROWS = 256 * 1024  # a live file below this many rows is a merge candidate
MERGE_MIN_FILES = 8  # an epoch's small files are merged once there are this many
TARGET_ROWS = 1024 * 1024  # rows per merged file at most (bounds memory)
MERGED_GRACE_S = 600.0  # merged inputs stay readable this long for readers that listed them


def _catalog(data_dir: Path) -> sqlite3.Connection:
    conn = _wal.connect(data_dir / _wal.CATALOG_NAME)
    _wal.init_catalog(conn)
    return conn


def _drop_pending(data_dir: Path, catalog: sqlite3.Connection) -> None:
    """Remove files of compactions/erasures that crashed before their catalog commit."""
    for fid, rel in catalog.execute(
            "SELECT id, path FROM files WHERE state IN ('pending', 'replaced')").fetchall():
        (data_dir / rel).unlink(missing_ok=True)
        catalog.execute("DELETE FROM files WHERE id = ?", (fid,))


def _write_parquet(data_dir: Path, catalog: sqlite3.Connection, crypto: ParquetCrypto,
                   epoch: int, table: pa.Table, instance: str) -> tuple[int, str]:
    """Reserve a file id (``pending``), write and fsync the encrypted file; return id, path."""
    catalog.execute("BEGIN IMMEDIATE")
    cur = catalog.execute(
        "INSERT INTO files(path, epoch, state) VALUES('', ?, 'pending')", (epoch,))
    fid = int(cur.lastrowid or 0)
    rel = f"parquet/epoch={epoch}/part-{fid:08d}-{instance}.parquet"
    catalog.execute("UPDATE files SET path = ? WHERE id = ?", (rel, fid))
    catalog.execute("COMMIT")
    path = data_dir / rel
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with pq.ParquetWriter(path, table.schema, compression="zstd",
                          encryption_properties=crypto.encryption_properties(epoch)) as writer:
        writer.write_table(table, row_group_size=256 * 1024)
    os.chmod(path, 0o600)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    _wal.fsync_dir(path.parent)
    return fid, rel


def _count_events(table: pa.Table) -> dict[str, int]:
    """Rows per event name (vectorized)."""
    counts = pc.value_counts(table["event"]).to_pylist() if table.num_rows else []
    return {c["values"]: c["counts"] for c in counts}


def _prune_dedup(catalog: sqlite3.Connection, policy: Policy) -> None:
    """Forget dedup keys of epochs no valid retry can belong to any more."""
    days = policy.identity.key_epoch_days
    horizon = time.time() - (policy.time.max_age_days + 2) * 86400
    below = int(horizon // (86400 * days))  # epochs < below ended before the horizon
    done = catalog.execute("SELECT v FROM meta WHERE k = 'dedup_pruned_below'").fetchone()
    if done and int(done[0]) >= below:
        return
    catalog.execute("BEGIN IMMEDIATE")
    catalog.execute("DELETE FROM dedup WHERE epoch < ?", (below,))
    catalog.execute("INSERT OR REPLACE INTO meta(k, v) VALUES('dedup_pruned_below', ?)",
                    (str(below),))
    catalog.execute("COMMIT")


def compact(data_dir: Path, policy: Policy, keyring: Keyring, *,
            instance: str = "compactor", merge: bool = True) -> int:
    """Move every compactable WAL row of ``data_dir`` into Parquet, then (``merge``) merge each
    epoch's small files; return rows moved."""
    data_dir = Path(data_dir)
    wal_dir = data_dir / "wal"
    schema = stored_schema(policy)
    sealer = Sealer(keyring)
    crypto = ParquetCrypto(keyring)
    moved = 0
    with _wal.compaction_lock(wal_dir):
        catalog = _catalog(data_dir)
        try:
            _drop_pending(data_dir, catalog)
            for path in _wal.segment_paths(wal_dir):
                seg = _wal.connect(path)
                try:
                    _wal.init_segment(seg)
                    while True:
                        n, more = _compact_round(data_dir, path.stem, seg, catalog, sealer,
                                                 crypto, keyring, schema, instance)
                        moved += n
                        if not more:
                            break
                finally:
                    seg.close()
            _prune_dedup(catalog, policy)
            if merge:
                _merge_small_files(data_dir, catalog, crypto, schema, instance,
                                   destroyed=_destroyed(keyring))
        finally:
            catalog.close()
    return moved


def merge_small_files(data_dir: Path, policy: Policy, keyring: Keyring, *,
                      instance: str = "compactor", min_files: int = MERGE_MIN_FILES
                      ) -> tuple[int, int]:
    """Merge every epoch's small Parquet files (see the module docstring) now, under the
    compaction lock; returns (files merged, files written)."""
    data_dir = Path(data_dir)
    with _wal.compaction_lock(data_dir / "wal"):
        catalog = _catalog(data_dir)
        try:
            _drop_pending(data_dir, catalog)
            return _merge_small_files(data_dir, catalog, ParquetCrypto(keyring),
                                      stored_schema(policy), instance, min_files=min_files,
                                      destroyed=_destroyed(keyring))
        finally:
            catalog.close()


def _merge_groups(files: list[tuple[int, str, int]]) -> list[list[tuple[int, str, int]]]:
    """Consecutive runs of (id, path, rows) with at most ``TARGET_ROWS`` rows, ≥ 2 files each."""
    groups: list[list[tuple[int, str, int]]] = [[]]
    total = 0
    for f in files:
        if groups[-1] and total + f[2] > TARGET_ROWS:
            groups.append([])
            total = 0
        groups[-1].append(f)
        total += f[2]
    return [g for g in groups if len(g) > 1]


def _unlink_merged(data_dir: Path, catalog: sqlite3.Connection, *, grace: float,
                   epochs: list[int] | None = None) -> None:
    """Unlink merge inputs retired more than ``grace`` seconds ago (of ``epochs``, or all)."""
    sql = "SELECT id, path FROM files WHERE state = 'merged' AND retired_at <= ?"
    args: list[float | int] = [time.time() - grace]
    if epochs is not None:
        sql += f" AND epoch IN ({','.join('?' * len(epochs))})"
        args += epochs
    for fid, rel in catalog.execute(sql, args).fetchall():
        (data_dir / rel).unlink(missing_ok=True)
        catalog.execute("DELETE FROM files WHERE id = ?", (fid,))


def _tier(rows: int) -> int:
    """Size tier: files of a tier hold MERGE_MIN_FILES^t … MERGE_MIN_FILES^(t+1) rows."""
    tier = 0
    while rows >= MERGE_MIN_FILES:
        rows //= MERGE_MIN_FILES
        tier += 1
    return tier


def _destroyed(keyring: Keyring) -> set[int]:
    return {e for e, state in keyring.epochs().items() if state == "destroyed"}


def _merge_small_files(data_dir: Path, catalog: sqlite3.Connection, crypto: ParquetCrypto,
                       schema: pa.Schema, instance: str, *, min_files: int = MERGE_MIN_FILES,
                       destroyed: Collection[int] = ()) -> tuple[int, int]:
    _unlink_merged(data_dir, catalog, grace=MERGED_GRACE_S)
    # size-tiered: only files of one tier are merged together, so a row is rewritten about
    # once per tier (log8 of SMALL_ROWS: ≤ 6 times), not each time a small file appears
    tiers: dict[tuple[int, int], list[tuple[int, str, int]]] = {}
    for fid, rel, epoch, rows in catalog.execute(
            "SELECT id, path, epoch, rows FROM files WHERE state = 'live' AND rows < ? "
            "ORDER BY id", (SMALL_ROWS,)).fetchall():
        if epoch not in destroyed:  # shredded files cannot be read, so are never merged
            tiers.setdefault((epoch, _tier(rows)), []).append((fid, rel, rows))
    merged = written = 0
    for (epoch, _), small in sorted(tiers.items()):
        if len(small) < max(2, min_files):
            continue
        for group in _merge_groups(small):
            tables, inputs = [], []
            for fid, rel, _ in group:
                try:
                    table = pq.read_table(data_dir / rel,
                                          decryption_properties=crypto.decryption_properties())
                except (OSError, ValueError, pa.ArrowException):
                    continue  # damaged or missing: stays live, and readers report it
                tables.append(conform(table, schema))
                inputs.append((fid, rel))
            if len(inputs) < 2:
                continue
            table = pa.concat_tables(tables)
            new_id, _ = _write_parquet(data_dir, catalog, crypto, epoch, table, instance)
            catalog.execute("BEGIN IMMEDIATE")
            try:
                catalog.execute("UPDATE files SET state = 'live', rows = ?, by_event = ? "
                                "WHERE id = ?", (table.num_rows,
                                                 orjson.dumps(_count_events(table)).decode(),
                                                 new_id))
                now = time.time()
                catalog.executemany(
                    "UPDATE files SET state = 'merged', retired_at = ? WHERE id = ?",
                    [(now, fid) for fid, _ in inputs])
                catalog.execute("COMMIT")
            except BaseException:
                if catalog.in_transaction:
                    catalog.execute("ROLLBACK")
                raise
            merged += len(inputs)
            written += 1
    return merged, written


def _compact_round(data_dir: Path, segment: str, seg: sqlite3.Connection,
                   catalog: sqlite3.Connection, sealer: Sealer, crypto: ParquetCrypto,
                   keyring: Keyring, schema: pa.Schema, instance: str) -> tuple[int, bool]:
    done_row = catalog.execute("SELECT chunk FROM upto WHERE segment = ?", (segment,)).fetchone()
    done = done_row[0] if done_row else 0
    seg.execute("BEGIN")
    try:
        chunks = seg.execute(
            "SELECT id, epoch, n, blob FROM chunks WHERE id > ? ORDER BY id LIMIT ?",
            (done, _ROUND_CHUNKS)).fetchall()
        more = len(chunks) == _ROUND_CHUNKS
        top = max([done] + [c[0] for c in chunks])
        if not more:  # keys of chunks erased whole, beyond the last chunk, go too
            top = max(top, _wal.dedup_top(seg))
        keys_json = _wal.dedup_keys_upto(seg, top)
        stale = seg.execute("SELECT count(*) FROM chunks WHERE id <= ?", (done,)).fetchone()[0]
    finally:
        seg.execute("COMMIT")
    if top == done and not stale and all(k == "[]" for k in keys_json):
        return 0, False

    states = keyring.epochs()
    by_epoch: dict[int, list[StoredBatch]] = {}
    for chunk, epoch, n, blob in chunks:
        if states.get(epoch) == "destroyed":
            continue
        try:
            batch = open_chunk(sealer, segment, chunk, epoch, n, blob)
        except KeyUnavailable:
            continue
        by_epoch.setdefault(epoch, []).append(batch)

    # rows another collector stored first (and compaction already moved) are dropped
    compacted = compacted_keys(catalog, list(chain.from_iterable(
        b.dedup for batches in by_epoch.values() for b in batches)))
    dropped: Counter[tuple[str, int]] = Counter()
    written: list[tuple[int, int, dict[str, int]]] = []
    moved = 0
    for epoch, batches in sorted(by_epoch.items()):
        table = batches_to_table(batches, schema)
        if len(compacted):
            keys = pa.array(list(chain.from_iterable(b.dedup for b in batches)), pa.string())
            hit = pc.is_in(keys, value_set=compacted)
            for ev, k in _count_events(table.filter(hit)).items():
                dropped[ev, epoch] += k
            table = table.filter(pc.invert(hit))
        if not table.num_rows:
            continue
        fid, _ = _write_parquet(data_dir, catalog, crypto, epoch, table, instance)
        written.append((fid, table.num_rows, _count_events(table)))
        moved += table.num_rows

    catalog.execute("BEGIN IMMEDIATE")
    try:
        for fid, n, by_event in written:
            catalog.execute("UPDATE files SET state = 'live', rows = ?, by_event = ? WHERE id = ?",
                            (n, orjson.dumps(by_event).decode(), fid))
        # in key order: the index B-tree is written page after page, not at random (2-3x
        # faster for 300k keys, empty or 2M-key catalog)
        now = time.time()
        for pairs in keys_json:
            if pairs == "[]":
                continue
            catalog.execute("INSERT OR IGNORE INTO dedup(key, epoch) "
                            "SELECT value ->> 0, value ->> 1 FROM json_each(?) ORDER BY 1",
                            (pairs,))
            # the same [key, epoch] pairs, in order, for the stores' in-memory filters
            # (_key_filter); as they are: rebuilding a keys-only array cost 0.7 µs per key
            catalog.execute("INSERT INTO dedup_log(at, keys) VALUES(?, ?)", (now, pairs))
        catalog.execute("DELETE FROM dedup_log WHERE at < ?", (now - LOG_KEEP_S,))
        catalog.execute("INSERT INTO upto(segment, chunk) VALUES(?, ?) ON CONFLICT(segment) "
                        "DO UPDATE SET chunk = max(chunk, excluded.chunk)", (segment, top))
        catalog.executemany(_wal.COUNTER_UPSERT,
                            [("stored", ev, ep, -n) for (ev, ep), n in dropped.items()])
        catalog.execute("COMMIT")
    except BaseException:
        if catalog.in_transaction:
            catalog.execute("ROLLBACK")
        raise

    seg.execute("BEGIN IMMEDIATE")
    try:
        seg.execute("DELETE FROM chunks WHERE id <= ?", (top,))
        _wal.drop_dedup_upto(seg, top)
        seg.execute("COMMIT")
    except BaseException:
        if seg.in_transaction:
            seg.execute("ROLLBACK")
        raise
    seg.execute("PRAGMA incremental_vacuum").fetchall()
    return moved, more


def delete_device(data_dir: Path, keyring: Keyring, device_by_epoch: Mapping[int, str], *,
                  policy: Policy | None = None, instance: str = "eraser") -> int:
    """Delete every row of one device (pseudonym per epoch) from WAL segments and Parquet.

    The old ciphertext does not stay behind in SQLite (``secure_delete``, WAL checkpoint); a
    replaced Parquet file is unlinked after the catalog points at its rewrite.
    """
    data_dir = Path(data_dir)
    wal_dir = data_dir / "wal"
    sealer = Sealer(keyring)
    crypto = ParquetCrypto(keyring)
    states = keyring.epochs()
    targets = {int(e): d for e, d in device_by_epoch.items() if states.get(int(e)) != "destroyed"}
    if not targets:
        return 0
    deleted = 0
    with _wal.compaction_lock(wal_dir):
        for path in _wal.segment_paths(wal_dir):
            seg = _wal.connect(path)
            try:
                _wal.init_segment(seg)
                deleted += _erase_in_segment(path.stem, seg, sealer, targets)
            finally:
                seg.close()
        catalog = _catalog(data_dir)
        try:
            _drop_pending(data_dir, catalog)
            _unlink_merged(data_dir, catalog, grace=0.0, epochs=list(targets))
            schema = stored_schema(policy) if policy is not None else None
            deleted += _erase_in_parquet(data_dir, catalog, crypto, targets, schema, instance)
        finally:
            catalog.close()
    return deleted


def _erase_in_segment(segment: str, seg: sqlite3.Connection, sealer: Sealer,
                      targets: Mapping[int, str]) -> int:
    marks = ",".join("?" * len(targets))
    seg.execute("BEGIN IMMEDIATE")
    try:
        removed: Counter[tuple[str, int]] = Counter()
        for chunk, epoch, n, blob in seg.execute(
                f"SELECT id, epoch, n, blob FROM chunks WHERE epoch IN ({marks})",
                list(targets)).fetchall():
            batch = open_chunk(sealer, segment, chunk, epoch, n, blob)
            keep = list(map(targets[epoch].__ne__, batch.device))  # C loops, no Python per row
            kept = sum(keep)
            if kept == len(batch):
                continue
            for ev, k in Counter(compress(batch.event, map(not_, keep))).items():
                removed[ev, epoch] += k
            if kept:
                aad = _wal.chunk_aad(segment, chunk, epoch, kept)
                seg.execute("UPDATE chunks SET n = ?, blob = ? WHERE id = ?",
                            (kept, sealer.seal(epoch, encode_batch(batch.compress(keep)), aad),
                             chunk))
            else:
                seg.execute("DELETE FROM chunks WHERE id = ?", (chunk,))
        seg.executemany(_wal.COUNTER_UPSERT,
                        [("stored", ev, ep, -n) for (ev, ep), n in removed.items()])
        seg.execute("COMMIT")
    except BaseException:
        if seg.in_transaction:
            seg.execute("ROLLBACK")
        raise
    if removed:
        seg.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return sum(removed.values())


def _erase_in_parquet(data_dir: Path, catalog: sqlite3.Connection, crypto: ParquetCrypto,
                      targets: Mapping[int, str], schema: pa.Schema | None,
                      instance: str) -> int:
    marks = ",".join("?" * len(targets))
    files = catalog.execute(
        f"SELECT id, path, epoch FROM files WHERE state = 'live' AND epoch IN ({marks})",
        list(targets)).fetchall()
    deleted = 0
    for fid, rel, epoch in files:
        try:
            table = pq.read_table(data_dir / rel,
                                  decryption_properties=crypto.decryption_properties())
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise damaged_parquet(data_dir / rel, exc) from None
        hit = pc.equal(table["device"], targets[epoch])
        n_hit = pc.sum(hit).as_py() or 0
        if not n_hit:
            continue
        removed = _count_events(table.filter(hit))
        keep = table.filter(pc.invert(hit))
        if schema is not None and keep.schema != schema:
            keep = conform(keep, schema)
        new: tuple[int, str] | None = None
        if keep.num_rows:
            new = _write_parquet(data_dir, catalog, crypto, epoch, keep, instance)
        catalog.execute("BEGIN IMMEDIATE")
        try:
            catalog.execute("UPDATE files SET state = 'replaced' WHERE id = ?", (fid,))
            if new is not None:
                by_event = _count_events(keep)
                catalog.execute(
                    "UPDATE files SET state = 'live', rows = ?, by_event = ? WHERE id = ?",
                    (keep.num_rows, orjson.dumps(dict(by_event)).decode(), new[0]))
            catalog.executemany(_wal.COUNTER_UPSERT,
                                [("stored", ev, epoch, -n) for ev, n in removed.items()])
            catalog.execute("COMMIT")
        except BaseException:
            if catalog.in_transaction:
                catalog.execute("ROLLBACK")
            raise
        (data_dir / rel).unlink(missing_ok=True)
        catalog.execute("DELETE FROM files WHERE id = ?", (fid,))
        deleted += n_hit
    return deleted
