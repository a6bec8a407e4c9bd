"""Consent is persisted on the device; a damaged file never widens it."""

from __future__ import annotations

import stat

import pytest

from anonymetry.client import ConsentNotice, ConsentStore
from anonymetry.client.consent import parse_level
from anonymetry.errors import InvalidParameter
from anonymetry.policy import ConsentLevel

E, U, N = ConsentLevel.ESSENTIAL, ConsentLevel.USAGE, ConsentLevel.NONE


def test_default_until_chosen_then_persisted_with_pending_notices(tmp_path):
    s = ConsentStore(tmp_path, E)
    assert (s.level, s.chosen, s.pending()) == (E, False, [])
    n1 = ConsentNotice("u", "d1", U)
    s.set(U, n1)
    again = ConsentStore(tmp_path, E)
    assert (again.level, again.chosen, again.pending()) == (U, True, [n1])
    assert stat.S_IMODE((tmp_path / "consent.json").stat().st_mode) == 0o600
    # a newer choice for the same user and device replaces the pending one; others stay
    n2, n3 = ConsentNotice("u", "d1", N), ConsentNotice("u", "d2", U)
    again.set(U, n3)
    again.set(N, n2)
    assert ConsentStore(tmp_path, E).pending() == [n3, n2]
    again.acknowledge(n3)
    assert ConsentStore(tmp_path, E).pending() == [n2]


def test_damaged_file_means_opted_out(tmp_path):
    (tmp_path / "consent.json").write_text("{not json")
    assert ConsentStore(tmp_path, ConsentLevel.USAGE).level is N
    (tmp_path / "consent.json").write_text('{"level": "everything"}')
    assert ConsentStore(tmp_path, ConsentLevel.USAGE).level is N


def test_parse_level():
    assert parse_level("Diagnostics") is ConsentLevel.DIAGNOSTICS
    assert parse_level(U) is U
    with pytest.raises(InvalidParameter, match="consent level"):
        parse_level("all")
