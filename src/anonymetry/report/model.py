"""The typed content of a dashboard, read from the JSON the other parts release.

A report renders numbers it is given and never recomputes anything privacy-relevant: every
value, noise scale and CI shown comes from a DP result (issue 4's JSON), every budget figure
from the ledger, every risk figure from a risk assessment (issue 5's JSON), every count from
the store's own statistics. This module only checks shapes and freezes them.

Parsing is at the boundary (STYLE §10): ``parse_*`` collect *every* problem with its path
(``results[2].rows[5].ci95: expected [lo, hi] with lo ≤ hi``) and raise one
:class:`~anonymetry.errors.InvalidParameter`; messages never echo a partition key or a value.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from types import MappingProxyType
from typing import Any

import orjson

from anonymetry.errors import InvalidParameter

__all__ = [
    "BudgetLine",
    "DPResult",
    "DashboardData",
    "GateCheck",
    "MetricRow",
    "RiskAssessment",
    "StoreStats",
    "Suppression",
    "TraceUniqueness",
    "Verdict",
    "load_json",
    "parse_budget",
    "parse_result",
    "parse_risk",
    "parse_store_stats",
]

Scalar = str | int | float | bool | None


class _Problems:
    """Collects problems with their paths; raises them all at once."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.items: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.items.append(f"{path}: {message}")

    def raise_if_any(self, what: str) -> None:
        if self.items:
            lines = "\n".join(f"  - {p}" for p in self.items)
            raise InvalidParameter(
                f"{self.source}: {len(self.items)} problem(s) in the {what}; fix the file "
                f"that produced it or point the report at the right one\n{lines}"
            )

    def number(self, value: Any, path: str, *, optional: bool = False,
               nonneg: bool = False) -> float | None:
        """A finite number (int, float or an exact decimal/fraction string such as ``"1/2"``)."""
        if value is None and optional:
            return None
        if isinstance(value, bool) or value is None:
            self.add(path, "expected a number")
            return None
        if isinstance(value, int | float):
            out = float(value)
        elif isinstance(value, str):
            try:
                out = float(Fraction(value.strip()))
            except (ValueError, ZeroDivisionError):
                self.add(path, "expected a number or an exact numeric string")
                return None
        else:
            self.add(path, f"expected a number, got {type(value).__name__}")
            return None
        if not math.isfinite(out):
            self.add(path, "expected a finite number")
            return None
        if nonneg and out < 0:
            self.add(path, "expected a number ≥ 0")
            return None
        return out

    def count(self, value: Any, path: str) -> int | None:
        out = self.number(value, path, nonneg=True)
        if out is None:
            return None
        if out != int(out):
            self.add(path, "expected a whole count")
            return None
        return int(out)


def _freeze(value: Any) -> Any:
    """Deep-freeze plain JSON data (dicts → read-only mappings, lists → tuples)."""
    if isinstance(value, Mapping):
        return MappingProxyType({str(k): _freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


def load_json(path: str | Path) -> Any:
    """Read a JSON file, turning a missing or malformed file into an actionable error."""
    p = Path(path)
    try:
        return orjson.loads(p.read_bytes())
    except FileNotFoundError:
        raise InvalidParameter(f"{p}: file not found; check the path in the report spec") from None
    except orjson.JSONDecodeError as exc:
        raise InvalidParameter(f"{p}: not valid JSON ({exc}); regenerate it with --json") from None


# --------------------------------------------------------------------------- DP results


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricRow:
    """One released value: its partition (``by``), metric, noisy value, noise scale and CI95.

    ``value`` is ``None`` when the row was suppressed after DP (minimum-cohort suppression); the
    row then still says which public partition it was, so a chart can mark it.
    """

    by: Mapping[str, Scalar]
    metric: str
    value: float | None
    noise_scale: float | None
    ci95: tuple[float, float] | None
    suppressed: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "by": dict(self.by), "metric": self.metric, "value": self.value,
            "noise_scale": self.noise_scale,
            "ci95": list(self.ci95) if self.ci95 is not None else None,
        }
        if self.suppressed:
            out["suppressed"] = True
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Suppression:
    """Partitions withheld by private partition selection: how many and at which threshold.

    ``keys`` holds partition keys only when they are public (declared in advance); keys
    derived from the data are never listed, by design of the producer.
    """

    count: int
    threshold: float | None = None
    keys: tuple[Mapping[str, Scalar], ...] = ()
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "threshold": self.threshold,
                "keys": [dict(k) for k in self.keys], "note": self.note}


