"""Durable events/s of the event store alone (no HTTP): N asyncio tasks each append batches of
100 events (columnar, as the pipeline hands them over) in a loop; every append returns only
after its group commit was fsync'd.

    python benchmarks/store_append.py [--tasks 64] [--seconds 10] [--batch 100] [--data DIR]
                                      [--catalog-keys N]

Prints events/s, commits/s, events per commit, append latency percentiles and the CPU time
(user and system) per event of the whole process. ``--catalog-keys N`` first puts N random
compacted dedup keys in the catalog (as a long-running store has after compactions), so every
commit's probe of the catalog searches an index of that size.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import secrets
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from anonymetry.ingest.store import EventStore, StoredBatch
from anonymetry.policy import default_policy
from anonymetry.privacy import LocalKeyring, epoch_of

_RUN = secrets.token_hex(6)
_seq = itertools.count()


def batch(n: int, epoch: int, now: int) -> StoredBatch:
    """``n`` events of one device with unique (random-looking, like real keyed fingerprints)
    dedup keys; cheap to make, so the client side of this benchmark costs little."""
    first = next(_seq) * n
    user = device = f"{_RUN}{first:020x}"
    keys = [secrets.token_hex(16) for _ in range(n)]
    return StoredBatch(keys, [epoch] * n, ["screen.view"] * n, [now] * n, [user] * n,
                       [device] * n, ["usage"] * n,
                       {"platform": ["android"] * n, "app_version": ["5.2.1"] * n,
                        "screen": ["editor"] * n, "duration_ms": list(range(n))})


async def run(store: EventStore, tasks: int, seconds: float, size: int) -> tuple[int, list[float]]:
    policy = store.policy
    now = int(time.time()) // 3600 * 3600
    epoch = epoch_of(now, policy.identity.key_epoch_days)
    deadline = time.perf_counter() + seconds
    latencies: list[float] = []
    stored = 0

    async def client() -> None:
        nonlocal stored
        while time.perf_counter() < deadline:
            events = batch(size, epoch, now)
            t = time.perf_counter()
            fresh = sum(await store.append(events))
            stored += fresh
            latencies.append(time.perf_counter() - t)

    await asyncio.gather(*[client() for _ in range(tasks)])
    return stored, latencies


def fill_catalog(data: Path, n: int) -> None:
    """``n`` random keys of the current epoch in the catalog's dedup index (inserted sorted,
    as compaction does)."""
    from anonymetry.ingest import _wal

    data.mkdir(parents=True, exist_ok=True)
    conn = _wal.connect(data / _wal.CATALOG_NAME)
    try:
        _wal.init_catalog(conn)
        epoch = epoch_of(time.time(), default_policy().identity.key_epoch_days)
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT OR IGNORE INTO dedup(key, epoch) WITH RECURSIVE n(i) AS "
                      "(SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
                      "SELECT lower(hex(randomblob(16))), ? FROM n ORDER BY 1", (n, epoch))
        conn.execute("COMMIT")
    finally:
        conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--catalog-keys", type=int, default=0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="store-bench-") as tmp:
        data = args.data or Path(tmp)
        if args.catalog_keys:
            fill_catalog(data, args.catalog_keys)
        store = EventStore(data, default_policy(), LocalKeyring(data / "keys"))
        asyncio.run(run(store, 4, 0.5, args.batch))  # warm up (keys, SQLite pages)
        t0, cpu0 = time.perf_counter(), os.times()
        stored, lat = asyncio.run(run(store, args.tasks, args.seconds, args.batch))
        elapsed, cpu = time.perf_counter() - t0, os.times()
        store.close()
        with sqlite3.connect(data / "wal" / f"{store.instance}.sqlite") as conn:
            commits = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
        lat.sort()
        q = statistics.quantiles(lat, n=100)
        print(f"tasks={args.tasks} batch={args.batch} seconds={elapsed:.1f} "
              f"catalog keys={args.catalog_keys:,}")
        print(f"durable events/s: {stored / elapsed:,.0f}  ({stored:,} events)")
        print(f"group commits/s:  {commits / elapsed:,.1f}  "
              f"(~{stored / max(commits, 1):,.0f} events per commit)")
        print(f"append latency ms: p50 {q[49] * 1e3:.1f}  p99 {q[98] * 1e3:.1f}")
        user, system = cpu.user - cpu0.user, cpu.system - cpu0.system
        print(f"CPU per event: {user / stored * 1e6:.1f} µs user, "
              f"{system / stored * 1e6:.1f} µs system; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
