"""``anonymetry risk|check --data DIR`` assess the event store itself (decrypted in memory)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from anonymetry.ingest.store import EventStore, StoredEvent
from anonymetry.policy import default_policy
from anonymetry.privacy import LocalKeyring

CLI = [sys.executable, "-m", "anonymetry.cli.main"]
HOUR = 3600
T0 = 1_790_000_000 // HOUR * HOUR  # a fixed hour in key epoch 690


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 users: 10 share one platform/version, 2 are alone in theirs (k = 1)."""
    data = tmp_path_factory.mktemp("store")
    policy = default_policy()
    events = []
    lone = {10: ("web", "3.8.2"), 11: ("macos", "3.9.0")}
    for u in range(12):
        platform, version = lone.get(u, ("ios", "4.0.0"))
        for h in range(3):
            events.append(StoredEvent(
                dedup=f"{u:02d}{h}", epoch=T0 // (86400 * 30), event="app.launch",
                time=T0 + h * HOUR * (u + 1), user=f"u{u:031d}", device=f"d{u:031d}",
                consent="essential", attrs={"platform": platform, "app_version": version}))
    with EventStore(data, policy, LocalKeyring(data / "keys")) as store:
        assert all(store.append_blocking(events))
    return data


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=180,
                          check=False)


def test_risk_of_the_store_counts_its_rows(store_dir: Path) -> None:
    done = run("risk", "--data", str(store_dir), "--qi", "platform,app_version", "--json")
    assert done.returncode == 0, done.stderr
    risk = orjson.loads(done.stdout)
    assert risk["k"] == 3  # each lone user has 3 events
    assert risk["class_size_histogram"] == {"3": 2, "30": 1}


def test_check_of_the_store_fails_the_policy_k(store_dir: Path, tmp_path: Path) -> None:
    report = tmp_path / "verdict.json"
    done = run("check", "--data", str(store_dir), "--qi", "platform,app_version",
               "--report", str(report))
    assert done.returncode == 1, done.stderr
    verdict = orjson.loads(report.read_bytes())
    assert "k" in verdict["verdict"]["failed"]
