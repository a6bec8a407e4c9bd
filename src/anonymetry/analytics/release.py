"""Run a query: compile, spend, aggregate in the engine, select partitions, add noise, explain.

Order matters and is fixed here for every engine:

1. :func:`~anonymetry.analytics.compiler.compile_query` calibrates every release (no data read);
2. the ledger debits the query's loss atomically (refusal → ``BudgetExhausted``, nothing spent;
   a repeated ``query_id`` returns the stored result, never fresh noise);
3. the engine computes the bounded pre-noise aggregates;
4. partitions are selected (public list, or the threshold mechanism on noisy distinct units);
5. each component vector gets OpenDP noise once (``privacy.mechanisms``), then ratios,
   quantiles and min-cohort suppression are post-processing of released values;
6. the result is stored in the ledger and returned.

Partition selection lives here (:func:`select_partitions`) because it is the step between the
engine and the noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import orjson

from anonymetry.analytics.compiler import CompiledQuery, compile_query
from anonymetry.analytics.engines.base import Engine
from anonymetry.analytics.plan import BoundedAggregates, Source
from anonymetry.analytics.result import Result, ResultRow
from anonymetry.analytics.spec import MetricKind, QuerySpec
from anonymetry.errors import InternalError, InvalidParameter
from anonymetry.policy import Policy

__all__ = ["ALPHA", "release", "run_query", "select_partitions"]

ALPHA = 0.05  # confidence intervals are 95 %

Key = tuple[Any, ...]


def _key_str(key: Key) -> str:
    return orjson.dumps(list(key)).decode()


def select_partitions(compiled: CompiledQuery, candidates: dict[Key, dict[str, Any]]
                      ) -> tuple[list[Key], dict[Key, int] | None, dict[str, Any]]:
    """Which partitions are released, and the noisy distinct-unit counts if selection made them.

    Public list: exactly the listed keys (missing ones get zero pre-noise values). No grouping:
    the one global partition. Otherwise the threshold mechanism on the distinct-unit counts.
    """
    plan = compiled.plan
    if plan.public_partitions is not None:
        keys = [tuple(k) for k in plan.public_partitions]
        info: dict[str, Any] = {"mode": compiled.partition_mode, "listed": len(keys)}
        if compiled.partition_mode != "public":
            info["note"] = ("the partitions are the values the policy declares and/or the "
                            "time window's bins (public, no δ spent); rows whose key is not "
                            "among them are not counted")
        return keys, None, info
    if not plan.keys:
        return [()], None, {"mode": "none"}
    sel = compiled.selection
    if sel is None:
        raise InternalError("private selection without a selection mechanism")
    by_str = {_key_str(k): k for k in candidates}
    noisy = sel.release({s: int(candidates[k]["units"]) for s, k in by_str.items()})
    chosen = sorted((by_str[s] for s in noisy), key=lambda k: tuple("" if v is None else str(v)
                                                                    for v in k))
    info = {"mode": "private", "threshold": sel.threshold, "scale": sel.scale,
            "epsilon": float(sel.epsilon), "delta": float(sel.delta),
            "mechanism": "laplace_threshold (OpenDP)"}
    return chosen, {by_str[s]: int(v) for s, v in noisy.items()}, info


def _clip(x: float, lo: float, hi: float) -> float:
    return min(max(x, lo), hi)


def _ratio_interval(s: float, a_s: float, n: float, a_n: float) -> tuple[float, float] | None:
    if n - a_n <= 0:
        return None
    corners = [(s + ds) / (n + dn) for ds in (-a_s, a_s) for dn in (-a_n, a_n)]
    return min(corners), max(corners)


def _quantile(hist: Sequence[float], edges: Sequence[float], q: float) -> float:
    h = [max(0.0, x) for x in hist]
    total = sum(h)
    if total <= 0:
        return (edges[0] + edges[-1]) / 2
    target, acc = q * total, 0.0
    for i, x in enumerate(h):
        if acc + x >= target and x > 0:
            return edges[i] + (target - acc) / x * (edges[i + 1] - edges[i])
        acc += x
    return edges[-1]


def _quantile_ci(hist: Sequence[float], edges: Sequence[float], q: float, a: float
                 ) -> tuple[float, float]:
    """Conservative interval: with per-bin error ≤ a (union bound over bins), the true
    cumulative count after bin j is within ĉ_j ± j·a and the total within T̂ ± B·a."""
    n_bins = len(hist)
    cum, c = [], 0.0
    for x in hist:
        c += x
        cum.append(c)
    total = cum[-1]
    lo_i = next((j for j in range(n_bins) if cum[j] + (j + 1) * a >= q * (total - n_bins * a)),
                n_bins - 1)
    hi_i = next((j for j in range(n_bins) if cum[j] - (j + 1) * a >= q * (total + n_bins * a)),
                n_bins - 1)
    return edges[lo_i], edges[hi_i + 1]


def release(compiled: CompiledQuery, aggregates: BoundedAggregates, *, engine: str = "",
            budget: dict[str, Any] | None = None) -> Result:
    """Selection, noise and post-processing on the engine's pre-noise aggregates."""
    plan, spec, comps = compiled.plan, compiled.spec, compiled.components
    names = plan.key_names
    table = aggregates.partitions
    cols = table.column_names
    candidates: dict[Key, dict[str, Any]] = {}
    for row in table.to_pylist():
        key = tuple(row[n] for n in names)
        candidates[key] = {c: row[c] for c in cols if c not in names}
    keys, noisy_units, selection_info = select_partitions(compiled, candidates)

    def vector(col: str) -> list[Any]:
        return [(candidates.get(k, {}).get(col) or 0) for k in keys]

    noisy: dict[str, list[Any]] = {}
    for name, comp in comps.items():
        if name in ("diagnostics", "hist") or (name == "units" and noisy_units is not None):
            continue
        values = vector(name)
        if name in ("units", "rows"):
            values = [int(v) for v in values]
        noisy[name] = comp.mechanism.release(values)
    if noisy_units is not None:
        noisy["units"] = [noisy_units[k] for k in keys]

    hist_noisy: dict[Key, list[float]] = {}
    if "hist" in comps:
        htab = aggregates.histogram
        weights: dict[tuple[Key, int], float] = {}
        if htab is not None:
            for row in htab.to_pylist():
                weights[(tuple(row[n] for n in names), int(row["bin"]))] = row["weight"]
        flat = [weights.get((k, b), 0) for k in keys for b in range(plan.bins)]
        mech = comps["hist"].mechanism
        if getattr(mech, "integer", False):
            flat = [round(v) for v in flat]
        out = comps["hist"].mechanism.release(flat)
        for i, k in enumerate(keys):
            hist_noisy[k] = [float(x) for x in out[i * plan.bins:(i + 1) * plan.bins]]

    # minimum cohort: post-processing of the noisy distinct-unit counts
    suppressed: dict[str, Any] = {"min_cohort": compiled.min_cohort, "by_min_cohort": 0}
    keep = list(range(len(keys)))
    if compiled.min_cohort:
        keep = [i for i in keep if noisy["units"][i] >= compiled.min_cohort]
        suppressed["by_min_cohort"] = len(keys) - len(keep)
    if selection_info["mode"] == "private":
        suppressed["by_threshold"] = None
        suppressed["threshold"] = selection_info["threshold"]
        suppressed["note"] = ("partitions below the selection threshold are not counted: the "
                              "number of candidate groups is not differentially private")
    suppressed["count"] = suppressed["by_min_cohort"]

    rows: list[ResultRow] = []
    clamp = plan.clamp
    edges = plan.bin_edges() if clamp is not None else []
    for i in keep:
        key = keys[i]
        by = dict(zip(names, key, strict=True))
        for m in spec.metrics:
            rows.extend(_metric_rows(m, i, key, by, comps, noisy, hist_noisy, clamp, edges))

    bias = None
    if "diagnostics" in comps:
        diag = aggregates.diagnostics
        comp = comps["diagnostics"]
        if diag is None:
            raise InternalError("engine returned no diagnostics")
        f, g, n = comp.mechanism.release([diag.dropped_share_sum, diag.clamped_share_sum,
                                          float(diag.units)])
        # each of the three noisy sums is within ±a of its pre-noise value with probability
        # 1 − α/3, so both ratio intervals hold jointly with probability ≥ 1 − α (union bound)
        a = comp.mechanism.ci_halfwidth(ALPHA / 3)

        def share_ci(x: float) -> list[float]:
            r = _ratio_interval(x, a, n, a)
            return [0.0, 1.0] if r is None else [_clip(r[0], 0, 1), _clip(r[1], 0, 1)]

        dropped_ci = share_ci(f)
        clamped_ci = share_ci(g) if clamp else [0.0, 0.0]
        informative = max(dropped_ci[1] - dropped_ci[0], clamped_ci[1] - clamped_ci[0]) <= 0.5
        nn = max(n, 1.0)
        bias = {"rows_dropped_share": _clip(f / nn, 0, 1),
                "values_clamped_share": _clip(g / nn, 0, 1) if clamp else 0.0,
                "rows_dropped_ci95": dropped_ci, "values_clamped_ci95": clamped_ci,
                "informative": informative,
                "per": "unit: the mean over units of the share of a unit's rows dropped by "
                       "L0/L∞, and of its kept values clamped",
                "epsilon": float(comp.mechanism.epsilon), "noise_scale": comp.mechanism.scale}

    split = []
    rho_total = 0.0
    for comp in comps.values():
        d = comp.describe()
        if "rho" in d:
            rho_total += d["rho"]
        else:
            d.setdefault("delta", 0.0)
        split.append(d)
    if rho_total:
        from anonymetry.privacy.accountant import zcdp_to_epsilon

        dg = float(compiled.gaussian_delta)
        split.append({"component": "gaussian (all zCDP components)", "mechanism": "zcdp",
                      "rho": rho_total, "epsilon": zcdp_to_epsilon(rho_total, dg), "delta": dg,
                      "conversion": "ρ + 2√(ρ·ln(1/δ)) (Bun–Steinke 2016, Prop. 1.3)"})
    unit = {"kind": compiled.unit.value, "column": compiled.unit_column,
            "protects": compiled.unit.describes,
            "units_per_person": compiled.units_per_person}
    bounds = {**plan.bounds.to_dict(), "clamp": clamp.to_dict() if clamp else None,
              "linf_mode": plan.linf_mode.value,
              "per_person": compiled.person_bounds.to_dict()}
    return Result(
        query_id=compiled.query_id, dataset=plan.source.dataset_name,
        epsilon=float(compiled.loss.epsilon), delta=float(compiled.loss.delta), unit=unit,
        bounds=bounds, rows=tuple(rows), suppressed_partitions=suppressed,
        partition_selection=selection_info, budget_split=tuple(split),
        guarantee=compiled.guarantee(), bounding_bias=bias, budget=budget, engine=engine,
        notes=compiled.notes)


