"""The consent ledger: effective level rules, durable records shared across processes, keys
that are keyed hashes (no raw device id in the file)."""

from __future__ import annotations

import pytest

from anonymetry.ingest.consent import ConsentLedger, effective_level
from anonymetry.policy import ConsentLevel as L
from anonymetry.privacy import LocalKeyring


@pytest.mark.parametrize(("claimed", "recorded", "gpc", "expected"), [
    (None, None, False, L.ESSENTIAL),            # nobody said anything: the policy default
    (L.USAGE, None, False, L.USAGE),             # the event's own claim
    (None, L.DIAGNOSTICS, False, L.DIAGNOSTICS),  # the ledger
    (L.USAGE, L.DIAGNOSTICS, False, L.DIAGNOSTICS),  # the lower of both
    (L.ESSENTIAL, L.USAGE, False, L.ESSENTIAL),
    (L.USAGE, L.USAGE, True, L.ESSENTIAL),       # Sec-GPC caps at essential
    (None, L.NONE, True, L.NONE),                # GPC never raises an opt-out
])
def test_effective_level(claimed, recorded, gpc, expected):
    assert effective_level(claimed, recorded, L.ESSENTIAL, gpc=gpc) is expected


def test_records_are_durable_and_seen_by_other_connections(tmp_path):
    keyring = LocalKeyring(tmp_path / "keys")
    a = ConsentLedger(tmp_path, keyring)
    b = ConsentLedger(tmp_path, LocalKeyring(tmp_path / "keys"))
    assert b.level("device-1") is None  # cached as unknown in b
    a.record("device-1", L.DIAGNOSTICS)
    assert b.level("device-1") is L.DIAGNOSTICS  # b's cache dropped on data_version change
    a.record("device-1", L.NONE)
    assert b.levels(["device-1", "device-2"]) == {"device-1": L.NONE}
    a.close()
    b.close()
    c = ConsentLedger(tmp_path, LocalKeyring(tmp_path / "keys"))
    assert c.level("device-1") is L.NONE
    assert c.count() == {"none": 1}
    c.close()


def test_the_file_holds_no_raw_device_id_and_keys_do_not_rotate(tmp_path):
    keyring = LocalKeyring(tmp_path / "keys")
    ledger = ConsentLedger(tmp_path, keyring)
    ledger.record("canary-device-77", L.USAGE)
    first = ledger.device_key("canary-device-77")
    ledger.close()
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert b"canary-device-77" not in path.read_bytes(), path
    keyring.keys(1, create=True)
    keyring.destroy(1)  # destroying an epoch must not touch the standing key
    again = ConsentLedger(tmp_path, LocalKeyring(tmp_path / "keys"))
    assert again.device_key("canary-device-77") == first
    assert again.level("canary-device-77") is L.USAGE
    again.close()
