"""Plotly figures and number tables for a :class:`~anonymetry.report.model.DashboardData`.

Every chart comes with a :class:`Table` holding every number it draws (with ε, δ and the noise
scale for DP values), so the page stays readable without JavaScript and a test can check the
drawing against the numbers. Figures are built with ``plotly.graph_objects`` (which validates
every attribute) and handed on as plain JSON for plotly.js, whose bundle ships inside the
``plotly`` wheel; nothing is fetched from a CDN.

Each drawn trace carries ``meta = {"role": ..., "rows": [...]}``: ``role`` is ``value`` (the
released numbers), ``band`` (a CI95 band), ``suppressed`` (markers for withheld partitions)
or ``risk``/``budget``/``store``; ``rows`` are the indices of the table rows it draws, in order.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from anonymetry.report.model import DashboardData, DPResult, MetricRow, Scalar

__all__ = ["Cell", "Chart", "Table", "build_charts", "fmt_number", "result_charts"]

PALETTE = ("#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#B279A2", "#FF9DA6",
           "#9D755D", "#BAB0AC", "#EECA3B")
SUPPRESSED_COLOR = "#7f7f7f"
TIME_COLUMNS = ("day", "date", "week", "month", "hour", "minute", "time", "period")
_ISO_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ][0-9:.]+Z?([+-]\d{2}:?\d{2})?)?$")


def fmt_number(value: float | int | None) -> str:
    """How a number is shown in tables: whole numbers with thousands separators; otherwise two
    decimals at ≥ 1, four significant digits below 1 (uniqueness, δ). ``None`` shows as —."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    v = float(value)
    if v == int(v) and abs(v) < 1e15:
        return f"{int(v):,}"
    if abs(v) >= 1:
        return f"{v:,.2f}"
    if abs(v) >= 1e-4:
        return f"{v:.4g}"
    return f"{v:.3e}"


@dataclass(frozen=True, slots=True)
class Cell:
    """A table cell: the text shown and, for numbers, the exact value it was drawn from."""

    text: str
    value: float | None = None
    numeric: bool = False


def _num(v: float | int | None) -> Cell:
    return Cell(fmt_number(v), None if v is None else float(v), numeric=True)


def _txt(v: Any) -> Cell:
    return Cell("—" if v is None else str(v))


@dataclass(frozen=True, slots=True)
class Table:
    caption: str
    headers: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]


@dataclass(frozen=True, slots=True)
class Chart:
    """One chart: a stable id, its title, a plotly figure (plain JSON) and its number table.

    ``section`` is ``metrics``, ``budget``, ``risk`` or ``store``; ``subtitle`` states the
    guarantee (ε, δ, unit, bounds, suppressed partitions) for DP charts.
    """

    id: str
    section: str
    title: str
    subtitle: str
    figure: Mapping[str, Any]
    table: Table
    details: tuple[str, ...] = ()


# --------------------------------------------------------------------------- helpers


def _is_time_column(name: str, values: Iterable[Scalar]) -> bool:
    if name.lower() in TIME_COLUMNS:
        return True
    vals = [v for v in values if v is not None]
    return bool(vals) and all(isinstance(v, str) and
                              (_ISO_DATE.match(v) or _ISO_WEEK.match(v)) for v in vals)


def _time_x(value: Scalar) -> Scalar:
    """An x position plotly reads as a date: ISO weeks (``2024-W19``) become their Monday."""
    if isinstance(value, str):
        m = _ISO_WEEK.match(value)
        if m:
            return dt.date.fromisocalendar(int(m.group(1)), int(m.group(2)), 1).isoformat()
    return value


def _natural_key(value: Scalar) -> tuple[Any, ...]:
    """Sort versions and labels naturally (3.10.0 after 3.9.2); None last."""
    if value is None:
        return ((2, ""),)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return ((0, float(value)),)
    parts = re.split(r"(\d+)", str(value))
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts if p != "")


def _label(by: Mapping[str, Scalar], cols: Sequence[str]) -> str:
    if not cols:
        return "all"
    return " · ".join("—" if by.get(c) is None else str(by.get(c)) for c in cols)


