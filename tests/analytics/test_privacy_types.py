"""Privacy parameter types and accountants: validated when built, exact, round-trippable."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from anonymetry.errors import InvalidParameter
from anonymetry.privacy.accountant import (
    ACCOUNTANTS,
    DEFAULT_ACCOUNTANT,
    ApproxDp,
    PureDp,
    ZCdp,
    accountant_from_state,
    make_accountant,
    zcdp_to_epsilon,
)
from anonymetry.privacy.budget import PrivacyLoss
from anonymetry.privacy.units import ClampRange, ContributionBounds, PrivacyUnit


@pytest.mark.parametrize(("eps", "delta", "field"), [
    (float("nan"), 0, "epsilon"), (math.inf, 0, "epsilon"), (-1, 0, "epsilon"),
    (1, float("nan"), "delta"), (1, -1e-9, "delta"), (1, 1, "delta"), ("inf", 0, "epsilon"),
    (True, 0, "epsilon")])
def test_privacy_loss_rejects_bad_values_naming_the_field(eps: object, delta: object,
                                                          field: str) -> None:
    with pytest.raises(InvalidParameter, match=field):
        PrivacyLoss(eps, delta)  # type: ignore[arg-type]


def test_privacy_loss_sums_exactly_and_is_frozen() -> None:
    total = sum([PrivacyLoss(0.1)] * 10, PrivacyLoss(0))
    assert total.epsilon == 1
    assert PrivacyLoss("0.3") - PrivacyLoss("0.1") == PrivacyLoss("0.2")
    with pytest.raises(InvalidParameter):
        _ = PrivacyLoss(0.1) - PrivacyLoss(0.2)
    with pytest.raises(AttributeError):
        PrivacyLoss(1).epsilon = Fraction(2)  # type: ignore[misc]
    assert PrivacyLoss.from_dict(PrivacyLoss("1/3", "1e-7").to_dict()) == PrivacyLoss("1/3",
                                                                                      "1e-7")


def test_group_privacy() -> None:
    assert PrivacyLoss(1).group(3) == PrivacyLoss(3)
    g = PrivacyLoss(0.5, 1e-6).group(2)
    assert g.epsilon == 1
    assert float(g.delta) >= 2 * math.exp(0.5) * 1e-6


def test_units_and_bounds_validate() -> None:
    with pytest.raises(InvalidParameter, match="max_partitions"):
        ContributionBounds(max_partitions=0, max_per_partition=1)
    with pytest.raises(InvalidParameter, match="clamp"):
        ClampRange(lo=1, hi=1)
    with pytest.raises(InvalidParameter, match="clamp"):
        ClampRange(lo=float("nan"), hi=1)
    with pytest.raises(InvalidParameter, match="clamp"):
        ClampRange.parse("1;2")
    assert ClampRange.parse("-5, 5").radius == 5
    b = ContributionBounds(max_partitions=5, max_per_partition=10).for_person(3)
    assert (b.l0, b.linf) == (15, 30)
    assert PrivacyUnit("user").describes.startswith("person")


def test_accountant_registry_and_state_round_trip() -> None:
    assert DEFAULT_ACCOUNTANT in ACCOUNTANTS
    assert set(ACCOUNTANTS) == {"basic", "pld", "rdp"}
    events = [PureDp(Fraction(1, 4)), ApproxDp(Fraction(1, 10), Fraction(1, 10**7)),
              ZCdp(Fraction(1, 100))]
    for name in ACCOUNTANTS:
        acc = make_accountant(name, events)
        again = accountant_from_state(acc.state_dict())
        assert again.events == acc.events
        assert again.epsilon(1e-6) == acc.epsilon(1e-6)
    with pytest.raises(InvalidParameter, match="accountant"):
        make_accountant("moments")


def test_basic_composition_is_exact_and_pld_is_tighter_for_many_releases() -> None:
    events = [PureDp(Fraction(1, 10))] * 100
    assert make_accountant("basic", events).epsilon(1e-6) == 10.0
    pld = make_accountant("pld", events).epsilon(1e-6)
    assert pld < 7.0  # advanced composition wins for 100 small releases
    rdp = make_accountant("rdp", events).epsilon(1e-6)
    assert rdp < 10.0


def test_delta_beyond_budget_gives_infinite_epsilon() -> None:
    acc = make_accountant("basic", [ApproxDp(1, Fraction(1, 1000))])
    assert acc.epsilon(1e-6) == math.inf
    assert acc.epsilon(1e-3) == 1.0


def test_zcdp_conversion() -> None:
    assert zcdp_to_epsilon(0.0, 1e-6) == 0.0
    assert zcdp_to_epsilon(0.5, 1e-6) == pytest.approx(0.5 + 2 * math.sqrt(0.5 * math.log(1e6)))
