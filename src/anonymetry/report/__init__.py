"""Dashboards and reports: render released numbers, never recompute them (a surface layer).

- :mod:`~anonymetry.report.model`: ``DashboardData`` and its parts (``DPResult``, ``MetricRow``,
  ``BudgetLine``, ``RiskAssessment``, ``StoreStats``), built by ``parse_result``,
  ``parse_budget``, ``parse_risk``, ``parse_store_stats`` from the JSON other parts release.
- :mod:`~anonymetry.report.charts`: plotly figures with a table of every number per chart.
- :mod:`~anonymetry.report.html`: ``render_html`` / ``write_html``, one self-contained page
  (plotly.js inline, strict CSP, nothing from a CDN).
- :mod:`~anonymetry.report.spec`: ``load_spec`` / ``build_dashboard`` for
  ``anonymetry report SPEC --html out.html``.
- :mod:`~anonymetry.report.web`: ``dashboard_app``, the read-only ASGI app the collector mounts
  behind a ``read_dashboard`` token check.
"""

from __future__ import annotations

from anonymetry.report.charts import Chart, Table, build_charts, fmt_number
from anonymetry.report.html import CONTENT_SECURITY_POLICY, render_html, write_html
from anonymetry.report.model import (
    BudgetLine,
    DashboardData,
    DPResult,
    GateCheck,
    MetricRow,
    RiskAssessment,
    StoreStats,
    Suppression,
    TraceUniqueness,
    Verdict,
    load_json,
    parse_budget,
    parse_result,
    parse_risk,
    parse_store_stats,
)
from anonymetry.report.spec import ReportSpec, build_dashboard, load_spec, parse_spec
from anonymetry.report.web import DashboardApp, bearer_authorizer, dashboard_app

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "BudgetLine",
    "Chart",
    "DPResult",
    "DashboardApp",
    "DashboardData",
    "GateCheck",
    "MetricRow",
    "ReportSpec",
    "RiskAssessment",
    "StoreStats",
    "Suppression",
    "Table",
    "TraceUniqueness",
    "Verdict",
    "bearer_authorizer",
    "build_charts",
    "build_dashboard",
    "dashboard_app",
    "fmt_number",
    "load_json",
    "load_spec",
    "parse_budget",
    "parse_result",
    "parse_risk",
    "parse_spec",
    "parse_store_stats",
    "render_html",
    "write_html",
]