def _color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _figure(traces: list[dict[str, Any]], layout: dict[str, Any]) -> dict[str, Any]:
    """Validate with plotly's own schema, then return plain JSON for plotly.js."""
    import plotly.graph_objects as go

    base: dict[str, Any] = {
        "template": None,
        "margin": {"l": 60, "r": 20, "t": 20, "b": 50},
        "height": 360,
        "paper_bgcolor": "#ffffff",
        "plot_bgcolor": "#ffffff",
        "font": {"family": "system-ui, sans-serif", "size": 12, "color": "#222"},
        "legend": {"orientation": "h", "y": -0.2},
        "hovermode": "closest",
        "xaxis": {"gridcolor": "#eee", "linecolor": "#999"},
        "yaxis": {"gridcolor": "#eee", "linecolor": "#999", "zerolinecolor": "#bbb"},
    }
    for key, value in layout.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    fig = go.Figure(data=traces, layout=base)
    out = fig.to_plotly_json()
    out["layout"].pop("template", None)
    return {"data": out["data"], "layout": out["layout"]}


def _guarantee(result: DPResult) -> str:
    parts = [f"ε = {fmt_number(result.epsilon)}", f"δ = {fmt_number(result.delta)}",
             f"unit: {result.unit}"]
    if result.bounds:
        b = ", ".join(f"{k} = {_bound_text(v)}" for k, v in result.bounds.items()
                      if v is not None)
        parts.append(f"bounds: {b}")
    s = result.suppressed
    if s.count or s.threshold is not None:
        t = f" (threshold {fmt_number(s.threshold)})" if s.threshold is not None else ""
        parts.append(f"suppressed partitions: {s.count}{t}")
    if result.budget_spent is not None or result.budget_remaining is not None:
        parts.append(f"budget spent {fmt_number(result.budget_spent)}, "
                     f"remaining {fmt_number(result.budget_remaining)}")
    return "; ".join(parts)


def _details(result: DPResult) -> tuple[str, ...]:
    """What the result says about itself beyond ε/δ: its guarantee in prose, the bias from
    contribution bounding (reported apart from noise), the mechanism, the suppression note."""
    out: list[str] = []
    extra = result.extra
    if isinstance(extra.get("guarantee"), str):
        out.append(f"Guarantee: {extra['guarantee']}")
    bias = extra.get("bounding_bias") or extra.get("bias")
    if isinstance(bias, Mapping):
        shares = []
        for k, v in bias.items():
            if not isinstance(v, int | float) or isinstance(v, bool) or k in ("epsilon",
                                                                             "noise_scale"):
                continue
            text = f"{k.replace('_', ' ')} {float(v):.2%}"
            ci = bias.get(k.removesuffix("_share") + "_ci95")
            if isinstance(ci, list | tuple) and len(ci) == 2:
                text += f" (95% CI {float(ci[0]):.0%}–{float(ci[1]):.0%})"
            shares.append(text)
        if shares:
            out.append("Bias from contribution bounding (apart from noise): " + ", ".join(shares))
        if bias.get("informative") is False:
            out.append("The bias estimate is uninformative here (too few people for its small "
                       "ε share); use `anonymetry suggest-bounds` to see the data's shape.")
    if isinstance(extra.get("mechanism"), str):
        out.append(f"Mechanism: {extra['mechanism']}")
    if result.suppressed.note:
        out.append(f"Suppression: {result.suppressed.note}")
    if isinstance(extra.get("dataset"), str):
        out.append(f"Dataset: {extra['dataset']}" + (
            f"; query {extra['query_id']}" if isinstance(extra.get("query_id"), str) else ""))
    return tuple(out)


def _bound_text(v: Any) -> str:
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_bound_text(x) for x in v) + "]"
    if isinstance(v, int | float) and not isinstance(v, bool):
        return fmt_number(v)
    if isinstance(v, Mapping):
        return "{" + ", ".join(f"{k}: {_bound_text(x)}" for k, x in v.items()) + "}"
    return str(v)


# --------------------------------------------------------------------------- DP results


