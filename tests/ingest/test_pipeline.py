"""The ingest pipeline on a real store: minimize → consent gate → pseudonymize → coarsen; dedup
of client ids per device and of OTLP records by content; opt-out deletes every epoch's rows."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from anonymetry.ingest.batch import decode_batch
from anonymetry.ingest.consent import ConsentLedger
from anonymetry.ingest.otlp import OtlpRecord
from anonymetry.ingest.pipeline import Pipeline
from anonymetry.ingest.reader import open_reader, store_stats
from anonymetry.ingest.store import EventStore
from anonymetry.policy import ConsentLevel, default_policy
from anonymetry.privacy import LocalKeyring, Pseudonymizer, epoch_of, epoch_start

POLICY = default_policy()
DAYS = POLICY.identity.key_epoch_days
# a clock one day into an epoch, so that "three days ago" is in the previous epoch
NOW = epoch_start(epoch_of(dt.datetime.now(dt.UTC).timestamp(), DAYS), DAYS).timestamp() + 86400


@pytest.fixture
def env(tmp_path):
    keyring = LocalKeyring(tmp_path / "keys")
    store = EventStore(tmp_path, POLICY, keyring, instance="t")
    ledger = ConsentLedger(tmp_path, keyring)
    pipe = Pipeline(POLICY, keyring, store, ledger, clock=lambda: NOW)
    yield pipe, tmp_path, keyring
    store.close()
    ledger.close()


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat()


def body(*events) -> bytes:
    import msgspec

    return msgspec.json.encode({"events": list(events)})


def event(eid, name="screen.view", device="dev-1", when=NOW - 125, **attrs):
    return {"id": eid, "name": name, "time": iso(when), "device_id": device,
            "user_id": "alice@example.org", "consent": "usage",
            "attributes": {"platform": "ios", "app_version": "2.0", "screen": "home", **attrs}}


def run(pipe, raw: bytes, gpc=False):
    return asyncio.run(pipe.ingest_events(decode_batch(raw), gpc=gpc))


def test_a_stored_row_is_pseudonymized_coarsened_minimized(env):
    pipe, data, keyring = env
    out = run(pipe, body(event("a", duration_ms=7, email="alice@example.org")))
    assert out.results == [("stored", None)]
    (row,) = open_reader(data, keyring, POLICY).to_arrow_table().to_pylist()
    epoch = epoch_of(NOW - 125, DAYS)
    names = Pseudonymizer(keyring)
    assert row["user"] == names.user("alice@example.org", epoch)
    assert row["device"] == names.device("dev-1", epoch)
    assert row["time"].timestamp() == (NOW - 125) // 3600 * 3600
    assert "email" not in row
    assert row["duration_ms"] == 7
    assert store_stats(data, keyring)["discarded"]["undeclared"] == 1


def test_retries_are_duplicates_but_other_devices_ids_are_not(env):
    pipe, data, keyring = env
    assert run(pipe, body(event("x"), event("y"))).summary()["stored"] == 2
    again = run(pipe, body(event("x"), event("y"), event("x", device="dev-2")))
    assert again.results == [("duplicate", None), ("duplicate", None), ("stored", None)]
    assert store_stats(data, keyring)["stored"] == 3


def test_expired_and_consent_discards_are_counted_not_stored(env):
    pipe, data, keyring = env
    out = run(pipe, body(
        {"id": "old", "name": "onboarding.legacy_step", "time": iso(NOW), "device_id": "d",
         "consent": "usage", "attributes": {"platform": "ios", "step": 1}},
        event("gpc"),
    ), gpc=True)
    assert out.results == [("discarded", "expired"), ("discarded", "consent")]
    stats = store_stats(data, keyring)
    assert stats["stored"] == 0
    assert stats["discarded"]["expired"] == 1
    assert stats["discarded"]["consent"] == 1


def test_otlp_records_dedup_on_content(env):
    pipe, _data, _keyring = env
    rec = OtlpRecord(name="app.launch", time=NOW - 10, user_id=None, device_id="d9",
                     consent=None, attrs={"platform": "web", "app_version": "1"},
                     canonical=b"record-bytes-1")
    other = OtlpRecord(**{**{f: getattr(rec, f) for f in rec.__slots__},
                          "canonical": b"record-bytes-2"})
    first = asyncio.run(pipe.ingest_otlp([rec, other], gpc=False))
    second = asyncio.run(pipe.ingest_otlp([rec], gpc=False))
    assert first.summary()["stored"] == 2
    assert second.results == [("duplicate", None)]


def test_opt_out_deletes_every_epoch_and_discards_later_events(env):
    pipe, data, keyring = env
    three_days_ago = NOW - 3 * 86400
    assert epoch_of(three_days_ago, DAYS) != epoch_of(NOW, DAYS)
    run(pipe, body(event("p", when=three_days_ago), event("q"), event("r", device="keep")))
    assert pipe.set_consent("dev-1", ConsentLevel.NONE) == 2
    rows = open_reader(data, keyring, POLICY).to_arrow_table().to_pylist()
    assert len(rows) == 1
    assert run(pipe, body(event("s"))).results == [("discarded", "opted_out")]
    assert pipe.ledger.level("dev-1") is ConsentLevel.NONE
