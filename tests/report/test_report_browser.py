"""In a real browser (Debian's headless Chromium): the static report and the served dashboard
render every chart with the expected number of marks, log no console error, and show the
numbers of the DP results they were drawn from — in the tables and in the chart data."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from anonymetry.governance.tokens import TokenStore
from anonymetry.policy import default_policy
from anonymetry.report import DashboardData, bearer_authorizer, build_charts, dashboard_app
from anonymetry.report import write_html as write_report

from .conftest import FIXTURES, RESULT_FILES, ServedApp

pytestmark = pytest.mark.browser

# For every chart: its traces as plotly.js holds them (gd.data) and the SVG marks drawn per
# trace (scatter points are path.point; bars are g.point > path), keyed by trace index.
_READ_CHARTS = """
return Array.from(document.querySelectorAll('div.chart[data-figure]')).map(function (gd) {
  var marks = {};
  gd.querySelectorAll('g.trace').forEach(function (g) {
    var d = g.__data__; if (!d || !d[0] || !d[0].trace) { return; }
    var i = d[0].trace.index;
    marks[i] = (marks[i] || 0) + g.querySelectorAll('path.point, g.point > path').length;
  });
  return {id: gd.id, rendered: gd.getAttribute('data-rendered'), marks: marks,
          data: gd.data.map(function (t) {
            return {type: t.type, name: t.name, meta: t.meta || {}, x: t.x, y: t.y,
                    error_y: t.error_y || null};
          })};
});
"""

_READ_TABLES = """
var out = {};
document.querySelectorAll('table[data-table-for]').forEach(function (t) {
  out[t.getAttribute('data-table-for')] = {
    headers: Array.from(t.querySelectorAll('thead th')).map(function (th) {
      return th.textContent; }),
    rows: Array.from(t.querySelectorAll('tbody tr')).map(function (tr) {
      return Array.from(tr.children).map(function (td) {
        return {text: td.textContent, value: td.getAttribute('data-value')}; }); })};
});
return out;
"""


def _wait_ready(driver: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if driver.execute_script("return document.body && "
                                 "document.body.getAttribute('data-charts-ready')") == "true":
            return
        time.sleep(0.05)
    raise AssertionError("the charts did not finish rendering within 30 s")


def _console_problems(driver: Any) -> list[str]:
    return [e["message"] for e in driver.get_log("browser")
            if e["level"] in ("SEVERE", "WARNING")]


def _decimals(text: str) -> int:
    m = re.search(r"\.(\d+)", text)
    return len(m.group(1)) if m else 0


def _check_page(driver: Any, data: DashboardData) -> None:
    """The properties both the static and the served page must have."""
    _wait_ready(driver)
    assert _console_problems(driver) == []
    charts = driver.execute_script(_READ_CHARTS)
    tables = driver.execute_script(_READ_TABLES)
    expected = build_charts(data)
    assert [c["id"] for c in charts] == [c.id for c in expected]
    for chart in charts:
        assert chart["rendered"] == "true", chart["id"]
        for i, trace in enumerate(chart["data"]):
            role = trace["meta"].get("role")
            if role == "band":
                continue  # a filled polygon, no marks
            # one drawn mark per number, no more, no fewer
            assert chart["marks"].get(str(i), 0) == len(trace["y"]), (chart["id"], i)
            assert len(trace["meta"]["rows"]) == len(trace["y"])

    # the DP charts and tables against the JSON files the results came from
    for r_index, name in enumerate(RESULT_FILES):
        from anonymetry.report import load_json

        raw = load_json(FIXTURES / name)
        metrics = list(dict.fromkeys(r["metric"] for r in raw["rows"]))
        for m_index, metric in enumerate(metrics):
            chart_id = f"result-{r_index}-{m_index}"
            src = [r for r in raw["rows"] if r["metric"] == metric]
            chart = next(c for c in charts if c["id"] == chart_id)
            drawn = []
            for trace in chart["data"]:
                role = trace["meta"].get("role")
                rows = trace["meta"].get("rows", [])
                if role == "value":
                    assert trace["y"] == [src[i]["value"] for i in rows]
                    if trace["error_y"]:
                        for j, i in enumerate(rows):
                            lo, hi = src[i]["ci95"]
                            assert trace["y"][j] + trace["error_y"]["array"][j] == \
                                pytest.approx(hi, abs=1e-9)
                            assert trace["y"][j] - trace["error_y"]["arrayminus"][j] == \
                                pytest.approx(lo, abs=1e-9)
                    drawn += rows
                elif role == "band":
                    assert trace["y"] == ([src[i]["ci95"][1] for i in rows]
                                          + [src[i]["ci95"][0] for i in rows][::-1])
                elif role == "suppressed":
                    assert all(src[i]["value"] is None for i in rows)
                    drawn += rows
            assert sorted(drawn) == list(range(len(src)))
            table = tables[chart_id]
            col = {h: k for k, h in enumerate(table["headers"])}
            assert len(table["rows"]) == len(src)
            for cells, row in zip(table["rows"], src, strict=True):
                value = cells[col["value"]]
                if row["value"] is None:
                    assert value["text"] == "suppressed"
                    continue
                assert float(value["value"]) == row["value"]  # exact, as released
                shown = float(value["text"].replace(",", ""))
                assert abs(shown - row["value"]) <= 0.5 * 10 ** -_decimals(value["text"]) + 1e-12
                assert float(cells[col["CI95 low"]]["value"]) == row["ci95"][0]
                assert float(cells[col["CI95 high"]]["value"]) == row["ci95"][1]
                assert float(cells[col["noise scale"]]["value"]) == row["noise_scale"]
                assert float(cells[col["ε"]]["value"]) == raw["epsilon"]
                assert float(cells[col["δ"]]["value"]) == raw["delta"]

    # budget and risk charts show the ledger's and the assessment's numbers
    budget = next(c for c in charts if c["id"] == "budget")
    by_col = {t["meta"]["column"]: t["x"] for t in budget["data"]}
    assert by_col["spent"] == [b.spent for b in data.budgets]
    assert by_col["remaining"] == [b.remaining for b in data.budgets]
    assert data.risk is not None
    trace_chart = next(c for c in charts if c["id"] == "risk-trace")
    drawn_shares = sorted(v for t in trace_chart["data"] for v in t["y"])
    assert drawn_shares == sorted(t.uniqueness for t in data.risk.trace_uniqueness)
    verdict = driver.execute_script(
        "return document.querySelector('[data-tile=verdict] .num').textContent")
    assert verdict == data.risk.verdict.label


def _screenshot(driver: Any, path: Path) -> None:
    height = driver.execute_script("return document.body.scrollHeight")
    driver.set_window_size(1400, min(int(height), 7000))
    driver.save_screenshot(str(path))
    driver.set_window_size(1400, 1000)
    assert path.stat().st_size > 50_000


def test_static_report_in_chromium(browser: Any, fixture_data: DashboardData,
                                   artifacts: Path, tmp_path: Path) -> None:
    page = write_report(fixture_data, tmp_path / "dashboard.html")
    browser.get_log("browser")  # drop anything from earlier pages
    browser.get(page.as_uri())
    _check_page(browser, fixture_data)
    _screenshot(browser, artifacts / "report-static.png")


def test_served_dashboard_in_chromium(browser: Any, fixture_data: DashboardData,
                                      artifacts: Path, tmp_path: Path) -> None:
    """Over HTTP from uvicorn on 127.0.0.1, behind a real token with read_dashboard."""
    tokens = TokenStore(tmp_path, default_policy())
    analyst, _ = tokens.create("analyst")
    app = dashboard_app(fixture_data, authorize=bearer_authorizer(tokens.verify))
    try:
        with ServedApp(app) as served:
            browser.get_log("browser")
            browser.execute_cdp_cmd("Network.enable", {})
            browser.execute_cdp_cmd("Network.setExtraHTTPHeaders",
                                    {"headers": {"Authorization": f"Bearer {analyst}"}})
            browser.get(served.url + "/")
            _check_page(browser, fixture_data)
            _screenshot(browser, artifacts / "report-served.png")
            # without the token the browser gets the 401, not the page
            browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {}})
            browser.get(served.url + "/")
            assert "unauthorized" in browser.page_source
            browser.get_log("browser")  # the 401 is logged as a failed load; expected here
    finally:
        tokens.close()


def test_dashboard_served_by_the_collector_in_chromium(browser: Any, fixture_data: DashboardData,
                                                       artifacts: Path, tmp_path: Path) -> None:
    """``anonymetry serve --dashboard SPEC`` serves the same page at /dashboard/ to a token with
    read_dashboard: the collector's own HTTP stack, a real subprocess on 127.0.0.1."""
    spec = tmp_path / "dashboard.yaml"
    spec.write_text(
        "title: Weekly product report\n"
        "results:\n" + "".join(f"  - {FIXTURES / n}\n" for n in RESULT_FILES)
        + f"risk: {FIXTURES / 'risk.json'}\nbudget: {FIXTURES / 'budget.json'}\n"
        f"store_stats: {FIXTURES / 'store_stats.json'}\n")
    data = tmp_path / "data"
    data.mkdir()
    tokens = TokenStore(data, default_policy())
    analyst, _ = tokens.create("analyst")
    tokens.close()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-c", "from anonymetry.cli.main import main; main()", "serve",
         "--data", str(data), "--port", str(port), "--dashboard", str(spec)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        browser.get_log("browser")
        browser.execute_cdp_cmd("Network.enable", {})
        browser.execute_cdp_cmd("Network.setExtraHTTPHeaders",
                                {"headers": {"Authorization": f"Bearer {analyst}"}})
        browser.get(f"{url}/dashboard/")
        _check_page(browser, fixture_data)
        _screenshot(browser, artifacts / "report-collector.png")
        browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {}})
    finally:
        proc.terminate()
        proc.wait(timeout=30)
