"""The report spec: a small YAML (or JSON) file naming what a dashboard shows.

::

    title: Weekly product report            # optional
    results:                                # DP result JSON files, rendered as they are
      - results/active_users.json           #   a path (globs allowed: results/*.json)
      - path: results/load_time.json        #   or {path, title}
        title: Screen load time
    queries:                                # optional; run through anonymetry.analytics,
      - title: Sessions per day             #   which spends budget in the ledger first
        source: data                        #   store dir, or a Parquet/CSV table
        unit: user                          #   privacy unit (default: the policy's)
        metric: count                       #   count, users, mean:FIELD, p90:FIELD… or a list
        by: [day, platform]
        epsilon: 0.5
        delta: 1.0e-6                       #   optional, as are the keys below
        analyst: alice                      #   with `ledger` (top level, or per query)
        options: {max_partitions: 5}        #   QuerySpec fields: max_per_partition,
                                            #   clamp [lo, hi], min_cohort, public_partitions…
    risk: risk.json                         # a risk assessment JSON (`anonymetry risk --json`)
    ledger: ledger                          # a ledger dir: budget per dataset/analyst, read-only
    budget: budget.json                     # …or `anonymetry budget show --json` saved to a file
    store: data                             # a data dir (--data): store counters, read-only
    store_stats: store_stats.json           # …or those statistics saved to a file

Relative paths are relative to the spec file. Every key is optional but a spec must name at
least one input. The report renders what it is given: the only privacy-relevant computation it
triggers is a ``queries`` entry, and that goes through the analytics API (bounded, noised,
spent in the ledger) exactly as ``anonymetry query`` would. A served dashboard never runs
queries (:func:`build_dashboard` with ``allow_queries=False``).
"""

from __future__ import annotations

import glob
import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from anonymetry.errors import InvalidParameter
from anonymetry.report.model import (
    BudgetLine,
    DashboardData,
    DPResult,
    RiskAssessment,
    StoreStats,
    load_json,
    parse_budget,
    parse_result,
    parse_risk,
    parse_store_stats,
)

__all__ = ["QuerySpec", "ReportSpec", "ResultRef", "build_dashboard", "load_spec", "parse_spec"]

_TOP_KEYS = ("title", "results", "queries", "risk", "ledger", "budget", "store", "store_stats")
_QUERY_KEYS = ("title", "source", "unit", "metric", "by", "epsilon", "delta", "analyst",
               "ledger", "dataset", "options")


@dataclass(frozen=True, slots=True, kw_only=True)
class ResultRef:
    """A DP result file to render (``title`` overrides the one in the file)."""

    path: Path
    title: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class QuerySpec:
    """A query the report asks :mod:`anonymetry.analytics` to run (it spends budget)."""

    title: str | None
    source: Path
    metrics: tuple[str, ...]
    by: tuple[str, ...]
    epsilon: float
    delta: float | None = None
    unit: str | None = None
    analyst: str | None = None
    ledger: Path | None = None
    dataset: str | None = None
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportSpec:
    """A checked report spec with absolute paths. Build with :func:`load_spec`."""

    source: str
    title: str = "anonymetry report"
    results: tuple[ResultRef, ...] = ()
    queries: tuple[QuerySpec, ...] = ()
    risk: Path | None = None
    ledger: Path | None = None
    budget: Path | None = None
    store: Path | None = None
    store_stats: Path | None = None


def _problem_list(problems: list[str], source: str) -> None:
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise InvalidParameter(
            f"{source}: {len(problems)} problem(s) in the report spec; see the spec format in "
            f"`anonymetry report --help`\n{lines}")


