"""Calibration never overshoots the budget, and accountants never undercut basic composition
where it is tight (a single release) nor report more than it.

Properties (hypothesis): for any sensitivity and ε, OpenDP's own privacy map of the measurement
a ``LaplaceMechanism`` draws from is ≤ the ε it reports; the same for ``GaussianMechanism`` (ρ)
and ``ThresholdSelection`` ((ε, δ)); every accountant's ε(δ) ≤ basic composition's, and ≥ the
largest single event's ε (no accountant can prove less than one release costs).
"""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from anonymetry.privacy.accountant import ACCOUNTANTS, ApproxDp, PureDp, ZCdp, make_accountant
from anonymetry.privacy.mechanisms import GaussianMechanism, LaplaceMechanism, ThresholdSelection

eps_st = st.fractions(min_value=Fraction(1, 100), max_value=10, max_denominator=1000)


@settings(max_examples=60, deadline=None)
@given(sens=st.integers(1, 10_000), eps=eps_st, integer=st.booleans())
def test_laplace_calibration_never_overshoots_epsilon(sens: int, eps: Fraction,
                                                      integer: bool) -> None:
    mech = LaplaceMechanism(sens, eps, integer)
    assert Fraction(mech.noise.privacy_map(sens)) <= eps
    assert mech.scale >= sens / float(eps) * (1 - 1e-12)


@settings(max_examples=40, deadline=None)
@given(sens=st.floats(0.1, 1000), rho=eps_st)
def test_gaussian_calibration_never_overshoots_rho(sens: float, rho: Fraction) -> None:
    mech = GaussianMechanism(sens, rho, False)
    assert Fraction(mech.noise.privacy_map(sens)) <= rho


@settings(max_examples=25, deadline=None)
@given(l0=st.integers(1, 8), k=st.integers(1, 3), eps=eps_st,
       delta=st.sampled_from([1e-9, 1e-6, 1e-3]))
def test_threshold_selection_never_overshoots_epsilon_or_delta(l0: int, k: int, eps: Fraction,
                                                               delta: float) -> None:
    sel = ThresholdSelection(l0 * k, l0 * k, k, eps, delta)
    e, d = sel.mapped_loss()
    assert Fraction(e) <= eps
    assert Fraction(d) <= Fraction(delta)


events_st = st.lists(st.one_of(
    st.builds(PureDp, eps_st),
    st.builds(ApproxDp, eps_st, st.sampled_from([Fraction(0), Fraction(1, 10**8)])),
    st.builds(ZCdp, st.fractions(min_value=Fraction(1, 1000), max_value=1,
                                 max_denominator=1000))), min_size=1, max_size=12)


@settings(max_examples=40, deadline=None)
@given(events=events_st)
def test_accountants_are_bounded_by_basic_and_by_the_largest_event(events: list) -> None:
    delta = 1e-5
    basic = make_accountant("basic", events).epsilon(delta)
    largest = max(float(e.epsilon) for e in events if not isinstance(e, ZCdp)) \
        if any(not isinstance(e, ZCdp) for e in events) else 0.0
    for name in ACCOUNTANTS:
        eps = make_accountant(name, events).epsilon(delta)
        assert eps <= basic + 1e-12
        assert eps >= largest - 1e-3  # PLD discretisation may round by ≤ 1e-3
