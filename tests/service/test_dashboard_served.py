"""``anonymetry serve`` serves the dashboard read-only at /dashboard/ to tokens with
``read_dashboard`` only, and compacts its WAL into Parquet in the background."""

from __future__ import annotations

import datetime as dt
import time
import uuid

import httpx

from .conftest import Collector, make_token
from .storage import store_stats


def _batch(n: int) -> dict:
    now = dt.datetime.now(dt.UTC).isoformat()
    return {"events": [{
        "id": uuid.uuid4().hex, "name": "app.launch", "time": now, "user_id": f"user-{i % 7}",
        "device_id": f"device-{i}", "consent": "essential",
        "attributes": {"platform": "ios", "app_version": "4.0.0"}} for i in range(n)]}


def test_dashboard_is_behind_read_dashboard_and_shows_the_store(data_dir) -> None:
    ingest = make_token(data_dir, "collector")
    analyst = make_token(data_dir, "analyst")  # roles from the policy: analyst can read it
    collector = Collector(data_dir, extra=("--compact-every", "0.5"))
    collector.start()
    try:
        sent = httpx.post(f"{collector.url}/v1/events", json=_batch(25), timeout=30,
                          headers={"Authorization": f"Bearer {ingest}"})
        assert sent.status_code == 200, sent.text
        base = f"{collector.url}/dashboard"
        assert httpx.get(f"{base}/", timeout=30).status_code == 401
        assert httpx.get(f"{base}/", timeout=30,
                         headers={"Authorization": f"Bearer {ingest}"}).status_code == 403
        auth = {"Authorization": f"Bearer {analyst}"}
        page = httpx.get(f"{base}/", timeout=60, headers=auth)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert httpx.post(f"{base}/", timeout=30, headers=auth).status_code == 405
        data = httpx.get(f"{base}/data.json", timeout=60, headers=auth).json()
        assert data["store"]["stored"] == 25  # the page shows what the store holds
        assert data["store"]["by_event"] == {"app.launch": 25}
        # background compaction empties the WAL into Parquet without losing anything
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            stats = store_stats(data_dir)
            if stats["parquet"]["rows"] == 25:
                break
            time.sleep(0.5)
        assert stats["parquet"]["rows"] == 25
        assert stats["stored"] == 25
        assert stats["wal"]["rows"] == 0
    finally:
        collector.stop()
