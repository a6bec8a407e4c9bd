"""The SDK end to end against a real HTTP peer on 127.0.0.1: wire format, batching, consent,
offline queue across restarts."""

from __future__ import annotations

import datetime as dt
import re
import time

import pytest

from anonymetry.client import Telemetry
from anonymetry.errors import InvalidParameter, SchemaViolation
from anonymetry.policy import ConsentLevel
from conftest import LAUNCH, TOKEN, RecordingCollector

DEAD = "http://127.0.0.1:9"  # discard port: nothing listens, connections are refused


def test_wire_format_token_coarse_time_and_ids(collector, make_client):
    now = 1_767_225_600 + 3 * 3600 + 25 * 60 + 7  # 2026-01-01 03:25:07 UTC
    t = make_client(collector.url, user_id="acct-42", clock=lambda: now)
    t.set_consent("usage")
    assert t.track("feature.used", {**LAUNCH, "feature": "search", "count": 3})
    assert t.flush().complete
    (req,) = collector.event_requests()
    assert req.headers["Authorization"] == f"Bearer {TOKEN}"
    assert req.headers["Content-Type"] == "application/json"
    assert req.headers["User-Agent"] == "anonymetry-client"
    (event,) = req.body["events"]
    assert set(event) == {"id", "name", "time", "user_id", "device_id", "consent", "attributes"}
    assert re.fullmatch(r"[0-9a-f]{32}", event["id"])
    assert event["time"] == "2026-01-01T03:00:00Z"  # floored to the policy's hour
    assert dt.datetime.fromisoformat(event["time"]).tzinfo is not None
    assert event["user_id"] == "acct-42"
    assert event["device_id"] == t.device_id
    assert event["consent"] == "usage"
    assert event["attributes"] == {**LAUNCH, "feature": "search", "count": 3}
    assert t.stats().stored == 1


def test_user_id_is_absent_until_the_app_sets_it(collector, make_client):
    t = make_client(collector.url)
    t.track("app.launch", LAUNCH)
    t.set_user("acct-7")
    t.track("app.launch", LAUNCH)
    t.flush()
    assert [e["user_id"] for e in collector.stored_events()] == [None, "acct-7"]
    with pytest.raises(InvalidParameter):
        t.set_user("")


def test_default_consent_sends_only_essential_data(collector, make_client):
    t = make_client(collector.url)  # the person has not chosen: policy default, essential
    assert t.consent is ConsentLevel.ESSENTIAL
    assert t.track("app.launch", {**LAUNCH, "os_version": "14.1", "launch_type": "cold"})
    assert not t.track("feature.used", {**LAUNCH, "feature": "search"})
    assert not t.track("app.crash", {**LAUNCH, "crash_kind": "oom"})
    t.flush()
    (event,) = collector.stored_events()
    assert event["attributes"] == {**LAUNCH, "launch_type": "cold"}
    assert event["consent"] == "essential"
    s = t.stats()
    assert s.dropped == {"consent": 2}
    assert s.fields_removed == 1
    assert collector.consent == []  # no choice made, nothing to tell


def test_batches_are_at_most_batch_size(collector, make_client):
    t = make_client(collector.url, batch_size=10)
    for _ in range(25):
        t.track("app.launch", LAUNCH)
    assert t.flush().complete
    assert [len(r.body["events"]) for r in collector.event_requests()] == [10, 10, 5]
    assert len(collector.stored) == 25


def test_background_thread_sends_on_batch_size_and_on_interval(collector, make_client):
    t = make_client(collector.url, background=True, batch_size=5, flush_interval=30.0)
    for _ in range(5):
        t.track("app.launch", LAUNCH)
    deadline = time.monotonic() + 5
    while len(collector.stored) < 5 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(collector.stored) == 5  # a full batch went at once, long before the interval

    u = make_client(
        collector.url,
        background=True,
        batch_size=100,
        flush_interval=0.2,
        data_dir=t.data_dir.parent / "other",
    )
    u.track("app.launch", LAUNCH)
    deadline = time.monotonic() + 5
    while len(collector.stored) < 6 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(collector.stored) == 6  # a partial batch went on the interval


def test_context_manager_flushes_on_exit(collector, tmp_path, policy):
    with Telemetry(collector.url, TOKEN, policy=policy, data_dir=tmp_path / "d") as t:
        for _ in range(3):
            t.track("app.launch", LAUNCH)
    assert len(collector.stored) == 3
    with pytest.raises(InvalidParameter, match="after close"):
        t.track("app.launch", LAUNCH)


def test_strict_mode_raises_on_schema_violations(collector, make_client):
    t = make_client(collector.url, strict=True)
    with pytest.raises(SchemaViolation, match=r"fields\.platform"):
        t.track("app.launch", {"platform": "amiga", "app_version": "1"})
    lax = make_client(collector.url, data_dir=t.data_dir.parent / "lax")
    assert not lax.track("app.launch", {"platform": "amiga", "app_version": "1"})
    assert not lax.track("no.such_event", LAUNCH)
    assert lax.stats().dropped == {"invalid": 1, "undeclared": 1}


