"""Shared by the CLI tests: the real command line in a subprocess, the same entry point
in-process (``run_cli`` on the full app, as ``main`` runs it), and small real input files."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

Run = Callable[..., subprocess.CompletedProcess[str]]

START = 1_709_510_400  # 2024-03-04 00:00 UTC, a Monday


@pytest.fixture(scope="session")
def cli_subprocess() -> Run:
    """``anonymetry ARGS`` as a user runs it: a fresh interpreter, real exit code."""

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "anonymetry.cli.main", *args],
                              capture_output=True, text=True, timeout=180, check=False)

    return run


@pytest.fixture(scope="session")
def full_app() -> Any:
    """The Typer app with every command (built once: it imports every command module)."""
    from anonymetry.cli.main import build_app

    return build_app()


@pytest.fixture
def cli(full_app: Any, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> Run:
    """The same entry point in-process (no interpreter start): exit code, stdout, stderr."""
    from anonymetry.cli._common import run_cli

    app = full_app

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        monkeypatch.setattr(sys, "argv", ["anonymetry", *args])
        code = run_cli(app)
        out = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out.out, out.err)

    return run


def make_traces(n_users: int = 300, days: int = 14, seed: int = 5) -> pa.Table:
    """A multi-device population: each user has 1–3 devices (platforms), habitual hours and a
    skewed number of events (3 kinds) over ``days`` days, stored at minute granularity."""
    rng = np.random.default_rng(seed)  # not-privacy: fixture data
    platforms = np.array(["ios", "android", "windows", "macos", "web"])
    events = np.array(["app.launch", "screen.view", "feature.used"])
    users, times, kinds, plats = [], [], [], []
    for u in range(n_users):
        devices = rng.choice(platforms, size=rng.integers(1, 4), replace=False)
        n = int(np.clip(rng.lognormal(3.0, 0.7), 4, 200))
        habit = rng.integers(6, 23)
        day = rng.integers(0, days, n)
        hour = np.clip(rng.normal(habit, 2.0, n).round(), 0, 23).astype(int)
        minute = rng.integers(0, 60, n)
        users += [f"u{u:04d}"] * n
        times += list(START + day * 86400 + hour * 3600 + minute * 60)
        kinds += list(rng.choice(events, n, p=[0.2, 0.5, 0.3]))
        plats += list(rng.choice(devices, n))
    return pa.table({
        "user": users,
        "time": pa.array(times, pa.int64()).cast(pa.timestamp("s", tz="UTC")),
        "event": kinds,
        "platform": plats,
    })


def make_people(n: int = 2000, seed: int = 3) -> pa.Table:
    """Microdata: an id, age, a 5-digit zip code (many distinct), a sensitive plan."""
    rng = np.random.default_rng(seed)  # not-privacy: fixture data
    return pa.table({
        "person": [f"p{i:05d}" for i in range(n)],
        "age": rng.integers(18, 90, n),
        "zip": [f"{z:05d}" for z in rng.integers(10000, 10300, n)],
        "plan": rng.choice(["free", "pro", "team", "enterprise"], n),
    })


@pytest.fixture(scope="session")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real files written with pyarrow: traces, microdata, the attacker's auxiliary table, a
    policy, a malformed policy."""
    d = tmp_path_factory.mktemp("cli_files")
    paths = {
        "traces": d / "events.parquet",
        "people": d / "people.parquet",
        "people_csv": d / "people.csv",
        "aux": d / "aux.parquet",
        "bad_policy": d / "bad_policy.yaml",
        "not_parquet": d / "garbage.parquet",
    }
    pq.write_table(make_traces(), paths["traces"])
    people = make_people()
    pq.write_table(people, paths["people"])
    import pyarrow.csv as pacsv

    pacsv.write_csv(people, paths["people_csv"])
    # The attacker knows age and zip (and, for scoring only, the id) of half the people.
    pq.write_table(people.select(["person", "age", "zip"]).slice(0, 1000), paths["aux"])
    paths["bad_policy"].write_text("name: broken\nrelease: [k_min\n", "utf-8")
    paths["not_parquet"].write_bytes(b"this is not a parquet file")
    return paths
