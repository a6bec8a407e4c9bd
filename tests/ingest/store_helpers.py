"""Helpers for the event-store tests: events, a subprocess writer, reading rows back."""

from __future__ import annotations

import secrets
from pathlib import Path

import pyarrow as pa

from anonymetry.ingest.store import StoredEvent, open_reader
from anonymetry.policy import default_policy
from anonymetry.privacy import LocalKeyring

POLICY = default_policy()
EPOCH = 20000  # 2024-10 with 30-day epochs
T0 = EPOCH * 30 * 86400 + 3600


def event(seq: int, *, epoch: int = EPOCH, device: str = "d" * 32, key: str | None = None,
          version: str = "1.0.0") -> StoredEvent:
    """A screen.view whose ``duration_ms`` is ``seq`` (so rows can be told apart)."""
    return StoredEvent(
        dedup=key or secrets.token_hex(16), epoch=epoch, event="screen.view",
        time=epoch * 30 * 86400 + 3600, user="u" * 32, device=device, consent="usage",
        attrs={"platform": "ios", "app_version": version, "screen": "home", "duration_ms": seq},
    )


def keyed_event(seq: int, **kw: object) -> StoredEvent:
    """An event whose dedup key is derived from ``seq`` (a retry has the same key)."""
    return event(seq, key=f"{seq:032x}", **kw)  # type: ignore[arg-type]


def read_table(data: Path) -> pa.Table:
    return open_reader(data, LocalKeyring(data / "keys"), POLICY).to_arrow_table()


def seqs(data: Path) -> list[int]:
    return sorted(read_table(data)["duration_ms"].to_pylist())
