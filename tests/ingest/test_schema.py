"""Per-event validation: every problem is reported naming its field, values are never echoed,
undeclared fields are dropped and counted, expired events flagged, the time window enforced."""

from __future__ import annotations

import time

import pytest

from anonymetry.errors import SchemaViolation
from anonymetry.ingest.batch import BadEvent, BatchError, WireEvent, decode_batch
from anonymetry.ingest.schema import EventValidator
from anonymetry.policy import ConsentLevel, default_policy

NOW = time.time()


@pytest.fixture(scope="module")
def validator() -> EventValidator:
    return EventValidator(default_policy())


def check(v: EventValidator, name="screen.view", attrs=None, *, when=NOW, user="u", device="d",
          consent=None):
    attrs = {"platform": "ios", "app_version": "1.2", "screen": "editor"} if attrs is None \
        else attrs
    return v.check(name, when, user, device, consent, attrs, NOW)


def test_valid_event_keeps_declared_fields(validator):
    ev = check(validator, attrs={"platform": "ios", "app_version": "1.2", "screen": "editor",
                                 "duration_ms": 10})
    assert ev.attrs == {"platform": "ios", "app_version": "1.2", "screen": "editor",
                        "duration_ms": 10}
    assert ev.undeclared == 0
    assert not ev.expired
    assert ev.consent is None


def test_wrong_type_names_the_field_and_never_echoes_the_value(validator):
    secret = "canary-value-1234"
    with pytest.raises(SchemaViolation) as info:
        check(validator, attrs={"platform": "ios", "app_version": "1", "screen": "home",
                                "duration_ms": secret})
    assert info.value.problems == ("fields.duration_ms: expected int, got str",)
    assert secret not in str(info.value)


def test_every_problem_is_collected(validator):
    with pytest.raises(SchemaViolation) as info:
        check(validator, attrs={"platform": "symbian", "app_version": 7, "duration_ms": -1,
                                "screen": True}, device=None, consent="maybe")
    problems = set(info.value.problems)
    assert problems == {
        "device_id: missing",
        "consent: expected one of none, essential, diagnostics, usage",
        "fields.platform: not one of the 5 declared values",
        "fields.app_version: expected string, got int",
        "fields.duration_ms: below the minimum 0",
        "fields.screen: expected enum, got bool",
    }
    assert "symbian" not in str(info.value)


def test_missing_required_field(validator):
    with pytest.raises(SchemaViolation) as info:
        check(validator, attrs={"platform": "web", "app_version": "1"})
    assert info.value.problems == ("fields.screen: missing (required)",)


def test_unknown_event_is_rejected_without_echoing_its_name(validator):
    with pytest.raises(SchemaViolation) as info:
        check(validator, name="user.email_is.alice")
    assert info.value.problems == ("name: not a declared event",)
    assert "alice" not in str(info.value)


def test_undeclared_fields_are_dropped_and_counted(validator):
    ev = check(validator, attrs={"platform": "ios", "app_version": "1", "screen": "home",
                                 "ip": "10.0.0.1", "email": "x@y", "feature": "search"})
    assert set(ev.attrs) == {"platform", "app_version", "screen"}
    assert ev.undeclared == 3  # 'feature' is declared for another event only


def test_expired_event_is_valid_but_flagged(validator):
    ev = check(validator, name="onboarding.legacy_step", attrs={"platform": "ios", "step": 2})
    assert ev.expired


@pytest.mark.parametrize(("when", "field"), [
    (NOW - 31 * 86400, "time: older than 30 days"),
    (NOW + 3600, "time: more than 300 s in the future"),
    (None, "time: missing"),
])
def test_time_window(validator, when, field):
    with pytest.raises(SchemaViolation) as info:
        check(validator, when=when)
    assert info.value.problems[0].startswith(field)


def test_claimed_consent_is_parsed(validator):
    assert check(validator, consent="diagnostics").consent is ConsentLevel.DIAGNOSTICS


def test_int_field_refuses_floats_and_bools_float_field_accepts_ints(validator):
    with pytest.raises(SchemaViolation) as info:
        check(validator, attrs={"platform": "ios", "app_version": "1", "screen": "home",
                                "duration_ms": 1.5})
    assert info.value.problems == ("fields.duration_ms: expected int, got float",)
    ev = check(validator, name="purchase.completed",
               attrs={"platform": "ios", "app_version": "1", "plan": "monthly", "amount": 5})
    assert ev.attrs["amount"] == 5.0
    assert isinstance(ev.attrs["amount"], float)


def test_batch_keeps_good_events_when_one_envelope_is_bad():
    body = (b'{"events": ['
            b'{"id": "a", "name": "app.launch", "time": "2025-01-01T00:00:00Z"},'
            b'{"id": "b", "name": "app.launch", "time": 12},'
            b'{"id": 5, "name": "app.launch", "time": "2025-01-01T00:00:00Z"},'
            b'{"id": "d", "name": "app.launch"}]}')
    out = decode_batch(body)
    assert isinstance(out[0], WireEvent)
    assert out[1] == BadEvent("b", ("time: expected datetime, got int",))
    assert out[2] == BadEvent(None, ("id: expected str, got int",))
    assert out[3] == BadEvent("d", ("time: missing (required)",))


def test_naive_time_is_a_problem_naming_time():
    out = decode_batch(b'{"events": [{"id": "a", "name": "x.y", "time": "2025-01-01T00:00:00"}]}')
    assert isinstance(out[0], BadEvent)
    assert out[0].problems[0].startswith("time: ")


@pytest.mark.parametrize(("body", "field"), [
    (b"{not json", "$"),
    (b"[]", "$"),
    (b'{"events": 5}', "events"),
    (b'{"events": [' + b"[" * 5000 + b"]" * 5000 + b"]}", "$"),
    (b'{"events": [{"id": "\xff"}]}', "$"),
])
def test_bodies_that_are_not_batches(body, field):
    with pytest.raises(BatchError) as info:
        decode_batch(body)
    assert info.value.field == field
