"""The dashboard model takes issue 4/5 JSON as it is and reports every malformed field."""

from __future__ import annotations

import copy

import pytest

from anonymetry.errors import InvalidParameter
from anonymetry.report import (
    DashboardData,
    load_json,
    parse_budget,
    parse_result,
    parse_risk,
    parse_store_stats,
)

from .conftest import FIXTURES, RESULT_FILES


@pytest.mark.parametrize("name", RESULT_FILES)
def test_result_numbers_pass_through_unchanged(name: str) -> None:
    """Every released value, noise scale and CI in the file is in the model, bit for bit."""
    raw = load_json(FIXTURES / name)
    result = parse_result(raw, source=name)
    assert result.epsilon == raw["epsilon"]
    assert result.delta == raw["delta"]
    assert len(result.rows) == len(raw["rows"])
    for row, src in zip(result.rows, raw["rows"], strict=True):
        assert dict(row.by) == src["by"]
        assert row.metric == src["metric"]
        assert row.value == src["value"]
        assert row.noise_scale == src["noise_scale"]
        assert (list(row.ci95) if row.ci95 else None) == src["ci95"]
        assert row.suppressed == (src["value"] is None)


def test_suppressed_partitions_forms() -> None:
    """An int, {count, threshold} and a list of public keys all give the count shown."""
    base = load_json(FIXTURES / "crashes_by_version.json")
    assert parse_result(base).suppressed.count == 1
    as_obj = {**base, "suppressed_partitions": {"count": 3, "threshold": 12.5}}
    s = parse_result(as_obj).suppressed
    assert (s.count, s.threshold) == (3, 12.5)
    as_list = {**base, "suppressed_partitions": [{"app_version": "3.7.0"}]}
    s = parse_result(as_list).suppressed
    assert s.count == 1
    assert dict(s.keys[0]) == {"app_version": "3.7.0"}


def test_exact_budget_strings_are_read() -> None:
    """The ledger's exact values ("3/2") are accepted as numbers."""
    r = parse_result(load_json(FIXTURES / "sessions_by_week.json"))
    assert (r.budget_spent, r.budget_remaining) == (1.5, 8.5)


def test_every_problem_is_reported_with_its_path_and_no_value() -> None:
    raw = copy.deepcopy(load_json(FIXTURES / "active_users.json"))
    raw["epsilon"] = -1
    raw["rows"][0]["ci95"] = [5.0, 1.0]
    raw["rows"][1]["value"] = "lots"
    raw["rows"][2]["noise_scale"] = float("nan")
    raw["rows"][3]["by"] = {"platform": ["secret-device-name"]}
    del raw["unit"]
    with pytest.raises(InvalidParameter) as info:
        parse_result(raw, source="bad.json")
    msg = str(info.value)
    for expected in ("epsilon: expected a number ≥ 0", "rows[0].ci95: expected [lo, hi] with",
                     "rows[1].value: expected a number", "rows[2].noise_scale",
                     "rows[3].by.platform", "unit: missing", "bad.json: 6 problem(s)"):
        assert expected in msg
    assert "secret-device-name" not in msg
    assert "lots" not in msg


def test_budget_shapes() -> None:
    lines = parse_budget(load_json(FIXTURES / "budget.json"))
    assert [(b.dataset, b.analyst, b.spent, b.remaining) for b in lines] == [
        ("events", "alice", 3.0, 7.0), ("events", "bob", 2.5, 7.5),
        ("crash_reports", "alice", 1.5, 2.5)]
    assert lines[2].delta_spent == 1e-6
    # a bare list works too; a missing remaining without a grant is an error, not a guess
    assert parse_budget([{"dataset": "d", "analyst": "a", "spent": 1, "remaining": 2}])
    with pytest.raises(InvalidParameter, match=r"entries\[0\]\.remaining: missing"):
        parse_budget([{"dataset": "d", "analyst": "a", "spent": 1}])


def test_risk_fixture_and_risk_module_trace_shape() -> None:
    risk = parse_risk(load_json(FIXTURES / "risk.json"))
    assert risk.k == 3
    assert risk.verdict.passed is False
    assert risk.verdict.failures
    assert risk.population_uniqueness["dankar"] == 0.00112
    assert len(risk.trace_uniqueness) == 12
    assert risk.extra["journalist_risk"] == 0.2
    # the shape anonymetry.risk.traces.TraceRiskResult.to_dict() writes
    trace = {"measure": "trace_uniqueness", "rows": [
        {"granularity": "hour", "attribute_set": "all", "points": 4, "share": 0.25,
         "ci_low": 0.2, "ci_high": 0.3},
        {"granularity": "day", "attribute_set": "no platform", "points": 4, "share": 0.05,
         "ci_low": 0.03, "ci_high": 0.08}]}
    r2 = parse_risk({"k": 5, "trace_uniqueness": trace, "verdict": "pass"})
    assert [(t.series, t.uniqueness, t.ci95) for t in r2.trace_uniqueness] == [
        ("hour", 0.25, (0.2, 0.3)), ("day (no platform)", 0.05, (0.03, 0.08))]
    assert r2.verdict.passed is True
    with pytest.raises(InvalidParameter, match=r"share: expected a share in \[0, 1\]"):
        parse_risk({"k": 1, "trace_uniqueness": [{"granularity": "day", "points": 1,
                                                  "share": 1.5}]})


def test_store_stats() -> None:
    s = parse_store_stats(load_json(FIXTURES / "store_stats.json"))
    assert s.stored == 48213
    assert s.discarded_total == 5120 + 37 + 210
    assert parse_store_stats({"stored": 3, "discarded": 2}).discarded_total == 2
    with pytest.raises(InvalidParameter, match=r"by_event\.x: expected a whole count"):
        parse_store_stats({"stored": 1, "by_event": {"x": 1.5}})


def test_to_dict_round_trips_numbers(fixture_data: DashboardData) -> None:
    d = fixture_data.to_dict()
    assert [len(r["rows"]) for r in d["results"]] == [len(r.rows) for r in fixture_data.results]
    again = parse_result(d["results"][2])
    assert again.rows == fixture_data.results[2].rows
    assert d["risk"]["k"] == 3
    assert d["store"]["stored"] == 48213


def test_public_names_are_pinned() -> None:
    """The package's public API is what the collector and the demo call; changing it is a
    deliberate act."""
    import anonymetry.report as report

    assert sorted(report.__all__) == sorted([
        "CONTENT_SECURITY_POLICY", "BudgetLine", "Chart", "DPResult", "DashboardApp",
        "DashboardData", "GateCheck", "MetricRow", "ReportSpec", "RiskAssessment", "StoreStats",
        "Suppression", "Table", "TraceUniqueness", "Verdict", "bearer_authorizer",
        "build_charts", "build_dashboard", "dashboard_app", "fmt_number", "load_json",
        "load_spec", "parse_budget", "parse_result", "parse_risk", "parse_spec",
        "parse_store_stats", "render_html", "write_html"])
    for name in report.__all__:
        assert getattr(report, name) is not None
