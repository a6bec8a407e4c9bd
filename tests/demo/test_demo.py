"""``anonymetry demo`` runs the whole path end to end, and its summary states exactly what the
store and the ledger hold."""

from __future__ import annotations

import re
import subprocess
import sys
from html import unescape
from pathlib import Path

import orjson
import pytest

from anonymetry.analytics import BudgetLedger
from anonymetry.demo.run import ANALYST, DATASET, MARKER, prepare_out
from anonymetry.errors import InvalidParameter
from anonymetry.ingest.reader import open_reader, store_stats
from anonymetry.policy import default_policy
from anonymetry.privacy import LocalKeyring

CLI = [sys.executable, "-c", "from anonymetry.cli.main import main; main()"]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory
             ) -> tuple[Path, dict, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("demo") / "run"
    run = subprocess.run([*CLI, "demo", "--out", str(out), "--people", "40", "--days", "5",
                          "--json"], capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    return out, orjson.loads(run.stdout), run


def test_summary_matches_the_store(demo_run) -> None:
    out, summary, _ = demo_run
    data = out / "data"
    keyring = LocalKeyring(data / "keys")
    stats = store_stats(data, keyring)
    assert summary["stored"] == stats["stored"] > 0
    assert summary["by_event"] == stats["by_event"]
    assert summary["discarded_at_collector"] == stats["discarded"]
    rows = open_reader(data, keyring, default_policy()).to_arrow_table()
    assert rows.num_rows == summary["stored"]
    # consent was enforced: essential-only devices exist, so some events were dropped
    assert summary["dropped_by_consent"] > 0
    assert summary["dropped_by_consent"] == (summary["dropped_on_device"].get("consent", 0)
                                             + stats["discarded"]["consent"])
    # the expired event declared in the policy is counted, never stored
    assert "onboarding.legacy_step" not in stats["by_event"]


def test_summary_matches_the_ledger(demo_run) -> None:
    out, summary, _ = demo_run
    accounts = [a for a in BudgetLedger(out / "ledger").show()["accounts"]
                if a["analyst"] == ANALYST and a["dataset"] == DATASET]
    assert len(accounts) == 1
    account = accounts[0]
    assert summary["epsilon_spent"] == pytest.approx(account["spent"]["epsilon"])
    assert summary["epsilon_remaining"] == pytest.approx(account["remaining"]["epsilon"])
    assert 0 < summary["epsilon_spent"] <= account["granted"]["epsilon"]
    assert account["queries"] == len(summary["queries"]) == 6


def test_outputs_are_written_and_consistent(demo_run) -> None:
    out, summary, _ = demo_run
    assert Path(summary["dashboard"]).is_file()
    html = unescape(Path(summary["dashboard"]).read_text())
    assert "<script" in html
    assert "default-src 'none'" in html  # the page's CSP forbids loading anything remote
    markup = re.sub(r"<script\b.*?</script>", "", html, flags=re.S)  # inlined plotly.js aside
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", markup), "remote asset"
    results = sorted((out / "results").glob("*.json"))
    assert len(results) == 6
    for path in results:
        result = orjson.loads(path.read_bytes())
        for row in result["rows"]:
            lo, hi = row["ci95"]
            assert lo <= hi
            assert row["noise_scale"] > 0
    risk = orjson.loads((out / "risk.json").read_bytes())
    assert summary["risk"]["verdict"] == ("pass" if risk["verdict"]["passed"] else "blocked")
    assert summary["risk"]["k"] == risk["table"]["k"]
    assert summary["risk"]["remedied_k"] >= default_policy().release.k_min
    assert orjson.loads((out / "summary.json").read_bytes()) == summary


def test_no_raw_identifier_reaches_the_collectors_data(demo_run) -> None:
    """Raw account ids of the simulated people (``acct-…@example.com``) are never stored."""
    out, _, _ = demo_run
    for path in (out / "data").rglob("*"):
        if path.is_file():
            blob = path.read_bytes()
            assert b"@example.com" not in blob, path
            assert b"acct-" not in blob, path


def test_a_second_run_replaces_a_previous_demo_but_not_foreign_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    prepare_out(out)
    (out / "leftover.txt").write_text("from the first run")
    prepare_out(out)
    assert (out / MARKER).exists()
    assert not (out / "leftover.txt").exists()
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(InvalidParameter, match="not empty"):
        prepare_out(foreign)
    assert (foreign / "thesis.tex").read_text() == "precious"


def test_demo_refuses_a_foreign_folder_with_exit_2(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    run = subprocess.run([*CLI, "demo", "--out", str(tmp_path)], capture_output=True,
                         text=True, timeout=120, check=False)
    assert run.returncode == 2
    assert "not empty" in run.stderr
    assert (tmp_path / "notes.txt").read_text() == "keep me"