@dataclass(frozen=True, slots=True, kw_only=True)
class DPResult:
    """One DP result as released by ``anonymetry.analytics`` (issue 4's JSON), unchanged.

    ``extra`` keeps every other key of the JSON (mechanism, bounding bias, ledger entry...)
    so the report can show it without this module having to know it.
    """

    title: str
    source: str
    epsilon: float
    delta: float
    unit: str
    bounds: Mapping[str, Any]
    rows: tuple[MetricRow, ...]
    suppressed: Suppression
    budget_spent: float | None = None
    budget_remaining: float | None = None
    extra: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def by_columns(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for row in self.rows:
            for col in row.by:
                seen.setdefault(col, None)
        return tuple(seen)

    @property
    def metrics(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(row.metric for row in self.rows))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "title": self.title, "source": self.source, "epsilon": self.epsilon,
            "delta": self.delta, "unit": self.unit, "bounds": _thaw(self.bounds),
            "rows": [r.to_dict() for r in self.rows],
            "suppressed_partitions": self.suppressed.to_dict(),
        }
        if self.budget_spent is not None or self.budget_remaining is not None:
            out["budget"] = {"spent": self.budget_spent, "remaining": self.budget_remaining}
        if self.extra:
            out["extra"] = _thaw(self.extra)
        return out


_RESULT_KEYS = frozenset(
    {"epsilon", "delta", "unit", "bounds", "rows", "suppressed_partitions", "budget", "title"})


def _parse_by(value: Any, path: str, problems: _Problems) -> Mapping[str, Scalar]:
    if value is None:
        return MappingProxyType({})
    if not isinstance(value, Mapping):
        problems.add(path, "expected an object {column: value}")
        return MappingProxyType({})
    out: dict[str, Scalar] = {}
    for col, v in value.items():
        if not isinstance(v, str | int | float | bool) and v is not None:
            problems.add(f"{path}.{col}", "expected a string, number, boolean or null")
            continue
        out[str(col)] = v
    return MappingProxyType(out)


def _parse_suppression(value: Any, path: str, problems: _Problems) -> Suppression:
    if value is None:
        return Suppression(count=0)
    if isinstance(value, list):  # public partition keys that were withheld
        keys = tuple(_parse_by(k, f"{path}[{i}]", problems) for i, k in enumerate(value))
        return Suppression(count=len(keys), keys=keys)
    if isinstance(value, Mapping):
        count = problems.count(value.get("count", 0), f"{path}.count") or 0
        threshold = problems.number(value.get("threshold"), f"{path}.threshold", optional=True)
        raw_keys = value.get("keys") or value.get("partitions") or []
        if not isinstance(raw_keys, list):
            problems.add(f"{path}.keys", "expected a list of {column: value} objects")
            raw_keys = []
        keys = tuple(_parse_by(k, f"{path}.keys[{i}]", problems) for i, k in enumerate(raw_keys))
        note = value.get("note")
        return Suppression(count=max(count, len(keys)), threshold=threshold, keys=keys,
                           note=note if isinstance(note, str) else None)
    count = problems.count(value, path)
    return Suppression(count=count or 0)


