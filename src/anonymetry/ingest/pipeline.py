"""The ingest pipeline: validate and minimize → consent gate → pseudonymize → coarsen → store.

Privacy argument: this is the collector's first step, and the last place raw identifiers
exist. Per event, in order:

1. **validate and minimize** (:mod:`.schema`): only declared fields survive; undeclared ones are
   dropped and counted (``discards["undeclared"]``), invalid events rejected with reasons that
   name the field (``discards["invalid"]``), expired events dropped (``discards["expired"]``).
2. **consent gate** (:mod:`.consent`): the effective level is the lower of the event's claim and
   the ledger's record (policy default when neither speaks; ``Sec-GPC: 1`` caps at essential).
   An event needing more is answered ``discarded`` and counted (``discards["consent"]``), never
   stored; a field needing more than the effective level is dropped.
3. **pseudonymize**: user and device ids become HMAC-SHA256 pseudonyms under the key epoch of the
   event's time (:class:`anonymetry.privacy.Pseudonymizer`); the client's event id becomes a
   keyed fingerprint scoped to the device (OTLP: of the record's canonical bytes) for dedup.
4. **coarsen** the time to the policy granularity (:func:`anonymetry.privacy.coarsen`).

Only :class:`~anonymetry.ingest.store.StoredEvent` rows leave this module; the IP address,
User-Agent and SDK resource attributes never enter it.

Opt-out (level ``none``) is recorded in the ledger first, then the device's events are deleted
from the store for every key epoch within the longest retention period whose key still exists.
"""

from __future__ import annotations

import time as _time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from anonymetry.errors import KeyUnavailable, SchemaViolation
from anonymetry.ingest.batch import BadEvent, WireEvent
from anonymetry.ingest.consent import ConsentLedger, effective_level
from anonymetry.ingest.otlp import OtlpRecord
from anonymetry.ingest.schema import EventValidator
from anonymetry.ingest.store import EventStore, StoredEvent
from anonymetry.policy import ConsentLevel, Policy
from anonymetry.privacy import Keyring, Pseudonymizer, coarsen, epoch_of, keyed_digest

__all__ = ["BatchOutcome", "Pipeline"]

STORED, DUPLICATE, DISCARDED, REJECTED = "stored", "duplicate", "discarded", "rejected"


@dataclass(slots=True)
class BatchOutcome:
    """Per-event ``(status, reason)`` in input order, and the counts."""

    results: list[tuple[str, str | None]]
    counts: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, int]:
        return {k: self.counts.get(k, 0) for k in (STORED, DUPLICATE, DISCARDED, REJECTED)}


