"""Reading the event store and compacting it: how long analytics waits for a snapshot of a
store whose WAL holds many uncompacted rows, and how long compaction takes to move them.

    python benchmarks/store_read.py [--events 1000000] [--batch 1000] [--data DIR]

Fills a fresh store (under a temporary directory unless ``--data``) through
``EventStore.append_blocking`` in columnar batches (a mix of ``screen.view`` and
``feature.used``, so field columns have nulls), then times, each in seconds and rows/s:

1. ``open_reader(...)`` + ``to_arrow_table()`` over the uncompacted WAL (decrypt, decode,
   deduplicate, build Arrow);
2. ``EventStore.compact()`` (WAL chunks → encrypted Parquet);
3. ``open_reader(...)`` + ``to_arrow_table()`` after compaction (encrypted Parquet scan).
"""

from __future__ import annotations

import argparse
import os
import secrets
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from anonymetry.ingest.reader import open_reader
from anonymetry.ingest.store import EventStore, StoredBatch
from anonymetry.policy import default_policy
from anonymetry.privacy import LocalKeyring, epoch_of

T = TypeVar("T")
_PLATFORMS = ["ios", "android", "windows", "macos", "web"]
_SCREENS = ["home", "editor", "search", "settings"]
_FEATURES = ["search", "share", "sync", "tag"]


def batch(start: int, n: int, epoch: int, now: int) -> StoredBatch:
    """``n`` events (every other one a ``screen.view``, the rest ``feature.used``) of 100
    devices, hours spread over the last day; random dedup keys like real keyed fingerprints."""
    seq = range(start, start + n)
    screen = [i % 2 == 0 for i in seq]
    devices = [f"{i % 100:032x}" for i in seq]
    return StoredBatch(
        [secrets.token_hex(16) for _ in seq], [epoch] * n,
        ["screen.view" if s else "feature.used" for s in screen],
        [now - (i % 24) * 3600 for i in seq], devices, devices, ["usage"] * n,
        {"platform": [_PLATFORMS[i % 5] for i in seq], "app_version": ["5.2.1"] * n,
         "screen": [_SCREENS[i % 4] if s else None for i, s in zip(seq, screen, strict=True)],
         "duration_ms": [i % 5000 if s else None for i, s in zip(seq, screen, strict=True)],
         "feature": [None if s else _FEATURES[i % 4] for i, s in zip(seq, screen, strict=True)],
         "count": [None if s else 1 for s in screen]},
    )


def timed(label: str, rows: int, fn: Callable[[], T]) -> T:
    t = time.perf_counter()
    result = fn()
    elapsed = time.perf_counter() - t
    print(f"{label:<36} {elapsed:8.2f} s  {rows / elapsed:>12,.0f} rows/s")
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--data", type=Path, default=None)
    args = ap.parse_args()
    policy = default_policy()
    now = int(time.time()) // 3600 * 3600
    epoch = epoch_of(now, policy.identity.key_epoch_days)
    with tempfile.TemporaryDirectory(prefix="store-read-bench-") as tmp:
        data = args.data or Path(tmp)
        keyring = LocalKeyring(data / "keys")
        store = EventStore(data, policy, keyring)
        try:
            n = args.events

            def fill() -> None:
                for start in range(0, n, args.batch):
                    store.append_blocking(batch(start, min(args.batch, n - start), epoch, now))

            print(f"events={n:,} batch={args.batch:,} load average "
                  f"{os.getloadavg()[0]:.2f}")
            timed("append_blocking (fill)", n, fill)
            table = timed("open_reader + to_arrow_table (WAL)", n,
                          lambda: open_reader(data, keyring, policy).to_arrow_table())
            assert table.num_rows == n, table.num_rows
            moved = timed("compact", n, store.compact)
            assert moved == n, moved
            table = timed("open_reader + to_arrow_table (Parquet)", n,
                          lambda: open_reader(data, keyring, policy).to_arrow_table())
            assert table.num_rows == n, table.num_rows
        finally:
            store.close()
        print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