def parse_spec(data: Any, *, base: Path, source: str = "report spec") -> ReportSpec:
    """Check a spec (already parsed from YAML/JSON), resolving paths against ``base``."""
    problems: list[str] = []
    if not isinstance(data, Mapping):
        _problem_list(["$: expected a mapping with results, queries, risk, ledger, store…"],
                      source)
    for key in data:
        if key not in _TOP_KEYS:
            problems.append(f"{key}: unknown key; expected one of {', '.join(_TOP_KEYS)}")

    def path_of(value: Any, where: str, *, must_exist: bool = True) -> Path | None:
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            problems.append(f"{where}: expected a path")
            return None
        p = (base / value).resolve() if not Path(value).is_absolute() else Path(value)
        if must_exist and not p.exists():
            problems.append(f"{where}: {value} does not exist (relative paths are relative "
                            "to the spec file)")
        return p

    title = data.get("title", "anonymetry report")
    if not isinstance(title, str):
        problems.append("title: expected a string")
        title = "anonymetry report"

    results: list[ResultRef] = []
    raw_results = data.get("results") or []
    if not isinstance(raw_results, list):
        problems.append("results: expected a list of paths or {path, title}")
        raw_results = []
    for i, item in enumerate(raw_results):
        where = f"results[{i}]"
        item_title = None
        if isinstance(item, Mapping):
            item_title = item.get("title")
            if item_title is not None and not isinstance(item_title, str):
                problems.append(f"{where}.title: expected a string")
                item_title = None
            item = item.get("path")
            where += ".path"
        if not isinstance(item, str) or not item:
            problems.append(f"{where}: expected a path")
            continue
        if glob.has_magic(item):
            pattern = str(base / item) if not Path(item).is_absolute() else item
            matches = sorted(glob.glob(pattern))
            if not matches:
                problems.append(f"{where}: no file matches {item}")
            results += [ResultRef(path=Path(m).resolve(), title=item_title) for m in matches]
            continue
        p = path_of(item, where)
        if p is not None:
            results.append(ResultRef(path=p, title=item_title))

    queries: list[QuerySpec] = []
    raw_queries = data.get("queries") or []
    if not isinstance(raw_queries, list):
        problems.append("queries: expected a list")
        raw_queries = []
    default_ledger = path_of(data.get("ledger"), "ledger", must_exist=False)
    for i, q in enumerate(raw_queries):
        where = f"queries[{i}]"
        if not isinstance(q, Mapping):
            problems.append(f"{where}: expected a mapping")
            continue
        for key in q:
            if key not in _QUERY_KEYS:
                problems.append(f"{where}.{key}: unknown key; expected one of "
                                f"{', '.join(_QUERY_KEYS)}")
        src = path_of(q.get("source"), f"{where}.source")
        if "source" not in q:
            problems.append(f"{where}.source: missing (a store dir or a Parquet/CSV table)")
        metric = q.get("metric")
        metrics = [metric] if isinstance(metric, str) else metric
        if (not isinstance(metrics, list) or not metrics
                or not all(isinstance(m, str) and m for m in metrics)):
            problems.append(f"{where}.metric: expected a metric (count, users, mean:FIELD, "
                            "p90:FIELD…) or a list of them")
            metrics = None
        by = q.get("by") or []
        if isinstance(by, str):
            by = [by]
        if not isinstance(by, list) or not all(isinstance(c, str) for c in by):
            problems.append(f"{where}.by: expected a list of column names")
            by = []
        eps = q.get("epsilon")
        if isinstance(eps, bool) or not isinstance(eps, int | float) or not 0 < eps < 1e6:
            problems.append(f"{where}.epsilon: expected a number > 0")
            eps = None
        delta = q.get("delta")
        if delta is not None and (isinstance(delta, bool) or not isinstance(delta, int | float)
                                  or not 0 <= delta < 1):
            problems.append(f"{where}.delta: expected a number in [0, 1)")
            delta = None
        options = q.get("options") or {}
        if not isinstance(options, Mapping):
            problems.append(f"{where}.options: expected a mapping")
            options = {}
        ledger = path_of(q.get("ledger"), f"{where}.ledger", must_exist=False) or default_ledger
        if src is None or metrics is None or eps is None:
            continue
        queries.append(QuerySpec(
            title=q.get("title") if isinstance(q.get("title"), str) else None,
            source=src, metrics=tuple(metrics), by=tuple(by), epsilon=float(eps),
            delta=float(delta) if delta is not None else None,
            unit=str(q["unit"]) if q.get("unit") else None, analyst=q.get("analyst"),
            ledger=ledger,
            dataset=q.get("dataset"), options=MappingProxyType(dict(options)),
        ))

    spec = ReportSpec(
        source=source, title=title, results=tuple(results), queries=tuple(queries),
        risk=path_of(data.get("risk"), "risk"),
        ledger=path_of(data.get("ledger"), "ledger"),
        budget=path_of(data.get("budget"), "budget"),
        store=path_of(data.get("store"), "store"),
        store_stats=path_of(data.get("store_stats"), "store_stats"),
    )
    if not problems and not any((spec.results, spec.queries, spec.risk, spec.ledger, spec.budget,
                                 spec.store, spec.store_stats)):
        problems.append("$: names no input; add results, queries, risk, ledger or store")
    _problem_list(problems, source)
    return spec


