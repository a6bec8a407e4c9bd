"""The device SDK's front door: :class:`Telemetry`.

::

    with Telemetry("http://127.0.0.1:8080", token, app_name="acme-notes") as t:
        t.set_consent("usage")                      # the person's choice, persisted
        t.track("feature.used", platform="macos", app_version="5.2.0", feature="search")
    # leaving the block flushes what it can and closes; the rest waits in the offline queue

What happens to an event, in order, all on the device:

1. consent: nothing is kept after an opt-out; an event needing more consent than given is
   dropped and counted (:mod:`~anonymetry.client.minimize`);
2. minimization: undeclared fields and fields needing more consent are removed; values are
   checked against the taxonomy (drop and count, or ``SchemaViolation`` when ``strict``);
3. envelope: a random event id (kept across retries), the time coarsened to the policy's
   granularity with :func:`anonymetry.privacy.coarsen`, the random install id as
   ``device_id``, the app's ``user_id`` (or null), the consent level in force;
4. the offline queue (:mod:`~anonymetry.client.queue`) until the collector acknowledged it;
5. delivery in batches (``batch_size`` events, or every ``flush_interval`` seconds) by a
   background thread, or by :meth:`Telemetry.flush` for CLI apps, with backoff honouring
   ``Retry-After`` (:mod:`~anonymetry.client.transport`).

Consent changes are told to the collector (``POST /v1/consent``); lowering consent rewrites the
queue to the new level; opting out also purges the queue and replaces the install id.

Logging (logger ``anonymetry.client``) carries counts and status codes only, never a payload,
an id or a rejection reason.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from anonymetry.client.consent import ConsentNotice, ConsentStore, parse_level
from anonymetry.client.ids import InstallId, SessionClock, new_event_id
from anonymetry.client.minimize import DropReason, Minimizer
from anonymetry.client.queue import OfflineQueue
from anonymetry.client.transport import Backoff, Transport
from anonymetry.errors import InvalidParameter
from anonymetry.policy import ConsentLevel, Policy, default_policy
from anonymetry.privacy import coarsen

__all__ = ["ClientStats", "FlushReport", "Telemetry", "default_data_dir"]

log = logging.getLogger("anonymetry.client")

SESSION_FIELD = "session_id"


def default_data_dir(app_name: str) -> Path:
    """Where an app keeps SDK state: the platform's per-user app data folder."""
    if not app_name or any(c in app_name for c in "/\\\0") or app_name in (".", ".."):
        raise InvalidParameter("app_name: need a plain folder name such as 'acme-notes'")
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / app_name / "anonymetry"


