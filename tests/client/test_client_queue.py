"""The offline queue survives restarts, is bounded, and forgets only what it is told to."""

from __future__ import annotations

import sqlite3
import stat

import pytest

from anonymetry.client import OfflineQueue
from anonymetry.errors import InvalidParameter


def ev(i: int) -> dict:
    return {"id": f"e{i:04d}", "name": "app.launch", "attributes": {"n": i}}


def test_events_survive_reopening_in_fifo_order(tmp_path):
    q = OfflineQueue(tmp_path / "q.sqlite")
    q.put([ev(i) for i in range(5)])
    q.close()
    q = OfflineQueue(tmp_path / "q.sqlite")
    assert len(q) == 5
    assert [e.id for e in q.peek(3)] == ["e0000", "e0001", "e0002"]
    assert q.peek(1)[0].body == ev(0)
    assert q.peek(3) == q.peek(3)  # peeking removes nothing
    assert q.remove(["e0001", "nope"]) == 1
    assert [e.id for e in q.peek(10)] == ["e0000", "e0002", "e0003", "e0004"]
    q.close()


def test_queue_file_is_private_and_in_wal_mode(tmp_path):
    q = OfflineQueue(tmp_path / "q.sqlite")
    q.put([ev(1)])
    assert stat.S_IMODE((tmp_path / "q.sqlite").stat().st_mode) == 0o600
    with sqlite3.connect(tmp_path / "q.sqlite") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    q.close()


def test_bounded_queue_drops_oldest_and_counts_across_restarts(tmp_path):
    q = OfflineQueue(tmp_path / "q.sqlite", max_events=4)
    assert q.put([ev(i) for i in range(3)]) == 0
    assert q.put([ev(i) for i in range(3, 7)]) == 3
    assert [e.id for e in q.peek(10)] == ["e0003", "e0004", "e0005", "e0006"]
    q.close()
    q = OfflineQueue(tmp_path / "q.sqlite", max_events=4)
    assert q.counter("dropped_full") == 3
    q.put([ev(7)])
    assert q.counter("dropped_full") == 4
    q.close()
    with pytest.raises(InvalidParameter):
        OfflineQueue(tmp_path / "other.sqlite", max_events=0)


def test_same_event_id_is_queued_once(tmp_path):
    q = OfflineQueue(tmp_path / "q.sqlite")
    q.put([ev(1), ev(1)])
    q.put([ev(1)])
    assert len(q) == 1
    q.close()


def test_rewrite_and_purge(tmp_path):
    q = OfflineQueue(tmp_path / "q.sqlite")
    q.put([ev(i) for i in range(6)])
    deleted = q.rewrite(lambda b: None if b["attributes"]["n"] % 2 else {**b, "x": 1})
    assert deleted == 3
    bodies = [e.body for e in q.peek(10)]
    assert [b["attributes"]["n"] for b in bodies] == [0, 2, 4]
    assert all(b["x"] == 1 for b in bodies)
    assert q.purge() == 3
    assert len(q) == 0
    q.close()
    assert b"e0000" not in (tmp_path / "q.sqlite").read_bytes()  # secure_delete + checkpoint
