"""The columnar fast path of the pipeline stores exactly what the per-event path stores, and
hands every batch it cannot take whole (invalid, expired, consent-gated, field-filtered events)
to the per-event path, which names the problems.

The two paths are compared through the pipeline's private ``_prepare_columns`` / ``_prepare``:
the public ``ingest_events`` picks one of them, so only side by side can they be compared.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import msgspec
import pytest

from anonymetry.ingest.batch import decode_batch
from anonymetry.ingest.consent import ConsentLedger
from anonymetry.ingest.pipeline import _WIRE_COLUMNS, Pipeline, _event_material
from anonymetry.ingest.store import EventStore, StoredBatch
from anonymetry.policy import default_policy
from anonymetry.privacy import LocalKeyring, epoch_of, epoch_start

POLICY = default_policy()
DAYS = POLICY.identity.key_epoch_days
NOW = epoch_start(epoch_of(dt.datetime.now(dt.UTC).timestamp(), DAYS), DAYS).timestamp() + 86400


@pytest.fixture
def pipe(tmp_path):
    keyring = LocalKeyring(tmp_path / "keys")
    store = EventStore(tmp_path, POLICY, keyring, instance="t")
    ledger = ConsentLedger(tmp_path, keyring)
    yield Pipeline(POLICY, keyring, store, ledger, clock=lambda: NOW)
    store.close()
    ledger.close()


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat()


def ev(eid: str, name: str = "screen.view", *, device: str | None = "dev-1",
       user: str | None = "alice", when: float = NOW - 100, consent: str | None = "usage",
       **attrs: Any) -> dict[str, Any]:
    base = {"platform": "ios", "app_version": "2.0"}
    if name == "screen.view":
        base["screen"] = "home"
    return {"id": eid, "name": name, "time": iso(when), "device_id": device, "user_id": user,
            "consent": consent, "attributes": {**base, **attrs}}


def both(pipe: Pipeline, events: list[dict[str, Any]], gpc: bool = False):
    """(columnar result or None, per-event result) for the same decoded batch."""
    decoded = decode_batch(msgspec.json.encode({"events": events}))
    ids, names, times, users, devices, consents, attrs = zip(*map(_WIRE_COLUMNS, decoded),
                                                             strict=True)
    stamps = [t.timestamp() for t in times]
    fast = pipe._prepare_columns((names, stamps, users, devices, consents, attrs),
                                 lambda: map(_event_material, devices, ids), gpc)
    items = [(e.name, e.time.timestamp(), e.user_id, e.device_id, e.consent, e.attributes,
              _event_material(e.device_id, e.id) if e.device_id else b"") for e in decoded]
    return fast, pipe._prepare(items, gpc)


EQUIVALENT = {
    "one event type, many devices and users": [
        ev(f"e{i}", device=f"dev-{i % 7}", user=f"user-{i % 3}", duration_ms=i * 10)
        for i in range(60)],
    "mixed events, int given for a float field, optional fields absent or null": [
        ev("a", duration_ms=5),
        ev("b", "feature.used", feature="search", count=3),
        ev("c", "purchase.completed", plan="yearly", amount=12),
        ev("d", "purchase.completed", plan="monthly", amount=4.99),
        ev("e", "app.launch", consent=None, launch_type=None),
        ev("f", "screen.view", duration_ms=None),
    ],
    "fields that need more consent than their event, consented": [
        ev("a", "app.launch", consent="diagnostics", os_version="17.1", launch_ms=300)],
    "undeclared fields dropped and counted": [
        ev("a", email="alice@example.org", duration_ms=1),
        ev("b", ip="10.0.0.1", ua="x"),
    ],
    "no or empty user id: the device stands for its user": [
        ev("a", user=None), ev("b", user=""), ev("c", user="bob")],
    "times spread over several hours": [
        ev(f"t{i}", when=NOW - 100 - i * 1800) for i in range(8)],
}


@pytest.mark.parametrize("events", EQUIVALENT.values(), ids=EQUIVALENT.keys())
def test_columnar_path_stores_exactly_what_the_per_event_path_stores(pipe, events):
    fast, (outcome, rows, where, discards) = both(pipe, events)
    assert fast is not None, "an all-valid batch must take the columnar path"
    fast_outcome, batch, fast_where, fast_discards = fast
    assert fast_outcome.results == outcome.results
    assert list(fast_where) == where
    assert {k: v for k, v in fast_discards.items() if v} == {
        k: v for k, v in discards.items() if v}
    assert canonical(batch) == canonical(StoredBatch.from_rows(rows))


def canonical(batch: StoredBatch) -> list[tuple[Any, ...]]:
    """Rows with their fields sorted and typed (so that 12 and 12.0 differ: float fields are
    stored as floats)."""
    return [(r.dedup, r.epoch, r.event, r.time, r.user, r.device, r.consent,
             sorted((k, type(v).__name__, v) for k, v in r.attrs.items()))
            for r in batch.rows()]


FALLBACK = {
    "one invalid event": ([ev("a"), ev("b", duration_ms="long")], False, "rejected"),
    "an unknown event": ([ev("a"), ev("b", "no.such.event")], False, "rejected"),
    "an expired event": ([ev("a"), ev("b", "onboarding.legacy_step", step=2)], False,
                         "discarded"),
    "an event above the effective consent (Sec-GPC)": ([ev("a"), ev("b")], True, "discarded"),
    "a time outside the window": ([ev("a"), ev("b", when=NOW + 3600)], False, "rejected"),
    "a device id missing": ([ev("a"), ev("b", device=None)], False, "rejected"),
}


@pytest.mark.parametrize(("events", "gpc", "status"), FALLBACK.values(), ids=FALLBACK.keys())
def test_batches_with_anything_but_plain_stores_go_event_by_event(pipe, events, gpc, status):
    fast, (outcome, _, _, _) = both(pipe, events, gpc)
    assert fast is None
    assert outcome.results[1][0] == status


def test_a_field_above_the_effective_consent_is_dropped_event_by_event(pipe):
    # no claim: the policy default (essential) applies, and os_version needs diagnostics
    fast, (outcome, rows, _, _) = both(pipe, [ev("a", "app.launch", consent=None,
                                                  os_version="17.1", launch_type="cold")])
    assert fast is None
    assert outcome.results == [("stored", None)]
    assert dict(rows[0].attrs) == {"platform": "ios", "app_version": "2.0",
                                   "launch_type": "cold"}


def test_integers_too_large_for_storage_are_rejected_naming_the_field(pipe):
    raw = msgspec.json.encode({"events": [
        ev("a", duration_ms=2**70),
        ev("b", "purchase.completed", plan="yearly", amount=10**400),
        ev("c"),
    ]})
    out = asyncio.run(pipe.ingest_events(decode_batch(raw), gpc=False))
    assert out.results == [
        ("rejected", "fields.duration_ms: outside the 64-bit integer range"),
        ("rejected", "fields.amount: expected a finite number"),
        ("stored", None),
    ]