def rfc3339(unix_seconds: int) -> str:
    return dt.datetime.fromtimestamp(unix_seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class ClientStats:
    """Counters since this :class:`Telemetry` was opened (``dropped["queue_full"]`` is kept
    across restarts in the queue file)."""

    tracked: int
    queued: int  # events waiting in the offline queue now
    stored: int
    duplicate: int
    discarded: int  # the collector took them but did not store them (e.g. its consent ledger)
    rejected: int  # the collector refused them for good
    dropped: Mapping[str, int]  # not sent, by reason: consent, undeclared, expired, invalid, …
    fields_removed: int
    retries: int
    auth_failures: int
    consent_pending: int  # consent notices not yet acknowledged


@dataclass(frozen=True, slots=True)
class FlushReport:
    """What a synchronous :meth:`Telemetry.flush` achieved."""

    complete: bool  # the queue and the pending consent notices are empty
    remaining: int  # events still queued (they stay for a later flush or run)
    consent_pending: int


@dataclass(slots=True)
class _Counters:
    tracked: int = 0
    stored: int = 0
    duplicate: int = 0
    discarded: int = 0
    rejected: int = 0
    fields_removed: int = 0
    retries: int = 0
    auth_failures: int = 0
    dropped: dict[str, int] = field(default_factory=dict)

    def drop(self, reason: str, n: int = 1) -> None:
        if n:
            self.dropped[reason] = self.dropped.get(reason, 0) + n


class Telemetry:
    """Privacy-first event collection for a Python desktop or CLI app.

    ``endpoint`` is the collector's base URL and ``token`` an ingest token. ``data_dir`` holds
    the install id, the consent choice and the offline queue (default: the platform's app
    data folder for ``app_name``). ``background=False`` sends only on :meth:`flush` (CLI apps).
    """

    def __init__(
        self,
        endpoint: str,
        token: str,
        *,
        policy: Policy | None = None,
        app_name: str = "anonymetry-app",
        data_dir: Path | str | None = None,
        user_id: str | None = None,
        batch_size: int = 100,
        flush_interval: float = 10.0,
        max_queue: int = 10_000,
        session_idle: float = 30 * 60,
        strict: bool = False,
        background: bool = True,
        timeout: float = 10.0,
        durable: bool = False,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 1 <= batch_size <= 1000:
            raise InvalidParameter(f"batch_size: need 1…1000 (a collector batch), got {batch_size}")
        if not flush_interval > 0:
            raise InvalidParameter(f"flush_interval: need > 0 seconds, got {flush_interval}")
        self.policy = policy or default_policy()
        self.data_dir = Path(data_dir) if data_dir is not None else default_data_dir(app_name)
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self._clock = clock
        self._user_id = _check_user_id(user_id)
        self._minimizer = Minimizer(self.policy, strict=strict)
        self._install = InstallId(self.data_dir)
        self._sessions = SessionClock(session_idle)
        self._consent = ConsentStore(self.data_dir, self.policy.consent.default_level)
        self._queue = OfflineQueue(
            self.data_dir / "queue.sqlite", max_events=max_queue, durable=durable
        )
        self._transport = Transport(endpoint, token, timeout=timeout)
        self._backoff = backoff or Backoff()
        self._counters = _Counters()
        self._dropped_full_at_open = self._queue.counter("dropped_full")
        self._state = threading.RLock()  # consent, user and queue changes
        self._sending = threading.Lock()  # one delivery at a time
        self._wake = threading.Condition()
        self._woken = False
        self._stop = threading.Event()
        self._closed = False
        self._queue_closed = False
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(
                target=self._run, name="anonymetry-client-flush", daemon=True
            )
            self._thread.start()

    # -- the app's side --------------------------------------------------------------------

    @property
    def consent(self) -> ConsentLevel:
        return self._consent.level

    @property
    def device_id(self) -> str:
        """The random install id sent as ``device_id`` (changes after an opt-out)."""
        return self._install.value

    @property
    def session_id(self) -> str:
        """The current session id (rotates after ``session_idle`` seconds without events)."""
        return self._sessions.current()

    def set_user(self, user_id: str | None) -> None:
        """Set (or clear with ``None``) the app's account id for the events that follow."""
        user_id = _check_user_id(user_id)
        with self._state:
            self._user_id = user_id
            if self._consent.chosen:
                # Tell the collector this person's choice on this device too.
                level = self._consent.level
                self._consent.set(level, ConsentNotice(user_id, self._install.value, level))
        self._notify()

    def set_consent(self, level: ConsentLevel | str) -> None:
        """Record the person's choice (``none``, ``essential``, ``diagnostics``, ``usage``),
        persist it and tell the collector. Lowering it rewrites queued events to the new level;
        ``none`` (opt-out) purges the queue and replaces the install id."""
        new = parse_level(level)
        with self._state:
            old = self._consent.level
            self._consent.set(new, ConsentNotice(self._user_id, self._install.value, new))
            if new is ConsentLevel.NONE:
                self._counters.drop("purged", self._queue.purge())
                self._install.rotate()
            elif new < old:
                self._counters.drop("consent", self._queue.rewrite(self._reminimizer(new)))
        log.info("consent set to %s", new.label)
        self._notify()

    def track(
        self, name: str, attributes: Mapping[str, Any] | None = None, /, **fields: Any
    ) -> bool:
        """Record one event; returns whether it was queued for sending.

        Attributes come as a mapping (for dotted names) and/or keyword arguments. The event is
        minimized for the consent in force and queued; it is never sent as given.
        """
        attrs: dict[str, Any] = dict(attributes or {})
        attrs.update(fields)
        session = self._sessions.current()
        with self._state:
            if self._closed:
                raise InvalidParameter("telemetry: track() after close(); open a new Telemetry")
            self._counters.tracked += 1
            level = self._consent.level
            if level is ConsentLevel.NONE:
                self._counters.drop(DropReason.CONSENT)
                return False
            spec = self._minimizer.spec(name)
            if spec is not None and SESSION_FIELD in spec.fields:
                attrs.setdefault(SESSION_FIELD, session)
            result = self._minimizer.apply(name, attrs, level)
            if result.attributes is None:
                assert result.dropped is not None
                self._counters.drop(result.dropped)
                return False
            self._counters.fields_removed += result.fields_removed
            event = {
                "id": new_event_id(),
                "name": name,
                "time": rfc3339(coarsen(self._clock(), self.policy.time.granularity)),
                "user_id": self._user_id,
                "device_id": self._install.value,
                "consent": level.label,
                "attributes": result.attributes,
            }
            self._counters.drop("queue_full", self._queue.put([event]))
        if len(self._queue) >= self.batch_size:
            self._notify()
        return True

    def flush(self, timeout: float = 10.0) -> FlushReport:
        """Send everything queued now (and pending consent notices), waiting out backoff and
        ``Retry-After`` within ``timeout`` seconds. What is left stays queued."""
        if self._queue_closed:
            raise InvalidParameter("telemetry: flush() after close(); open a new Telemetry")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            delay = self._round(wait=max(0.0, deadline - time.monotonic()))
            if delay is None:
                if not len(self._queue) and not self._consent.pending():
                    break
                continue
            if time.monotonic() + delay > deadline:
                break
            time.sleep(delay)
        return FlushReport(
            complete=not len(self._queue) and not self._consent.pending(),
            remaining=len(self._queue),
            consent_pending=len(self._consent.pending()),
        )

    def stats(self) -> ClientStats:
        with self._state:
            c = self._counters
            dropped = dict(c.dropped)
            full = self._queue.counter("dropped_full") - self._dropped_full_at_open
            if full:
                dropped["queue_full"] = full
            else:
                dropped.pop("queue_full", None)
            return ClientStats(
                tracked=c.tracked,
                queued=len(self._queue),
                stored=c.stored,
                duplicate=c.duplicate,
                discarded=c.discarded,
                rejected=c.rejected,
                dropped=dropped,
                fields_removed=c.fields_removed,
                retries=c.retries,
                auth_failures=c.auth_failures,
                consent_pending=len(self._consent.pending()),
            )

    def close(self, timeout: float = 5.0) -> FlushReport | None:
        """Stop the background thread, try to send what is queued within ``timeout`` seconds,
        and release files and connections. Safe to call twice."""
        with self._state:
            if self._closed:
                return None
            self._closed = True
        deadline = time.monotonic() + timeout
        self._stop.set()
        if self._thread is not None:
            self._notify()
            self._thread.join(max(0.0, deadline - time.monotonic()))
        report = self.flush(max(0.0, deadline - time.monotonic()))
        with self._sending:  # a background round still under way ends first
            self._transport.close()
            self._queue.close()
            self._queue_closed = True
        return report

    def __enter__(self) -> Telemetry:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- delivery --------------------------------------------------------------------------

    def _reminimizer(
        self, level: ConsentLevel
    ) -> Callable[[dict[str, Any]], dict[str, Any] | None]:
        def change(body: dict[str, Any]) -> dict[str, Any] | None:
            result = self._minimizer.apply(body["name"], body["attributes"], level)
            if result.attributes is None:
                return None
            self._counters.fields_removed += result.fields_removed
            return {**body, "attributes": result.attributes, "consent": level.label}

        return change

    def _notify(self) -> None:
        with self._wake:
            self._woken = True
            self._wake.notify()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._wake:
                if not self._woken:
                    self._wake.wait(self.flush_interval)
                self._woken = False
            while not self._stop.is_set():
                try:
                    delay = self._round()
                    if delay is None:
                        if len(self._queue) < self.batch_size and not self._consent.pending():
                            break
                        continue
                except Exception as exc:  # keep the thread alive; the queue keeps the events
                    log.error("delivery failed (%s); will retry", type(exc).__name__)
                    delay = self._backoff.next_delay()
                self._stop.wait(delay)

    def _round(self, wait: float = -1) -> float | None:
        """One delivery step: pending consent notices, then one batch. Returns ``None`` after
        progress (or nothing to do), else the delay to wait before trying again. ``wait`` bounds
        how long to wait for another delivery under way (``-1``: as long as it takes)."""
        if not self._sending.acquire(timeout=wait):
            return 0.05
        try:
            if self._stop.is_set() and threading.current_thread() is self._thread:
                return None
            for notice in self._consent.pending():
                finished, hint = self._transport.send_consent(notice)
                if not finished:
                    self._counters.retries += 1
                    return self._backoff.next_delay(hint)
                self._consent.acknowledge(notice)
            batch = [q.body for q in self._queue.peek(self.batch_size)]
            if not batch:
                self._backoff.reset()
                return None
            return self._send(batch)
        finally:
            self._sending.release()

    def _send(self, batch: list[dict[str, Any]]) -> float | None:
        out = self._transport.send_events(batch)
        if out.split:
            half = len(batch) // 2
            for part in (batch[:half], batch[half:]):
                delay = self._send(part)
                if delay is not None:
                    return delay
            return None
        finished = list(out.done) + list(out.rejected)
        self._queue.remove(finished)
        with self._state:
            c = self._counters
            for status in out.done.values():
                setattr(c, status, getattr(c, status) + 1)
            c.rejected += len(out.rejected)
            if out.auth_failed:
                c.auth_failures += 1
        if out.rejected:
            log.warning("collector rejected %d event(s) for good", len(out.rejected))
        if out.auth_failed:
            log.warning(
                "collector refused the ingest token (HTTP %s); events stay queued", out.status
            )
        if out.retry:
            self._counters.retries += 1
            return self._backoff.next_delay(out.retry_after)
        self._backoff.reset()
        log.debug("batch of %d delivered", len(batch))
        return None


def _check_user_id(user_id: str | None) -> str | None:
    if user_id is None:
        return None
    if not isinstance(user_id, str) or not user_id or len(user_id) > 256:
        raise InvalidParameter("user_id: need a non-empty string of at most 256 characters")
    return user_id