def _budget_amount(value: Any, path: str, problems: _Problems) -> float | None:
    """A budget figure: a number, an exact string, or ``{"epsilon": x, ...}``."""
    if isinstance(value, Mapping):
        return problems.number(value.get("epsilon"), f"{path}.epsilon", nonneg=True)
    return problems.number(value, path, optional=True, nonneg=True)


def parse_result(obj: Any, *, source: str = "result", title: str | None = None) -> DPResult:
    """Check and freeze one DP result (issue 4's JSON keys) without changing any number."""
    problems = _Problems(source)
    if not isinstance(obj, Mapping):
        problems.add("$", "expected a JSON object with epsilon, delta, unit, bounds and rows")
        problems.raise_if_any("DP result")
    for key in ("epsilon", "unit", "rows"):
        if key not in obj:
            problems.add(key, "missing (a DP result states its guarantee and its rows)")
    epsilon = problems.number(obj.get("epsilon"), "epsilon", nonneg=True)
    delta = problems.number(obj.get("delta", 0.0), "delta", nonneg=True)
    if delta is not None and delta >= 1:
        problems.add("delta", "expected δ < 1")
    unit = obj.get("unit")
    if isinstance(unit, Mapping):  # analytics' {kind, column, protects, units_per_person}
        kind = unit.get("kind") or unit.get("column") or "?"
        per = unit.get("units_per_person")
        unit = f"{kind}" + (f" (a person counts as {per} units)" if per and per != 1 else "")
    elif not isinstance(unit, str) and "unit" in obj:
        problems.add("unit", "expected a string (or {kind, column}) naming the privacy unit")
    bounds = obj.get("bounds") or {}
    if not isinstance(bounds, Mapping):
        problems.add("bounds", "expected an object")
        bounds = {}
    rows: list[MetricRow] = []
    raw_rows = obj.get("rows", [])
    if not isinstance(raw_rows, list):
        problems.add("rows", "expected a list")
        raw_rows = []
    for i, raw in enumerate(raw_rows):
        path = f"rows[{i}]"
        if not isinstance(raw, Mapping):
            problems.add(path, "expected an object")
            continue
        by = _parse_by(raw.get("by"), f"{path}.by", problems)
        metric = raw.get("metric")
        if not isinstance(metric, str) or not metric:
            problems.add(f"{path}.metric", "expected the metric's name")
            metric = "?"
        suppressed = bool(raw.get("suppressed", False)) or raw.get("value") is None
        value = problems.number(raw.get("value"), f"{path}.value", optional=True)
        scale = problems.number(raw.get("noise_scale"), f"{path}.noise_scale", optional=True,
                                nonneg=True)
        ci: tuple[float, float] | None = None
        raw_ci = raw.get("ci95")
        if raw_ci is not None:
            if not isinstance(raw_ci, list | tuple) or len(raw_ci) != 2:
                problems.add(f"{path}.ci95", "expected [lo, hi]")
            else:
                lo = problems.number(raw_ci[0], f"{path}.ci95[0]")
                hi = problems.number(raw_ci[1], f"{path}.ci95[1]")
                if lo is not None and hi is not None:
                    if lo > hi:
                        problems.add(f"{path}.ci95", "expected [lo, hi] with lo ≤ hi")
                    else:
                        ci = (lo, hi)
        rows.append(MetricRow(by=by, metric=metric, value=value, noise_scale=scale, ci95=ci,
                              suppressed=suppressed))
    suppression = _parse_suppression(obj.get("suppressed_partitions"), "suppressed_partitions",
                                     problems)
    spent = remaining = None
    budget = obj.get("budget")
    if budget is not None:
        if not isinstance(budget, Mapping):
            problems.add("budget", "expected {spent, remaining}")
        else:
            spent = _budget_amount(budget.get("spent"), "budget.spent", problems)
            remaining = _budget_amount(budget.get("remaining"), "budget.remaining", problems)
    problems.raise_if_any("DP result")
    assert epsilon is not None  # checked above
    assert delta is not None
    name = title or (obj.get("title") if isinstance(obj.get("title"), str) else None)
    if not name:
        metrics = ", ".join(dict.fromkeys(r.metric for r in rows)) or "result"
        cols = ", ".join(dict.fromkeys(c for r in rows for c in r.by))
        name = f"{metrics} by {cols}" if cols else metrics
    extra = {k: v for k, v in obj.items() if k not in _RESULT_KEYS}
    return DPResult(
        title=name, source=source, epsilon=epsilon, delta=delta, unit=str(unit),
        bounds=_freeze(bounds), rows=tuple(rows), suppressed=suppression,
        budget_spent=spent, budget_remaining=remaining, extra=_freeze(extra),
    )


