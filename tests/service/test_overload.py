"""Overload: when the store's commit queue would pass ``max_pending`` the collector answers 503
with ``Retry-After`` ≤ 2 s and stores nothing of the batch; the OpenAPI document is served."""

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
