"""The served dashboard is read-only and answers only a token with read_dashboard."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from anonymetry.errors import InvalidParameter
from anonymetry.governance.tokens import TokenStore
from anonymetry.policy import default_policy
from anonymetry.report import DashboardData, bearer_authorizer, dashboard_app

from .conftest import FIXTURES


def _run(app, method: str, path: str, token: str | None = None, root_path: str = ""):  # type: ignore[no-untyped-def]
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, root_path=root_path)
        async with httpx.AsyncClient(transport=transport, base_url="http://dash") as client:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            return await client.request(method, root_path + path, headers=headers)
    return asyncio.run(go())


@pytest.fixture
def tokens(tmp_path: Path):  # type: ignore[no-untyped-def]
    store = TokenStore(tmp_path, default_policy())
    yield store
    store.close()


def test_token_roles(tokens: TokenStore, fixture_data: DashboardData) -> None:
    """401 without or with an unknown token, 403 for a role without read_dashboard
    (collector: ingest only), 200 for analyst."""
    app = dashboard_app(fixture_data, authorize=bearer_authorizer(tokens.verify))
    analyst, _ = tokens.create("analyst")
    collector, _ = tokens.create("collector")
    assert _run(app, "GET", "/").status_code == 401
    assert _run(app, "GET", "/").headers["www-authenticate"].startswith("Bearer")
    assert _run(app, "GET", "/", token="anm_not-a-token").status_code == 401
    assert _run(app, "GET", "/", token=collector).status_code == 403
    ok = _run(app, "GET", "/", token=analyst)
    assert ok.status_code == 200
    assert ok.headers["content-type"] == "text/html; charset=utf-8"
    assert ok.headers["content-security-policy"].startswith("default-src 'none'")
    assert ok.headers["cache-control"] == "no-store"
    assert "Weekly product report" in ok.text


def test_read_only_routes(fixture_data: DashboardData) -> None:
    app = dashboard_app(fixture_data)
    assert _run(app, "POST", "/").status_code == 405
    assert _run(app, "DELETE", "/data.json").status_code == 405
    assert _run(app, "GET", "/../etc/passwd").status_code == 404
    head = _run(app, "HEAD", "/")
    assert head.status_code == 200
    assert head.content == b""
    data = _run(app, "GET", "/data.json").json()
    assert data == fixture_data.to_dict()


def test_mounted_under_a_prefix(fixture_data: DashboardData) -> None:
    app = dashboard_app(fixture_data)
    assert _run(app, "GET", "/", root_path="/dashboard").status_code == 200
    assert _run(app, "GET", "/data.json", root_path="/dashboard").status_code == 200


def test_spec_source_is_reread_and_queries_refused(tmp_path: Path) -> None:
    app = dashboard_app(FIXTURES / "report.yaml", max_age=0)
    assert _run(app, "GET", "/data.json").json()["store"]["stored"] == 48213
    spec = tmp_path / "q.yaml"
    (tmp_path / "t.parquet").write_bytes(b"")
    spec.write_text("queries: [{source: t.parquet, metric: count, epsilon: 1}]\n",
                    encoding="utf-8")
    with pytest.raises(InvalidParameter, match="spend privacy budget"):
        dashboard_app(spec)
