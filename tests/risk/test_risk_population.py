"""Population-uniqueness estimators against ARX's published test values.

Reference: ARX ``src/test/org/deidentifier/arx/test/TestRiskMetrics.java``
(``testDecisionRule2``): the adult data set (``data/adult.csv``, 30,162 records) with all nine
attributes as QIs; Dankar's rule gives 0.27684993883653597 (Pitman) at sampling fraction 0.1,
0.3577099234829125 at 0.2, 0.1446083531167384 at 0.01 and 0.5142895033485844 at 1.0; ARX
compares four decimals. The estimators depend on the data only through the class-size
histogram, so the test embeds that histogram (computed once from ARX's adult.csv with one
GROUP BY over the nine columns) instead of the data set.
"""

from __future__ import annotations

import numpy as np
import pytest

from anonymetry.errors import InvalidParameter
from anonymetry.risk.population import (
    _snb_solve,
    dankar,
    pitman,
    population_uniqueness,
    snb,
    zayatz,
)

ADULT_CLASS_SIZES = {
    1: 15512, 2: 2098, 3: 754, 4: 375, 5: 189, 6: 155, 7: 97, 8: 73, 9: 39, 10: 37, 11: 29,
    12: 18, 13: 23, 14: 14, 15: 15, 16: 9, 17: 11, 18: 10, 19: 10, 20: 5, 21: 3, 22: 4, 23: 3,
    24: 2, 25: 1, 26: 3, 27: 5, 29: 1, 30: 2, 32: 1, 34: 1, 35: 1, 36: 1, 45: 1,
}
N_ADULT = 30162


def _population(fraction: float) -> int:
    return round(N_ADULT / fraction)  # ARXPopulationModel.create(n, f)


def _same4(a: float, b: float) -> bool:
    """ARX's compareUniqueness: equal in the first four decimals (truncated)."""
    return int(a * 10000) == int(b * 10000) and abs(a - b) < 1e-4


def test_histogram_is_adult():
    assert sum(s * c for s, c in ADULT_CLASS_SIZES.items()) == N_ADULT
    assert sum(ADULT_CLASS_SIZES.values()) == 19502


@pytest.mark.parametrize(("fraction", "expected", "model"), [
    (0.1, 0.27684993883653597, "pitman"),
    (0.2, 0.3577099234829125, "zayatz"),
    (0.01, 0.1446083531167384, "pitman"),
    (1.0, 0.5142895033485844, None),
])
def test_dankar_matches_arx(fraction, expected, model):
    value, chosen = dankar(ADULT_CLASS_SIZES, _population(fraction))
    assert _same4(value, expected), value
    assert value == pytest.approx(expected, abs=1e-9)
    if model:
        assert chosen == model


def test_individual_models_match_arx():
    # ARX's alternative branch of testDecisionRule2 at f = 0.1: Zayatz = 0.3207402393466189
    assert zayatz(ADULT_CLASS_SIZES, _population(0.1)) == pytest.approx(0.3207402393466189,
                                                                        abs=1e-9)
    assert pitman(ADULT_CLASS_SIZES, _population(0.1)) == pytest.approx(0.27684993883653597,
                                                                        abs=1e-9)
    # sample = population: every estimator that answers says sample uniqueness
    full = population_uniqueness(ADULT_CLASS_SIZES, N_ADULT)
    assert full.zayatz == pytest.approx(15512 / N_ADULT)
    assert full.snb == pytest.approx(15512 / N_ADULT)


def test_population_uniqueness_never_exceeds_sample_uniqueness_here():
    for f in (0.01, 0.05, 0.1, 0.2, 0.5):
        pu = population_uniqueness(ADULT_CLASS_SIZES, _population(f))
        assert 0 < pu.dankar <= 15512 / N_ADULT


def test_snb_solver_recovers_known_parameters():
    # Generate c1, c2 from the SNB moment equations for known (K, α, β, f), then solve back.
    k, a, b, f = 5000.0, 0.8, 0.4, 0.3
    d = (1 - f) * (1 - b)
    c1 = k * f * (b / (1 - d)) ** a * (a * d / (1 - d) + 1)
    c2 = k * a * b**a * f * f * (1 - b) / 2 * (1 - d) ** (a + 2) * (2 - (1 - a) * d)
    root = _snb_solve(k, f, c1, c2)
    assert root is not None
    assert root[1] == pytest.approx(a, rel=1e-6)
    assert root[2] == pytest.approx(b, rel=1e-6)
    assert k * root[2] ** root[1] == pytest.approx(k * b**a, rel=1e-6)


def test_no_sample_uniques_means_zero_everywhere():
    pu = population_uniqueness({2: 10, 3: 5}, 1000)
    assert (pu.pitman, pu.zayatz, pu.snb, pu.dankar) == (0.0, 0.0, 0.0, 0.0)
    assert snb({2: 10}, 100) == 0.0


def test_rejects_population_below_sample():
    with pytest.raises(InvalidParameter, match="population"):
        population_uniqueness({1: 10}, 5)
    with pytest.raises(InvalidParameter):
        population_uniqueness({}, 5)
    assert np.isfinite(population_uniqueness({1: 10, 2: 3}, 1000).dankar)
