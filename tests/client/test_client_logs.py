"""The SDK never logs a payload, an id or a rejection reason: a full run with canaries in every
place an identifier or value could travel, with every log record (ours, httpx, httpcore) at
DEBUG captured, and none of the canaries in any of them."""

from __future__ import annotations

import logging

from anonymetry.client import Backoff, Telemetry
from conftest import TOKEN, Answer

USER = "CANARY-user-7c1e"
VERSION = "CANARY-ver-55aa"
BAD_VALUE = "CANARY-screen-0d0d"
REASON = "CANARY-reason-e3e3"


def test_no_payload_or_identifier_in_any_log_record(collector, make_client, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    launch = {"platform": "web", "app_version": VERSION}
    collector.reject = lambda e: REASON if e["attributes"].get("feature") == "share" else None
    collector.script.extend(
        [
            Answer(503, {"Retry-After": "0"}),
            Answer(drop=True, store=True),
            Answer(429, {"Retry-After": "0"}, path="/v1/consent"),
        ]
    )
    t = make_client(collector.url, user_id=USER)
    t.set_consent("usage")
    for feature in ("search", "share", "tag"):
        t.track("feature.used", {**launch, "feature": feature})
    t.track("screen.view", {**launch, "screen": BAD_VALUE})  # invalid: dropped locally
    t.track("feature.used", {**launch, "feature": "sync", "note": USER})  # undeclared field
    assert t.flush(timeout=5).complete
    t.set_consent("essential")
    t.track("app.launch", launch)
    t.set_consent("none")
    assert t.flush(timeout=5).complete

    # a wrong token and an unreachable collector, on another device
    wrong = Telemetry(
        collector.url,
        "CANARY-token-bad",
        data_dir=tmp_path / "w",
        user_id=USER,
        background=False,
        backoff=Backoff(base=0.01, cap=0.02),
    )
    wrong.track("app.launch", launch)
    wrong.flush(timeout=0.1)
    wrong.close(timeout=0.1)
    dead = Telemetry(
        "http://127.0.0.1:9",
        TOKEN,
        data_dir=tmp_path / "x",
        user_id=USER,
        background=False,
        backoff=Backoff(base=0.01, cap=0.02),
    )
    dead.track("app.launch", launch)
    dead.flush(timeout=0.1)
    dead.close(timeout=0.1)

    stored = collector.stored_events()
    assert len(stored) == 3  # the run did happen: search, tag, sync
    canaries = {USER, VERSION, BAD_VALUE, REASON, TOKEN, "CANARY-token-bad"}
    for event in stored:
        canaries |= {event["id"], event["device_id"]}
    for notice in collector.consent:
        canaries.add(notice["device_id"])
    records = caplog.records
    assert any(r.name == "anonymetry.client" for r in records)  # the SDK did log things
    assert any(r.name.startswith("httpx") for r in records)
    for record in records:
        text = " ".join(
            [
                record.getMessage(),
                repr(record.args),
                record.exc_text or "",
                str(record.exc_info[1]) if record.exc_info else "",
            ]
        )
        for canary in canaries:
            assert canary not in text, f"{record.name} logged an identifier or value"
