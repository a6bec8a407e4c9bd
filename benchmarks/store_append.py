"""Durable events/s of the event store alone (no HTTP): N asyncio tasks each append batches of
100 events in a loop; every append returns only after its group commit was fsync'd.

    python benchmarks/store_append.py [--tasks 64] [--seconds 10] [--batch 100] [--data DIR]

Prints events/s, commits/s, events per commit and append latency percentiles.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import secrets
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from anonymetry.ingest.store import EventStore, StoredEvent
from anonymetry.policy import default_policy
from anonymetry.privacy import LocalKeyring, epoch_of

_RUN = secrets.token_hex(6)
_seq = itertools.count()


def batch(n: int, epoch: int, now: int) -> list[StoredEvent]:
    """``n`` events of one device with unique dedup keys (cheap to make: the client side of
    this benchmark should cost little next to the store)."""
    first = next(_seq) * n
    user = device = f"{_RUN}{first:020x}"
    attrs = {"platform": "android", "app_version": "5.2.1", "screen": "editor",
             "duration_ms": 1234}
    return [StoredEvent(f"{_RUN}{first + i:020x}", epoch, "screen.view", now, user, device,
                        "usage", attrs) for i in range(n)]


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--data", type=Path, default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="store-bench-") as tmp:
        data = args.data or Path(tmp)
        store = EventStore(data, default_policy(), LocalKeyring(data / "keys"))
        asyncio.run(run(store, 4, 0.5, args.batch))  # warm up (keys, SQLite pages)
        t0 = time.perf_counter()
        stored, lat = asyncio.run(run(store, args.tasks, args.seconds, args.batch))
        elapsed = time.perf_counter() - t0
        store.close()
        with sqlite3.connect(data / "wal" / f"{store.instance}.sqlite") as conn:
            commits = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
        lat.sort()
        q = statistics.quantiles(lat, n=100)
        print(f"tasks={args.tasks} batch={args.batch} seconds={elapsed:.1f}")
        print(f"durable events/s: {stored / elapsed:,.0f}  ({stored:,} events)")
        print(f"group commits/s:  {commits / elapsed:,.1f}  "
              f"(~{stored / max(commits, 1):,.0f} events per commit)")
        print(f"append latency ms: p50 {q[49] * 1e3:.1f}  p99 {q[98] * 1e3:.1f}")


if __name__ == "__main__":
    main()
