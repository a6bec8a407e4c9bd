"""A collector-like process for the store tests (run as a script, killed by the tests).

usage: store_worker.py DATA START COUNT BATCH [INSTANCE]
Appends events with keys START..START+COUNT-1 in batches and prints "ack <last seq>" after
each batch's append returned, flushing stdout, so the parent knows what was acknowledged.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from store_helpers import POLICY, keyed_event

from anonymetry.ingest.store import EventStore
from anonymetry.privacy import LocalKeyring


def main() -> None:
    data, start, count, batch = Path(sys.argv[1]), *map(int, sys.argv[2:5])
    instance = sys.argv[5] if len(sys.argv) > 5 else None
    store = EventStore(data, POLICY, LocalKeyring(data / "keys"), instance=instance)
    new = 0
    for lo in range(start, start + count, batch):
        hi = min(lo + batch, start + count)
        new += sum(store.append_blocking([keyed_event(s) for s in range(lo, hi)]))
        sys.stdout.write(f"ack {hi - 1}\n")
        sys.stdout.flush()
    sys.stdout.write(f"new {new}\n")
    sys.stdout.flush()
    store.close()


if __name__ == "__main__":
    main()
