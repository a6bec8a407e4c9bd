"""Delivery against a misbehaving real peer: Retry-After, retries, per-event rejections, lost
acknowledgements, and idempotent event ids."""

from __future__ import annotations

import pytest

from anonymetry.client import Backoff
from conftest import LAUNCH, Answer


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honoured(collector, make_client, status):
    t = make_client(collector.url, backoff=Backoff(base=0.01, cap=0.02))
    t.track("app.launch", LAUNCH)
    collector.script.append(Answer(status, {"Retry-After": "1"}))
    assert t.flush(timeout=5).complete
    first, second = collector.event_requests()
    assert second.at - first.at >= 1.0  # not before the collector asked, although backoff is 10 ms
    assert second.body == first.body  # the same event ids are retried
    assert len(collector.stored) == 1
    assert t.stats().retries == 1


def test_flush_gives_up_at_its_deadline_but_keeps_the_events(collector, make_client):
    t = make_client(collector.url)
    t.track("app.launch", LAUNCH)
    collector.script.append(Answer(503, {"Retry-After": "30"}))
    report = t.flush(timeout=0.5)
    assert (report.complete, report.remaining) == (False, 1)
    assert len(collector.event_requests()) == 1  # it did not hammer the collector
    assert t.flush(timeout=2).complete


@pytest.mark.parametrize("status", [500, 502, 408])
def test_server_errors_are_retried_with_backoff(collector, make_client, status):
    t = make_client(collector.url)
    for _ in range(3):
        t.track("app.launch", LAUNCH)
    collector.script.extend([Answer(status), Answer(status)])
    assert t.flush(timeout=5).complete
    assert len(collector.event_requests()) == 3
    assert len(collector.stored) == 3


def test_lost_acknowledgement_is_retried_with_the_same_ids_and_stored_once(collector, make_client):
    t = make_client(collector.url)
    t.set_consent("usage")
    for i in range(10):
        t.track("screen.view", {**LAUNCH, "screen": "home", "duration_ms": i})
    # stored, then the connection drops before the answer: twice
    collector.script.extend([Answer(drop=True, store=True), Answer(drop=True, store=True)])
    assert t.flush(timeout=5).complete
    requests = collector.event_requests()
    assert len(requests) == 3
    assert requests[0].body == requests[1].body == requests[2].body
    assert len(collector.stored) == 10
    assert set(collector.deliveries.values()) == {3}  # seen three times, stored once
    s = t.stats()
    assert (s.stored, s.duplicate, s.queued) == (0, 10, 0)


def test_per_event_rejection_is_permanent_and_the_rest_is_kept(collector, make_client):
    t = make_client(collector.url)
    t.set_consent("usage")
    collector.reject = lambda e: (
        "fields.feature: not allowed" if e["attributes"].get("feature") == "share" else None
    )
    for feature in ("search", "share", "tag", "share"):
        t.track("feature.used", {**LAUNCH, "feature": feature})
    assert t.flush().complete
    assert sorted(e["attributes"]["feature"] for e in collector.stored_events()) == [
        "search",
        "tag",
    ]
    assert len(collector.event_requests()) == 1  # rejected events are not retried
    s = t.stats()
    assert (s.stored, s.rejected, s.queued) == (2, 2, 0)


def test_batch_refused_as_a_whole_is_bisected_to_the_bad_event(collector, make_client):
    t = make_client(collector.url)
    t.set_consent("usage")
    for i in range(8):
        t.track("screen.view", {**LAUNCH, "screen": "home", "duration_ms": i})
    collector.refuse_batch_if = lambda e: e["attributes"]["duration_ms"] == 5
    assert t.flush().complete
    kept = sorted(e["attributes"]["duration_ms"] for e in collector.stored_events())
    assert kept == [0, 1, 2, 3, 4, 6, 7]
    assert t.stats().rejected == 1
    assert len(collector.event_requests()) <= 1 + 2 * 3  # log2(8) levels of halves


def test_wrong_token_keeps_events_queued(collector, make_client, tmp_path):
    from anonymetry.client import Telemetry

    wrong = Telemetry(
        collector.url,
        "not-the-token",
        data_dir=tmp_path / "device",
        background=False,
        backoff=Backoff(base=0.02, cap=0.05),
    )
    wrong.track("app.launch", LAUNCH)
    report = wrong.flush(timeout=0.3)
    assert (report.complete, report.remaining) == (False, 1)
    assert wrong.stats().auth_failures >= 1
    assert not wrong.close(timeout=0.1).complete
    assert collector.stored == {}
    again = make_client(collector.url)  # the app fixed its token: the event is still there
    assert again.flush().complete
    assert len(collector.stored) == 1


def test_consent_notice_is_retried_until_acknowledged(collector, make_client):
    t = make_client(collector.url)
    collector.script.extend(
        [
            Answer(503, {"Retry-After": "0"}, path="/v1/consent"),
            Answer(drop=True, path="/v1/consent"),
        ]
    )
    t.set_consent("diagnostics")
    assert t.flush(timeout=5).complete
    assert len([r for r in collector.requests if r.path == "/v1/consent"]) == 3
    assert [c["level"] for c in collector.consent] == ["diagnostics"]
    assert t.stats().consent_pending == 0