# --------------------------------------------------------------------------- budget ledger


@dataclass(frozen=True, slots=True, kw_only=True)
class BudgetLine:
    """The ledger's state for one dataset and analyst (and period, if the policy has one)."""

    dataset: str
    analyst: str
    spent: float
    remaining: float | None
    granted: float | None = None
    delta_spent: float | None = None
    delta_remaining: float | None = None
    period: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "analyst": self.analyst, "period": self.period,
                "granted": self.granted, "spent": self.spent, "remaining": self.remaining,
                "delta_spent": self.delta_spent, "delta_remaining": self.delta_remaining}


def _delta_of(value: Any, path: str, problems: _Problems) -> float | None:
    if isinstance(value, Mapping) and "delta" in value:
        return problems.number(value["delta"], f"{path}.delta", nonneg=True)
    return None


def parse_budget(obj: Any, *, source: str = "ledger") -> tuple[BudgetLine, ...]:
    """Ledger state as ``anonymetry budget show --json`` prints it.

    Accepted: a list of entries, or an object holding one under ``entries``/``budgets``/
    ``ledger``. Each entry names ``dataset`` and ``analyst`` and gives ``spent`` and
    ``remaining`` (and optionally ``granted``, ``period``), each a number, an exact numeric
    string, or ``{"epsilon": x, "delta": y}``. The report shows these; it sums nothing.
    """
    problems = _Problems(source)
    entries: Any = obj
    grants: list[Any] = []
    if isinstance(obj, Mapping):
        for key in ("entries", "budgets", "accounts"):
            if isinstance(obj.get(key), list):
                entries = list(obj[key])
                break
        else:
            problems.add("$", "expected a list of entries or an object with 'accounts'")
            entries = []
        raw_grants = obj.get("grants")
        grants = raw_grants if isinstance(raw_grants, list) else []
    if isinstance(entries, list):
        # a grant nothing has been spent from yet: spent 0, all of it left (no arithmetic)
        seen = {(e.get("dataset"), e.get("analyst")) for e in entries if isinstance(e, Mapping)}
        for g in grants:
            if isinstance(g, Mapping) and (g.get("dataset"), g.get("analyst")) not in seen:
                amount = {"epsilon": g.get("epsilon"), "delta": g.get("delta", 0)}
                entries.append({"dataset": g.get("dataset"), "analyst": g.get("analyst"),
                                "granted": amount, "spent": {"epsilon": 0, "delta": 0},
                                "remaining": amount})
    if not isinstance(entries, list):
        problems.add("entries", "expected a list")
        entries = []
    out: list[BudgetLine] = []
    for i, e in enumerate(entries):
        path = f"entries[{i}]"
        if not isinstance(e, Mapping):
            problems.add(path, "expected an object")
            continue
        names = []
        for key in ("dataset", "analyst"):
            v = e.get(key)
            if not isinstance(v, str) or not v:
                problems.add(f"{path}.{key}", "expected a name")
                v = "?"
            names.append(v)
        spent = _budget_amount(e.get("spent"), f"{path}.spent", problems)
        remaining = _budget_amount(e.get("remaining"), f"{path}.remaining", problems)
        granted = _budget_amount(e.get("granted", e.get("limit")), f"{path}.granted", problems)
        if spent is None and "spent" not in e:
            problems.add(f"{path}.spent", "missing")
        if remaining is None and "remaining" not in e and granted is None:
            # without it the report would have to subtract; the ledger does sums, not us
            problems.add(f"{path}.remaining", "missing (and no 'granted' either)")
        period = e.get("period")
        out.append(BudgetLine(
            dataset=names[0], analyst=names[1], spent=spent or 0.0,
            remaining=remaining, granted=granted,
            delta_spent=_delta_of(e.get("spent"), f"{path}.spent", problems),
            delta_remaining=_delta_of(e.get("remaining"), f"{path}.remaining", problems),
            period=str(period) if period is not None else None,
        ))
    problems.raise_if_any("ledger state")
    return tuple(out)