def _result_table(result: DPResult, metric: str, rows: Sequence[MetricRow],
                  by_cols: Sequence[str]) -> Table:
    headers = (*by_cols, "metric", "value", "CI95 low", "CI95 high", "noise scale", "ε", "δ")
    body = []
    for r in rows:
        lo, hi = r.ci95 if r.ci95 is not None else (None, None)
        value = Cell("suppressed") if r.suppressed else _num(r.value)
        body.append((*(_txt(r.by.get(c)) for c in by_cols), _txt(metric), value, _num(lo),
                     _num(hi), _num(r.noise_scale), _num(result.epsilon), _num(result.delta)))
    extra = ""
    if result.suppressed.count:
        extra = (f"; {result.suppressed.count} partition(s) withheld by partition selection"
                 " (not shown)")
    caption = f"{result.title} — {metric}: every released value{extra}"
    return Table(caption=caption, headers=tuple(headers), rows=tuple(body))


def _hover(by_cols: Sequence[str]) -> str:
    return ("%{text}<br>value %{y:,.4~g}<br>CI95 [%{customdata[0]:,.4~g}, "
            "%{customdata[1]:,.4~g}]<br>noise scale %{customdata[2]:,.4~g}<extra></extra>")


def _time_traces(result: DPResult, rows: Sequence[MetricRow], time_col: str,
                 group_cols: Sequence[str]) -> list[dict[str, Any]]:
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        groups.setdefault(_label(r.by, group_cols), []).append(i)
    traces: list[dict[str, Any]] = []
    suppressed_idx: list[int] = []
    for gi, (name, idx) in enumerate(sorted(groups.items(), key=lambda kv: _natural_key(kv[0]))):
        idx = sorted(idx, key=lambda i: _natural_key(_time_x(rows[i].by.get(time_col))))
        shown = [i for i in idx if not rows[i].suppressed and rows[i].value is not None]
        suppressed_idx += [i for i in idx if i not in shown]
        color = _color(gi)
        xs = [_time_x(rows[i].by.get(time_col)) for i in shown]
        with_ci = [i for i in shown if rows[i].ci95 is not None]
        if with_ci:
            bx = [_time_x(rows[i].by.get(time_col)) for i in with_ci]
            lo = [rows[i].ci95[0] for i in with_ci]  # type: ignore[index]
            hi = [rows[i].ci95[1] for i in with_ci]  # type: ignore[index]
            traces.append({
                "type": "scatter", "x": bx + bx[::-1], "y": hi + lo[::-1], "fill": "toself",
                "fillcolor": _rgba(color, 0.18), "line": {"width": 0}, "mode": "lines",
                "hoverinfo": "skip", "showlegend": False, "name": f"{name} CI95",
                "legendgroup": name, "meta": {"role": "band", "rows": with_ci},
            })
        traces.append({
            "type": "scatter", "mode": "lines+markers", "name": name, "legendgroup": name,
            "x": xs, "y": [rows[i].value for i in shown],
            "text": [_label(rows[i].by, [time_col, *group_cols]) for i in shown],
            "customdata": [[*(rows[i].ci95 or (None, None)), rows[i].noise_scale]
                           for i in shown],
            "hovertemplate": _hover(group_cols),
            "line": {"color": color, "width": 2}, "marker": {"color": color, "size": 6},
            "meta": {"role": "value", "rows": shown},
        })
    if suppressed_idx:
        traces.append(_suppressed_trace(
            [_time_x(rows[i].by.get(time_col)) for i in suppressed_idx],
            [_label(rows[i].by, [time_col, *group_cols]) for i in suppressed_idx],
            suppressed_idx))
    return traces


def _suppressed_trace(xs: list[Any], labels: list[str], idx: list[int]) -> dict[str, Any]:
    return {
        "type": "scatter", "mode": "markers", "name": "suppressed", "x": xs, "y": [0] * len(xs),
        "text": labels, "hovertemplate": "%{text}<br>suppressed (too few people)<extra></extra>",
        "marker": {"symbol": "x-thin-open", "size": 11, "color": SUPPRESSED_COLOR,
                   "line": {"width": 2, "color": SUPPRESSED_COLOR}},
        "meta": {"role": "suppressed", "rows": idx},
    }


