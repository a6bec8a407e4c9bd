"""Overload: when the store's commit queue would pass ``max_pending``, or more acknowledged events
than ``max_uncompacted`` await compaction (their dedup keys are held in memory), the collector
answers 503 with ``Retry-After`` ≤ 2 s and stores nothing of the batch; the OpenAPI document is
served."""

from __future__ import annotations

import asyncio
import datetime as dt

import httpx

from anonymetry.governance.tokens import TokenStore
from anonymetry.policy import default_policy
from anonymetry.service.app import CollectorApp, ServiceConfig

NOW = dt.datetime.now(dt.UTC).isoformat()


def _event(i: int) -> dict:
    return {"id": f"o{i}", "name": "app.launch", "time": NOW, "device_id": "d",
            "attributes": {"platform": "web", "app_version": "1"}}


def test_overload_is_503_with_retry_after(tmp_path):
    policy = default_policy()
    token, _ = TokenStore(tmp_path, policy).create("collector")
    app = CollectorApp(ServiceConfig(data_dir=tmp_path, policy=policy, max_pending=3))

    async def go() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t",
                                     headers={"authorization": f"Bearer {token}"}) as client:
            big = await client.post("/v1/events", json={"events": [_event(i) for i in range(5)]})
            small = await client.post("/v1/events", json={"events": [_event(9)]})
            doc = await client.get("/openapi.json")
        await app.shutdown()
        return big, small, doc

    big, small, doc = asyncio.run(go())
    assert big.status_code == 503
    assert 1 <= int(big.headers["retry-after"]) <= 2
    assert big.json()["error"] == "overloaded"
    assert small.status_code == 200
    assert small.json()["stored"] == 1
    paths = doc.json()["paths"]
    assert set(paths) == {"/v1/events", "/v1/logs", "/v1/consent", "/healthz", "/openapi.json"}


def test_a_compaction_backlog_is_503_until_compaction_catches_up(tmp_path):
    policy = default_policy()
    token, _ = TokenStore(tmp_path, policy).create("collector")
    app = CollectorApp(ServiceConfig(data_dir=tmp_path, policy=policy, max_uncompacted=150,
                                     compact_every=0))

    async def go() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t",
                                     headers={"authorization": f"Bearer {token}"}) as client:
            def post(start: int):
                return client.post("/v1/events", json={
                    "events": [_event(i) for i in range(start, start + 100)]})

            out = [await post(0), await post(100), await post(200)]  # 200 waiting > 150
            assert app.store is not None
            assert app.store.uncompacted() == 200
            await asyncio.to_thread(app.store.compact)
            for _ in range(50):  # the idle store learns what compaction moved within ~1 s
                if app.store.uncompacted() == 0:
                    break
                await asyncio.sleep(0.1)
            assert app.store.uncompacted() == 0
            out.append(await post(200))  # the refused batch, retried after Retry-After
        await app.shutdown()
        return out

    first, second, refused, retried = asyncio.run(go())
    assert [first.status_code, second.status_code] == [200, 200]
    assert refused.status_code == 503
    assert 1 <= int(refused.headers["retry-after"]) <= 2
    assert "await compaction" in refused.json()["detail"]
    assert retried.status_code == 200
    assert retried.json()["stored"] == 100


def test_compaction_starts_early_once_half_the_bound_is_waiting(tmp_path):
    """With an hour between timed compactions, 150 waiting events (over half of 200) still get
    compacted within seconds, so the bound is rarely reached."""
    policy = default_policy()
    token, _ = TokenStore(tmp_path, policy).create("collector")
    app = CollectorApp(ServiceConfig(data_dir=tmp_path, policy=policy, max_uncompacted=200,
                                     compact_every=3600))

    async def go() -> tuple[int, int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t",
                                     headers={"authorization": f"Bearer {token}"}) as client:
            answer = await client.post("/v1/events", json={
                "events": [_event(i) for i in range(150)]})
            assert answer.status_code == 200
            assert app.store is not None
            waiting = app.store.uncompacted()
            for _ in range(100):
                if app.store.uncompacted() == 0:
                    break
                await asyncio.sleep(0.1)
            left = app.store.uncompacted()
        await app.shutdown()
        return waiting, left

    waiting, left = asyncio.run(go())
    assert waiting == 150
    assert left == 0
    assert list((tmp_path / "parquet").rglob("*.parquet"))
