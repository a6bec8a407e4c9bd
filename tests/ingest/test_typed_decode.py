"""Decoding our JSON batch straight into checked columns (the taxonomy as msgspec types) gives
exactly the columns that the general decoder plus the column checks give, takes every batch
that those pass with nothing undeclared, and refuses every other batch (which then goes the
general way and gets its per-event reasons). End to end, ``Pipeline.ingest_json`` answers and
stores exactly what ``ingest_events(decode_batch(body))`` does."""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
from typing import Any

import msgspec
import pytest

from anonymetry.ingest.batch import BadEvent, BatchError, decode_batch
from anonymetry.ingest.consent import ConsentLedger
from anonymetry.ingest.pipeline import Pipeline
from anonymetry.ingest.reader import open_reader, store_stats
from anonymetry.ingest.schema import EventValidator
from anonymetry.ingest.store import EventStore
from anonymetry.policy import default_policy
from anonymetry.privacy import LocalKeyring, epoch_of, epoch_start

POLICY = default_policy()
DAYS = POLICY.identity.key_epoch_days
NOW = epoch_start(epoch_of(dt.datetime.now(dt.UTC).timestamp(), DAYS), DAYS).timestamp() + 86400


def iso(ts: float, offset_hours: int = 0) -> str:
    zone = dt.timezone(dt.timedelta(hours=offset_hours))
    return dt.datetime.fromtimestamp(ts, zone).isoformat()


def ev(eid: str, name: str = "screen.view", **over: Any) -> dict[str, Any]:
    attrs = {"platform": "ios", "app_version": "2.0"}
    if name == "screen.view":
        attrs["screen"] = "home"
    attrs.update(over.pop("attrs", {}))
    out: dict[str, Any] = {"id": eid, "name": name, "time": iso(NOW - 100), "device_id": "dev-1",
                           "user_id": "alice", "consent": "usage", "attributes": attrs}
    out.update(over)
    return out


def raw(*events: Any) -> bytes:
    return msgspec.json.encode({"events": list(events)})


# bodies the typed decoder must take whole
TAKEN = {
    "one event type, many devices": raw(*(ev(f"e{i}", device_id=f"d{i % 7}",
                                            attrs={"duration_ms": i}) for i in range(50))),
    "mixed events, int for a float field, optional fields absent or null": raw(
        ev("a", attrs={"duration_ms": 5}),
        ev("b", "feature.used", attrs={"feature": "search", "count": 3}),
        ev("c", "purchase.completed", attrs={"plan": "yearly", "amount": 12}),
        ev("d", "purchase.completed", attrs={"plan": "monthly", "amount": 4.99}),
        ev("e", "app.launch", consent=None, attrs={"launch_type": None}),
        ev("f", attrs={"duration_ms": None})),
    "no or empty user id, no consent claim": raw(ev("a", user_id=None), ev("b", user_id=""),
                                                 ev("c", consent=None)),
    "unknown envelope keys are ignored": raw(ev("a", extra={"x": [1, 2]}, ip="10.0.0.1")),
    "times in other zones and hours": raw(*(ev(f"t{i}", time=iso(NOW - 100 - i * 1800, i - 3))
                                            for i in range(6))),
    "a field repeated: the last value counts": (
        b'{"events":[{"id":"a","name":"feature.used","time":"' + iso(NOW - 50).encode()
        + b'","device_id":"d","attributes":{"platform":"ios","app_version":"1",'
          b'"feature":"search","feature":"share"}}]}'),
}

# bodies it must refuse (the general path then counts or names what is wrong)
REFUSED = {
    "an undeclared field": raw(ev("a"), ev("b", attrs={"email": "x@example.org"})),
    "an unknown event": raw(ev("a"), ev("b", "no.such.event")),
    "a wrong type": raw(ev("a", attrs={"duration_ms": "long"})),
    "a float for an int": raw(ev("a", attrs={"duration_ms": 1.0})),
    "a bool for an int": raw(ev("a", attrs={"duration_ms": True})),
    "an int beyond 64 bits": raw(ev("a", attrs={"duration_ms": 2**70})),
    "a number beyond float": raw(ev("a", "purchase.completed",
                                    attrs={"plan": "yearly", "amount": 10**400})),
    "below the minimum": raw(ev("a", attrs={"duration_ms": -1})),
    "not a declared value": raw(ev("a", attrs={"platform": "amiga"})),
    "a string too long": raw(ev("a", attrs={"app_version": "9" * 33})),
    "a required field missing": raw(ev("a", "app.crash", attrs={})),
    "a required field null": raw(ev("a", attrs={"platform": None})),
    "no device id": raw(ev("a", device_id=None)),
    "an empty device id": raw(ev("a", device_id="")),
    "a device id too long": raw(ev("a", device_id="d" * 257)),
    "a user id too long": raw(ev("a", user_id="u" * 257)),
    "an unknown consent level": raw(ev("a", consent="all")),
    "a time without a zone": raw(ev("a", time="2025-01-01T00:00:00")),
    "a time too far ahead": raw(ev("a"), ev("b", time=iso(NOW + 3600))),
    "a time too old": raw(ev("a", time=iso(NOW - 400 * 86400))),
    "an expired event": raw(ev("a"), ev("b", "onboarding.legacy_step",
                                        attrs={"step": 2})),
    "an id too long": raw(ev("x" * 129)),
    "attributes not an object": raw(ev("a", attributes=[1])),
    "no events": raw(),
    "not JSON": b'{"events": [',
    "not a batch": b'[1, 2, 3]',
}


