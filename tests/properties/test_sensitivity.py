"""Sensitivity properties: removing all rows of one person moves each pre-noise, bounded
aggregate by at most the sensitivity the compiler calibrates noise to.

For random tables, bounds (L0, L∞ in 1..4), clamp ranges, both L∞ modes and a fixed salt, we
run the DuckDB engine on D and on D minus every row of one person and compare, per component,
the L1 distance over all partitions (and histogram bins) with
:func:`anonymetry.analytics.compiler.sensitivities` — the very numbers the noise is scaled by.
With ``epochs`` the person appears as one pseudonym per key epoch (k units), and the bound is
the k-fold one. ``test_property_can_fail_without_bounding`` shows the check is not vacuous.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anonymetry.analytics import DuckDBEngine, LinfMode
from anonymetry.analytics.compiler import sensitivities
from anonymetry.analytics.plan import Agg, BoundedAggregates, BoundedPlan, Source, SourceKind
from anonymetry.analytics.spec import GroupKey
from anonymetry.privacy.units import ClampRange, ContributionBounds
from strategies import bounds, clamps, rows, to_table

ENGINE = DuckDBEngine(threads=1)
BINS = 4
COMPONENTS = ("units", "rows", "sum", "csum", "csq")
SLACK = 1e-9


def plan_for(table: Any, b: ContributionBounds, clamp: ClampRange, mode: LinfMode,
             salt: int, *, bounding: bool = True) -> BoundedPlan:
    return BoundedPlan(
        source=Source(SourceKind.ARROW, obj=table, name="t"), unit="user",
        keys=(GroupKey("part"),), bounds=b, clamp=clamp, value="value",
        aggs=frozenset({Agg.UNITS, Agg.ROWS, Agg.SUM, Agg.CSUM, Agg.CSQ, Agg.HIST}),
        bins=BINS, linf_mode=mode, salt=salt, diagnostics=True, bounding=bounding)


def distances(a: BoundedAggregates, b: BoundedAggregates) -> dict[str, float]:
    def by_key(agg: BoundedAggregates) -> dict[str, dict[str, float]]:
        return {r["part"]: r for r in agg.partitions.to_pylist()}

    pa_, pb = by_key(a), by_key(b)
    out = {}
    for comp in COMPONENTS:
        out[comp] = sum(abs(float(pa_.get(k, {}).get(comp) or 0) -
                            float(pb.get(k, {}).get(comp) or 0)) for k in set(pa_) | set(pb))

    def hist(agg: BoundedAggregates) -> dict[tuple[str, int], float]:
        return {(r["part"], r["bin"]): float(r["weight"]) for r in agg.histogram.to_pylist()}

    ha, hb = hist(a), hist(b)
    out["hist"] = sum(abs(ha.get(k, 0.0) - hb.get(k, 0.0)) for k in set(ha) | set(hb))
    da, db = a.diagnostics, b.diagnostics
    assert da is not None
    assert db is not None
    out["diagnostics"] = (abs(da.dropped_share_sum - db.dropped_share_sum)
                          + abs(da.clamped_share_sum - db.clamped_share_sum)
                          + abs(da.units - db.units))
    return out


def check_removal(data: list[tuple[int, str, float, int]], b: ContributionBounds,
                  clamp: ClampRange, mode: LinfMode, person: int, salt: int,
                  epochs: bool) -> dict[str, tuple[float, float]]:
    neighbour = [r for r in data if r[0] != person]
    k = len({e for p, _, _, e in data if p == person}) if epochs else 1
    full = ENGINE.aggregate(plan_for(to_table(data, epochs=epochs), b, clamp, mode, salt))
    less = ENGINE.aggregate(plan_for(to_table(neighbour, epochs=epochs), b, clamp, mode, salt))
    sens = sensitivities(b, max(k, 1), clamp)
    d = distances(full, less)
    return {c: (d[c], sens[c]) for c in d}


@pytest.mark.parametrize("mode", list(LinfMode))
@pytest.mark.parametrize("epochs", [False, True], ids=["one-epoch", "k-epochs"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=rows, b=bounds, clamp=clamps(), who=st.integers(0, 6),
       salt=st.integers(0, 2**62))
def test_removing_one_person_moves_each_bounded_aggregate_at_most_its_sensitivity(
        mode: LinfMode, epochs: bool, data: list[tuple[int, str, float, int]],
        b: ContributionBounds, clamp: ClampRange, who: int, salt: int) -> None:
    """For every component (units, rows, sum, csum, csq, hist, diagnostics), every bound and
    both L∞ modes: L1(D) − L1(D − person) ≤ k · per-unit sensitivity."""
    for comp, (dist, sens) in check_removal(data, b, clamp, mode, who, salt, epochs).items():
        assert dist <= sens * (1 + SLACK) + SLACK, (comp, dist, sens)


def test_property_can_fail_without_bounding() -> None:
    """The check is not vacuous: with bounding off (the audit's broken arm), one person with
    many rows in many partitions moves the counts by far more than L0·L∞."""
    data = [(0, p, 1.0, 0) for p in "abcde" for _ in range(6)] + [(1, "a", 2.0, 0)]
    b = ContributionBounds(max_partitions=1, max_per_partition=1)
    clamp = ClampRange(lo=0, hi=10)
    table, less = to_table(data, epochs=False), to_table(data[-1:], epochs=False)
    broken = [dataclasses.replace(plan_for(t, b, clamp, LinfMode.WEIGHT, 1), bounding=False)
              for t in (table, less)]
    d = distances(ENGINE.aggregate(broken[0]), ENGINE.aggregate(broken[1]))
    assert d["rows"] > sensitivities(b, 1, clamp)["rows"]
    kept = check_removal(data, b, clamp, LinfMode.WEIGHT, 0, 1, False)
    assert kept["rows"][0] <= kept["rows"][1]
