"""The noise in released query results, and their confidence intervals, are what they claim.

Setup: P = 6 000 public partitions; partition i holds 3 users with 1 row each (value 10 + i mod
7), so L0 = L∞ = 1 never drops a row and the bounded truth equals the raw truth. One
``run_query`` releases 6 000 independent noisy counts (and means), so one query gives the sample.

- ``test_released_count_noise_has_the_stated_scale``: noise = value − truth; DKW–KS of |noise|
  against the discrete Laplace of scale Δ/ε = L0·L∞/ε_count computed here from the budget split,
  and against the ``noise_scale`` the result reports. α = 1e-6; t_α = √(ln(2/α)/(2P)) = 0.0348;
  a 0.8×/1.2× scale moves the folded CDF by D ≥ 0.066 (asserted), needing P ≥ 4 950 for power
  0.999.
- ``test_count_ci95_covers_the_truth_at_its_exact_rate``: with discrete Laplace of scale b the
  interval value ± a (a = OpenDP's accuracy at α = 0.05) covers the truth with probability
  p₀ = P(|X| ≤ ⌊a⌋) (≥ 0.95, computed exactly). Two-sided exact binomial acceptance region at
  α = 1e-6; the test asserts that the coverages of 0.8× and 1.2× scales (p₁) fall outside it
  with probability ≥ 0.999.
- ``test_mean_ci95_covers_the_truth_at_least_95_percent``: the mean's interval is conservative
  (α split over numerator and denominator); one-sided exact binomial at α = 1e-6.
- Each is also run with the mis-scaled fixture and must fail.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import pyarrow as pa
import pytest
from scipy import stats as sps

from anonymetry.analytics import QuerySpec, run_query
from anonymetry.analytics.sources import arrow_source
from anonymetry.privacy.units import ClampRange

from .stats import (
    ALPHA,
    BETA,
    SCALE_ERRORS,
    dkw_required_n,
    dkw_threshold,
    folded_discrete_laplace_cdf,
    ks_distance,
    power_distance,
)

pytestmark = pytest.mark.statistical

P = 6000
EPSILON = 0.2  # split over rows and csum: ε_count = 0.1, so the count's scale is 10


def make_table() -> pa.Table:
    parts, users, values = [], [], []
    for i in range(P):
        for u in range(3):
            parts.append(f"g{i:05d}")
            users.append(f"u{i}-{u}")
            values.append(10.0 + (i % 7))
    return pa.table({"user": users, "group": parts, "value": values})


TABLE = make_table()
TRUE_MEAN = {f"g{i:05d}": 10.0 + (i % 7) for i in range(P)}


def released(metrics: tuple[str, ...]) -> Any:
    spec = QuerySpec.build(metrics=metrics, by=["group"], epsilon=EPSILON, unit="user",
                           max_partitions=1, max_per_partition=1,
                           clamp=ClampRange(lo=0, hi=40), diagnostics=False, min_cohort=0,
                           public_partitions=tuple((f"g{i:05d}",) for i in range(P)))
    return run_query(spec, arrow_source(TABLE))


def count_rows(result: Any) -> list[Any]:
    return [r for r in result.rows if r.metric == "count"]


def count_scale_claim(result: Any) -> float:
    split = {s["component"]: s for s in result.budget_split}
    eps = Fraction(split["rows"]["epsilon"])
    return float(1 * 1 / eps)  # L0 · L∞ / ε_count


def scale_failures() -> list[str]:
    result = released(("count", "mean:value"))
    rows = count_rows(result)
    claimed = count_scale_claim(result)
    out = []
    if any(abs(r.noise_scale - claimed) > 1e-9 * claimed for r in rows):
        out.append("reported noise_scale differs from L0·L∞/ε")
    noise = [abs(r.value - 3) for r in rows]
    d = ks_distance(noise, folded_discrete_laplace_cdf(claimed), discrete=True)
    if d > dkw_threshold(len(noise)):
        out.append(f"KS {d:.4f} > {dkw_threshold(len(noise)):.4f}")
    return out


def test_sample_size_is_enough() -> None:
    assert dkw_required_n(power_distance("laplace", 10.0, True)) <= P


def test_released_count_noise_has_the_stated_scale() -> None:
    assert scale_failures() == []


@pytest.mark.parametrize("factor", SCALE_ERRORS)
def test_released_count_noise_test_rejects_a_mis_scaled_mechanism(factor: float,
                                                                 mis_scale: Any) -> None:
    mis_scale(factor)
    assert scale_failures()


def coverage_p(scale: float, a: float) -> float:
    """P(|X| ≤ ⌊a⌋) for the discrete Laplace of ``scale``."""
    return folded_discrete_laplace_cdf(scale)(math.floor(a))


def acceptance(p0: float, n: int) -> tuple[int, int]:
    return int(sps.binom.ppf(ALPHA / 2, n, p0)), int(sps.binom.isf(ALPHA / 2, n, p0))


def count_coverage_failures() -> list[str]:
    result = released(("count",))
    rows = count_rows(result)
    covered = sum(1 for r in rows if r.ci95[0] <= 3 <= r.ci95[1])
    scale = count_scale_claim(result)
    a = (rows[0].ci95[1] - rows[0].ci95[0]) / 2
    p0 = coverage_p(scale, a)
    lo, hi = acceptance(p0, len(rows))
    return [] if lo <= covered <= hi else [f"{covered}/{len(rows)} covered; accept {lo}..{hi}"]


def test_count_ci_test_has_power_0999_against_a_20_percent_scale_error() -> None:
    scale = 1 / (EPSILON / 2)
    import opendp.prelude as dp  # only to compute the same accuracy the release uses

    a = dp.discrete_laplacian_scale_to_accuracy(scale, 0.05)
    p0 = coverage_p(scale, a)
    assert p0 >= 0.95
    lo, hi = acceptance(p0, P)
    for factor in SCALE_ERRORS:
        p1 = coverage_p(scale * factor, a)
        reject = sps.binom.cdf(lo - 1, P, p1) + sps.binom.sf(hi, P, p1)
        assert reject >= 1 - BETA, (factor, p1, reject)


def test_count_ci95_covers_the_truth_at_its_exact_rate() -> None:
    assert count_coverage_failures() == []


@pytest.mark.parametrize("factor", SCALE_ERRORS)
def test_count_ci_coverage_test_rejects_a_mis_scaled_mechanism(factor: float,
                                                              mis_scale: Any) -> None:
    mis_scale(factor)
    assert count_coverage_failures()


def test_mean_ci95_covers_the_truth_at_least_95_percent() -> None:
    """One-sided: #covered ≥ the α = 1e-6 lower quantile of Binomial(P, 0.95)."""
    result = released(("mean:value",))
    rows = [r for r in result.rows if r.metric.startswith("mean")]
    covered = sum(1 for r in rows if r.ci95[0] <= TRUE_MEAN[r.by["group"]] <= r.ci95[1])
    assert covered >= sps.binom.ppf(ALPHA, len(rows), 0.95)


