"""The collector as a bare ASGI application (msgspec for JSON; no framework on the hot path).

Routes (documented in :mod:`.openapi`, served at ``GET /openapi.json``):

- ``POST /v1/events``  our JSON batch → per-event results;
- ``POST /v1/logs``    OTLP/HTTP logs, ``application/x-protobuf`` or ``application/json``;
- ``POST /v1/consent`` a device's consent level (``none`` = opt-out: its events are deleted);
- ``GET /healthz``, ``GET /openapi.json`` (no token needed).

Every ``POST`` needs ``Authorization: Bearer <token>`` with the ``ingest`` permission (401
without or unknown, 403 for a token without it). Bodies are read as a stream and refused with
413 as soon as they pass ``max_body`` bytes (``Content-Length`` is checked first); ``gzip``
bodies are inflated with the same cap. When the store's pending queue is deeper than
``max_pending`` events the answer is 503 with ``Retry-After`` (≤ 2 s) before the body is read.

Privacy: the client address, ``User-Agent`` and every header but ``Authorization``,
``Content-Type``, ``Content-Encoding``, ``Content-Length`` and ``Sec-GPC`` are never read. No
request data is logged; an unexpected exception is logged by its type and code location only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import traceback
import zlib
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import msgspec

from anonymetry.errors import AnonymetryError, Overloaded
from anonymetry.governance.tokens import TokenStore
from anonymetry.ingest.batch import BatchError
from anonymetry.ingest.consent import ConsentLedger
from anonymetry.ingest.otlp import OtlpError, decode_logs, encode_response
from anonymetry.ingest.pipeline import Pipeline
from anonymetry.ingest.reader import store_stats
from anonymetry.ingest.store import EventStore
from anonymetry.policy import ConsentLevel, Policy
from anonymetry.privacy import LocalKeyring
from anonymetry.report import DashboardData, parse_store_stats
from anonymetry.report.web import DashboardApp, bearer_authorizer, dashboard_app
from anonymetry.service.errors import HTTPError, error_body, from_anonymetry
from anonymetry.service.openapi import openapi_document

__all__ = ["CollectorApp", "ServiceConfig"]

log = logging.getLogger("anonymetry.service")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_JSON = b"application/json"
_PROTOBUF = b"application/x-protobuf"
_LEVELS = {level.label: level for level in ConsentLevel}


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceConfig:
    """How one collector process runs. ``instance`` names its own store segment."""

    data_dir: Path
    policy: Policy
    instance: str | None = None
    max_body: int = 4 * 1024 * 1024
    max_pending: int = 50_000
    max_uncompacted: int = 4_000_000  # acknowledged events awaiting compaction (~130 B each)
    retry_after: int = 1
    dashboard: Path | None = None  # a report spec; None: the store's own counters
    compact_every: float = 60.0  # seconds between background compactions; 0: never


class _Result(msgspec.Struct, gc=False):
    """One event's answer: ``{"id", "status", "reason"}``."""

    id: str | None
    status: str
    reason: str | None



class _ConsentBody(msgspec.Struct):
    device_id: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    level: str
    user_id: Annotated[str, msgspec.Meta(max_length=256)] | None = None


def _json_response(status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
                   ) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]:
    return status, _JSON, body, headers or []


