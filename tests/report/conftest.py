"""Fixtures for the report tests: the hand-written inputs and a headless Chromium.

The browser is Debian's ``/usr/bin/chromium`` driven by Debian's ``/usr/bin/chromedriver``
through Selenium, with the driver path given explicitly so Selenium never tries to download a
browser or a driver. Installed by ``scripts/setup.sh --all``.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from anonymetry.report import (
    DashboardData,
    load_json,
    parse_budget,
    parse_result,
    parse_risk,
    parse_store_stats,
)

FIXTURES = Path(__file__).parent / "fixtures"
RESULT_FILES = ("active_users.json", "sessions_by_week.json", "duration_by_version.json",
                "crashes_by_version.json")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROME_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-dev-shm-usage", "--window-size=1400,1000")


@pytest.fixture(scope="session")
def fixture_data() -> DashboardData:
    """The dashboard built from the hand-written fixtures (issue 4/5 shapes)."""
    return DashboardData.build(
        title="Weekly product report",
        results=[parse_result(load_json(FIXTURES / n), source=n) for n in RESULT_FILES],
        budgets=parse_budget(load_json(FIXTURES / "budget.json")),
        risk=parse_risk(load_json(FIXTURES / "risk.json")),
        store=parse_store_stats(load_json(FIXTURES / "store_stats.json")),
    )


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the session (starting one takes a few seconds)."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        message = ("Debian's chromium and chromium-driver are missing; run "
                   "scripts/setup.sh --all (apt-get install chromium chromium-driver)")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="anonymetry-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)),
                              options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


class ServedApp:
    """An ASGI app run by a real uvicorn server on 127.0.0.1 in a thread."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServedApp:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start within 15 s")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()
