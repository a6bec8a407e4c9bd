"""Tokens: created by the CLI for a role or a permission, stored hashed, listed without the
secret, revoked ones refused; the policy used by serve is recorded in DIR."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from anonymetry.errors import InvalidParameter
from anonymetry.governance.tokens import TokenStore
from anonymetry.policy import default_policy

from .conftest import Collector, cli, make_token


def test_tokens_cli_and_revocation(data_dir):
    by_role = make_token(data_dir, "collector", via_cli=True)
    by_permission = make_token(data_dir, "ingest")
    admin = make_token(data_dir, "admin")
    store = TokenStore(data_dir, default_policy())
    with pytest.raises(InvalidParameter, match=r"janitor.*collector"):
        store.create("janitor")
    store.close()
    listed = json.loads(cli("tokens", "list", "--data", str(data_dir), "--json").stdout)
    assert [t["role"] for t in listed] == ["collector", "ingest", "admin"]
    assert [t["kind"] for t in listed] == ["role", "permission", "role"]
    blob = (data_dir / "tokens.sqlite").read_bytes() + b"".join(
        p.read_bytes() for p in data_dir.glob("tokens.sqlite*"))
    for token in (by_role, by_permission, admin):
        assert token.encode() not in blob
        assert token[4:].encode() not in blob

    collector = Collector(data_dir)
    collector.start()
    try:
        assert (data_dir / "policy.yaml").exists()  # recorded for later commands
        for token in (by_role, by_permission, admin):
            r = httpx.post(f"{collector.url}/v1/events", json={"events": []},
                           headers={"authorization": f"Bearer {token}"})
            assert r.status_code == 200, r.text
        victim = listed[1]["id"]
        out = cli("tokens", "revoke", "--data", str(data_dir), victim)
        assert victim in out.stdout
        deadline = time.monotonic() + 15  # collectors cache verdicts for 5 s
        status = 200
        while time.monotonic() < deadline and status == 200:
            status = httpx.post(f"{collector.url}/v1/events", json={"events": []},
                                headers={"authorization": f"Bearer {by_permission}"}).status_code
            time.sleep(0.5)
        assert status == 401
    finally:
        collector.stop()


def test_token_store_verifies_permissions(tmp_path):
    store = TokenStore(tmp_path, default_policy())
    token, info = store.create("analyst")
    assert store.verify(token) == {"query", "read_dashboard"}
    assert store.verify(token + "x") is None
    store.revoke(info.id)
    assert store.verify(token) is None
    store.close()
