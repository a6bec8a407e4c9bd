"""The device SDK (imports only ``policy``, ``privacy`` and ``errors``; runs on devices).

For Python desktop and CLI apps, and the reference for the other platforms' SDKs.

- :mod:`~anonymetry.client.telemetry`: ``Telemetry`` — track, consent, flush, close; the order
  in which an event is minimized, stamped, queued and delivered.
- :mod:`~anonymetry.client.minimize`: ``Minimizer`` — only events and fields declared for the
  consented level leave the device; values checked against the taxonomy.
- :mod:`~anonymetry.client.consent`: ``ConsentStore`` — the persisted level and the consent
  notices the collector has not acknowledged yet.
- :mod:`~anonymetry.client.ids`: ``InstallId`` (random, never hardware), ``SessionClock``
  (rotating session ids), ``new_event_id`` (UUID4, kept across retries).
- :mod:`~anonymetry.client.queue`: ``OfflineQueue`` — SQLite (WAL) queue that survives restarts;
  events leave it only once the collector answered for them.
- :mod:`~anonymetry.client.transport`: ``Transport`` (httpx, the wire format) and ``Backoff``
  (exponential with jitter, honouring ``Retry-After``).
"""

from anonymetry.client.consent import ConsentNotice, ConsentStore
from anonymetry.client.ids import InstallId, SessionClock, new_event_id
from anonymetry.client.minimize import DropReason, Minimized, Minimizer
from anonymetry.client.queue import OfflineQueue, QueuedEvent
from anonymetry.client.telemetry import ClientStats, FlushReport, Telemetry, default_data_dir
from anonymetry.client.transport import Backoff, BatchOutcome, Transport, parse_retry_after

__all__ = [
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
