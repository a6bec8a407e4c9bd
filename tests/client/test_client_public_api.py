"""The client package's public names are pinned: adding or removing one is a deliberate act."""

from __future__ import annotations

import anonymetry.client as client


def test_public_names_are_pinned():
    assert sorted(client.__all__) == [
        "Backoff",
        "BatchOutcome",
        "ClientStats",
        "ConsentNotice",
        "ConsentStore",
        "DropReason",
        "FlushReport",
        "InstallId",
        "Minimized",
        "Minimizer",
        "OfflineQueue",
        "QueuedEvent",
        "SessionClock",
        "Telemetry",
        "Transport",
        "default_data_dir",
        "new_event_id",
        "parse_retry_after",
    ]
    for name in client.__all__:
        assert getattr(client, name) is not None


def test_default_data_dir_is_per_user_and_per_app(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    path = client.default_data_dir("acme-notes")
    assert path.is_relative_to(tmp_path) or path.is_relative_to(path.home())
    assert "acme-notes" in path.parts