def _category_traces(result: DPResult, rows: Sequence[MetricRow], x_col: str | None,
                     group_cols: Sequence[str]) -> list[dict[str, Any]]:
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        groups.setdefault(_label(r.by, group_cols), []).append(i)
    traces: list[dict[str, Any]] = []
    suppressed_idx: list[int] = []

    def xlabel(r: MetricRow) -> str:
        if x_col is None:
            return r.metric
        v = r.by.get(x_col)
        return "—" if v is None else str(v)

    for gi, (name, idx) in enumerate(sorted(groups.items(), key=lambda kv: _natural_key(kv[0]))):
        idx = sorted(idx, key=lambda i: _natural_key(rows[i].by.get(x_col) if x_col else 0))
        shown = [i for i in idx if not rows[i].suppressed and rows[i].value is not None]
        suppressed_idx += [i for i in idx if i not in shown]
        color = _color(gi)
        values = [rows[i].value for i in shown]
        plus = [(rows[i].ci95[1] - v) if rows[i].ci95 else 0.0  # type: ignore[operator]
                for i, v in zip(shown, values, strict=True)]
        minus = [(v - rows[i].ci95[0]) if rows[i].ci95 else 0.0  # type: ignore[operator]
                 for i, v in zip(shown, values, strict=True)]
        traces.append({
            "type": "bar", "name": name, "x": [xlabel(rows[i]) for i in shown], "y": values,
            "text": [_label(rows[i].by, [c for c in (x_col, *group_cols) if c]) for i in shown],
            "textposition": "none",
            "customdata": [[*(rows[i].ci95 or (None, None)), rows[i].noise_scale]
                           for i in shown],
            "hovertemplate": _hover(group_cols),
            "marker": {"color": color},
            "error_y": {"type": "data", "symmetric": False, "array": plus, "arrayminus": minus,
                        "visible": True, "color": "#333", "thickness": 1.2, "width": 3},
            "meta": {"role": "value", "rows": shown},
        })
    if suppressed_idx:
        traces.append(_suppressed_trace(
            [xlabel(rows[i]) for i in suppressed_idx],
            [_label(rows[i].by, [c for c in (x_col, *group_cols) if c]) for i in suppressed_idx],
            suppressed_idx))
    return traces


def result_charts(result: DPResult, index: int) -> list[Chart]:
    """One chart per metric of a DP result: a line with a CI95 band over time when one of the
    ``by`` columns is a time column (day, week…), grouped bars with CI95 error bars otherwise.
    Partitions withheld after DP are drawn as grey ✕ at zero and listed as 'suppressed'."""
    charts = []
    for mi, metric in enumerate(result.metrics):
        rows = [r for r in result.rows if r.metric == metric]
        by_cols = [c for c in result.by_columns if any(c in r.by for r in rows)]
        time_col = next((c for c in by_cols if _is_time_column(c, (r.by.get(c) for r in rows))),
                        None)
        if time_col is not None:
            group_cols = [c for c in by_cols if c != time_col]
            traces = _time_traces(result, rows, time_col, group_cols)
            layout: dict[str, Any] = {"xaxis": {"type": "date", "title": {"text": time_col}},
                                      "yaxis": {"title": {"text": metric}}}
        else:
            x_col = by_cols[0] if by_cols else None
            group_cols = by_cols[1:]
            traces = _category_traces(result, rows, x_col, group_cols)
            layout = {"barmode": "group", "xaxis": {"type": "category",
                                                    "title": {"text": x_col or ""}},
                      "yaxis": {"title": {"text": metric}}}
        if result.suppressed.count:
            layout["annotations"] = [{
                "text": f"{result.suppressed.count} partition(s) withheld by DP selection",
                "xref": "paper", "yref": "paper", "x": 1, "y": 1.02, "xanchor": "right",
                "yanchor": "bottom", "showarrow": False,
                "font": {"size": 11, "color": SUPPRESSED_COLOR}}]
        title = result.title if len(result.metrics) == 1 else f"{result.title} — {metric}"
        charts.append(Chart(
            id=f"result-{index}-{mi}", section="metrics", title=title,
            subtitle=_guarantee(result), figure=_figure(traces, layout),
            table=_result_table(result, metric, rows, by_cols), details=_details(result),
        ))
    return charts


# --------------------------------------------------------------------------- budget


