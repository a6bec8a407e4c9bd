"""One self-contained ``dashboard.html``: plotly.js, styles, figures and tables all inline.

Nothing is fetched: the page's Content-Security-Policy is ``default-src 'none'`` with inline
scripts and styles only, so a page that tried to reach a CDN would fail loudly (and the browser
tests would see the console error). All text is HTML-escaped; figure JSON sits in
``<script type="application/json">`` blocks with ``<``, ``>`` and ``&`` escaped as JSON
unicode escapes, so no data can close a tag. Every chart has a table of every number beside it,
with ε, δ and the noise scale, readable with JavaScript off.
"""

from __future__ import annotations

import functools
import html as _html
from collections.abc import Sequence
from pathlib import Path

import orjson

from anonymetry.report.charts import Chart, Table, build_charts, fmt_number
from anonymetry.report.model import DashboardData

__all__ = ["CONTENT_SECURITY_POLICY", "render_html", "write_html"]

# plotly.js compiles a few helpers with Function(); nothing else is allowed, nothing remote.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; "
    "img-src data: blob:; font-src data:; connect-src 'none'; base-uri 'none'; form-action 'none'"
)

_SECTIONS = (
    ("metrics", "DP metrics"),
    ("budget", "Privacy budget"),
    ("risk", "Re-identification risk"),
    ("store", "Collection"),
)

_CSS = """
:root { --fg:#1d1d1f; --muted:#5f6368; --line:#e3e3e3; --bg:#f6f7f9; --ok:#2e7d32;
        --bad:#c62828; --warn:#8d6e00; }
* { box-sizing: border-box; }
body { margin:0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif;
       color:var(--fg); background:var(--bg); }
header { background:#fff; border-bottom:1px solid var(--line); padding:18px 28px; }
header h1 { margin:0 0 4px; font-size:22px; }
header .meta { color:var(--muted); font-size:12px; }
nav { padding: 6px 28px; background:#fff; border-bottom:1px solid var(--line); }
nav a { margin-right:16px; color:#1a57b5; text-decoration:none; }
main { padding: 8px 28px 40px; max-width: 1500px; }
h2 { margin: 26px 0 10px; font-size:18px; }
.tiles { display:flex; flex-wrap:wrap; gap:12px; margin-top:14px; }
.tile { background:var(--bg); border:1px solid var(--line); border-radius:8px; padding:10px 14px;
        min-width:150px; }
.tile .label { color:var(--muted); font-size:12px; }
.tile .num { font-size:20px; font-weight:600; }
.verdict-pass { color:var(--ok); } .verdict-fail { color:var(--bad); }
.verdict-unknown { color:var(--warn); }
.card { background:#fff; border:1px solid var(--line); border-radius:10px; padding:14px 16px;
        margin-bottom:16px; }
.card h3 { margin:0 0 2px; font-size:15px; }
.card .guarantee { color:var(--muted); font-size:12px; margin:0 0 8px; }
.grid { display:grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap:14px;
        align-items:start; }
@media (max-width: 1000px) { .grid { grid-template-columns: 1fr; } }
.chart { min-height: 220px; }
.chart .nojs { color:var(--muted); font-size:12px; padding:20px 0; }
.table-wrap { max-height: 380px; overflow:auto; border:1px solid var(--line); border-radius:6px; }
table { border-collapse:collapse; width:100%; font-size:12px; }
caption { text-align:left; font-size:11px; color:var(--muted); padding:6px 8px; }
th, td { padding:3px 8px; border-bottom:1px solid #f0f0f0; white-space:nowrap; }
th { position:sticky; top:0; background:#fafafa; text-align:left; font-weight:600; }
td.num { text-align:right; font-variant-numeric: tabular-nums; }
td.suppressed { color:#7f7f7f; font-style:italic; text-align:right; }
ul.notes { color:var(--muted); font-size:12px; }
ul.details { color:var(--muted); font-size:12px; margin:0 0 8px; padding-left:18px; }
.failures { color:var(--bad); font-size:12px; margin:4px 0 0; }
"""

