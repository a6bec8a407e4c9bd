"""``anonymetry risk`` and ``anonymetry check`` through the real CLI in a subprocess: JSON keys,
per-record output, DuckDB and policy-tag sources, and the gate's exit codes (0 safe, 1 risky,
2 usage)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

REQUIRED_KEYS = {
    "k", "class_size_histogram", "l_distinct", "l_entropy", "c_l_recursive", "t",
    "sample_uniqueness", "population_uniqueness", "prosecutor_risk", "journalist_risk",
    "marketer_risk", "qi_analysis",
}


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The real command line in a subprocess (used for the gate's exit codes)."""
    return subprocess.run([sys.executable, "-m", "anonymetry.cli.main", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def cli(monkeypatch, capsys):
    """The same entry point in-process (``run_cli`` maps errors to exit codes as ``main``)."""
    from anonymetry.cli._common import run_cli
    from anonymetry.cli.main import app

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        monkeypatch.setattr(sys, "argv", ["anonymetry", *args])
        code = run_cli(app)
        out = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out.out, out.err)

    return run


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("risk_cli")
    rng = np.random.default_rng(11)  # not-privacy: fixture data
    n = 2000
    safe = pa.table({  # 4 × 3 = 12 classes of ~167: k well above 10
        "platform": rng.choice(["ios", "android", "web", "macos"], n),
        "app_version": rng.choice(["1.0", "1.1", "2.0"], n),
        "plan": rng.choice(["monthly", "yearly"], n),
    })
    risky = safe.append_column("birth_minute", pa.array(np.arange(n)))  # every row unique
    paths = {"safe": d / "safe.parquet", "risky": d / "risky.parquet", "csv": d / "safe.csv"}
    pq.write_table(safe, paths["safe"])
    pq.write_table(risky, paths["risky"])
    import pyarrow.csv as pacsv

    pacsv.write_csv(safe, paths["csv"])
    db = d / "release.duckdb"
    con = duckdb.connect(str(db))
    con.execute(f"CREATE TABLE release AS SELECT * FROM read_parquet('{paths['risky']}')")
    con.close()
    paths["db"] = db
    return paths


def test_risk_json_has_the_contract_keys(cli, tables):
    done = cli("risk", str(tables["safe"]), "--qi", "platform,app_version",
                "--sensitive", "plan", "--population", "20000", "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert set(out) >= REQUIRED_KEYS
    assert out["k"] >= 100
    assert out["l_distinct"] == 2
    assert isinstance(out["l_entropy"], float)
    assert set(out["population_uniqueness"]) >= {"pitman", "zayatz", "snb", "dankar"}
    assert set(out["prosecutor_risk"]) == {"max", "average"}
    assert out["prosecutor_risk"]["max"] == pytest.approx(1 / out["k"])


def test_risk_per_record_and_duckdb_source(cli, tables, tmp_path):
    target = tmp_path / "per_record.parquet"
    source = f"duckdb:{tables['db']}::release"
    done = cli("risk", source, "--qi", "platform,birth_minute", "--json",
                "--per-record", str(target))
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["k"] == 1
    assert out["sample_uniqueness"] == 1.0
    per = pq.read_table(target)
    assert per.num_rows == 2000
    assert set(per.column_names) == {"platform", "birth_minute", "class_size",
                                     "prosecutor_risk", "journalist_risk"}
    assert "plan" not in per.column_names  # the sensitive attribute is never written
    drop = {tuple(r["columns"]): r for r in out["qi_analysis"]["remedies"]
            if r["action"] == "drop"}
    assert drop[("birth_minute",)]["sample_uniqueness"] == 0.0  # dropping it helps most
    assert out["qi_analysis"]["remedies"][0]["columns"] == ["birth_minute"]


def test_risk_qi_auto_uses_policy_tags(cli, tables):
    done = cli("risk", str(tables["csv"]), "--qi", "auto", "--sensitive", "auto", "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    # embedded policy: platform/app_version are technical, plan is highly_sensitive
    assert out["qi"] == ["platform", "app_version"]
    assert out["sensitive"] == "plan"


def test_check_exits_0_on_safe_and_writes_report(tables, tmp_path):
    report = tmp_path / "gate.json"
    done = _cli("check", str(tables["safe"]), "--qi", "platform,app_version",
                "--report", str(report))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SAFE" in done.stdout
    verdict = json.loads(report.read_text())["verdict"]
    assert verdict["passed"] is True
    assert {c["name"]: c["passed"] for c in verdict["checks"]}["k"] is True


def test_check_exits_1_on_risky(tables, tmp_path):
    report = tmp_path / "gate.json"
    done = _cli("check", str(tables["risky"]), "--qi", "platform,birth_minute",
                "--report", str(report))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "BLOCKED" in done.stdout
    verdict = json.loads(report.read_text())["verdict"]
    assert set(verdict["failed"]) == {"k", "population_uniqueness"}


def test_check_usage_error_exits_2_in_subprocess(tables):
    done = _cli("check", str(tables["safe"]), "--qi", "nope")
    assert done.returncode == 2
    assert "not in the table" in done.stderr


def test_usage_errors_exit_2(cli, tables):
    assert cli("check", "missing.parquet", "--qi", "platform").returncode == 2
    assert cli("risk", str(tables["safe"]), "--qi", "platform", "--population", "5").returncode == 2
    assert cli("risk", str(tables["safe"]), "--qi", "platform", "--sensitive",
               "platform").returncode == 2
    assert cli("check", str(tables["safe"]), "--qi", "platform", "--auxiliary",
               "aux.csv").returncode == 2