def test_offline_queue_survives_restart_and_delivers_exactly_once(tmp_path, make_client):
    data = tmp_path / "device"
    down = make_client(DEAD, data_dir=data)
    down.set_consent("usage")
    for i in range(7):
        down.track("screen.view", {**LAUNCH, "screen": "editor", "duration_ms": i})
    report = down.flush(timeout=0.3)
    assert not report.complete
    assert report.remaining == 7
    assert report.consent_pending == 1
    down.close(timeout=0.2)  # the app quits while offline

    c = RecordingCollector()  # the collector comes up later, on another run of the app
    try:
        up = make_client(c.url, data_dir=data)
        assert up.stats().queued == 7
        assert up.consent is ConsentLevel.USAGE
        assert up.flush().complete
        assert sorted(e["attributes"]["duration_ms"] for e in c.stored_events()) == list(range(7))
        assert set(c.deliveries.values()) == {1}
        assert c.consent == [{"user_id": None, "device_id": up.device_id, "level": "usage"}]
        # the consent notice went before the events it allows
        assert [r.path for r in c.requests][:2] == ["/v1/consent", "/v1/events"]
    finally:
        c.close()


def test_opt_out_purges_queue_tells_collector_and_replaces_install_id(collector, make_client):
    t = make_client(collector.url, user_id="acct-1")
    t.set_consent("usage")
    t.track("feature.used", {**LAUNCH, "feature": "share"})
    t.flush()
    t.track("feature.used", {**LAUNCH, "feature": "search"})  # queued, not yet sent
    old_device = t.device_id
    t.set_consent("none")
    assert t.stats().queued == 0
    assert t.device_id != old_device
    assert not t.track("app.launch", LAUNCH)  # nothing at all after opt-out
    assert t.flush().complete
    assert collector.consent[-1] == {"user_id": "acct-1", "device_id": old_device, "level": "none"}
    assert [e["attributes"]["feature"] for e in collector.stored_events()] == ["share"]
    assert t.stats().dropped == {"purged": 1, "consent": 1}
    # opting in again starts a fresh, unlinkable install
    t.set_consent("essential")
    t.track("app.launch", LAUNCH)
    t.flush()
    assert collector.consent[-1]["device_id"] == t.device_id != old_device
    assert collector.stored_events()[-1]["device_id"] == t.device_id


def test_lowering_consent_rewrites_the_queue(collector, make_client):
    t = make_client(collector.url)
    t.set_consent("usage")
    t.track("feature.used", {**LAUNCH, "feature": "search"})
    t.track("app.crash", {**LAUNCH, "crash_kind": "oom"})
    t.track("app.launch", {**LAUNCH, "os_version": "14.1"})
    t.set_consent("essential")
    assert t.flush().complete
    events = collector.stored_events()
    assert [e["name"] for e in events] == ["app.launch"]
    assert events[0]["attributes"] == LAUNCH  # os_version (diagnostics) stripped in the queue
    assert events[0]["consent"] == "essential"
    assert [c["level"] for c in collector.consent] == ["essential"]  # only the latest pending
    assert t.stats().dropped == {"consent": 2}


def test_bounded_queue_drops_oldest_and_counts(collector, make_client):
    t = make_client(collector.url, max_queue=5)
    for i in range(8):
        t.track("app.launch", {**LAUNCH, "launch_type": "cold" if i < 3 else "warm"})
    assert t.stats().dropped == {"queue_full": 3}
    t.flush()
    assert [e["attributes"]["launch_type"] for e in collector.stored_events()] == ["warm"] * 5


def test_session_id_is_sent_only_where_the_policy_declares_it(collector, tmp_path):
    from anonymetry.policy import default_policy_text, parse_policy

    text = default_policy_text().replace(
        "      launch_type:\n",
        "      session_id:\n        type: string\n        max_length: 32\n"
        "        sensitivity: technical\n      launch_type:\n",
        1,
    )
    policy = parse_policy(text)
    with Telemetry(
        collector.url, TOKEN, policy=policy, data_dir=tmp_path / "d", background=False
    ) as t:
        t.set_consent("usage")
        t.track("app.launch", LAUNCH)
        t.track("feature.used", {**LAUNCH, "feature": "tag"})
        session = t.session_id
    launch, feature = collector.stored_events()
    assert launch["attributes"]["session_id"] == session
    assert "session_id" not in feature["attributes"]


def test_concurrent_tracking_with_background_delivery_stores_each_event_once(
    collector, make_client
):
    import threading

    t = make_client(collector.url, background=True, batch_size=50, flush_interval=0.05)
    t.set_consent("usage")

    def app_thread(k: int) -> None:
        for i in range(150):
            t.track("screen.view", {**LAUNCH, "screen": "home", "duration_ms": k * 1000 + i})

    threads = [threading.Thread(target=app_thread, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert t.flush(timeout=10).complete
    got = sorted(e["attributes"]["duration_ms"] for e in collector.stored_events())
    assert got == sorted(k * 1000 + i for k in range(4) for i in range(150))
    assert set(collector.deliveries.values()) == {1}  # no event was sent twice


def test_close_while_offline_returns_within_its_timeout(make_client):
    t = make_client(DEAD, background=True, flush_interval=0.05)
    t.track("app.launch", LAUNCH)
    start = time.monotonic()
    report = t.close(timeout=0.5)
    assert time.monotonic() - start < 1.5
    assert report is not None
    assert report.remaining == 1