def _family(mech: Any) -> str:
    return "gaussian" if "gaussian" in mech.describe()["mechanism"] else "laplace"


def _metric_rows(m: Any, i: int, key: Key, by: dict[str, Any], comps: dict[str, Any],
                 noisy: dict[str, list[Any]], hist_noisy: dict[Key, list[float]],
                 clamp: Any, edges: list[float]) -> list[ResultRow]:
    """The rows of one metric in one partition. ``noise_scale`` semantics: see
    :class:`~anonymetry.analytics.result.ResultRow`."""
    def mech(name: str) -> Any:
        return comps[name].mechanism

    kind = m.kind
    if kind in (MetricKind.COUNT, MetricKind.USERS, MetricKind.SUM):
        name = {MetricKind.COUNT: "rows", MetricKind.USERS: "units", MetricKind.SUM: "sum"}[kind]
        v = noisy[name][i]
        a = mech(name).ci_halfwidth(ALPHA)
        return [ResultRow(by, m.label, v, mech(name).scale, (v - a, v + a),
                          mech(name).describe()["mechanism"], {name: mech(name).scale})]
    if kind is MetricKind.MEAN:
        n, s = float(noisy["rows"][i]), float(noisy["csum"][i])
        b_n, b_s = mech("rows").scale, mech("csum").scale
        a_n, a_s = mech("rows").ci_halfwidth(ALPHA / 2), mech("csum").ci_halfwidth(ALPHA / 2)
        nn = max(n, 1.0)
        value = _clip(clamp.mid + s / nn, clamp.lo, clamp.hi)
        # delta method for mid + S/N at the noisy (S, N): ∂/∂S = 1/N, ∂/∂N = −S/N²
        scale = math.hypot(b_s, (s / nn) * b_n) / nn
        r = _ratio_interval(s, a_s, n, a_n)
        lo, hi, mid = clamp.lo, clamp.hi, clamp.mid
        ci = (lo, hi) if r is None else (_clip(mid + r[0], lo, hi), _clip(mid + r[1], lo, hi))
        return [ResultRow(by, m.label, value, scale, ci,
                          f"{_family(mech('csum'))} (ratio of noisy centred sum and count)",
                          {"csum": b_s, "rows": b_n})]
    if kind is MetricKind.VARIANCE:
        n, s, sq = float(noisy["rows"][i]), float(noisy["csum"][i]), float(noisy["csq"][i])
        b_n, b_s, b_q = (mech(c).scale for c in ("rows", "csum", "csq"))
        third = ALPHA / 3
        a_n, a_s, a_q = (mech(c).ci_halfwidth(third) for c in ("rows", "csum", "csq"))
        r2 = clamp.radius ** 2
        nn = max(n, 1.0)
        value = _clip(sq / nn - (s / nn) ** 2, 0.0, r2)
        # delta method for Q/N − (S/N)²: ∂Q = 1/N, ∂S = −2S/N², ∂N = −Q/N² + 2S²/N³
        scale = math.sqrt((b_q / nn) ** 2 + (2 * s / nn ** 2 * b_s) ** 2
                          + ((-sq / nn ** 2 + 2 * s * s / nn ** 3) * b_n) ** 2)
        mean_iv = _ratio_interval(s, a_s, n, a_n)
        if mean_iv is None:
            ci = (0.0, r2)
        else:
            lo_m, hi_m = mean_iv
            m2_lo = 0.0 if lo_m <= 0 <= hi_m else min(lo_m ** 2, hi_m ** 2)
            m2_hi = max(lo_m ** 2, hi_m ** 2)
            q_lo = (sq - a_q) / ((n + a_n) if sq - a_q >= 0 else (n - a_n))
            q_hi = (sq + a_q) / (n - a_n)
            ci = (_clip(q_lo - m2_hi, 0.0, r2), _clip(q_hi - m2_lo, 0.0, r2))
        return [ResultRow(by, m.label, value, scale, ci,
                          f"{_family(mech('csq'))} (ratio of noisy moments and count)",
                          {"csq": b_q, "csum": b_s, "rows": b_n})]
    hist = hist_noisy[key]
    hm = mech("hist")
    if kind is MetricKind.QUANTILES:
        a = hm.ci_halfwidth(ALPHA / len(hist))
        out = []
        for qv in m.quantiles:
            label = f"p{qv * 100:g}({m.field})"
            out.append(ResultRow(by, label, _quantile(hist, edges, qv), hm.scale,
                                 _quantile_ci(hist, edges, qv, a),
                                 f"{_family(hm)} histogram (noise_scale is per bin count)",
                                 {"hist": hm.scale}))
        return out
    if kind is MetricKind.HISTOGRAM:
        a = hm.ci_halfwidth(ALPHA)
        out = []
        for b, v in enumerate(hist):
            label = f"[{edges[b]:g}, {edges[b + 1]:g})"
            out.append(ResultRow({**by, f"{m.field}_bin": label}, m.label, v, hm.scale,
                                 (v - a, v + a), hm.describe()["mechanism"], {"hist": hm.scale}))
        return out
    raise InternalError(f"unhandled metric {kind}")  # pragma: no cover