# --------------------------------------------------------------------------- risk


@dataclass(frozen=True, slots=True, kw_only=True)
class TraceUniqueness:
    """Share of users singled out by ``points`` random points of their trace at ``granularity``."""

    granularity: str
    points: int
    uniqueness: float
    attribute_set: str = "all"
    ci95: tuple[float, float] | None = None

    @property
    def series(self) -> str:
        """The line this point belongs to: the granularity, and the attribute set if not all."""
        if self.attribute_set == "all":
            return self.granularity
        return f"{self.granularity} ({self.attribute_set})"


@dataclass(frozen=True, slots=True, kw_only=True)
class GateCheck:
    """One release-gate threshold as :mod:`anonymetry.risk.gate` evaluated it."""

    name: str
    op: str
    threshold: float | None
    value: float | None
    passed: bool | None
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """The release gate's verdict: passed or not, which thresholds failed, every check."""

    passed: bool | None
    label: str
    failures: tuple[str, ...] = ()
    checks: tuple[GateCheck, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskAssessment:
    """A re-identification and trace risk assessment (issue 5's JSON), unchanged."""

    source: str
    k: int
    class_size_histogram: tuple[tuple[int, int], ...]
    sample_uniqueness: float | None
    population_uniqueness: Mapping[str, float]
    trace_uniqueness: tuple[TraceUniqueness, ...]
    verdict: Verdict
    extra: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source, "k": self.k,
            "class_size_histogram": [list(p) for p in self.class_size_histogram],
            "sample_uniqueness": self.sample_uniqueness,
            "population_uniqueness": dict(self.population_uniqueness),
            "trace_uniqueness": [
                {"granularity": t.granularity, "attribute_set": t.attribute_set,
                 "points": t.points, "share": t.uniqueness,
                 "ci95": list(t.ci95) if t.ci95 else None}
                for t in self.trace_uniqueness],
            "verdict": {"passed": self.verdict.passed, "label": self.verdict.label,
                        "failures": list(self.verdict.failures),
                        "checks": [{"name": c.name, "op": c.op, "threshold": c.threshold,
                                    "value": c.value, "passed": c.passed, "detail": c.detail}
                                   for c in self.verdict.checks]},
            "extra": _thaw(self.extra),
        }


_RISK_KEYS = frozenset({"source", "k", "class_size_histogram", "sample_uniqueness",
                        "population_uniqueness", "trace_uniqueness", "traces", "trace",
                        "verdict", "gate", "policy", "qi_analysis"})
_NOT_ESTIMATES = frozenset({"population", "sampling_fraction"})


def _parse_histogram(value: Any, problems: _Problems) -> tuple[tuple[int, int], ...]:
    pairs: list[tuple[Any, Any]] = []
    if isinstance(value, Mapping):
        pairs = list(value.items())
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, Mapping):
                pairs.append((item.get("size", item.get("class_size")),
                              item.get("classes", item.get("count"))))
            elif isinstance(item, list | tuple) and len(item) == 2:
                pairs.append((item[0], item[1]))
            else:
                problems.add(f"class_size_histogram[{i}]", "expected [size, classes]")
    elif value is not None:
        problems.add("class_size_histogram", "expected {size: classes} or [[size, classes]]")
    out = []
    for i, (size, n) in enumerate(pairs):
        s = problems.count(size, f"class_size_histogram[{i}].size")
        c = problems.count(n, f"class_size_histogram[{i}].classes")
        if s is not None and c is not None:
            out.append((s, c))
    return tuple(sorted(out))


