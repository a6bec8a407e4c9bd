"""Empirical privacy audit: a distinguishing attack on neighbouring datasets.

D holds a crowd plus one target user with many rows (and, in the L0 case, many partitions);
D' is D without the target. We compile one DP count query (public partitions, ε = 1, L0 = L∞ =
1, diagnostics off), let the engine aggregate D and D' once, and call the real release path
(:func:`anonymetry.analytics.release.release`) once on each; then the query's own calibrated
count mechanism redraws the released count vector N = 3 000 times per side (fresh OpenDP noise
each time). The attacker says "D" when the released statistic (the count of the target's partition,
or the sum over the target's partitions) exceeds a threshold fixed in advance. With
Clopper–Pearson bounds at α = 1e-6 each, ε_lb = ln(TPR_lower / FPR_upper) is a valid lower
bound on the mechanism's ε with probability ≥ 1 − 2·10⁻⁶:

- with bounding on, ε_lb ≤ the claimed ε (the test would fail if the mechanism leaked more);
- with bounding off (``unsafe_disable_bounding``: the same noise, calibrated to the same claimed
  sensitivity, but the target contributes all its rows), ε_lb > the claimed ε.
"""

from __future__ import annotations

import math
from typing import Any

import pyarrow as pa
import pytest
from scipy import stats as sps

from anonymetry.analytics import DuckDBEngine, QuerySpec, compile_query
from anonymetry.analytics.release import release
from anonymetry.analytics.sources import arrow_source

ALPHA = 1e-6
N = 3000
EPSILON = 1.0
PAGES = tuple(f"p{i}" for i in range(6))


def datasets(target_rows: int, target_pages: int) -> tuple[pa.Table, pa.Table]:
    crowd = [(f"u{i}", PAGES[i % len(PAGES)]) for i in range(60)]
    target = [("target", PAGES[j % target_pages]) for j in range(target_rows)]
    def table(rows: list[tuple[str, str]]) -> pa.Table:
        return pa.table({"user": [u for u, _ in rows], "page": [p for _, p in rows]})
    return table(crowd + target), table(crowd)


def draw(compiled: Any, counts: list[int], idx: list[int]) -> float:
    """One fresh release of the count vector (the query's own calibrated OpenDP mechanism),
    summed over the target's partitions."""
    out = compiled.components["rows"].mechanism.release(counts)
    return sum(out[i] for i in idx)


def clopper_pearson(k: int, n: int) -> tuple[float, float]:
    lo = 0.0 if k == 0 else sps.beta.ppf(ALPHA, k, n - k + 1)
    hi = 1.0 if k == n else sps.beta.isf(ALPHA, k + 1, n - k)
    return lo, hi


def epsilon_lower_bound(target_rows: int, target_pages: int, *, bounding: bool) -> float:
    d, d_prime = datasets(target_rows, target_pages)
    spec = QuerySpec.build(metrics=["count"], by=["page"], epsilon=EPSILON, unit="user",
                           max_partitions=1, max_per_partition=1, diagnostics=False,
                           min_cohort=0, public_partitions=tuple((p,) for p in PAGES),
                           unsafe_disable_bounding=not bounding)
    engine = DuckDBEngine()
    compiled = compile_query(spec, arrow_source(d), engine)
    agg_d = engine.aggregate(compiled.plan)
    agg_dp = engine.aggregate(compile_query(spec, arrow_source(d_prime), engine).plan)
    # the release path itself runs on both (public partitions: every page is released)
    assert len(release(compiled, agg_d).rows) == len(PAGES)

    def vector(agg: Any) -> list[int]:
        rows = {r["page"]: int(r["rows"]) for r in agg.partitions.to_pylist()}
        return [rows.get(p, 0) for p in PAGES]

    v_d, v_dp = vector(agg_d), vector(agg_dp)
    idx = list(range(target_pages))
    threshold = sum(v_dp[i] for i in idx) + 2  # fixed in advance
    tp = sum(draw(compiled, v_d, idx) >= threshold for _ in range(N))
    fp = sum(draw(compiled, v_dp, idx) >= threshold for _ in range(N))
    tpr_lo, _ = clopper_pearson(tp, N)
    _, fpr_hi = clopper_pearson(fp, N)
    # the complementary test ("D'" when below) bounds ε too; report the larger
    _, fnr_hi = clopper_pearson(N - tp, N)
    tnr_lo, _ = clopper_pearson(N - fp, N)
    return max(math.log(max(tpr_lo, 1e-300) / fpr_hi), math.log(max(tnr_lo, 1e-300) / fnr_hi))


@pytest.mark.parametrize(("rows", "pages"), [(20, 1), (6, 6)], ids=["L∞-target", "L0-target"])
def test_attack_lower_bound_does_not_exceed_claimed_epsilon(rows: int, pages: int) -> None:
    """With contribution bounding the attack cannot prove ε above the claimed ε = 1."""
    assert epsilon_lower_bound(rows, pages, bounding=True) <= EPSILON


@pytest.mark.parametrize(("rows", "pages"), [(20, 1), (6, 6)], ids=["L∞-target", "L0-target"])
def test_attack_exceeds_claimed_epsilon_when_bounding_is_disabled(rows: int, pages: int) -> None:
    """Same noise, same claim, bounding off: the audit detects the leak (ε_lb > 1)."""
    assert epsilon_lower_bound(rows, pages, bounding=False) > EPSILON
