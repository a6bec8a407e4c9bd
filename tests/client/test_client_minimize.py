"""On-device minimization: only events and fields declared for the consented level leave."""

from __future__ import annotations

import datetime as dt

import pytest

from anonymetry.client import DropReason, Minimizer
from anonymetry.errors import SchemaViolation
from anonymetry.policy import ConsentLevel

E, D, U = ConsentLevel.ESSENTIAL, ConsentLevel.DIAGNOSTICS, ConsentLevel.USAGE
LAUNCH = {"platform": "ios", "app_version": "5.2.0"}
TODAY = dt.date(2026, 1, 1)


@pytest.fixture
def m(policy) -> Minimizer:
    return Minimizer(policy)


def test_event_needing_more_consent_is_dropped(m):
    for level in (E, D):
        out = m.apply("feature.used", {**LAUNCH, "feature": "search"}, level, today=TODAY)
        assert out.attributes is None
        assert out.dropped is DropReason.CONSENT
    assert m.apply("app.crash", {**LAUNCH, "crash_kind": "oom"}, E, today=TODAY).dropped is (
        DropReason.CONSENT
    )


def test_fields_above_the_level_are_removed_and_counted(m):
    attrs = {**LAUNCH, "os_version": "14.1", "launch_ms": 812, "launch_type": "cold"}
    out = m.apply("app.launch", attrs, E, today=TODAY)
    assert out.attributes == {**LAUNCH, "launch_type": "cold"}  # os_version, launch_ms: diag.
    assert out.fields_removed == 2
    assert out.consent is E
    full = m.apply("app.launch", attrs, D, today=TODAY)
    assert full.attributes == attrs
    assert full.fields_removed == 0


def test_undeclared_fields_are_removed_even_in_strict_mode(policy):
    attrs = {**LAUNCH, "feature": "search", "email": "a@b.c", "user.id": "u1", "hostname": "x"}
    for strict in (False, True):
        out = Minimizer(policy, strict=strict).apply("feature.used", attrs, U, today=TODAY)
        assert out.attributes == {**LAUNCH, "feature": "search"}
        assert out.fields_removed == 3


def test_undeclared_and_expired_events_are_dropped(m, policy):
    assert m.apply("secret.event", LAUNCH, U, today=TODAY).dropped is DropReason.UNDECLARED
    legacy = m.apply("onboarding.legacy_step", {"platform": "ios", "step": 2}, U, today=TODAY)
    assert legacy.dropped is DropReason.EXPIRED
    with pytest.raises(SchemaViolation, match="not declared"):
        Minimizer(policy, strict=True).apply("secret.event", LAUNCH, U, today=TODAY)


@pytest.mark.parametrize(
    ("event", "attrs", "problem"),
    [
        (
            "screen.view",
            {"screen": "home", "duration_ms": "12"},
            "fields.duration_ms: expected int, got string",
        ),
        (
            "screen.view",
            {"screen": "home", "duration_ms": True},
            "fields.duration_ms: expected int, got bool",
        ),
        ("screen.view", {"screen": "home", "duration_ms": -1}, "fields.duration_ms: below min 0"),
        (
            "screen.view",
            {"screen": "home", "duration_ms": 3600001},
            "fields.duration_ms: above max",
        ),
        (
            "screen.view",
            {"screen": "CANARY-screen"},
            "fields.screen: not one of the declared values",
        ),
        ("screen.view", {"duration_ms": 5}, "fields.screen: is required"),
        (
            "app.launch",
            {"platform": "ios", "app_version": "x" * 33},
            "fields.app_version: longer than max_length 32",
        ),
        (
            "purchase.completed",
            {"plan": "yearly", "amount": float("nan")},
            "fields.amount: expected a finite float",
        ),
        (
            "purchase.completed",
            {"plan": "yearly", "amount": "9"},
            "fields.amount: expected float, got string",
        ),
    ],
)
def test_invalid_values_drop_or_raise_naming_the_field_not_the_value(policy, event, attrs, problem):
    attrs = {**LAUNCH, **attrs}
    lax = Minimizer(policy).apply(event, attrs, U, today=TODAY)
    assert lax.dropped is DropReason.INVALID
    assert any(p.startswith(problem) for p in lax.problems)
    with pytest.raises(SchemaViolation) as info:
        Minimizer(policy, strict=True).apply(event, attrs, U, today=TODAY)
    message = str(info.value)
    assert problem in message
    assert "CANARY" not in message
    assert "xxxxxxxx" not in message


def test_floats_accept_ints_and_valid_events_pass_unchanged(m):
    attrs = {**LAUNCH, "plan": "monthly", "amount": 5}
    out = m.apply("purchase.completed", attrs, U, today=TODAY)
    assert out.attributes == attrs
    assert out.dropped is None
