"""Linkage attack (anonymetry.risk.linkage): a hand-scored case, near-total re-identification
of a release with unique QIs, and precision ≤ 1/k once the release is k-anonymous."""

from __future__ import annotations

import numpy as np
import orjson
import pyarrow as pa
import pytest

from anonymetry.errors import InvalidParameter
from anonymetry.risk.generalize import anonymize
from anonymetry.risk.linkage import linkage_attack


def test_hand_scored_attack() -> None:
    """Released: p1 (30, A), p2 (30, B), p3 (30, B), p4 (40, null), p5 (50, C).
    Auxiliary: p1 (30, A) → unique, correct; p2 (30, B) → set {p2, p3}, no claim;
    p4 (40, null) → null matches null, unique, correct; p9 (50, C) → unique but it is p5:
    a wrong claim; p7 (60, D) → no match, and p7 is not in the release."""
    released = pa.table(
        {
            "pid": ["p1", "p2", "p3", "p4", "p5"],
            "age": [30, 30, 30, 40, 50],
            "zip": ["A", "B", "B", None, "C"],
        }
    )
    aux = pa.table(
        {
            "pid": ["p1", "p2", "p4", "p9", "p7"],
            "name": ["Ann", "Bob", "Dan", "Ivy", "Gus"],
            "age": [30, 30, 40, 50, 60],
            "zip": ["A", "B", None, "C", "D"],
        }
    )
    r = linkage_attack(released, aux, qi=["age", "zip"], truth="pid")
    assert (r.released_rows, r.auxiliary_rows, r.auxiliary_in_release) == (5, 5, 3)
    assert (r.claimed, r.correct, r.reidentified_records) == (3, 2, 2)
    assert r.precision == pytest.approx(2 / 3)
    assert r.recall == pytest.approx(2 / 3)
    assert r.reidentified_share == pytest.approx(2 / 5)
    assert r.match_set_sizes == ((0, 1), (1, 3), (2, 1))
    # guessing within sets: p1 1, p2 1/2, p4 1, p9 0 → 2.5 expected correct of 4 guesses
    assert r.guess_claimed == 4
    assert r.guess_expected_correct == pytest.approx(2.5)
    assert r.guess_precision == pytest.approx(2.5 / 4)
    orjson.dumps(r.to_dict())


def _population(n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    # unique (age, zip): n distinct combinations of 74 ages × 900 zips
    combos = rng.choice(74 * 900, size=n, replace=False)
    return pa.table(
        {
            "pid": np.arange(n),
            "age": 17 + combos // 900,
            "zip": np.array([f"{10000 + 7 * z:05d}" for z in combos % 900]),
            "sex": rng.choice(["female", "male"], n),
            "disease": rng.choice(["flu", "cold", "asthma"], n),
        }
    )


@pytest.fixture(scope="module")
def world():
    pop = _population(6000, seed=2)
    rng = np.random.default_rng(3)
    released = pop.take(rng.choice(6000, 4000, replace=False))  # a 2/3 sample is released
    aux_rows = pop.take(rng.choice(6000, 1500, replace=False))  # the attacker knows 1500
    aux = aux_rows.select(["pid", "age", "zip", "sex"]).append_column(
        "name", pa.array([f"person-{i}" for i in range(1500)])
    )
    return released, aux


def test_unique_qis_are_reidentified_almost_completely(world) -> None:
    released, aux = world
    r = linkage_attack(released, aux, qi=["age", "zip", "sex"], truth="pid")
    in_release = r.auxiliary_in_release
    assert 900 < in_release < 1100  # ≈ 2/3 of 1500
    assert r.precision == 1.0
    assert r.recall == 1.0
    assert r.claimed == r.correct == in_release
    assert r.reidentified_records == in_release
    assert r.match_set_sizes == ((0, 1500 - in_release), (1, in_release))


def test_k_anonymous_release_caps_precision_at_one_over_k(world) -> None:
    """After generalization to k=5 the attacker who knows the hierarchies still finds the
    person's class, but no unique match exists (nothing can be claimed with certainty) and
    guessing inside the class is right at most 1/k of the time."""
    released, aux = world
    qi = ["age", "zip", "sex"]
    res = anonymize(released, qi, 5, max_suppression=0.05)
    r = linkage_attack(res.table, aux, qi=qi, truth="pid", generalization=res.generalization)
    assert r.generalized
    assert r.claimed == 0
    assert r.precision == 0.0
    assert r.reidentified_share == 0.0
    assert min(size for size, _ in r.match_set_sizes if size > 0) >= 5
    assert 0 < r.guess_precision <= 1 / 5
    # the attack really ran on generalized values: nearly everyone in the release is matched
    assert r.guess_claimed >= 0.9 * r.auxiliary_in_release
    # an attacker who ignores the published hierarchies matches nothing at all
    naive = linkage_attack(res.table, aux, qi=qi, truth="pid")
    assert naive.guess_claimed == 0


def test_bad_arguments_are_named(world) -> None:
    released, aux = world
    with pytest.raises(InvalidParameter, match="not found"):
        linkage_attack(released, aux, qi=["height"], truth="pid")
    with pytest.raises(InvalidParameter, match="truth column"):
        linkage_attack(released, aux, qi=["pid"], truth="pid")
    with pytest.raises(InvalidParameter, match="at least one"):
        linkage_attack(released, aux, qi=[], truth="pid")