def load_spec(path: str | Path) -> ReportSpec:
    """Read and check a report spec file (YAML or JSON)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidParameter(f"{p}: report spec not found; pass the path of a YAML file "
                               "naming results, risk, ledger or store") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise InvalidParameter(f"{p}: not valid YAML{where}; fix the spec file") from None
    return parse_spec(data, base=p.parent.resolve(), source=str(p))


# --------------------------------------------------------------------------- inputs from parts


def _api(module: str, name: str, what: str) -> Any:
    """A public function of another part, or a clear error saying it is not available."""
    try:
        mod = importlib.import_module(module)
    except ImportError:
        mod = None
    fn = getattr(mod, name, None)
    if fn is None:
        raise InvalidParameter(
            f"report spec: {what} needs {module}.{name}, which this installation does not "
            f"provide; give the saved JSON instead (see `anonymetry report --help`)")
    return fn


def _ledger_lines(ledger: Path) -> tuple[BudgetLine, ...]:
    """The ledger's state through the analytics API (``BudgetLedger.show()``), read-only."""
    ledger_cls = _api("anonymetry.analytics", "BudgetLedger", "a ledger dir")
    from anonymetry.analytics.ledger import LEDGER_FILE

    if not (ledger / LEDGER_FILE).exists():
        raise InvalidParameter(f"report spec: ledger: {ledger} holds no {LEDGER_FILE}; point it "
                               "at the --ledger DIR your queries spend from")
    return parse_budget(ledger_cls(ledger).show(), source=ledger.name)


def _store_stats(store: Path) -> StoreStats:
    """The store's own counters (stored per event, discarded per reason), read-only."""
    if not (store / "keys").is_dir():
        raise InvalidParameter(f"report spec: store: {store} is not a data dir (no keys/); "
                               "point it at the collector's --data DIR")
    stats = _api("anonymetry.ingest.reader", "store_stats", "a store dir")
    from anonymetry.privacy import LocalKeyring

    return parse_store_stats(stats(store, LocalKeyring(store / "keys")), source=store.name)


def _query_source(path: Path) -> Any:
    """An analytics ``Source``: a Parquet or CSV file (or glob), or a data dir (the store)."""
    from anonymetry.analytics import Source, SourceKind

    if path.is_dir() and (path / "keys").is_dir():
        from anonymetry.ingest.reader import open_reader
        from anonymetry.privacy import LocalKeyring

        reader = open_reader(path, LocalKeyring(path / "keys"))
        return Source(kind=SourceKind.STORE, obj=reader, name="events")
    kind = SourceKind.CSV if path.suffix.lower() == ".csv" else SourceKind.PARQUET
    return Source(kind=kind, path=str(path), name=path.stem)


def _run_query(q: QuerySpec) -> DPResult:
    """Run one query through the analytics API; the ledger is debited there, before noise."""
    run = _api("anonymetry.analytics", "run_query", "a query")
    from anonymetry.analytics import BudgetLedger
    from anonymetry.analytics import QuerySpec as AnalyticsQuery

    options: dict[str, Any] = dict(q.options)
    clamp = options.get("clamp")
    if isinstance(clamp, list | tuple) and len(clamp) == 2:
        from anonymetry.privacy.units import ClampRange

        options["clamp"] = ClampRange(lo=float(clamp[0]), hi=float(clamp[1]))
    if q.unit is not None:
        options["unit"] = q.unit
    spec = AnalyticsQuery.build(metrics=list(q.metrics), by=list(q.by), epsilon=q.epsilon,
                                delta=q.delta or 0.0, **options)
    ledger = BudgetLedger(q.ledger) if q.ledger is not None else None
    result = run(spec, _query_source(q.source), ledger=ledger, analyst=q.analyst,
                 dataset=q.dataset)
    obj = result.to_dict() if hasattr(result, "to_dict") else result
    return parse_result(obj, source=f"query on {q.source.name}", title=q.title)


def build_dashboard(spec: ReportSpec, *, allow_queries: bool = True,
                    extra_results: Sequence[DPResult] = ()) -> DashboardData:
    """Assemble a :class:`DashboardData` from a spec: read the result, risk, budget and store
    JSON it names; read the ledger and store through their parts' APIs; and, only when
    ``allow_queries``, run its queries through the analytics API (spending budget)."""
    if spec.queries and not allow_queries:
        raise InvalidParameter(
            f"{spec.source}: this spec runs queries, which spend privacy budget; a served "
            "dashboard only renders saved results — run `anonymetry report` to save them, "
            "then list the JSON files under `results`")
    results = [parse_result(load_json(r.path), source=r.path.name, title=r.title)
               for r in spec.results]
    results += [_run_query(q) for q in spec.queries]
    results += list(extra_results)
    budgets: tuple[BudgetLine, ...] = ()
    if spec.budget is not None:
        budgets = parse_budget(load_json(spec.budget), source=spec.budget.name)
    elif spec.ledger is not None:
        budgets = _ledger_lines(spec.ledger)
    risk: RiskAssessment | None = None
    if spec.risk is not None:
        risk = parse_risk(load_json(spec.risk), source=spec.risk.name)
    store: StoreStats | None = None
    if spec.store_stats is not None:
        store = parse_store_stats(load_json(spec.store_stats), source=spec.store_stats.name)
    elif spec.store is not None:
        store = _store_stats(spec.store)
    return DashboardData.build(title=spec.title, results=results, budgets=budgets, risk=risk,
                               store=store)