_INIT_JS = """
(function () {
  var config = {displaylogo: false, responsive: true, staticPlot: false,
                modeBarButtonsToRemove: ['sendDataToCloud']};
  var charts = document.querySelectorAll('div.chart[data-figure]');
  var done = 0;
  charts.forEach(function (el) {
    var fig = JSON.parse(document.getElementById(el.getAttribute('data-figure')).textContent);
    el.textContent = '';
    Plotly.newPlot(el, fig.data, fig.layout, config).then(function () {
      el.setAttribute('data-rendered', 'true');
      done += 1;
      if (done === charts.length) { document.body.setAttribute('data-charts-ready', 'true'); }
    });
  });
  if (charts.length === 0) { document.body.setAttribute('data-charts-ready', 'true'); }
})();
"""


@functools.cache
def _plotly_js() -> str:
    """plotly.js as shipped inside the ``plotly`` wheel (no network)."""
    from plotly.offline import get_plotlyjs

    js = get_plotlyjs()
    # never let the bundle close its own <script> element
    return js.replace("</script", "<\\/script").replace("</SCRIPT", "<\\/SCRIPT")


def _e(text: object) -> str:
    return _html.escape(str(text), quote=True)


def _json_for_script(obj: object) -> str:
    raw = orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    return raw.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _table_html(table: Table, chart_id: str) -> str:
    out = [f'<table data-table-for="{_e(chart_id)}"><caption>{_e(table.caption)}</caption>',
           "<thead><tr>", *(f'<th scope="col">{_e(h)}</th>' for h in table.headers),
           "</tr></thead><tbody>"]
    for row in table.rows:
        out.append("<tr>")
        for cell in row:
            if cell.numeric and cell.value is not None:
                out.append(f'<td class="num" data-value="{cell.value!r}">{_e(cell.text)}</td>')
            elif cell.text == "suppressed":
                out.append('<td class="suppressed" data-value="suppressed">suppressed</td>')
            elif cell.numeric:
                out.append(f'<td class="num">{_e(cell.text)}</td>')
            else:
                out.append(f"<td>{_e(cell.text)}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _chart_html(chart: Chart) -> str:
    details = ""
    if chart.details:
        items = "".join(f"<li>{_e(d)}</li>" for d in chart.details)
        details = f'<ul class="details">{items}</ul>'
    return (
        f'<article class="card" id="card-{_e(chart.id)}">'
        f'<h3>{_e(chart.title)}</h3><p class="guarantee">{_e(chart.subtitle)}</p>{details}'
        f'<div class="grid"><div class="chart" id="{_e(chart.id)}" '
        f'data-figure="fig-{_e(chart.id)}"><p class="nojs">The chart needs JavaScript; the '
        f"table beside it has every number.</p></div>"
        f'<div class="table-wrap">{_table_html(chart.table, chart.id)}</div></div></article>'
    )


def _num_td(v: float | None) -> str:
    if v is None:
        return '<td class="num">—</td>'
    return f'<td class="num" data-value="{float(v)!r}">{_e(fmt_number(v))}</td>'


def _tile(label: str, value: str, cls: str = "", test_id: str = "") -> str:
    tid = f' data-tile="{_e(test_id)}"' if test_id else ""
    return (f'<div class="tile"{tid}><div class="label">{_e(label)}</div>'
            f'<div class="num {cls}">{_e(value)}</div></div>')


def _summary(data: DashboardData) -> str:
    tiles = []
    if data.store is not None:
        tiles.append(_tile("events stored", fmt_number(data.store.stored), test_id="stored"))
        tiles.append(_tile("events discarded", fmt_number(data.store.discarded_total),
                           test_id="discarded"))
    for i, b in enumerate(data.budgets[:3]):
        tiles.append(_tile(f"ε spent / left: {b.dataset} · {b.analyst}",
                           f"{fmt_number(b.spent)} / {fmt_number(b.remaining)}",
                           test_id=f"budget-{i}"))
    if data.risk is not None:
        v = data.risk.verdict
        cls = {True: "verdict-pass", False: "verdict-fail", None: "verdict-unknown"}[v.passed]
        tiles.append(_tile("risk verdict", v.label, cls, test_id="verdict"))
        tiles.append(_tile("k (smallest class)", fmt_number(data.risk.k), test_id="k"))
    return f'<div class="tiles">{"".join(tiles)}</div>' if tiles else ""


def _risk_header(data: DashboardData) -> str:
    risk = data.risk
    if risk is None:
        return ""
    parts = [f"<p class=\"guarantee\">Assessment: {_e(risk.source)}; k = {risk.k}"]
    if risk.sample_uniqueness is not None:
        parts.append(f"; sample uniqueness {_e(fmt_number(risk.sample_uniqueness))}")
    parts.append("</p>")
    if risk.verdict.failures:
        items = "".join(f"<li>{_e(f)}</li>" for f in risk.verdict.failures)
        parts.append(f'<ul class="failures">{items}</ul>')
    if risk.verdict.checks:
        rows = "".join(
            f"<tr><td>{_e(c.name)}</td><td>{_e(c.op)}</td>"
            f"{_num_td(c.threshold)}{_num_td(c.value)}"
            f"<td>{_e({True: 'pass', False: 'FAIL', None: 'not evaluated'}[c.passed])}</td>"
            f"<td>{_e(c.detail)}</td></tr>" for c in risk.verdict.checks)
        parts.append(
            '<div class="card"><h3>Release gate</h3><div class="table-wrap">'
            '<table data-table-for="risk-gate"><caption>Every threshold of the policy, as '
            "evaluated</caption><thead><tr><th>check</th><th>op</th><th>threshold</th>"
            f"<th>measured</th><th>result</th><th>detail</th></tr></thead><tbody>{rows}"
            "</tbody></table></div></div>")
    return "".join(parts)


def _risk_footer(data: DashboardData) -> str:
    """The assessment's further measures (ℓ, t, prosecutor/journalist/marketer risk…)."""
    risk = data.risk
    if risk is None:
        return ""
    parts: list[str] = []
    scalars = [(k, v) for k, v in risk.extra.items()
               if isinstance(v, int | float) and not isinstance(v, bool)]
    nested = [(f"{k}.{k2}", v2) for k, v in risk.extra.items() if hasattr(v, "items")
              for k2, v2 in v.items() if isinstance(v2, int | float) and not isinstance(v2, bool)]
    if scalars or nested:
        rows = "".join(
            f'<tr><td>{_e(k)}</td><td class="num" data-value="{float(v)!r}">'
            f"{_e(fmt_number(v))}</td></tr>" for k, v in [*scalars, *nested])
        parts.append(
            '<div class="card"><h3>Other measures</h3><div class="table-wrap">'
            '<table data-table-for="risk-other"><caption>Further measures of the assessment'
            f"</caption><thead><tr><th>measure</th><th>value</th></tr></thead><tbody>{rows}"
            "</tbody></table></div></div>")
    return "".join(parts)


def render_html(data: DashboardData, *, charts: Sequence[Chart] | None = None) -> str:
    """The whole dashboard as one HTML string (about 5 MB, most of it plotly.js)."""
    charts = list(charts) if charts is not None else build_charts(data)
    body: list[str] = []
    nav: list[str] = []
    for section, heading in _SECTIONS:
        in_section = [c for c in charts if c.section == section]
        if not in_section:
            continue
        nav.append(f'<a href="#{section}">{_e(heading)}</a>')
        body.append(f'<section id="{section}"><h2>{_e(heading)}</h2>')
        if section == "risk":
            body.append(_risk_header(data))
        body += [_chart_html(c) for c in in_section]
        if section == "risk":
            body.append(_risk_footer(data))
        body.append("</section>")
    if not charts:
        body.append("<p>Nothing to show yet: the report spec named no results, ledger, risk "
                    "assessment or store.</p>")
    if data.notes:
        body.append('<ul class="notes">' + "".join(f"<li>{_e(n)}</li>" for n in data.notes)
                    + "</ul>")
    figures = "".join(
        f'<script type="application/json" id="fig-{_e(c.id)}">{_json_for_script(c.figure)}'
        "</script>" for c in charts)
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{_e(CONTENT_SECURITY_POLICY)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="generator" content="anonymetry report">'
        f"<title>{_e(data.title)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{_e(data.title)}</h1><div class=\"meta\">generated "
        f"{_e(data.generated_at.isoformat())} · every number below was released with "
        "differential privacy or measured by a risk assessment; none is recomputed here</div>"
        f"{_summary(data)}</header>"
        f"<nav>{''.join(nav)}</nav><main>{''.join(body)}</main>"
        f"{figures}<script>{_plotly_js()}</script><script>{_INIT_JS}</script>"
        "</body></html>\n"
    )


def write_html(data: DashboardData, path: str | Path) -> Path:
    """Write the dashboard to ``path`` (parents created); returns the path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(render_html(data), encoding="utf-8")
    tmp.replace(p)
    return p
