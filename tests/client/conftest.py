"""A real HTTP peer for the SDK's tests: a small collector on 127.0.0.1 that speaks the wire
format, records every request and can be told to misbehave (status codes with Retry-After,
per-event rejections, dropped connections, lost acknowledgements)."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from anonymetry.client import Backoff, Telemetry
from anonymetry.policy import default_policy

TOKEN = "test-ingest-token"  # a fixture token for the test peer


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: Any
    at: float


@dataclass
class Answer:
    """A scripted answer: a status with headers, or ``drop`` (close without answering);
    ``store`` first stores the batch as usual (so ``drop`` + ``store`` is a lost ack). Answers
    are given in order, each to the next request for its ``path``."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False
    store: bool = False
    path: str = "/v1/events"


class RecordingCollector:
    """Stores events by (device_id, id) like the real collector, answering per event."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.stored: dict[tuple[str, str], dict[str, Any]] = {}
        self.deliveries: Counter[tuple[str, str]] = Counter()
        self.consent: list[dict[str, Any]] = []
        self.script: deque[Answer] = deque()
        self.reject: Callable[[dict[str, Any]], str | None] = lambda e: None
        self.refuse_batch_if: Callable[[dict[str, Any]], bool] = lambda e: False
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    # what tests read
    def event_requests(self) -> list[Request]:
        return [r for r in self.requests if r.path == "/v1/events"]

    def stored_events(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.stored.values())

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _answer_events(self, body: dict[str, Any]) -> dict[str, Any]:
        results = []
        with self.lock:
            for e in body["events"]:
                key = (e["device_id"], e["id"])
                reason = self.reject(e)
                if reason:
                    results.append({"id": e["id"], "status": "rejected", "reason": reason})
                    continue
                self.deliveries[key] += 1
                status = "duplicate" if key in self.stored else "stored"
                self.stored.setdefault(key, e)
                results.append({"id": e["id"], "status": status})
        return {"results": results}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        collector = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _reply(self, status: int, payload: Any, headers: dict[str, str]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"null")
                with collector.lock:
                    collector.requests.append(
                        Request(self.path, dict(self.headers), body, time.monotonic())
                    )
                    answer = None
                    if collector.script and collector.script[0].path == self.path:
                        answer = collector.script.popleft()
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    self._reply(401, {"error": "bad token"}, {})
                    return
                if answer is not None and (answer.drop or answer.status != 200):
                    if answer.store and self.path == "/v1/events":
                        collector._answer_events(body)
                    if answer.drop:
                        self.close_connection = True
                        return
                    self._reply(answer.status, {"error": "scripted"}, answer.headers)
                    return
                if self.path == "/v1/consent":
                    with collector.lock:
                        collector.consent.append(body)
                    self._reply(200, {"ok": True}, {})
                elif self.path == "/v1/events":
                    if any(collector.refuse_batch_if(e) for e in body["events"]):
                        self._reply(400, {"error": "bad batch"}, {})
                        return
                    self._reply(200, collector._answer_events(body), {})
                else:
                    self._reply(404, {"error": "not found"}, {})

        return Handler


@pytest.fixture
def collector() -> Iterator[RecordingCollector]:
    c = RecordingCollector()
    yield c
    c.close()


@pytest.fixture
def policy():
    return default_policy()


FAST = {"base": 0.02, "cap": 0.1}


@pytest.fixture
def make_client(tmp_path: Path, policy) -> Iterator[Callable[..., Telemetry]]:
    """Telemetry clients on a temp data dir, closed after the test; synchronous by default."""
    made: list[Telemetry] = []

    def make(url: str, **kw: Any) -> Telemetry:
        kw.setdefault("policy", policy)
        kw.setdefault("data_dir", tmp_path / "device")
        kw.setdefault("background", False)
        kw.setdefault("backoff", Backoff(**FAST))
        kw.setdefault("timeout", 2.0)
        t = Telemetry(url, TOKEN, **kw)
        made.append(t)
        return t

    yield make
    for t in made:
        t.close(timeout=0.5)


LAUNCH = {"platform": "macos", "app_version": "5.2.0"}
