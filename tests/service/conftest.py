"""A real ``anonymetry serve`` subprocess on 127.0.0.1, its data directory, a token."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from anonymetry.governance.tokens import TokenStore
from anonymetry.policy import default_policy

CLI = [sys.executable, "-c", "from anonymetry.cli.main import main; main()"]


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, check=check,
                          timeout=60)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Collector:
    """One collector subprocess; ``start``/``kill``/``stop`` may be called repeatedly."""

    def __init__(self, data: Path, *, port: int | None = None, workers: int = 1,
                 extra: tuple[str, ...] = (), full_cli: bool = False) -> None:
        """``full_cli``: run ``anonymetry serve`` through the whole CLI; otherwise the same
        command function through ``python -m anonymetry.cli._serve`` (starts faster)."""
        self.data = data
        self.command = [*CLI, "serve"] if full_cli else [
            sys.executable, "-m", "anonymetry.cli._serve"]
        self.port = port or free_port()
        self.workers = workers
        self.extra = extra
        self.log_path = data.parent / f"{data.name}-server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [*self.command, "--data", str(self.data), "--port", str(self.port),
             "--workers", str(self.workers), *self.extra],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"collector exited: {self.log()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"collector did not start: {self.log()}")

    def kill(self) -> None:
        """SIGKILL the whole process group (no shutdown code runs)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text("utf-8", "replace") if self.log_path.exists() else ""


def make_token(data: Path, role: str = "collector", *, via_cli: bool = False) -> str:
    """A token for ``role``; through ``anonymetry tokens create`` or, faster, its API."""
    if via_cli:
        out = cli("tokens", "create", "--data", str(data), "--role", role).stdout.strip()
    else:
        store = TokenStore(data, default_policy())
        out, _ = store.create(role)
        store.close()
    assert re.fullmatch(r"anm_[A-Za-z0-9_-]{43}", out), "token format"
    return out


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Collector, str]]:
    """A collector shared by a module's tests, with an ingest token."""
    data = tmp_path_factory.mktemp("collector") / "data"
    token = make_token(data)
    collector = Collector(data)
    collector.start()
    yield collector, token
    collector.stop()
