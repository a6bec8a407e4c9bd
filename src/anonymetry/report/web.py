"""The dashboard as a small read-only ASGI app, for the collector (``anonymetry serve``) to mount.

::

    app = dashboard_app(source, authorize=check)   # an ASGI 3 callable

- ``source``: a :class:`DashboardData`, a zero-argument callable returning one (called at most
  once per ``max_age`` seconds), or the path of a report spec (re-read when stale; a spec that
  runs queries is refused, since a page view must never spend privacy budget).
- ``authorize(authorization)``: gets the raw ``Authorization`` header (``bytes`` or ``None``)
  and returns ``None`` to allow, or the HTTP status to refuse with (401 unknown/missing token,
  403 a token without ``read_dashboard``). Without it the app serves anyone: mount it only
  behind a check.

Routes, relative to where it is mounted (``root_path`` is honoured): ``GET /`` the HTML page,
``GET /data.json`` the :meth:`DashboardData.to_dict` JSON; ``HEAD`` likewise; any other method
405, any other path 404. Pages carry a strict Content-Security-Policy, ``no-store`` caching and
``nosniff``. Rendering runs in a worker thread so the event loop keeps serving ingestion.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import orjson

from anonymetry.report.html import CONTENT_SECURITY_POLICY, render_html
from anonymetry.report.model import DashboardData
from anonymetry.report.spec import build_dashboard, load_spec

__all__ = ["Authorize", "DashboardApp", "bearer_authorizer", "dashboard_app"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Authorize = Callable[[bytes | None], int | None]
DashboardSource = DashboardData | Callable[[], DashboardData] | str | Path

_SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]
_MESSAGES = {
    401: b'{"error":"unauthorized","message":"send Authorization: Bearer <token>"}',
    403: b'{"error":"forbidden","message":"this token lacks the read_dashboard permission"}',
    404: b'{"error":"not_found","message":"the dashboard serves GET / and GET /data.json"}',
    405: b'{"error":"method_not_allowed","message":"the dashboard is read-only: use GET"}',
    500: b'{"error":"internal","message":"the dashboard could not be rendered; see the '
         b'server log"}',
}


class DashboardApp:
    """See the module docstring. Build with :func:`dashboard_app`."""

    def __init__(self, source: DashboardSource, *, authorize: Authorize | None = None,
                 max_age: float = 30.0) -> None:
        if isinstance(source, str | Path):
            spec = load_spec(source)
            build_dashboard(spec, allow_queries=False)  # fail now, not on the first page view
            path = Path(source)
            self._load: Callable[[], DashboardData] = (
                lambda: build_dashboard(load_spec(path), allow_queries=False))
        elif isinstance(source, DashboardData):
            fixed = source
            self._load = lambda: fixed
        else:
            self._load = source
        self._authorize = authorize
        self._max_age = max_age
        self._lock = threading.Lock()
        self._cached: tuple[float, DashboardData, bytes] | None = None

    def _page(self) -> tuple[DashboardData, bytes]:
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] > self._max_age:
                data = self._load()
                self._cached = (now, data, render_html(data).encode("utf-8"))
            return self._cached[1], self._cached[2]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        method = scope["method"]
        path = scope.get("path", "/")
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root):]
        path = path or "/"
        if self._authorize is not None:
            header = dict(scope.get("headers", [])).get(b"authorization")
            refused = self._authorize(header)
            if refused is not None:
                await _send(send, refused, b"application/json",
                            _MESSAGES.get(refused, _MESSAGES[403]), method)
                return
        if path not in ("/", "/data.json", "/index.html"):
            await _send(send, 404, b"application/json", _MESSAGES[404], method)
            return
        if method not in ("GET", "HEAD"):
            await _send(send, 405, b"application/json", _MESSAGES[405], method,
                        [(b"allow", b"GET, HEAD")])
            return
        data, page = await asyncio.to_thread(self._page)
        if path == "/data.json":
            body = orjson.dumps(data.to_dict(), option=orjson.OPT_INDENT_2)
            await _send(send, 200, b"application/json", body, method)
        else:
            await _send(send, 200, b"text/html; charset=utf-8", page, method)


async def _send(send: Send, status: int, content_type: bytes, body: bytes, method: str,
                extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()),
               *_SECURITY_HEADERS, *(extra or [])]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="anonymetry"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})


def bearer_authorizer(verify: Callable[[str], frozenset[str] | None], *,
                      permission: str = "read_dashboard") -> Authorize:
    """An ``authorize`` hook from a token verifier such as
    :meth:`anonymetry.governance.tokens.TokenStore.verify` (token → its permissions, or
    ``None`` when unknown or revoked): 401 without a valid ``Bearer`` token, 403 when the
    token's permissions lack ``permission``."""

    def authorize(header: bytes | None) -> int | None:
        if header is None:
            return 401
        scheme, _, token = header.partition(b" ")
        if scheme.lower() != b"bearer" or not token.strip():
            return 401
        perms = verify(token.strip().decode("latin-1"))
        if perms is None:
            return 401
        return None if permission in perms else 403

    return authorize


def dashboard_app(source: DashboardSource, *, authorize: Authorize | None = None,
                  max_age: float = 30.0) -> DashboardApp:
    """A read-only ASGI app serving the dashboard (see the module docstring)."""
    return DashboardApp(source, authorize=authorize, max_age=max_age)
