"""Backoff grows exponentially with jitter and never retries before Retry-After."""

from __future__ import annotations

import email.utils

import pytest

from anonymetry.client import Backoff, parse_retry_after
from anonymetry.errors import InvalidParameter


def test_parse_retry_after_seconds_and_http_dates():
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after(" 0.5 ") == 0.5
    assert parse_retry_after("-3") == 0.0
    date = email.utils.formatdate(1_000_030, usegmt=True)
    assert parse_retry_after(date, now=1_000_000) == pytest.approx(30.0)
    for junk in (None, "", "soon", "nan", "inf"):
        assert parse_retry_after(junk) is None


def test_delays_grow_within_jitter_bounds_up_to_the_cap():
    b = Backoff(base=1.0, cap=8.0)
    for n in range(1, 8):
        d = min(8.0, 2.0 ** (n - 1))
        delay = b.next_delay()
        assert d / 2 <= delay <= d, (n, delay)
    b.reset()
    assert 0.5 <= b.next_delay() <= 1.0


def test_jitter_spreads_devices_apart():
    delays = {Backoff(base=1.0, cap=8.0).next_delay() for _ in range(50)}
    assert len(delays) > 40


def test_retry_after_is_a_floor_and_is_capped():
    b = Backoff(base=0.01, cap=0.02, max_retry_after=30)
    for _ in range(20):
        assert 2.0 <= b.next_delay(2.0) <= 2.2
    assert 30 <= b.next_delay(3600) <= 33
    with pytest.raises(InvalidParameter):
        Backoff(base=2, cap=1)