def _parse_trace(value: Any, problems: _Problems) -> tuple[TraceUniqueness, ...]:
    """Trace uniqueness as a table. Accepted: ``anonymetry.risk``'s trace result
    (``{"rows": [{granularity, attribute_set, points, share, ci_low, ci_high}]}``), a bare list
    of such rows (``uniqueness`` may stand for ``share``), ``{granularity: {points: share}}``,
    or ``{granularity: share}``."""
    rows: list[tuple[Mapping[str, Any], str]] = []
    if isinstance(value, Mapping) and isinstance(value.get("rows"), list):
        value = value["rows"]
    if isinstance(value, list):
        for i, item in enumerate(value):
            if not isinstance(item, Mapping):
                problems.add(f"trace_uniqueness[{i}]", "expected an object")
                continue
            rows.append((item, f"trace_uniqueness[{i}]"))
    elif isinstance(value, Mapping):
        default_points = value.get("points", 0)
        for gran, v in value.items():
            if gran == "points":
                continue
            if isinstance(v, Mapping):
                for pts, share in v.items():
                    rows.append(({"granularity": gran, "points": pts, "share": share},
                                 f"trace_uniqueness.{gran}.{pts}"))
            else:
                rows.append(({"granularity": gran, "points": default_points, "share": v},
                             f"trace_uniqueness.{gran}"))
    elif value is not None:
        problems.add("trace_uniqueness", "expected a list of {granularity, points, share}")
    out = []
    for item, path in rows:
        p = problems.count(item.get("points", 0), f"{path}.points")
        share = item.get("share", item.get("uniqueness"))
        u = problems.number(share, f"{path}.share", nonneg=True)
        ci: tuple[float, float] | None = None
        if item.get("ci_low") is not None and item.get("ci_high") is not None:
            lo = problems.number(item["ci_low"], f"{path}.ci_low")
            hi = problems.number(item["ci_high"], f"{path}.ci_high")
            if lo is not None and hi is not None:
                ci = (lo, hi)
        if u is not None and u > 1:
            problems.add(f"{path}.share", "expected a share in [0, 1]")
        elif p is not None and u is not None:
            out.append(TraceUniqueness(
                granularity=str(item.get("granularity", "?")), points=p, uniqueness=u,
                attribute_set=str(item.get("attribute_set") or "all"), ci95=ci))
    return tuple(out)


def _fmt_check(c: GateCheck) -> str:
    """``0.31 > 0.05 (limit ≤ 0.05)`` — what a failed or passed check measured."""
    if c.value is None:
        return f"not evaluated{': ' + c.detail if c.detail else ''}"
    limit = "?" if c.threshold is None else f"{c.threshold:.6g}"
    return f"measured {c.value:.6g}, required {c.op} {limit}" + (
        f" ({c.detail})" if c.detail else "")


