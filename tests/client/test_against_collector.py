"""The SDK against the real collector (``anonymetry serve`` as a subprocess on 127.0.0.1):
events stored exactly once, consent honoured end to end, and the offline queue delivering
after the collector comes up later than the app."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from anonymetry.client import Backoff, OfflineQueue, Telemetry, Transport

REPO = Path(__file__).resolve().parents[2]
POLICY = REPO / "src" / "anonymetry" / "data" / "policy.yaml"
LAUNCH = {"platform": "windows", "app_version": "5.2.0"}
_SCRIPT = Path(sys.executable).with_name("anonymetry")  # the installed console script
CLI = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "anonymetry.cli.main"]


def _cli(*args: str) -> str:
    """Run an ``anonymetry`` command in this process (the same Typer app as the console
    script; starting a Python process per command would cost seconds each)."""
    from typer.testing import CliRunner

    from anonymetry.cli.main import app

    done = CliRunner().invoke(app, list(args))
    assert done.exit_code == 0, f"anonymetry {args[0]} failed: {done.output[-2000:]}"
    return done.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Collector:
    """``anonymetry serve`` on a free port of 127.0.0.1 with its own data directory."""

    def __init__(self, data: Path, port: int | None = None) -> None:
        self.data = data
        self.port = port or _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.token = ""

    def create_token(self) -> str:
        self.token = _cli("tokens", "create", "--data", str(self.data), "--role", "ingest").strip()
        return self.token

    def start(self) -> None:
        self.log = open(self.data.parent / f"serve-{self.port}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                *CLI,
                "serve",
                "--data",
                str(self.data),
                "--policy",
                str(POLICY),
                "--port",
                str(self.port),
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60  # a loaded 2-core CI machine can take a while
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "the collector exited at start"
            try:
                if httpx.get(self.url + "/healthz", timeout=0.5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError("the collector did not answer /healthz within 60 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if getattr(self, "log", None):
            self.log.close()

    def stats(self) -> dict:
        return json.loads(_cli("store", "stats", "--data", str(self.data), "--json"))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collector]:
    """One collector for this module (each CLI start costs seconds): tests use their own
    devices and their own event names, so their counts do not mix."""
    c = Collector(tmp_path_factory.mktemp("collector") / "data")
    c.data.mkdir()
    shutil.copyfile(POLICY, c.data / "policy.yaml")  # as serve records it; tokens reads it
    c.create_token()
    c.start()
    yield c
    c.stop()


def _client(c: Collector, data_dir: Path, **kw) -> Telemetry:
    kw.setdefault("background", False)
    kw.setdefault("backoff", Backoff(base=0.05, cap=0.5))
    return Telemetry(c.url, c.token, data_dir=data_dir, **kw)


def test_events_are_stored_exactly_once_even_when_retried(served, tmp_path):
    t = _client(served, tmp_path / "device", user_id="acct-1", batch_size=16)
    t.set_consent("usage")
    for i in range(40):
        t.track("screen.view", {**LAUNCH, "screen": "editor", "duration_ms": i})
    for _ in range(10):
        t.track("purchase.completed", {**LAUNCH, "plan": "monthly", "note": "undeclared"})
    # what the queue holds now is exactly what goes on the wire: keep it to send it again
    q = OfflineQueue(tmp_path / "device" / "queue.sqlite")
    wire = [e.body for e in q.peek(100)]
    q.close()
    assert len(wire) == 50
    assert t.flush(timeout=30).complete
    assert t.stats().stored == 50

    # a retry of every event (as after a lost acknowledgement) stores nothing new
    transport = Transport(served.url, served.token)
    outcome = transport.send_events(wire)
    transport.close()
    assert len(outcome.done) == 50
    assert set(outcome.done.values()) == {"duplicate"}
    by_event = served.stats()["by_event"]
    assert by_event["screen.view"] == 40
    assert by_event["purchase.completed"] == 10
    t.close()


def _now_hour() -> str:
    return time.strftime("%Y-%m-%dT%H:00:00Z", time.gmtime())


def test_consent_downgrade_and_opt_out_are_honoured_end_to_end(served, tmp_path):
    t = _client(served, tmp_path / "device", user_id="acct-2")
    t.set_consent("usage")
    t.track("feature.used", {**LAUNCH, "feature": "search"})
    assert t.flush(timeout=30).complete

    t.set_consent("essential")
    assert not t.track("feature.used", {**LAUNCH, "feature": "share"})  # dropped on device
    assert t.track("app.launch", {**LAUNCH, "os_version": "11"})  # os_version stripped
    assert t.flush(timeout=30).complete
    # the collector's ledger now says essential for this device: an event claiming more is
    # discarded there too (as a stale or misbehaving client's would be)
    transport = Transport(served.url, served.token)
    stale = {
        "id": "f" * 32,
        "name": "feature.used",
        "time": _now_hour(),
        "user_id": "acct-2",
        "device_id": t.device_id,
        "consent": "usage",
        "attributes": {**LAUNCH, "feature": "tag"},
    }
    outcome = transport.send_events([stale])
    transport.close()
    assert outcome.done == {"f" * 32: "discarded"}
    stats = served.stats()
    assert stats["by_event"]["feature.used"] == 1
    assert stats["by_event"]["app.launch"] == 1
    assert stats["discarded"]["consent"] >= 1

    t.set_consent("none")
    assert not t.track("app.launch", LAUNCH)
    assert t.flush(timeout=30).complete
    by_event = served.stats()["by_event"]
    # the opted-out device's events are deleted at the collector
    assert by_event.get("feature.used", 0) == 0
    assert by_event.get("app.launch", 0) == 0
    t.close()


_APP = textwrap.dedent(
    """
    import sys
    from anonymetry.client import Backoff, Telemetry
    url, token, data, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    t = Telemetry(url, token, data_dir=data, background=True, flush_interval=0.1,
                  backoff=Backoff(base=0.05, cap=0.2))
    t.set_consent("diagnostics")
    for i in range(n):
        t.track("app.crash", {"platform": "macos", "app_version": "5.2.0",
                              "crash_kind": "native", "uptime_s": i})
    report = t.close(timeout=float(sys.argv[5]))
    print(report.remaining)
    """
)


def _app(c: Collector, device: Path, n: int, close_timeout: float) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    done = subprocess.run(
        [sys.executable, "-c", _APP, c.url, c.token, str(device), str(n), str(close_timeout)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def test_offline_queue_delivers_after_the_collector_comes_up_later(served, tmp_path):
    served.stop()  # the collector is down
    try:
        # the app runs and quits while the collector is down: its events stay on disk
        assert _app(served, tmp_path / "device", 30, 0.5) == "30"
    finally:
        served.start()  # the collector comes up later, on the same address
    # the app runs again (no new events) and delivers what the last run queued
    assert _app(served, tmp_path / "device", 0, 20) == "0"
    assert served.stats()["by_event"]["app.crash"] == 30