def _budget_chart(data: DashboardData) -> Chart:
    lines = data.budgets
    labels = [f"{b.dataset} · {b.analyst}" + (f" · {b.period}" if b.period else "")
              for b in lines]
    idx = list(range(len(lines)))
    traces = [
        {"type": "bar", "orientation": "h", "name": "ε spent", "y": labels,
         "x": [b.spent for b in lines], "marker": {"color": "#E45756"},
         "hovertemplate": "%{y}<br>ε spent %{x:,.4~g}<extra></extra>",
         "meta": {"role": "budget", "column": "spent", "rows": idx}},
        {"type": "bar", "orientation": "h", "name": "ε remaining", "y": labels,
         "x": [b.remaining for b in lines], "marker": {"color": "#54A24B"},
         "hovertemplate": "%{y}<br>ε remaining %{x:,.4~g}<extra></extra>",
         "meta": {"role": "budget", "column": "remaining", "rows": idx}},
    ]
    layout = {"barmode": "stack", "height": max(220, 60 + 42 * len(lines)),
              "margin": {"l": 160}, "xaxis": {"title": {"text": "ε"}},
              "yaxis": {"type": "category", "autorange": "reversed"}}
    table = Table(
        caption="Privacy budget per dataset and analyst, as the ledger holds it",
        headers=("dataset", "analyst", "period", "ε granted", "ε spent", "ε remaining",
                 "δ spent", "δ remaining"),
        rows=tuple((_txt(b.dataset), _txt(b.analyst), _txt(b.period), _num(b.granted),
                    _num(b.spent), _num(b.remaining), _num(b.delta_spent),
                    _num(b.delta_remaining)) for b in lines),
    )
    return Chart(id="budget", section="budget", title="Privacy budget: spent and left",
                 subtitle="per dataset and analyst, from the budget ledger",
                 figure=_figure(traces, layout), table=table)


# --------------------------------------------------------------------------- risk


def _risk_charts(data: DashboardData) -> list[Chart]:
    risk = data.risk
    assert risk is not None  # the caller checks
    charts: list[Chart] = []
    if risk.trace_uniqueness:
        tu = risk.trace_uniqueness
        series: dict[str, list[int]] = {}
        for i, t in enumerate(tu):
            series.setdefault(t.series, []).append(i)
        multi_points = len({t.points for t in tu}) > 1
        traces = []
        if multi_points:
            for gi, (name, idx) in enumerate(series.items()):
                idx = sorted(idx, key=lambda i: tu[i].points)
                trace: dict[str, Any] = {
                    "type": "scatter", "mode": "lines+markers", "name": name,
                    "x": [tu[i].points for i in idx], "y": [tu[i].uniqueness for i in idx],
                    "line": {"color": _color(gi)}, "marker": {"color": _color(gi)},
                    "hovertemplate": name + "<br>%{x} points: %{y:.2%} unique<extra></extra>",
                    "meta": {"role": "risk", "rows": idx}}
                if all(tu[i].ci95 for i in idx):
                    trace["error_y"] = {
                        "type": "data", "symmetric": False, "thickness": 1, "width": 3,
                        "array": [tu[i].ci95[1] - tu[i].uniqueness for i in idx],  # type: ignore[index]
                        "arrayminus": [tu[i].uniqueness - tu[i].ci95[0] for i in idx]}  # type: ignore[index]
                traces.append(trace)
            layout = {"xaxis": {"title": {"text": "points of a trace known"}, "dtick": 1},
                      "yaxis": {"title": {"text": "users singled out"}, "tickformat": ".0%",
                                "range": [0, 1.02]}}
        else:
            idx = list(range(len(tu)))
            traces.append({
                "type": "bar", "name": "trace uniqueness", "x": [t.series for t in tu],
                "y": [t.uniqueness for t in tu], "marker": {"color": _color(0)},
                "hovertemplate": "%{x}: %{y:.2%} unique<extra></extra>",
                "meta": {"role": "risk", "rows": idx}})
            layout = {"xaxis": {"type": "category", "title": {"text": "time granularity"}},
                      "yaxis": {"title": {"text": "users singled out"}, "tickformat": ".0%"}}
        charts.append(Chart(
            id="risk-trace", section="risk", title="Trace uniqueness by time granularity",
            subtitle="share of users singled out by p random points of their own trace",
            figure=_figure(traces, layout),
            table=Table(caption="Trace uniqueness (CI95 over the sampled users)",
                        headers=("granularity", "attributes", "points", "unique",
                                 "CI95 low", "CI95 high"),
                        rows=tuple((_txt(t.granularity), _txt(t.attribute_set),
                                    _num(t.points), _num(t.uniqueness),
                                    _num(t.ci95[0] if t.ci95 else None),
                                    _num(t.ci95[1] if t.ci95 else None)) for t in tu))))
    names = []
    values = []
    if risk.sample_uniqueness is not None:
        names.append("sample")
        values.append(risk.sample_uniqueness)
    for name, v in risk.population_uniqueness.items():
        names.append(f"population ({name})")
        values.append(v)
    if names:
        charts.append(Chart(
            id="risk-uniqueness", section="risk", title="Uniqueness",
            subtitle="sample uniqueness and population uniqueness estimators",
            figure=_figure([{
                "type": "bar", "name": "uniqueness", "x": names, "y": values,
                "marker": {"color": _color(4)}, "meta": {"role": "risk",
                                                         "rows": list(range(len(names)))},
                "hovertemplate": "%{x}: %{y:.4%}<extra></extra>"}],
                {"xaxis": {"type": "category"}, "yaxis": {"tickformat": ".2%"}}),
            table=Table(caption="Uniqueness", headers=("measure", "share"),
                        rows=tuple((_txt(n), _num(v)) for n, v in
                                   zip(names, values, strict=True)))))
    if risk.class_size_histogram:
        hist = risk.class_size_histogram
        charts.append(Chart(
            id="risk-classes", section="risk", title="Equivalence class sizes",
            subtitle=f"k = {risk.k}: the smallest class of records sharing quasi-identifiers",
            figure=_figure([{
                "type": "bar", "name": "classes", "x": [str(s) for s, _ in hist],
                "y": [n for _, n in hist], "marker": {"color": _color(0)},
                "meta": {"role": "risk", "rows": list(range(len(hist)))},
                "hovertemplate": "size %{x}: %{y} classes<extra></extra>"}],
                {"xaxis": {"type": "category", "title": {"text": "class size"}},
                 "yaxis": {"title": {"text": "classes"}}}),
            table=Table(caption="Class size histogram", headers=("class size", "classes"),
                        rows=tuple((_num(s), _num(n)) for s, n in hist))))
    return charts


