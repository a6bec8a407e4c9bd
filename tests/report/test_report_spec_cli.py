"""The report spec names inputs (every problem listed at once); `anonymetry report` writes the
page and the JSON with the documented exit codes."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import orjson
import pytest

from anonymetry.errors import InvalidParameter
from anonymetry.report import build_dashboard, load_json, load_spec, parse_spec

from .conftest import FIXTURES


def test_fixture_spec_builds_the_whole_dashboard() -> None:
    spec = load_spec(FIXTURES / "report.yaml")
    data = build_dashboard(spec)
    assert [r.source for r in data.results] == [
        "active_users.json", "sessions_by_week.json", "duration_by_version.json",
        "crashes_by_version.json"]
    assert data.results[3].title == "Crashes by app version (public partitions)"
    assert len(data.budgets) == 3
    assert data.risk is not None
    assert data.store is not None


def test_globs_and_relative_paths(tmp_path: Path) -> None:
    (tmp_path / "results").mkdir()
    for name in ("active_users.json", "crashes_by_version.json"):
        shutil.copy(FIXTURES / name, tmp_path / "results" / name)
    spec = parse_spec({"results": ["results/*.json"]}, base=tmp_path)
    assert [r.path.name for r in spec.results] == ["active_users.json",
                                                    "crashes_by_version.json"]


def test_every_spec_problem_at_once(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameter) as info:
        parse_spec({"results": ["missing.json", 3], "risk": "nope.json", "colour": "red",
                    "queries": [{"metric": "count", "epsilon": -1, "by": "day"}]},
                   base=tmp_path, source="weekly.yaml")
    msg = str(info.value)
    for expected in ("results[0]: missing.json does not exist", "results[1]: expected a path",
                     "risk: nope.json does not exist", "colour: unknown key",
                     "queries[0].source: missing", "queries[0].epsilon: expected a number > 0",
                     "weekly.yaml: 6 problem(s)"):
        assert expected in msg


def test_empty_spec_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameter, match="names no input"):
        parse_spec({"title": "x"}, base=tmp_path)


def test_served_dashboards_never_run_queries(tmp_path: Path) -> None:
    """A page view must not spend budget: a spec with queries is refused for serving."""
    table = tmp_path / "t.parquet"
    table.write_bytes(b"")
    spec = parse_spec({"queries": [{"source": "t.parquet", "metric": "count", "by": ["day"],
                                    "epsilon": 1.0}]}, base=tmp_path)
    with pytest.raises(InvalidParameter, match="spend privacy budget"):
        build_dashboard(spec, allow_queries=False)


def _cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
         *args: str) -> tuple[int, str, str]:
    """Run the real CLI entry (``run_cli(app)``, what the console script calls) in-process."""
    from anonymetry.cli._common import run_cli
    from anonymetry.cli.main import app

    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["anonymetry", *args])
    code = run_cli(app)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_writes_html_and_json(tmp_path: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out" / "dashboard.html"
    code, _, err = _cli(capsys, monkeypatch, "report", str(FIXTURES / "report.yaml"),
                        "--html", str(out), "--json", str(tmp_path / "out" / "d.json"))
    assert code == 0, err
    assert out.stat().st_size > 1_000_000  # plotly.js is inline
    data = orjson.loads((tmp_path / "out" / "d.json").read_bytes())
    raw = load_json(FIXTURES / "duration_by_version.json")
    assert [r["value"] for r in data["results"][2]["rows"]] == [r["value"] for r in raw["rows"]]


def test_cli_json_to_stdout_is_pure_json(capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    code, out, err = _cli(capsys, monkeypatch, "report", str(FIXTURES / "report.yaml"),
                          "--json", "-")
    assert code == 0, err
    assert orjson.loads(out)["store"]["stored"] == 48213


def test_cli_exit_codes(tmp_path: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.yaml"
    bad.write_text("results: [nowhere.json]\n", encoding="utf-8")
    code, _, err = _cli(capsys, monkeypatch, "report", str(bad), "--html",
                        str(tmp_path / "x.html"))
    assert code == 2
    assert "results[0]: nowhere.json does not exist" in " ".join(err.split())
    code, _, err = _cli(capsys, monkeypatch, "report", str(FIXTURES / "report.yaml"))
    assert code == 2
    assert "--html" in err
    assert not (tmp_path / "x.html").exists()
