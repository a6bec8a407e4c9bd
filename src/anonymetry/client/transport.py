"""Talking to the collector over HTTP (httpx): event batches, consent notices, and backoff.

Wire format (``POST {endpoint}/v1/events``, ``Authorization: Bearer <token>``)::

    {"events": [{"id", "name", "time", "user_id", "device_id", "consent", "attributes": {…}}]}

and the collector answers per event: ``{"results": [{"id", "status", "reason"}]}`` with status
``stored``, ``duplicate``, ``discarded`` (all three: done, forget it) or ``rejected`` (permanent:
forget it and count it).

How a whole answer is read (:meth:`Transport.send_events`):

========================  ==================================================================
2xx                       per-event results; an event missing from a ``results`` list is
                          retried later; a 2xx without ``results`` acknowledges the batch
408, 429, 5xx, no answer  retry later, after ``Retry-After`` if given (429/503), else backoff
401, 403                  retry later: a wrong token or role is the app's configuration, not
                          the events' fault, so they are kept until it is fixed
other 4xx (400, 413, …)   the batch is split in halves and each half sent again, so only the
                          event the collector refuses on its own is rejected (permanently)
========================  ==================================================================

Nothing here logs a payload, an id or a rejection reason (reasons may name a field): only
counts and status codes.
"""

from __future__ import annotations

import email.utils
import functools
import logging
import math
import secrets
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from anonymetry.client.consent import ConsentNotice
from anonymetry.errors import InvalidParameter

__all__ = ["Backoff", "BatchOutcome", "Transport", "parse_retry_after"]

log = logging.getLogger("anonymetry.client")

_DONE = frozenset({"stored", "duplicate", "discarded"})
_RETRYABLE = frozenset({408, 429})
_AUTH = frozenset({401, 403})
_JITTER = secrets.SystemRandom()  # backoff jitter only; no privacy randomness here


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


class Backoff:
    """Exponential backoff with jitter that honours the server's ``Retry-After``.

    Without a hint the n-th consecutive failure waits ``d/2 + U(0, d/2)`` with
    ``d = min(cap, base · 2ⁿ)`` ("equal jitter": never a tight loop, never in lockstep with
    other devices). With a hint it waits the hint plus up to 10 % (never earlier than asked),
    capped at ``max_retry_after``.
    """

    def __init__(
        self, base: float = 0.5, cap: float = 60.0, max_retry_after: float = 600.0
    ) -> None:
        if not 0 < base <= cap:
            raise InvalidParameter(f"backoff: need 0 < base ≤ cap, got {base}, {cap}")
        self.base = base
        self.cap = cap
        self.max_retry_after = max_retry_after
        self.failures = 0

    def next_delay(self, retry_after: float | None = None) -> float:
        self.failures += 1
        if retry_after is not None:
            hint = min(retry_after, self.max_retry_after)
            return hint + _JITTER.uniform(0.0, 0.1 * hint)
        d = min(self.cap, self.base * 2.0 ** min(self.failures - 1, 32))
        return d / 2 + _JITTER.uniform(0.0, d / 2)

    def reset(self) -> None:
        self.failures = 0


@dataclass(slots=True)
class BatchOutcome:
    """What became of one POST: event ids done, rejected (with reasons), or to retry."""

    done: dict[str, str] = field(default_factory=dict)  # id -> stored|duplicate|discarded
    rejected: dict[str, str] = field(default_factory=dict)  # id -> reason (never logged)
    retry: list[str] = field(default_factory=list)
    retry_after: float | None = None
    status: int | None = None
    auth_failed: bool = False
    split: bool = False  # the collector refused the batch as a whole: send it in halves


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One verifying TLS context per process: loading the CA store costs ~0.1 s each time."""
    return ssl.create_default_context()


class Transport:
    """HTTP to one collector. ``endpoint`` is its base URL, e.g. ``http://127.0.0.1:8080``."""

    def __init__(
        self,
        endpoint: str,
        token: str,
        *,
        timeout: float = 10.0,
        client: httpx.Client | None = None,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self._headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            # An SDK-chosen agent: says nothing about the device, OS or app.
            "User-Agent": "anonymetry-client",
        }
        self._client = client or httpx.Client(
            timeout=timeout, follow_redirects=False, verify=_tls_context()
        )

    def _post(self, path: str, body: bytes) -> httpx.Response | None:
        try:
            return self._client.post(self.endpoint + path, content=body, headers=self._headers)
        except httpx.HTTPError as exc:
            # The exception text can hold the URL but never a payload; log only its type.
            log.info("collector unreachable (%s)", type(exc).__name__)
            return None

    def send_events(self, events: Sequence[dict[str, Any]]) -> BatchOutcome:
        ids = [e["id"] for e in events]
        response = self._post("/v1/events", orjson.dumps({"events": list(events)}))
        out = BatchOutcome()
        if response is None:
            out.retry = ids
            return out
        out.status = code = response.status_code
        if 200 <= code < 300:
            results = _results(response)
            if results is None:
                out.done = dict.fromkeys(ids, "stored")
                return out
            wanted = set(ids)
            for item in results:
                eid, status = item.get("id"), item.get("status")
                if eid not in wanted:
                    continue
                if status in _DONE:
                    out.done[eid] = status
                elif status == "rejected":
                    out.rejected[eid] = str(item.get("reason") or "rejected")
            answered = out.done.keys() | out.rejected.keys()
            out.retry = [i for i in ids if i not in answered]
            return out
        if code in _RETRYABLE or code >= 500 or code in _AUTH:
            out.retry = ids
            out.auth_failed = code in _AUTH
            if code in (429, 503):
                out.retry_after = parse_retry_after(response.headers.get("Retry-After"))
            log.info("collector answered %d for a batch of %d; will retry", code, len(ids))
            return out
        if len(ids) > 1:
            out.retry = ids
            out.split = True
            return out
        out.rejected = dict.fromkeys(ids, f"http {code}")
        return out

    def send_consent(self, notice: ConsentNotice) -> tuple[bool, float | None]:
        """Deliver one consent notice. Returns ``(finished, retry_after)``: finished is true
        when the collector took it or refused it for good (a 4xx other than 401/403/408/429)."""
        response = self._post("/v1/consent", orjson.dumps(notice.to_wire()))
        if response is None:
            return False, None
        code = response.status_code
        if 200 <= code < 300:
            return True, None
        if code in _RETRYABLE or code >= 500 or code in _AUTH:
            hint = response.headers.get("Retry-After") if code in (429, 503) else None
            log.info("collector answered %d to a consent notice; will retry", code)
            return False, parse_retry_after(hint)
        log.warning("collector refused a consent notice with %d; not retrying", code)
        return True, None

    def close(self) -> None:
        self._client.close()


def _results(response: httpx.Response) -> list[dict[str, Any]] | None:
    try:
        data = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        return None
    return [r for r in data["results"] if isinstance(r, dict)]
