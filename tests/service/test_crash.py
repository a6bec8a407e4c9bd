"""Crash safety: a client streams batches while the collector is SIGKILLed and restarted
(≥ 5 times), retrying whatever was not acknowledged; afterwards every event is stored exactly
once. Acknowledged means durable, and retries are idempotent."""

from __future__ import annotations

import datetime as dt
import threading
import time

import httpx
import pytest

from .conftest import Collector, make_token
from .storage import store_stats, stored_rows

NOW = dt.datetime.now(dt.UTC)


def _batch(b: int, size: int) -> dict:
    return {"events": [
        {"id": f"b{b}-e{i}", "name": "screen.view",
         "time": (NOW - dt.timedelta(seconds=b)).isoformat(),
         "device_id": f"dev-{(b * size + i) % 97}", "consent": "usage",
         "attributes": {"platform": "web", "app_version": "1.0", "screen": "home",
                        "duration_ms": b * size + i}}
        for i in range(size)
    ]}


def _stream(url: str, token: str, batches: int, size: int, acked: list[int],
            errors: list[str]) -> None:
    headers = {"authorization": f"Bearer {token}"}
    with httpx.Client(timeout=5, headers=headers) as client:
        for b in range(batches):
            body = _batch(b, size)
            for _ in range(600):  # retry until acknowledged (bounded)
                try:
                    r = client.post(f"{url}/v1/events", json=body)
                except httpx.HTTPError:
                    time.sleep(0.05)
                    continue
                if r.status_code == 200:
                    statuses = {x["status"] for x in r.json()["results"]}
                    if not statuses <= {"stored", "duplicate"}:
                        errors.append(f"batch {b}: {statuses}")
                    acked.append(b)
                    break
                if r.status_code in (429, 503):
                    time.sleep(float(r.headers.get("retry-after", "1")))
                    continue
                errors.append(f"batch {b}: HTTP {r.status_code}")
                return
            else:
                errors.append(f"batch {b}: never acknowledged")
                return


def _run(data, workers: int, kills: int, batches: int, size: int) -> None:
    token = make_token(data)
    collector = Collector(data, workers=workers)
    collector.start()
    acked: list[int] = []
    errors: list[str] = []
    client = threading.Thread(target=_stream,
                              args=(collector.url, token, batches, size, acked, errors))
    client.start()
    done_kills = 0
    try:
        while done_kills < kills and client.is_alive():
            target = len(acked) + max(2, batches // (kills * 2))
            deadline = time.monotonic() + 30
            while len(acked) < target and client.is_alive() and time.monotonic() < deadline:
                time.sleep(0.01)
            collector.kill()  # mid-stream: requests in flight are lost, unacknowledged
            done_kills += 1
            collector.start()
        client.join(180)
    finally:
        collector.stop()
    assert not client.is_alive(), "client did not finish"
    assert errors == []
    assert done_kills >= kills, "the stream ended before all kills"
    assert sorted(acked) == list(range(batches))
    stats = store_stats(data)
    rows = stored_rows(data)
    total = batches * size
    assert stats["stored"] == total
    assert len(rows) == total
    assert sorted(r["attrs"]["duration_ms"] for r in rows) == list(range(total))


def test_sigkill_restarts_store_every_event_exactly_once(data_dir):
    """Two workers: a retry may land on the other worker's segment and must still dedup."""
    _run(data_dir, workers=2, kills=5, batches=40, size=50)


@pytest.mark.slow
def test_sigkill_single_worker(data_dir):
    _run(data_dir, workers=1, kills=8, batches=200, size=50)


@pytest.mark.slow
def test_sigkill_soak(data_dir):
    _run(data_dir, workers=2, kills=25, batches=2000, size=100)
