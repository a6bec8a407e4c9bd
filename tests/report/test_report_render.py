"""Charts draw exactly the released rows; the page is self-contained, escaped and readable
without JavaScript."""

from __future__ import annotations

import html.parser
import re

import orjson
import pytest

from anonymetry.report import (
    DashboardData,
    build_charts,
    fmt_number,
    load_json,
    parse_result,
    parse_risk,
    render_html,
    write_html,
)

from .conftest import FIXTURES, RESULT_FILES


def _traces(chart, role):  # type: ignore[no-untyped-def]
    return [t for t in chart.figure["data"] if t.get("meta", {}).get("role") == role]


@pytest.mark.parametrize("name", RESULT_FILES)
def test_each_metric_chart_draws_every_row_once(name: str) -> None:
    """Value traces + suppressed markers cover each released row of a metric exactly once,
    and every drawn value equals the row's value in the JSON."""
    raw = load_json(FIXTURES / name)
    result = parse_result(raw, source=name)
    charts = build_charts(DashboardData.build(results=[result]))
    assert len(charts) == len(result.metrics)
    for chart, metric in zip(charts, result.metrics, strict=True):
        src = [r for r in raw["rows"] if r["metric"] == metric]
        drawn: list[int] = []
        for t in _traces(chart, "value"):
            drawn += t["meta"]["rows"]
            assert list(t["y"]) == [src[i]["value"] for i in t["meta"]["rows"]]
        marked = [i for t in _traces(chart, "suppressed") for i in t["meta"]["rows"]]
        assert sorted(drawn + marked) == list(range(len(src)))
        assert all(src[i]["value"] is None for i in marked)
        assert len(chart.table.rows) == len(src)


def test_time_series_have_ci_bands_and_bars_have_error_bars(fixture_data: DashboardData) -> None:
    charts = {c.id: c for c in build_charts(fixture_data)}
    daily = charts["result-0-0"]
    assert daily.figure["layout"]["xaxis"]["type"] == "date"
    raw = load_json(FIXTURES / "active_users.json")["rows"]
    for band in _traces(daily, "band"):
        idx = band["meta"]["rows"]
        his = [raw[i]["ci95"][1] for i in idx]
        los = [raw[i]["ci95"][0] for i in idx]
        assert list(band["y"]) == his + los[::-1]
    assert len(_traces(daily, "suppressed")) == 1  # the cohort-suppressed web partition
    bars = charts["result-2-0"]
    raw = [r for r in load_json(FIXTURES / "duration_by_version.json")["rows"]
           if r["metric"] == "mean"]
    for t in _traces(bars, "value"):
        for j, i in enumerate(t["meta"]["rows"]):
            assert t["y"][j] + t["error_y"]["array"][j] == pytest.approx(raw[i]["ci95"][1])
            assert t["y"][j] - t["error_y"]["arrayminus"][j] == pytest.approx(raw[i]["ci95"][0])
    # versions in natural order: 3.9.2 before 3.10.0
    assert list(_traces(bars, "value")[0]["x"]) == ["3.9.2", "3.10.0", "3.11.1"]


def test_iso_weeks_are_placed_on_their_monday(fixture_data: DashboardData) -> None:
    weekly = next(c for c in build_charts(fixture_data) if c.id == "result-1-0")
    xs = _traces(weekly, "value")[0]["x"]
    assert xs[0] == "2024-04-01"  # 2024-W14
    assert weekly.table.rows[0][0].text == "2024-W14"  # the table keeps the label as released


def test_suppressed_partition_count_is_stated(fixture_data: DashboardData) -> None:
    chart = next(c for c in build_charts(fixture_data) if c.id == "result-2-0")
    assert "suppressed partitions: 2 (threshold 18.20)" in chart.subtitle
    assert "2 partition(s) withheld" in chart.figure["layout"]["annotations"][0]["text"]


class _Collector(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.csp: list[str] = []
        self.tags: list[str] = []
        self.text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):  # type: ignore[no-untyped-def]
        self.tags.append(tag)
        self._in_script = tag in ("script", "style")
        if tag == "meta" and ("http-equiv", "Content-Security-Policy") in attrs:
            self.csp.append(dict(attrs)["content"] or "")
        for name, value in attrs:
            if name in ("src", "href") and value and not value.startswith("#"):
                self.urls.append(value)

    def handle_endtag(self, tag):  # type: ignore[no-untyped-def]
        self._in_script = False

    def handle_data(self, data):  # type: ignore[no-untyped-def]
        if not self._in_script:
            self.text.append(data)


def test_page_is_self_contained_and_readable_without_js(fixture_data: DashboardData) -> None:
    page = render_html(fixture_data)
    parsed = _Collector()
    parsed.feed(page)
    assert parsed.urls == []  # no external script, style, image or link
    assert parsed.csp[0].startswith("default-src 'none'; script-src 'unsafe-inline'")
    assert "plotly.js v" in page  # the bundle is inline
    text = " ".join(parsed.text)
    # without JS every released number is still in the text, with ε and δ
    for name in RESULT_FILES:
        raw = load_json(FIXTURES / name)
        for row in raw["rows"]:
            if row["value"] is not None:
                assert fmt_number(row["value"]) in text
                assert fmt_number(row["noise_scale"]) in text
    assert "ε = 0.5;" in text
    assert "δ = 1.000e-06" in text
    assert fmt_number(48213) in text


def test_text_is_escaped_everywhere() -> None:
    """A hostile title or partition label cannot open a tag or close a script."""
    evil = '</script><img src=x onerror="alert(1)">&'
    result = parse_result({"epsilon": 1, "delta": 0, "unit": "user", "title": evil,
                           "rows": [{"by": {"platform": evil}, "metric": "count",
                                     "value": 1.0, "noise_scale": 1.0, "ci95": [0, 2]}]})
    page = render_html(DashboardData.build(title=evil, results=[result]))
    assert "<img" not in page
    assert page.count("</script>") == page.count("<script")
    fig = re.search(r'<script type="application/json" id="fig-result-0-0">(.*?)</script>',
                    page, re.S)
    assert fig is not None
    assert orjson.loads(fig.group(1))["data"][0]["x"] == [evil]  # escaped, not altered


def test_number_format() -> None:
    assert fmt_number(48213) == "48,213"
    assert fmt_number(1234.5678) == "1,234.57"
    assert fmt_number(0.00112) == "0.00112"
    assert fmt_number(1e-6) == "1.000e-06"
    assert fmt_number(None) == "—"


def test_write_html_is_atomic_and_creates_parents(tmp_path, fixture_data) -> None:  # type: ignore[no-untyped-def]
    out = write_html(fixture_data, tmp_path / "a" / "dashboard.html")
    assert out.read_text(encoding="utf-8").startswith("<!doctype html>")
    assert [p.name for p in out.parent.iterdir()] == ["dashboard.html"]


def test_risk_single_points_uses_bars() -> None:
    risk = parse_risk({"k": 4, "trace_uniqueness": {"minute": 0.4, "day": 0.02, "points": 4}})
    chart = next(c for c in build_charts(DashboardData.build(risk=risk)) if c.id == "risk-trace")
    assert chart.figure["data"][0]["type"] == "bar"
    assert list(chart.figure["data"][0]["y"]) == [0.4, 0.02]