class Pipeline:
    """One per collector process: holds compiled checks, the pseudonym cache and the ledger."""

    def __init__(
        self,
        policy: Policy,
        keyring: Keyring,
        store: EventStore,
        ledger: ConsentLedger,
        *,
        clock: Any = _time.time,
    ) -> None:
        self.policy = policy
        self.keyring = keyring
        self.store = store
        self.ledger = ledger
        self.clock = clock
        self.validator = EventValidator(policy)
        self.pseudonyms = Pseudonymizer(keyring)
        self.wanted = frozenset(f for spec in policy.events.values() for f in spec.fields)
        self._epoch_days = policy.identity.key_epoch_days
        self._granularity = policy.time.granularity
        self._default = policy.consent.default_level
        self._honor_gpc = policy.consent.honor_gpc
        self._labels = {level: level.label for level in ConsentLevel}
        # (event, level) → the fields that level allows, or None when it allows them all
        self._allowed: dict[tuple[str, ConsentLevel], frozenset[str] | None] = {}
        for spec in policy.events.values():
            for level in ConsentLevel:
                keep = frozenset(f for f, fs in spec.fields.items() if fs.consent <= level)
                self._allowed[spec.name, level] = None if len(keep) == len(spec.fields) else keep

    # -- the shared per-event path ---------------------------------------------------------
    def _prepare(
        self,
        items: Sequence[tuple[Any, ...]],
        gpc: bool,
    ) -> tuple[BatchOutcome, list[StoredEvent], list[int], dict[str, int]]:
        """``items``: ``(name, time, user, device, consent, attrs, dedup material bytes)`` or a
        ``BadEvent``. Returns the outcome so far, rows to append, their input positions and
        the discard counts."""
        now = self.clock()
        gpc = gpc and self._honor_gpc
        check = self.validator.check
        recorded = self.ledger.levels(
            {it[3] for it in items if type(it) is tuple and type(it[3]) is str and it[3]}
        )
        results: list[tuple[str, str | None]] = []
        outcome = BatchOutcome(results)
        rows: list[StoredEvent] = []
        where: list[int] = []
        discards = {"consent": 0, "undeclared": 0, "expired": 0, "invalid": 0}
        pseudonyms = self.pseudonyms
        epoch_days, granularity, default = self._epoch_days, self._granularity, self._default
        labels, allowed = self._labels, self._allowed
        epoch_keys: dict[int, Any] = {}  # per batch: epoch → keys (or None if destroyed)
        day_epoch: dict[int, int] = {}  # per batch: day → epoch
        for index, item in enumerate(items):
            if type(item) is BadEvent:
                results.append((REJECTED, "; ".join(item.problems)))
                outcome.problems.extend(item.problems)
                discards["invalid"] += 1
                continue
            name, when, user, device, claimed, attrs, material = item
            try:
                ev = check(name, when, user, device, claimed, attrs, now)
            except SchemaViolation as exc:
                reason = "; ".join(exc.problems)
                results.append((REJECTED, reason))
                outcome.problems.append(reason)
                discards["invalid"] += 1
                continue
            discards["undeclared"] += ev.undeclared
            if ev.expired:
                results.append((DISCARDED, "expired"))
                discards["expired"] += 1
                continue
            ledger_level = recorded.get(ev.device_id)
            if ledger_level is ConsentLevel.NONE:
                results.append((DISCARDED, "opted_out"))
                discards["consent"] += 1
                continue
            level = effective_level(ev.consent, ledger_level, default, gpc=gpc)
            spec = ev.spec
            if spec.consent > level:
                results.append((DISCARDED, "consent"))
                discards["consent"] += 1
                continue
            out = ev.attrs
            keep = allowed[spec.name, level]
            if keep is not None and not keep.issuperset(out):
                out = {k: v for k, v in out.items() if k in keep}
            day = int(ev.time // 86400)
            epoch = day_epoch.get(day)
            if epoch is None:
                epoch = day_epoch[day] = epoch_of(ev.time, epoch_days)
            if epoch not in epoch_keys:
                try:
                    epoch_keys[epoch] = pseudonyms.keys(epoch)
                except KeyUnavailable:
                    epoch_keys[epoch] = None
            keys = epoch_keys[epoch]
            if keys is None:
                results.append((REJECTED, "time: the key epoch of this time was destroyed; "
                                          "events of that period are no longer accepted"))
                discards["invalid"] += 1
                continue
            rows.append(StoredEvent(
                keyed_digest(keys.dedup, material),
                epoch,
                spec.name,
                coarsen(ev.time, granularity),
                pseudonyms.user(ev.user_id, epoch),
                pseudonyms.device(ev.device_id, epoch),
                labels[level],
                out,
            ))
            where.append(index)
            results.append((STORED, None))
        return outcome, rows, where, discards

    async def _finish(
        self, outcome: BatchOutcome, rows: list[StoredEvent], where: list[int],
        discards: dict[str, int],
    ) -> BatchOutcome:
        fresh = await self.store.append(rows, {k: v for k, v in discards.items() if v})
        results = outcome.results
        for index, new in zip(where, fresh, strict=True):
            if not new:
                results[index] = (DUPLICATE, None)
        counts = outcome.counts
        for status, _ in results:
            counts[status] = counts.get(status, 0) + 1
        return outcome

    # -- wire formats ----------------------------------------------------------------------
    async def ingest_events(self, events: Sequence[WireEvent | BadEvent], *, gpc: bool
                            ) -> BatchOutcome:
        """Our JSON batch (already decoded by :func:`anonymetry.ingest.batch.decode_batch`)."""
        items: list[Any] = []
        for ev in events:
            if type(ev) is BadEvent:
                items.append(ev)
                continue
            device = ev.device_id
            # dedup material: the client id scoped to its device (never stored, only hashed)
            material = (b"e\x00" + device.encode("utf-8", "surrogatepass") + b"\x00"
                        + ev.id.encode("utf-8", "surrogatepass")) if device else b""
            items.append((ev.name, ev.time.timestamp(), ev.user_id, device, ev.consent,
                          ev.attributes, material))
        return await self._finish(*self._prepare(items, gpc))

    async def ingest_otlp(self, records: Sequence[OtlpRecord], *, gpc: bool) -> BatchOutcome:
        """OTLP log records (from :func:`anonymetry.ingest.otlp.decode_logs`)."""
        items = [
            (r.name, r.time, r.user_id, r.device_id, r.consent, r.attrs, b"o\x00" + r.canonical)
            for r in records
        ]
        return await self._finish(*self._prepare(items, gpc))

    # -- consent ---------------------------------------------------------------------------
    def set_consent(self, device_id: str, level: ConsentLevel) -> int:
        """Record the device's level; on opt-out delete its stored events. Blocking (run it
        in a thread). Returns how many events were deleted."""
        self.ledger.record(device_id, level)
        if level is not ConsentLevel.NONE:
            return 0
        return self.store.delete_device(self.device_pseudonyms(device_id))

    def device_pseudonyms(self, device_id: str) -> dict[int, str]:
        """The device's pseudonym in every epoch that may still hold its events."""
        now = self.clock()
        keep_days = max(self.policy.retention.days.values()) + self.policy.time.max_age_days
        first = epoch_of(now - keep_days * 86400, self._epoch_days)
        last = epoch_of(now + self.policy.time.max_future_seconds, self._epoch_days)
        raw = device_id.encode("utf-8")
        out: dict[int, str] = {}
        for epoch in range(first, last + 1):
            try:
                keys = self.keyring.keys(epoch)
            except KeyUnavailable:
                continue  # never created or crypto-shredded: nothing of it is readable
            out[epoch] = keyed_digest(keys.device, raw)
        return out
