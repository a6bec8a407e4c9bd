"""Run a real collector (``anonymetry serve``) as a child process on 127.0.0.1 for the demo."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from anonymetry.errors import InternalError

__all__ = ["CollectorProcess", "free_port"]

_CLI = [sys.executable, "-c", "from anonymetry.cli.main import main; main()"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class CollectorProcess:
    """``anonymetry serve --data DIR --policy FILE`` on a free loopback port."""

    def __init__(self, data_dir: Path, policy_file: Path, log_file: Path, workers: int = 1):
        self.data_dir = data_dir
        self.policy_file = policy_file
        self.log_file = log_file
        self.workers = workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        with self.log_file.open("ab") as log:
            self._proc = subprocess.Popen(
                [*_CLI, "serve", "--data", str(self.data_dir), "--policy", str(self.policy_file),
                 "--port", str(self.port), "--workers", str(self.workers)],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise InternalError(f"the demo collector exited early; see {self.log_file}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise InternalError(f"the demo collector did not start in {timeout:.0f} s; see "
                            f"{self.log_file}")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def __enter__(self) -> CollectorProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
