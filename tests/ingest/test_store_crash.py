"""Acknowledged means durable: a writer killed with SIGKILL right after append returned."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from anonymetry.ingest.store import EventStore
from anonymetry.privacy import LocalKeyring

from .store_helpers import POLICY, keyed_event, seqs

WORKER = str(Path(__file__).with_name("store_worker.py"))


def _run_until_killed(data: Path, start: int, count: int, kill_after: int) -> int:
    """Start a writer, SIGKILL it as soon as ``kill_after`` batches were acknowledged;
    return the highest acknowledged seq."""
    proc = subprocess.Popen([sys.executable, WORKER, str(data), str(start), str(count), "100"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    acked, batches = start - 1, 0
    for line in proc.stdout:
        if line.startswith("ack "):
            acked = int(line.split()[1])
            batches += 1
            if batches >= kill_after:
                os.kill(proc.pid, signal.SIGKILL)  # right after the ack, mid-stream
                break
    proc.wait(timeout=60)
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL, "the writer finished before it was killed"
    return acked


def test_every_acknowledged_event_survives_sigkill_exactly_once(tmp_path: Path) -> None:
    acked = []
    start = 0
    for kill_after in (3, 7, 5):  # three crashes, each restart adopts the dead segment
        last = _run_until_killed(tmp_path, start, 100_000, kill_after)
        acked.append((start, last))
        stored = set(seqs(tmp_path))
        for lo, hi in acked:
            assert set(range(lo, hi + 1)) <= stored, "an acknowledged event was lost"
        start = last + 1 - 50  # the client retries the last half batch it sent
    assert len(list((tmp_path / "wal").glob("*.sqlite"))) == 1  # adopted, not accumulated
    rows = seqs(tmp_path)
    assert len(rows) == len(set(rows)), "a retried event was stored twice"
    # the client now retries everything it ever sent: nothing new is stored
    store = EventStore(tmp_path, POLICY, LocalKeyring(tmp_path / "keys"))
    top = max(hi for _, hi in acked)
    fresh = store.append_blocking([keyed_event(s) for s in range(top + 1)])
    store.close()
    assert sum(fresh) == top + 1 - len(rows)  # only those never acknowledged before
    assert seqs(tmp_path) == list(range(top + 1))
