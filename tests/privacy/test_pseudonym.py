"""Pseudonyms are keyed, stable within an epoch, different across epochs and purposes, and
unlinkable once an epoch is destroyed."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest

from anonymetry.errors import KeyUnavailable
from anonymetry.policy import TimeGranularity
from anonymetry.privacy import LocalKeyring, Pseudonymizer, coarsen, epoch_of


@pytest.fixture
def keyring(tmp_path: Path) -> LocalKeyring:
    return LocalKeyring(tmp_path / "keys")


def test_stable_within_an_epoch_and_across_processes(keyring: LocalKeyring) -> None:
    a = Pseudonymizer(keyring).user("alice@example.com", 700)
    again = Pseudonymizer(LocalKeyring(keyring.directory)).user("alice@example.com", 700)
    assert a == again
    assert len(a) == 32
    assert int(a, 16) >= 0


def test_rotates_with_the_epoch_and_separates_users_from_devices(keyring: LocalKeyring) -> None:
    p = Pseudonymizer(keyring)
    assert p.user("alice", 700) != p.user("alice", 701)
    assert p.user("alice", 700) != p.device("alice", 700)
    assert p.user("alice", 700) != p.user("bob", 700)


def test_is_not_a_plain_hash_of_the_identifier(keyring: LocalKeyring) -> None:
    pseudonym = Pseudonymizer(keyring).user("alice", 700)
    for digest in (hashlib.sha256, hashlib.md5, hashlib.sha1):
        assert digest(b"alice").hexdigest()[:32] != pseudonym


def test_values_are_truncated_hmac_sha256_and_the_memo_changes_none(keyring: LocalKeyring
                                                                     ) -> None:
    """Pinned against the stdlib's independent HMAC and BLAKE2s: stored pseudonyms and dedup
    keys must not change when the implementation does; remembered ids give what fresh ones
    give."""
    keys = keyring.keys(700, create=True)
    p = Pseudonymizer(keyring, cache_size=4)
    ids = [f"device-{i % 3}" for i in range(10)] + ["ü-\u00e9"]
    expected = [hmac.new(keys.device, raw.encode(), "sha256").hexdigest()[:32] for raw in ids]
    assert p.devices(ids, 700) == expected  # first sight
    assert p.devices(ids, 700) == expected  # all remembered
    assert p.devices([*ids, "new-1", "new-2"], 700)[:len(ids)] == expected  # past the bound
    assert p.user("alice", 700) == hmac.new(keys.user, b"alice", "sha256").hexdigest()[:32]
    material = b"e\x00device-1\x00event-1"
    assert p.fingerprints([material, material], 700) == [
        hashlib.blake2s(material, key=keys.dedup, digest_size=16).hexdigest()] * 2
    assert p.fingerprints([material], 701) != p.fingerprints([material], 700)  # per epoch


def test_different_keyrings_give_unrelated_pseudonyms(tmp_path: Path) -> None:
    one = Pseudonymizer(LocalKeyring(tmp_path / "a")).user("alice", 700)
    two = Pseudonymizer(LocalKeyring(tmp_path / "b")).user("alice", 700)
    assert one != two


def test_destroyed_epoch_cannot_pseudonymize_again(keyring: LocalKeyring) -> None:
    Pseudonymizer(keyring).user("alice", 700)
    keyring.destroy(700)
    with pytest.raises(KeyUnavailable, match="destroyed"):
        Pseudonymizer(LocalKeyring(keyring.directory)).user("alice", 700)


def test_epochs_and_coarsening_are_floors() -> None:
    day = 86400
    assert epoch_of(30 * day - 1, 30) == 0
    assert epoch_of(30 * day, 30) == 1
    t = 1_700_000_123
    assert coarsen(t, TimeGranularity.HOUR) == t - t % 3600
    assert coarsen(t, TimeGranularity.DAY) == t - t % 86400
    assert coarsen(t, TimeGranularity.MINUTE) == t - t % 60