def generic(validator: EventValidator, body: bytes):
    """The general way: decode_batch, then the column checks (None if they refuse)."""
    try:
        events = decode_batch(body)
    except BatchError:
        return None
    if not events or any(type(e) is BadEvent for e in events):
        return None
    cols = [[getattr(e, a) for e in events]
            for a in ("id", "name", "time", "user_id", "device_id", "consent", "attributes")]
    ids, names, times, users, devices, consents, attrs = cols
    stamps = [t.timestamp() for t in times]
    checked = validator.check_columns(names, stamps, users, devices, consents, attrs, NOW)
    if checked is None or checked.undeclared:
        return None
    return ids, names, stamps, devices, checked


def typed(column: list[Any]) -> list[tuple[str, Any]]:
    return [(type(v).__name__, v) for v in column]


@pytest.mark.parametrize("body", TAKEN.values(), ids=TAKEN.keys())
def test_typed_decoding_gives_the_columns_of_the_general_path(body):
    validator = EventValidator(POLICY)
    fast = validator.decode_columns(body, NOW)
    slow = generic(validator, body)
    assert fast is not None
    assert slow is not None
    ids, names, stamps, devices, checked = slow
    assert (fast.ids, fast.names, fast.devices) == (ids, names, devices)
    assert fast.timestamps() == stamps
    assert fast.span == (min(stamps), max(stamps))
    assert list(fast.checked.users) == list(checked.users)
    assert list(fast.checked.consents) == list(checked.consents)
    assert dict(fast.checked.specs) == dict(checked.specs)
    assert fast.checked.undeclared == 0
    # the general path keeps a column for a field that is only ever null; no value is lost
    expected = {f: typed(c) for f, c in checked.attrs.items() if any(v is not None for v in c)}
    assert {f: typed(c) for f, c in fast.checked.attrs.items()} == expected


@pytest.mark.parametrize("body", REFUSED.values(), ids=REFUSED.keys())
def test_typed_decoding_refuses_what_the_general_path_must_look_at(body):
    validator = EventValidator(POLICY)
    assert validator.decode_columns(body, NOW) is None
    assert generic(validator, body) is None


def _pipeline(data, keyring):
    store = EventStore(data, POLICY, keyring, instance="t")
    ledger = ConsentLedger(data, keyring)
    return Pipeline(POLICY, keyring, store, ledger, clock=lambda: NOW), store, ledger


def test_ingest_json_answers_and_stores_what_the_general_path_does(tmp_path):
    """Same keys in two data directories: every body of both corpora (and a retry) gives the
    same per-event answers, counters and stored rows either way."""
    first, second = tmp_path / "json", tmp_path / "events"
    LocalKeyring(first / "keys").keys(epoch_of(NOW, DAYS), create=True)
    shutil.copytree(first / "keys", second / "keys")
    bodies = [*TAKEN.values(), *REFUSED.values(), next(iter(TAKEN.values()))]  # last: a retry
    answers = {}
    for data, use_json in ((first, True), (second, False)):
        keyring = LocalKeyring(data / "keys")
        pipe, store, ledger = _pipeline(data, keyring)
        out = []
        for body in bodies:
            if use_json:
                try:
                    ids, outcome = asyncio.run(pipe.ingest_json(body, gpc=False))
                except BatchError as exc:
                    out.append(("batch error", exc.field, exc.detail))
                    continue
            else:
                try:
                    events = decode_batch(body)
                except BatchError as exc:
                    out.append(("batch error", exc.field, exc.detail))
                    continue
                ids = [e.id for e in events]
                outcome = asyncio.run(pipe.ingest_events(events, gpc=False))
            out.append((ids, outcome.results, outcome.summary()))
        store.close()
        ledger.close()
        table = open_reader(data, keyring, POLICY).to_arrow_table()
        rows = sorted(map(repr, table.to_pylist()))
        answers[use_json] = (out, rows, store_stats(data, keyring))
    assert answers[True] == answers[False]
    out, rows, stats = answers[True]
    assert out[-1][1] == [("duplicate", None)] * 50  # the retry is recognised
    assert stats["stored"] == len(rows) > 50
