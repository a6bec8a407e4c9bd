"""Ingest: from the wire to the encrypted store (imports ``policy`` and ``privacy`` only).

- :mod:`~anonymetry.ingest.batch`: our JSON batch wire format (msgspec).
- :mod:`~anonymetry.ingest.otlp`: OTLP/HTTP logs (protobuf and JSON) → events.
- :mod:`~anonymetry.ingest.schema`: validation and minimization against the taxonomy.
- :mod:`~anonymetry.ingest.consent`: the consent ledger (non-rotating keyed device hashes).
- :mod:`~anonymetry.ingest.pipeline`: validate → consent gate → pseudonymize → coarsen.
- :mod:`~anonymetry.ingest.store`: ``EventStore`` — durable group commits, dedup, sealing.
- :mod:`~anonymetry.ingest.compaction`: WAL → encrypted Parquet; erasure of a device.
- :mod:`~anonymetry.ingest.reader`: ``open_reader`` and ``store_stats`` for the layers above.

Private: ``_wal`` (segment format and locks), ``_codec`` (row/column encoding), ``_dedup``
(in-memory index of uncompacted dedup keys). Names load lazily, so importing the package is
cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["EventStore", "Pipeline", "StoredEvent", "open_reader", "store_stats"]

_HOME = {"EventStore": "store", "StoredEvent": "store", "Pipeline": "pipeline",
         "open_reader": "reader", "store_stats": "reader"}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(f"anonymetry.ingest.{_HOME[name]}"), name)
    raise AttributeError(name)
