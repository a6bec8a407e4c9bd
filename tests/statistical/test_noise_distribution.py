"""The released noise has the distribution and scale its privacy claim assumes.

For each mechanism (discrete and continuous Laplace calibrated to Δ/ε, discrete and continuous
Gaussian calibrated to Δ/√(2ρ)) we draw N = 12 000 noise values through
:mod:`anonymetry.privacy.mechanisms` (so calibration is tested too: the claimed scale is
computed here from Δ and the budget, not read from the mechanism) and run a DKW–KS test of
|noise| against the claimed folded CDF.

Arithmetic (see ``stats.py``): α = 1e-6 per assertion, so the threshold is
t_α = √(ln(2/α)/(2N)) = √(14.51/24 000) = 0.0246. The folded CDFs of scale s and 0.8s or 1.2s
differ by D ≥ 0.066 (computed per case by ``power_distance``); rejecting them with power
≥ 0.999 needs N ≥ (√(ln(2/α)/2) + √(ln(2/β)/2))² / D² = (2.69 + 1.95)² / 0.066² ≈ 4 950, which
the test asserts for its N. A sign test checks symmetry (α = 1e-6, exact binomial).
``test_mis_scaled_mechanism_is_rejected`` runs the same assertions on the
``MisScaledNoise`` fixture (factor 0.8 and 1.2) and expects them to fail.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from scipy import stats as sps

from anonymetry.privacy import noise
from anonymetry.privacy.mechanisms import GaussianMechanism, LaplaceMechanism

from .stats import (
    ALPHA,
    SCALE_ERRORS,
    dkw_required_n,
    dkw_threshold,
    folded_cdf,
    ks_distance,
    power_distance,
)

pytestmark = pytest.mark.statistical

N = 12_000

# (name, mechanism factory, claimed scale computed from the privacy parameters)
CASES: dict[str, tuple[str, bool, Any, float]] = {
    "discrete-laplace": ("laplace", True, lambda: LaplaceMechanism(5, 0.5, True), 5 / 0.5),
    "laplace": ("laplace", False, lambda: LaplaceMechanism(3.7, 1.0, False), 3.7),
    "discrete-gaussian": ("gaussian", True, lambda: GaussianMechanism(4, 0.125, True),
                          4 / math.sqrt(2 * 0.125)),
    "gaussian": ("gaussian", False, lambda: GaussianMechanism(2.5, 0.5, False), 2.5),
}


def fails_scale_test(name: str) -> list[str]:
    """Run the assertions of the scale test; return the ones that failed (α = 1e-6 each)."""
    kind, integer, make, claimed = CASES[name]
    mech = make()
    draws = mech.release([0] * N)
    failures = []
    d = ks_distance([abs(x) for x in draws], folded_cdf(kind, claimed, integer), discrete=integer)
    if d > dkw_threshold(N):
        failures.append(f"KS: sup|F_n − F_0| = {d:.4f} > {dkw_threshold(N):.4f}")
    pos = sum(1 for x in draws if x > 0)
    neg = sum(1 for x in draws if x < 0)
    if sps.binomtest(pos, pos + neg, 0.5).pvalue < ALPHA:
        failures.append(f"sign: {pos} positive vs {neg} negative")
    return failures


@pytest.mark.parametrize("name", list(CASES))
def test_sample_size_gives_power_0999_against_a_20_percent_scale_error(name: str) -> None:
    kind, integer, _, claimed = CASES[name]
    assert dkw_required_n(power_distance(kind, claimed, integer)) <= N


@pytest.mark.parametrize("name", list(CASES))
def test_noise_has_the_claimed_distribution_and_scale(name: str) -> None:
    """KS (DKW) of |noise| against the claimed scale, and sign symmetry; α = 1e-6 each."""
    assert fails_scale_test(name) == []


@pytest.mark.parametrize("factor", SCALE_ERRORS)
@pytest.mark.parametrize("name", list(CASES))
def test_mis_scaled_mechanism_is_rejected(name: str, factor: float, mis_scale: Any) -> None:
    """The same test rejects a mechanism that draws with 0.8× or 1.2× the claimed scale."""
    mis_scale(factor)
    assert fails_scale_test(name), "a mis-scaled mechanism passed the scale test"


def test_noise_comes_from_opendp() -> None:
    """The noise module draws through OpenDP measurements (no other sampler)."""
    v = noise.laplace(2.0, integer=True)
    assert type(v._measurement).__module__.startswith("opendp")
    t = noise.laplace_threshold(2.0, 10)
    assert type(t._measurement).__module__.startswith("opendp")
