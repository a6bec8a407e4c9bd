"""A partition held by one person is released with probability ≤ δ.

We compile a real query (private partition selection, L0 = 2, ε = 1, δ = 0.01 so the event is
observable), run the engine once on a table where partition "solo" belongs to one user and
"crowd" to 400, then draw the selection noise N = 6 000 times through
:func:`anonymetry.analytics.release.select_partitions` (the release path, fresh OpenDP noise each
time). The number of releases of "solo" is Binomial(N, p) with p ≤ δ; we reject when it
exceeds the exact α = 1e-6 upper quantile of Binomial(N, δ). Power: a threshold mechanism whose
noise is 1.5× too large releases "solo" with probability p₁ (computed from the same threshold);
the test asserts P(reject | p₁) ≥ 0.999 and runs the mis-scaled fixture, which must fail.
"""

from __future__ import annotations

import math
from typing import Any

import pyarrow as pa
import pytest
from scipy import stats as sps

from anonymetry.analytics import DuckDBEngine, QuerySpec, compile_query
from anonymetry.analytics.release import select_partitions
from anonymetry.analytics.sources import arrow_source
from anonymetry.privacy import noise
from anonymetry.privacy.mechanisms import ThresholdSelection

from .stats import ALPHA, BETA

pytestmark = pytest.mark.statistical

N = 6000
DELTA = 0.01


def table() -> pa.Table:
    users = ["solo-user", *(f"u{i}" for i in range(400))]
    parts = ["solo", *(["crowd"] * 400)]
    return pa.table({"user": users, "page": parts})


def solo_releases(threshold_noise: Any = None) -> tuple[int, Any]:
    spec = QuerySpec.build(metrics=["users"], by=["page"], epsilon=1.0, delta=DELTA,
                           unit="user", max_partitions=2, diagnostics=False, min_cohort=0)
    engine = DuckDBEngine()
    src = arrow_source(table())
    compiled = compile_query(spec, src, engine)
    if threshold_noise is not None:
        object.__setattr__(compiled.selection, "_noise", threshold_noise(compiled.selection))
    aggregates = engine.aggregate(compiled.plan)
    candidates = {tuple(r[n] for n in compiled.plan.key_names):
                  {"units": r["units"]} for r in aggregates.partitions.to_pylist()}
    assert candidates[("solo",)]["units"] == 1
    hits = 0
    for _ in range(N):
        keys, _, _ = select_partitions(compiled, candidates)
        hits += ("solo",) in keys
    return hits, compiled.selection


def limit() -> int:
    return int(sps.binom.isf(ALPHA, N, DELTA))


def test_one_person_partition_is_released_with_probability_at_most_delta() -> None:
    hits, sel = solo_releases()
    assert sel.mapped_loss()[1] <= DELTA
    assert hits <= limit(), f"'solo' released {hits}/{N} times; limit {limit()}"


def p_release(scale: float, threshold: int) -> float:
    """P(1 + Z ≥ T) for Z discrete Laplace of ``scale``: q^{T-1}/(1+q), q = e^{-1/scale}."""
    q = math.exp(-1 / scale)
    return q ** (threshold - 1) / (1 + q)


def test_selection_test_has_power_0999_against_too_much_noise() -> None:
    """The query's selection is ThresholdSelection(l0=l1=L0=2, linf=1, ε=1, δ): scale 2."""
    sel = ThresholdSelection(2, 2, 1, 1.0, DELTA)
    assert sel.scale == pytest.approx(2.0)
    p1 = p_release(sel.scale * 1.5, sel.threshold)
    assert sps.binom.sf(limit(), N, p1) >= 1 - BETA


def test_selection_test_rejects_a_threshold_mechanism_with_too_much_noise() -> None:
    def wider(selection: Any) -> Any:
        return noise.ThresholdNoise(selection.scale * 1.5, selection.threshold)

    hits, _ = solo_releases(wider)
    assert hits > limit()