# -- the Gaussian path (``mechanism="gaussian"``) -------------------------------------------------
#
# Same table and partitions; the query asks for a count only, with δ = 1e-6 and no diagnostics,
# so all of ε = 0.2 goes to one discrete Gaussian release of L2 sensitivity √L0·L∞ = 1. The
# claimed σ is computed here from (ε, δ): ρ = (√(ln(1/δ) + ε) − √ln(1/δ))² = 7.19e-4 (the
# largest ρ whose Bun–Steinke conversion is ≤ ε), σ = Δ₂/√(2ρ) ≈ 26.4. DKW–KS of |noise|
# against the folded discrete Gaussian of σ at α = 1e-6: t_α = √(ln(2/α)/(2P)) = 0.0348; a
# 0.8×/1.2× σ moves the folded CDF by D ≥ 0.07 (asserted via ``power_distance``), which needs
# P ≥ (2.69 + 1.95)²/D² ≈ 4 400 ≤ 6 000 for power 0.999. The CI test is the exact-binomial one
# above with p₀ = P(|X| ≤ ⌊a⌋) under the discrete Gaussian. Both must reject the mis-scaled
# fixture.

GAUSS_DELTA = 1e-6


def gaussian_sigma_claim() -> float:
    log = math.log(1 / GAUSS_DELTA)
    rho = (math.sqrt(log + EPSILON) - math.sqrt(log)) ** 2
    return 1.0 / math.sqrt(2 * rho)


def released_gaussian() -> Any:
    spec = QuerySpec.build(metrics=("count",), by=["group"], epsilon=EPSILON, delta=GAUSS_DELTA,
                           unit="user", max_partitions=1, max_per_partition=1,
                           diagnostics=False, min_cohort=0, mechanism="gaussian",
                           public_partitions=tuple((f"g{i:05d}",) for i in range(P)))
    return run_query(spec, arrow_source(TABLE))


def gaussian_failures() -> list[str]:
    from .stats import folded_discrete_gaussian_cdf

    result = released_gaussian()
    rows = count_rows(result)
    sigma = gaussian_sigma_claim()
    out = []
    if any(abs(r.noise_scale - sigma) > 1e-6 * sigma for r in rows):
        out.append("reported noise_scale differs from Δ₂/√(2ρ)")
    if {r.mechanism for r in rows} != {"discrete_gaussian"}:
        out.append("not a discrete Gaussian release")
    d = ks_distance([abs(r.value - 3) for r in rows], folded_discrete_gaussian_cdf(sigma),
                    discrete=True)
    if d > dkw_threshold(len(rows)):
        out.append(f"KS {d:.4f} > {dkw_threshold(len(rows)):.4f}")
    cdf = folded_discrete_gaussian_cdf(sigma)
    a = (rows[0].ci95[1] - rows[0].ci95[0]) / 2
    p0 = cdf(math.floor(a))
    lo, hi = acceptance(p0, len(rows))
    covered = sum(1 for r in rows if r.ci95[0] <= 3 <= r.ci95[1])
    if not lo <= covered <= hi:
        out.append(f"CI covered {covered}/{len(rows)}; accept {lo}..{hi}")
    return out


def test_gaussian_sample_size_and_ci_test_have_power_0999() -> None:
    from opendp.prelude import discrete_gaussian_scale_to_accuracy

    from .stats import folded_discrete_gaussian_cdf

    sigma = gaussian_sigma_claim()
    assert dkw_required_n(power_distance("gaussian", sigma, True)) <= P
    a = discrete_gaussian_scale_to_accuracy(sigma, 0.05)
    p0 = folded_discrete_gaussian_cdf(sigma)(math.floor(a))
    assert p0 >= 0.95
    lo, hi = acceptance(p0, P)
    for factor in SCALE_ERRORS:
        p1 = folded_discrete_gaussian_cdf(sigma * factor)(math.floor(a))
        reject = sps.binom.cdf(lo - 1, P, p1) + sps.binom.sf(hi, P, p1)
        assert reject >= 1 - BETA, (factor, p1, reject)


def test_released_gaussian_count_noise_has_the_stated_scale_and_ci() -> None:
    assert gaussian_failures() == []


@pytest.mark.parametrize("factor", SCALE_ERRORS)
def test_gaussian_tests_reject_a_mis_scaled_mechanism(factor: float, mis_scale: Any) -> None:
    mis_scale(factor)
    assert gaussian_failures()
