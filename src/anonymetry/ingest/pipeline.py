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

Only stored rows (:class:`~anonymetry.ingest.store.StoredBatch` columns) leave this module;
the IP address, User-Agent and SDK resource attributes never enter it.

Speed: a batch is first tried as columns (:meth:`Pipeline._prepare_columns`): validation per
field across the batch, consent per distinct (event, level), pseudonyms per distinct id, one
keyed fingerprint per event, no per-event objects. That path takes a batch only when every
event in it is valid, unexpired, consented with all its fields and of one key epoch; any other
batch goes event by event (:meth:`Pipeline._prepare`), which applies the same steps and says
why each event was rejected or discarded. Both give the same rows.

Opt-out (level ``none``) is recorded in the ledger first, then the device's events are deleted
from the store for every key epoch within the longest retention period whose key still exists.
"""

from __future__ import annotations

import datetime as dt
import time as _time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from operator import attrgetter
from typing import Any

from anonymetry.errors import KeyUnavailable, SchemaViolation
from anonymetry.ingest.batch import BadEvent, WireEvent, decode_batch
from anonymetry.ingest.consent import ConsentLedger, effective_level
from anonymetry.ingest.otlp import OtlpRecord
from anonymetry.ingest.schema import CheckedColumns, EventValidator
from anonymetry.ingest.store import EventStore, StoredBatch, StoredEvent
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

    # -- the columnar path -----------------------------------------------------------------
    def _prepare_columns(
        self,
        columns: Sequence[Sequence[Any]],
        materials: Callable[[], Iterable[bytes]],
        gpc: bool,
    ) -> tuple[BatchOutcome, StoredBatch, range, dict[str, int]] | None:
        """``columns``: names, times, users, devices, consents, attrs (one entry per event);
        ``materials()``: each event's dedup material. Returns what :meth:`_prepare` would, or
        ``None`` if some event is not simply stored (then use :meth:`_prepare`)."""
        names, times, users, devices, consents, attrs = columns
        checked = self.validator.check_columns(names, times, users, devices, consents, attrs,
                                               self.clock())
        if checked is None:
            return None
        return self._prepare_checked(names, (min(times), max(times)), lambda: times, devices,
                                     checked, materials, gpc)

    def _prepare_checked(
        self,
        names: Sequence[str],
        span: tuple[float, float],
        times: Callable[[], Sequence[float]],
        devices: Sequence[str],
        checked: CheckedColumns,
        materials: Callable[[], Iterable[bytes]],
        gpc: bool,
    ) -> tuple[BatchOutcome, StoredBatch, range, dict[str, int]] | None:
        """The rest of :meth:`_prepare_columns` for a batch whose columns passed the checks.
        ``span``: earliest and latest time; ``times()``: each event's (asked for only when
        the batch spans several time bins)."""
        gpc = gpc and self._honor_gpc
        default = self._default
        recorded = self.ledger.levels(set(devices))
        if recorded:
            if ConsentLevel.NONE in recorded.values():
                return None
            levels = [effective_level(c, recorded.get(d), default, gpc=gpc)
                      for c, d in zip(checked.consents, devices, strict=True)]
        else:
            by_claim = {c: effective_level(c, None, default, gpc=gpc)
                        for c in set(checked.consents)}
            levels = list(map(by_claim.__getitem__, checked.consents))
        allowed, specs = self._allowed, checked.specs
        for name, level in set(zip(names, levels, strict=True)):
            if specs[name].consent > level:
                return None  # discarded: event by event
            keep = allowed[name, level]
            if keep is not None and any(
                    f not in keep and f in specs[name].fields for f in checked.attrs):
                return None  # some field may have to go: event by event
        earliest, latest = span
        epoch = epoch_of(earliest, self._epoch_days)
        if epoch_of(latest, self._epoch_days) != epoch:
            return None
        pseudonyms = self.pseudonyms
        try:
            dedup = pseudonyms.fingerprints(materials(), epoch)
        except KeyUnavailable:
            return None
        n = len(names)
        granularity = self._granularity
        first = coarsen(earliest, granularity)
        if coarsen(latest, granularity) == first:  # floors are monotonic: all in one bin
            coarse = [first] * n
        else:
            coarse = list(map(coarsen, times(), repeat(granularity)))
        batch = StoredBatch(
            dedup,
            [epoch] * n,
            list(names),
            coarse,
            pseudonyms.users(checked.users, epoch),
            pseudonyms.devices(devices, epoch),
            list(map(self._labels.__getitem__, levels)),
            checked.attrs,
        )
        discards = {"consent": 0, "undeclared": checked.undeclared, "expired": 0, "invalid": 0}
        return BatchOutcome([(STORED, None)] * n), batch, range(n), discards

    # -- the per-event path -----------------------------------------------------------------
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
                pseudonyms.fingerprints((material,), epoch)[0],
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
        self, outcome: BatchOutcome, rows: list[StoredEvent] | StoredBatch,
        where: Sequence[int], discards: dict[str, int],
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
    async def ingest_json(self, body: bytes, *, gpc: bool
                          ) -> tuple[list[str | None], BatchOutcome]:
        """Our JSON batch as received: the client id of each event (``None`` where it has
        none usable) and the outcome. Raises :class:`~anonymetry.ingest.batch.BatchError` if
        the body is not a batch at all.

        Tried first: decoding straight into checked columns
        (:meth:`EventValidator.decode_columns`); any batch that cannot be taken whole that way
        is decoded again by :func:`~anonymetry.ingest.batch.decode_batch` and goes through
        :meth:`ingest_events`."""
        decoded = self.validator.decode_columns(body, self.clock())
        if decoded is not None:
            devices, ids = decoded.devices, decoded.ids
            prepared = self._prepare_checked(
                decoded.names, decoded.span, decoded.timestamps, devices, decoded.checked,
                lambda: [f"e\x00{d}\x00{i}".encode("utf-8", "surrogatepass")  # _event_material
                         for d, i in zip(devices, ids, strict=True)], gpc)
            if prepared is not None:
                return ids, await self._finish(*prepared)  # type: ignore[return-value]
        events = decode_batch(body)
        return list(map(_ID, events)), await self.ingest_events(events, gpc=gpc)

    async def ingest_events(self, events: Sequence[WireEvent | BadEvent], *, gpc: bool
                            ) -> BatchOutcome:
        """Our JSON batch (already decoded by :func:`anonymetry.ingest.batch.decode_batch`)."""
        if events and BadEvent not in set(map(type, events)):
            ids, names, times, users, devices, consents, attrs = zip(
                *map(_WIRE_COLUMNS, events), strict=True)
            stamps = list(map(dt.datetime.timestamp, times))
            prepared = self._prepare_columns(
                (names, stamps, users, devices, consents, attrs),
                lambda: map(_event_material, devices, ids), gpc)
            if prepared is not None:
                return await self._finish(*prepared)
        items: list[Any] = []
        for ev in events:
            if type(ev) is BadEvent:
                items.append(ev)
                continue
            device = ev.device_id
            items.append((ev.name, ev.time.timestamp(), ev.user_id, device, ev.consent,
                          ev.attributes, _event_material(device, ev.id) if device else b""))
        return await self._finish(*self._prepare(items, gpc))

    async def ingest_otlp(self, records: Sequence[OtlpRecord], *, gpc: bool) -> BatchOutcome:
        """OTLP log records (from :func:`anonymetry.ingest.otlp.decode_logs`)."""
        if records:
            *columns, canonical = zip(*map(_OTLP_COLUMNS, records), strict=True)
            prepared = self._prepare_columns(
                columns, lambda: map(_otlp_material, canonical), gpc)
            if prepared is not None:
                return await self._finish(*prepared)
        items = [(r.name, r.time, r.user_id, r.device_id, r.consent, r.attrs,
                  _otlp_material(r.canonical)) for r in records]
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


_ID = attrgetter("id")  # WireEvent and BadEvent both have one
_WIRE_COLUMNS = attrgetter("id", "name", "time", "user_id", "device_id", "consent", "attributes")
_OTLP_COLUMNS = attrgetter("name", "time", "user_id", "device_id", "consent", "attrs", "canonical")


def _event_material(device: str, event_id: str) -> bytes:
    """Dedup material of our format: the client id scoped to its device (only ever hashed)."""
    return f"e\x00{device}\x00{event_id}".encode("utf-8", "surrogatepass")


def _otlp_material(canonical: bytes) -> bytes:
    """Dedup material of an OTLP record: its canonical content (retries are byte-identical)."""
    return b"o\x00" + canonical
