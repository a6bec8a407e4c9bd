"""Reading what the collector stored, through the store's own reader (for assertions)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from anonymetry.ingest.reader import open_reader
from anonymetry.ingest.reader import store_stats as _stats
from anonymetry.policy import default_policy
from anonymetry.privacy import LocalKeyring

BASE = ("event", "time", "epoch", "user", "device", "consent")


def store_stats(data: Path) -> dict[str, Any]:
    return _stats(data, LocalKeyring(data / "keys"))


def stored_rows(data: Path) -> list[dict[str, Any]]:
    """Every stored row as ``{event, time (unix s), epoch, user, device, consent, attrs}``
    where ``attrs`` holds the non-null field columns."""
    reader = open_reader(data, LocalKeyring(data / "keys"), default_policy())
    out = []
    for row in reader.to_arrow_table().to_pylist():
        when = row["time"]
        if isinstance(when, dt.datetime):
            when = int(when.replace(tzinfo=when.tzinfo or dt.UTC).timestamp())
        out.append({**{k: row[k] for k in BASE}, "time": when,
                    "attrs": {k: v for k, v in row.items() if k not in BASE and v is not None}})
    return out
