"""Consent through the API: events above the consented level never reach storage, Sec-GPC caps
at essential, an opt-out deletes the device's stored events and discards its later ones."""

from __future__ import annotations

import datetime as dt
import itertools

import httpx

from .conftest import Collector, make_token
from .storage import store_stats, stored_rows

NOW = dt.datetime.now(dt.UTC).isoformat()
_ids = itertools.count()
BASE = {"platform": "android", "app_version": "7.1"}


def ev(name: str, device: str, consent: str | None = None, **attrs):
    out = {"id": f"e{next(_ids)}", "name": name, "time": NOW, "device_id": device,
           "user_id": f"user-of-{device}", "attributes": {**BASE, **attrs}}
    if consent:
        out["consent"] = consent
    return out


def test_consent_levels_gpc_and_opt_out(data_dir):
    token = make_token(data_dir)
    collector = Collector(data_dir)
    collector.start()
    c = httpx.Client(base_url=collector.url, headers={"authorization": f"Bearer {token}"},
                     timeout=30)
    try:
        def post(events, **headers):
            r = c.post("/v1/events", json={"events": events}, headers=headers)
            assert r.status_code == 200, r.text
            return [(x["status"], x["reason"]) for x in r.json()["results"]]

        def consent(device, level):
            r = c.post("/v1/consent", json={"device_id": device, "level": level})
            assert r.status_code == 200, r.text
            return r.json()

        # 1. the ledger says diagnostics: usage events are discarded even if they claim usage,
        #    and a usage-level field of an essential event... is never stored
        assert consent("dev-a", "diagnostics") == {"level": "diagnostics", "deleted": 0}
        assert post([
            ev("app.launch", "dev-a", "usage", launch_ms=10),
            ev("app.crash", "dev-a", "usage", crash_kind="oom"),
            ev("feature.used", "dev-a", "usage", feature="search"),
        ]) == [("stored", None), ("stored", None), ("discarded", "consent")]
        # 2. no ledger entry, no claim: the policy default (essential)
        assert post([ev("app.crash", "dev-b", crash_kind="oom"),
                     ev("app.launch", "dev-b", launch_ms=10)]) == [
            ("discarded", "consent"), ("stored", None)]
        # 3. Sec-GPC: 1 caps a usage claim at essential
        assert post([ev("feature.used", "dev-c", "usage", feature="sync"),
                     ev("app.launch", "dev-c", "usage", launch_ms=10)],
                    **{"Sec-GPC": "1"}) == [("discarded", "consent"), ("stored", None)]
        # 4. dev-d stores usage events, then opts out: they are deleted, later ones discarded
        assert post([ev("feature.used", "dev-d", "usage", feature="tag"),
                     ev("screen.view", "dev-d", "usage", screen="home")]) == [
            ("stored", None), ("stored", None)]
        assert consent("dev-d", "none") == {"level": "none", "deleted": 2}
        assert post([ev("app.launch", "dev-d", "usage")]) == [("discarded", "opted_out")]
    finally:
        c.close()
        collector.stop()

    rows = stored_rows(data_dir)
    stats = store_stats(data_dir)
    # what was stored never exceeds what was consented
    by_event = sorted((r["event"], r["consent"], tuple(sorted(r["attrs"]))) for r in rows)
    assert by_event == [
        ("app.crash", "diagnostics", ("app_version", "crash_kind", "platform")),
        ("app.launch", "diagnostics", ("app_version", "launch_ms", "platform")),
        ("app.launch", "essential", ("app_version", "platform")),  # launch_ms needs diagnostics
        ("app.launch", "essential", ("app_version", "platform")),
    ]
    assert stats["stored"] == 4
    assert stats["discarded"]["consent"] == 4