def _parse_verdict(value: Any, problems: _Problems) -> Verdict:
    if value is None:
        return Verdict(passed=None, label="not assessed")
    if isinstance(value, bool):
        return Verdict(passed=value, label="pass" if value else "fail")
    if isinstance(value, str):
        low = value.strip().lower()
        passed = True if low in {"pass", "passed", "ok", "safe", "release"} else (
            False if low in {"fail", "failed", "blocked", "risky", "block"} else None)
        return Verdict(passed=passed, label=value)
    if isinstance(value, Mapping):
        raw = value.get("passed", value.get("ok", value.get("pass")))
        passed = raw if isinstance(raw, bool) else None
        failures_raw = value.get("failures", value.get("failed", value.get("exceeded", [])))
        failures: list[str] = []
        if isinstance(failures_raw, list):
            for f in failures_raw:
                if isinstance(f, Mapping):
                    name = f.get("threshold", f.get("name", f.get("measure", "?")))
                    msg = f.get("message")
                    failures.append(str(msg) if msg else str(name))
                else:
                    failures.append(str(f))
        checks: list[GateCheck] = []
        raw_checks = value.get("checks") or []
        if not isinstance(raw_checks, list):
            problems.add("verdict.checks", "expected a list")
            raw_checks = []
        for i, c in enumerate(raw_checks):
            where = f"verdict.checks[{i}]"
            if not isinstance(c, Mapping) or not isinstance(c.get("name"), str):
                problems.add(where, "expected {name, op, threshold, value, passed}")
                continue
            ok = c.get("passed")
            checks.append(GateCheck(
                name=c["name"], op=str(c.get("op", "")),
                threshold=problems.number(c.get("threshold"), f"{where}.threshold",
                                          optional=True),
                value=problems.number(c.get("value"), f"{where}.value", optional=True),
                passed=ok if isinstance(ok, bool) else None, detail=str(c.get("detail") or "")))
        if not failures:
            failures = [f"{c.name}: {_fmt_check(c)}" for c in checks if c.passed is False]
        label = value.get("label", value.get("verdict", value.get("status")))
        if not isinstance(label, str):
            label = {True: "pass", False: "fail", None: "unknown"}[passed]
        if passed is None and isinstance(label, str):
            passed = _parse_verdict(label, problems).passed
        return Verdict(passed=passed, label=label, failures=tuple(failures),
                       checks=tuple(checks))
    problems.add("verdict", "expected a string, a boolean or {passed, failures}")
    return Verdict(passed=None, label="unknown")


def parse_risk(obj: Any, *, source: str = "risk") -> RiskAssessment:
    """Check and freeze a risk assessment (issue 5's JSON keys) without changing any number."""
    problems = _Problems(source)
    if not isinstance(obj, Mapping):
        problems.add("$", "expected a JSON object with k, class_size_histogram, ...")
        problems.raise_if_any("risk assessment")
    if isinstance(obj.get("table"), Mapping):  # `anonymetry check`'s report: flatten it
        obj = {**obj["table"], **{k_: v for k_, v in obj.items() if k_ != "table"}}
    if "k" not in obj:
        problems.add("k", "missing")
    k = problems.count(obj.get("k"), "k")
    hist = _parse_histogram(obj.get("class_size_histogram"), problems)
    su = problems.number(obj.get("sample_uniqueness"), "sample_uniqueness", optional=True,
                         nonneg=True)
    pu: dict[str, float] = {}
    raw_pu = obj.get("population_uniqueness")
    if isinstance(raw_pu, Mapping):
        for name, v in raw_pu.items():
            if name in _NOT_ESTIMATES or isinstance(v, str):
                continue  # population size, sampling fraction, the chosen model's name
            x = problems.number(v, f"population_uniqueness.{name}", optional=True, nonneg=True)
            if x is not None:
                pu[str(name)] = x
    elif raw_pu is not None:
        x = problems.number(raw_pu, "population_uniqueness", nonneg=True)
        if x is not None:
            pu["estimate"] = x
    trace = _parse_trace(obj.get("trace_uniqueness", obj.get("traces", obj.get("trace"))),
                         problems)
    verdict = _parse_verdict(obj.get("verdict", obj.get("gate")), problems)
    problems.raise_if_any("risk assessment")
    extra = {k_: v for k_, v in obj.items() if k_ not in _RISK_KEYS}
    described = obj.get("source")
    return RiskAssessment(
        source=described if isinstance(described, str) and described else source, k=k or 0,
        class_size_histogram=hist, sample_uniqueness=su,
        population_uniqueness=MappingProxyType(pu), trace_uniqueness=trace, verdict=verdict,
        extra=_freeze(extra),
    )