def run_query(spec: QuerySpec, source: Source, *, engine: Engine | None = None,
              policy: Policy | None = None, ledger: Any = None, analyst: str | None = None,
              dataset: str | None = None) -> Result:
    """Compile, spend (if a ledger is given), aggregate, release. See the module docstring."""
    if engine is None:
        from anonymetry.analytics.engines.duckdb import DuckDBEngine

        engine = DuckDBEngine()
    compiled = compile_query(spec, source, engine, policy=policy)
    budget = None
    if ledger is not None:
        if not analyst:
            raise InvalidParameter("analyst: spending from a ledger needs --analyst NAME")
        outcome = ledger.debit(query_id=compiled.query_id,
                               dataset=dataset or source.dataset_name, analyst=analyst,
                               events=compiled.events, loss=compiled.loss,
                               description=", ".join(m.label for m in spec.metrics))
        if outcome.replay is not None:
            return Result.from_dict(outcome.replay)
        budget = outcome.to_dict()
    aggregates = engine.aggregate(compiled.plan)
    result = release(compiled, aggregates, engine=engine.name, budget=budget)
    if ledger is not None:
        ledger.record_release(compiled.query_id, result.to_dict())
    if not all(math.isfinite(float(r.value)) for r in result.rows):
        raise InternalError("a released value is not finite")
    return result