# --------------------------------------------------------------------------- store


def _store_chart(data: DashboardData) -> Chart:
    store = data.store
    assert store is not None  # the caller checks
    events = sorted(store.by_event.items(), key=lambda kv: -kv[1])
    reasons = list(store.discarded.items())
    traces = [
        {"type": "bar", "name": "stored", "x": [n for _, n in events], "y": [e for e, _ in events],
         "orientation": "h", "marker": {"color": _color(0)},
         "hovertemplate": "%{y}: %{x:,} stored<extra></extra>",
         "meta": {"role": "store", "rows": list(range(len(events)))}},
    ]
    if reasons:
        traces.append({
            "type": "bar", "name": "discarded", "x": [n for _, n in reasons],
            "y": [f"discarded: {r}" for r, _ in reasons], "orientation": "h",
            "marker": {"color": SUPPRESSED_COLOR},
            "hovertemplate": "%{y}: %{x:,}<extra></extra>",
            "meta": {"role": "store", "rows": list(range(len(events), len(events) + len(reasons)))},
        })
    rows = [(_txt(e), _txt("stored"), _num(n)) for e, n in events]
    rows += [(_txt(r), _txt("discarded"), _num(n)) for r, n in reasons]
    rows.append((_txt("all events"), _txt("stored"), _num(store.stored)))
    return Chart(
        id="store", section="store", title="Events in the store",
        subtitle=f"{fmt_number(store.stored)} stored, {fmt_number(store.discarded_total)} "
                 "discarded (consent, schema, duplicates…)",
        figure=_figure(traces, {"height": max(240, 60 + 28 * (len(events) + len(reasons))),
                                "margin": {"l": 170}, "barmode": "overlay",
                                "yaxis": {"type": "category", "autorange": "reversed"},
                                "xaxis": {"title": {"text": "events"}}}),
        table=Table(caption="Store statistics", headers=("event / reason", "kind", "events"),
                    rows=tuple(rows)))


def build_charts(data: DashboardData) -> list[Chart]:
    """Every chart of the dashboard, in page order: DP metrics, budget, risk, store."""
    charts: list[Chart] = []
    for i, result in enumerate(data.results):
        charts += result_charts(result, i)
    if data.budgets:
        charts.append(_budget_chart(data))
    if data.risk is not None:
        charts += _risk_charts(data)
    if data.store is not None:
        charts.append(_store_chart(data))
    return charts