# --------------------------------------------------------------------------- store


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreStats:
    """What the store holds: events stored, per event name, and discarded per reason."""

    stored: int
    by_event: Mapping[str, int]
    discarded: Mapping[str, int]

    @property
    def discarded_total(self) -> int:
        return sum(self.discarded.values())

    def to_dict(self) -> dict[str, Any]:
        return {"stored": self.stored, "by_event": dict(self.by_event),
                "discarded": dict(self.discarded)}


def parse_store_stats(obj: Any, *, source: str = "store") -> StoreStats:
    """Store statistics: ``stored`` (int), ``by_event`` {event: int}, ``discarded`` (an int or
    {reason: int}, e.g. ``consent``, ``schema``, ``duplicate``)."""
    problems = _Problems(source)
    if not isinstance(obj, Mapping):
        problems.add("$", "expected a JSON object with stored, by_event, discarded")
        problems.raise_if_any("store statistics")
    stored = problems.count(obj.get("stored", 0), "stored")
    by_event: dict[str, int] = {}
    raw = obj.get("by_event") or {}
    if not isinstance(raw, Mapping):
        problems.add("by_event", "expected {event: count}")
        raw = {}
    for name, v in raw.items():
        n = problems.count(v, f"by_event.{name}")
        if n is not None:
            by_event[str(name)] = n
    discarded: dict[str, int] = {}
    raw_d = obj.get("discarded", 0)
    if isinstance(raw_d, Mapping):
        for reason, v in raw_d.items():
            n = problems.count(v, f"discarded.{reason}")
            if n is not None:
                discarded[str(reason)] = n
    else:
        n = problems.count(raw_d, "discarded")
        if n:
            discarded["all reasons"] = n
    problems.raise_if_any("store statistics")
    return StoreStats(stored=stored or 0, by_event=MappingProxyType(by_event),
                      discarded=MappingProxyType(discarded))


# --------------------------------------------------------------------------- the dashboard


@dataclass(frozen=True, slots=True, kw_only=True)
class DashboardData:
    """Everything one dashboard shows. Build with the ``parse_*`` functions or
    :func:`anonymetry.report.build_dashboard`; render with :func:`anonymetry.report.render_html`.
    """

    title: str = "anonymetry dashboard"
    generated_at: dt.datetime = field(
        default_factory=lambda: dt.datetime.now(dt.UTC).replace(microsecond=0))
    results: tuple[DPResult, ...] = ()
    budgets: tuple[BudgetLine, ...] = ()
    risk: RiskAssessment | None = None
    store: StoreStats | None = None
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.results, tuple) or not isinstance(self.budgets, tuple):
            raise InvalidParameter("DashboardData: results and budgets must be tuples")

    @classmethod
    def build(cls, *, title: str = "anonymetry dashboard", results: Sequence[DPResult] = (),
              budgets: Sequence[BudgetLine] = (), risk: RiskAssessment | None = None,
              store: StoreStats | None = None, notes: Sequence[str] = (),
              generated_at: dt.datetime | None = None) -> DashboardData:
        kwargs: dict[str, Any] = {}
        if generated_at is not None:
            kwargs["generated_at"] = generated_at
        return cls(title=title, results=tuple(results), budgets=tuple(budgets), risk=risk,
                   store=store, notes=tuple(notes), **kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (what ``anonymetry report --json`` writes)."""
        return {
            "title": self.title,
            "generated_at": self.generated_at.isoformat(),
            "results": [r.to_dict() for r in self.results],
            "budgets": [b.to_dict() for b in self.budgets],
            "risk": self.risk.to_dict() if self.risk else None,
            "store": self.store.to_dict() if self.store else None,
            "notes": list(self.notes),
        }