class CollectorApp:
    """The ASGI app of one collector process. Opens its state on lifespan startup (or on the
    first request when run without lifespan) and closes it on shutdown."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.policy = config.policy
        self._ready = False
        self.store: EventStore | None = None
        self.pipeline: Pipeline | None = None
        self.tokens: TokenStore | None = None
        self.dashboard: DashboardApp | None = None
        self._compactor: asyncio.Task[None] | None = None
        self._openapi = msgspec.json.encode(openapi_document(config))
        self._routes: dict[str, tuple[bytes, Callable[..., Awaitable[Any]], bool]] = {
            "/v1/events": (b"POST", self._events, True),
            "/v1/logs": (b"POST", self._logs, True),
            "/v1/consent": (b"POST", self._consent, True),
            "/healthz": (b"GET", self._healthz, False),
            "/openapi.json": (b"GET", self._openapi_json, False),
        }

    # -- lifecycle -------------------------------------------------------------------------
    async def startup(self) -> None:
        if self._ready:
            return
        data = self.config.data_dir
        data.mkdir(parents=True, exist_ok=True)
        keyring = LocalKeyring(data / "keys")
        self.store = EventStore(data, self.policy, keyring, instance=self.config.instance,
                                max_pending=self.config.max_pending)
        ledger = ConsentLedger(data, keyring)
        self.pipeline = Pipeline(self.policy, keyring, self.store, ledger)
        self.tokens = TokenStore(data, self.policy)
        self.dashboard = dashboard_app(
            self.config.dashboard or self._store_dashboard,
            authorize=bearer_authorizer(self.tokens.verify))
        if self.config.compact_every > 0:
            self._compactor = asyncio.create_task(self._compact_periodically())
        self._ready = True

    def _store_dashboard(self) -> DashboardData:
        """The dashboard when no report spec is given: what the store holds, read afresh."""
        keyring = LocalKeyring(self.config.data_dir / "keys")
        return DashboardData.build(
            title=f"anonymetry collector — {self.policy.name}",
            store=parse_store_stats(store_stats(self.config.data_dir, keyring)))

    async def _compact_periodically(self) -> None:
        """Move acknowledged rows from the WAL segments into encrypted Parquet every
        ``compact_every`` seconds, and sooner once half of ``max_uncompacted`` is waiting,
        so the WAL and the in-memory dedup keys stay small. Compaction takes a lock of its own,
        so several workers may try at once."""
        assert self.store is not None
        loop = asyncio.get_running_loop()
        every = self.config.compact_every
        soon = max(1, self.config.max_uncompacted // 2)
        last = loop.time()
        while True:
            await asyncio.sleep(min(every, 1.0))
            if loop.time() - last < every and self.store.uncompacted() < soon:
                continue
            try:
                await asyncio.to_thread(self.store.compact)
            except Exception as exc:  # keep serving; the next round retries
                _log_exception(exc)
            last = loop.time()

    async def shutdown(self) -> None:
        if not self._ready:
            return
        self._ready = False
        if self._compactor is not None:
            self._compactor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._compactor
        assert self.store is not None
        assert self.pipeline is not None
        assert self.tokens is not None
        await self.store.aclose()
        self.pipeline.ledger.close()
        self.tokens.close()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:  # report, don't crash the loop
                    await send({"type": "lifespan.startup.failed",
                                "message": f"{type(exc).__name__}: {exc}"})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- ASGI ------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        if kind != "http":
            return
        if not self._ready:
            await self.startup()
        path = scope["path"]
        if path == "/dashboard" or path.startswith("/dashboard/"):
            assert self.dashboard is not None
            await self.dashboard({**scope, "root_path": "/dashboard"}, receive, send)
            return
        try:
            status, ctype, body, headers = await self._dispatch(scope, receive)
        except HTTPError as exc:
            status, ctype, body, headers = (exc.status, _JSON, error_body(exc.error, exc.detail),
                                            exc.headers)
        except AnonymetryError as exc:
            err = from_anonymetry(exc)
            if err.status >= 500 and not isinstance(exc, Overloaded):  # overload is expected
                _log_exception(exc)
            status, ctype, body, headers = err.status, _JSON, error_body(err.error, err.detail), \
                err.headers
        except Exception as exc:
            _log_exception(exc)
            status, ctype, body, headers = 500, _JSON, error_body(
                "internal", "internal error; it was logged without request data"), []
        await send({
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", ctype), (b"content-length", str(len(body)).encode()),
                        *headers],
        })
        await send({"type": "http.response.body", "body": body})

    async def _dispatch(self, scope: Scope, receive: Receive
                        ) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]:
        route = self._routes.get(scope["path"])
        if route is None:
            raise HTTPError(404, "not_found", "no such path; see GET /openapi.json")
        method, handler, authed = route
        if scope["method"].encode() != method:
            raise HTTPError(405, "method_not_allowed",
                            f"this path takes {method.decode()} only",
                            [(b"allow", method)])
        headers = _headers(scope)
        if authed:
            self._authorize(headers.get(b"authorization"))
        return await handler(scope, receive, headers)

    def _authorize(self, header: bytes | None) -> None:
        challenge = [(b"www-authenticate", b'Bearer realm="anonymetry"')]
        if header is None:
            raise HTTPError(401, "unauthorized", "authorization: missing; send "
                            "'Authorization: Bearer <token>' (anonymetry tokens create)", challenge)
        scheme, _, token = header.partition(b" ")
        if scheme.lower() != b"bearer" or not token.strip():
            raise HTTPError(401, "unauthorized", "authorization: expected 'Bearer <token>'",
                            challenge)
        assert self.tokens is not None
        perms = self.tokens.verify(token.strip().decode("latin-1"))
        if perms is None:
            raise HTTPError(401, "unauthorized", "authorization: unknown or revoked token",
                            challenge)
        if "ingest" not in perms:
            raise HTTPError(403, "forbidden", "authorization: this token's role lacks the "
                            "'ingest' permission; create one with --role ingest")

    def _check_capacity(self) -> None:
        assert self.store is not None
        if self.store.pending() > self.config.max_pending:
            raise Overloaded("the store's commit queue is full; retry shortly",
                             retry_after=self.config.retry_after)
        if self.store.uncompacted() > self.config.max_uncompacted:
            raise Overloaded(f"more than {self.config.max_uncompacted} acknowledged events "
                             "await compaction into Parquet; retry shortly",
                             retry_after=min(2, self.config.retry_after + 1))

    async def _body(self, receive: Receive, headers: dict[bytes, bytes]) -> bytes:
        limit = self.config.max_body
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                if int(declared) > limit:
                    raise HTTPError(413, "too_large", f"body: larger than {limit} bytes")
            except ValueError:
                raise HTTPError(400, "malformed", "content-length: not a number") from None
        encoding = headers.get(b"content-encoding", b"identity").strip().lower()
        if encoding not in (b"identity", b"gzip"):
            raise HTTPError(415, "unsupported_media_type",
                            "content-encoding: only identity and gzip are accepted")
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise HTTPError(400, "malformed", "body: the client went away")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise HTTPError(413, "too_large", f"body: larger than {limit} bytes")
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if encoding == b"gzip":
            inflater = zlib.decompressobj(wbits=31)
            try:
                body = inflater.decompress(body, limit + 1)
            except zlib.error:
                raise HTTPError(400, "malformed", "body: not valid gzip") from None
            if len(body) > limit or inflater.unconsumed_tail:
                raise HTTPError(413, "too_large", f"body: inflates past {limit} bytes")
        return body

    # -- handlers --------------------------------------------------------------------------
    async def _events(self, scope: Scope, receive: Receive, headers: dict[bytes, bytes]
                      ) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]:
        _require_type(headers, (_JSON,))
        self._check_capacity()
        body = await self._body(receive, headers)
        assert self.pipeline is not None
        try:
            ids, outcome = await self.pipeline.ingest_json(body, gpc=_gpc(headers))
        except BatchError as exc:
            raise HTTPError(400, "malformed", f"{exc.field}: {exc.detail}") from None
        statuses, reasons = zip(*outcome.results, strict=True) if ids else ((), ())
        results = list(map(_Result, ids, statuses, reasons))
        return _json_response(200, msgspec.json.encode({"results": results,
                                                         **outcome.summary()}))

    async def _logs(self, scope: Scope, receive: Receive, headers: dict[bytes, bytes]
                    ) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]:
        ctype = _require_type(headers, (_PROTOBUF, _JSON))
        self._check_capacity()
        body = await self._body(receive, headers)
        as_json = ctype == _JSON
        assert self.pipeline is not None
        identity = self.policy.identity
        try:
            records = decode_logs(body, json=as_json, wanted=self.pipeline.wanted,
                                  user_attribute=identity.user_attribute,
                                  device_attribute=identity.device_attribute)
        except OtlpError as exc:
            raise HTTPError(400, "malformed", f"{exc.field}: {exc.detail}") from None
        outcome = await self.pipeline.ingest_otlp(records, gpc=_gpc(headers))
        rejected = outcome.counts.get("rejected", 0)
        message = ""
        if rejected:
            shown = outcome.problems[:5]
            message = f"{rejected} log record(s) rejected: " + " | ".join(shown)
        answer = encode_response(rejected, message, json=as_json)
        return 200, (_JSON if as_json else _PROTOBUF), answer, []

    async def _consent(self, scope: Scope, receive: Receive, headers: dict[bytes, bytes]
                       ) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]:
        _require_type(headers, (_JSON,))
        body = await self._body(receive, headers)
        try:
            request = msgspec.json.decode(body, type=_ConsentBody)
        except msgspec.ValidationError as exc:
            from anonymetry.ingest.batch import describe_error

            field, what = describe_error(str(exc))
            raise HTTPError(400, "invalid", f"{field}: {what}") from None
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            raise HTTPError(400, "malformed", "$: not valid JSON") from None
        level = _LEVELS.get(request.level)
        if level is None:
            raise HTTPError(400, "invalid",
                            "level: expected one of none, essential, diagnostics, usage")
        assert self.pipeline is not None
        deleted = self.pipeline.set_consent(request.device_id, level)
        return _json_response(200, msgspec.json.encode(
            {"level": level.label, "deleted": deleted}))

    async def _healthz(self, scope: Scope, receive: Receive, headers: dict[bytes, bytes]
                       ) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]:
        assert self.store is not None
        return _json_response(200, msgspec.json.encode(
            {"status": "ok", "pending": self.store.pending(), "time": int(time.time())}))

    async def _openapi_json(self, scope: Scope, receive: Receive, headers: dict[bytes, bytes]
                            ) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]:
        return _json_response(200, self._openapi)


def _headers(scope: Scope) -> dict[bytes, bytes]:
    wanted = _WANTED_HEADERS
    return {k: v for k, v in scope["headers"] if k in wanted}


_WANTED_HEADERS = frozenset({b"authorization", b"content-type", b"content-encoding",
                             b"content-length", b"sec-gpc"})


def _gpc(headers: dict[bytes, bytes]) -> bool:
    return headers.get(b"sec-gpc", b"").strip() == b"1"


def _require_type(headers: dict[bytes, bytes], allowed: tuple[bytes, ...]) -> bytes:
    raw = headers.get(b"content-type")
    media = raw.split(b";", 1)[0].strip().lower() if raw is not None else b""
    if media not in allowed:
        names = " or ".join(a.decode() for a in allowed)
        raise HTTPError(415, "unsupported_media_type", f"content-type: expected {names}")
    return media


def _log_exception(exc: BaseException) -> None:
    """Log an unexpected error by type and code location only (messages may hold data)."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = " < ".join(f"{Path(f.filename).name}:{f.lineno}" for f in reversed(frames[-6:]))
    log.error("unexpected %s at %s", type(exc).__name__, where)
