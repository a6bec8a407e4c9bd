"""Calibrated mechanisms: sensitivity + budget → OpenDP noise, each with its privacy argument.

Every mechanism here is built from a sensitivity (how much one protected unit — after
contribution bounding, one *person* — can move the released vector) and a budget share. The
scale is calibrated in closed form, then **checked against OpenDP's own privacy map** of the
measurement that draws the noise (:mod:`anonymetry.privacy.noise`); if the map reports more loss
than allotted the scale is raised until it does not. The loss each one reports to the accountant
is the allotted one, which is never below OpenDP's.

Tests: ``tests/statistical/test_noise_distribution.py`` (the noise has the stated distribution
and scale), ``tests/statistical/test_partition_selection.py`` (a one-person partition is released
with probability ≤ δ), ``tests/properties/test_sensitivity.py`` (the stated sensitivity holds).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from anonymetry.errors import InternalError, InvalidParameter
from anonymetry.privacy import noise
from anonymetry.privacy.accountant import ApproxDp, PureDp, ZCdp
from anonymetry.privacy.budget import to_fraction

__all__ = ["GaussianMechanism", "LaplaceMechanism", "ThresholdSelection"]

_MAX_BUMPS = 200


def _positive(value: float, field_name: str) -> float:
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise InvalidParameter(f"{field_name}: must be finite and > 0, got {value}")
    return value


def _calibrate(make: Any, scale: float, sensitivity: float, budget: Fraction,
               what: str) -> noise.VectorNoise:
    """The smallest scale from ``scale`` up whose OpenDP privacy map at ``sensitivity`` stays
    within ``budget`` (ε or ρ): closed-form calibration, checked by OpenDP itself."""
    for _ in range(_MAX_BUMPS):
        candidate = make(scale)
        if Fraction(candidate.privacy_map(sensitivity)) <= budget:
            return candidate
        scale = math.nextafter(scale * (1 + 1e-12), math.inf)
    raise InternalError(f"could not calibrate a {what} scale within OpenDP's privacy map")


class _AdditiveNoise:
    """What Laplace and Gaussian mechanisms share once calibrated: their OpenDP noise."""

    __slots__ = ()
    _noise: noise.VectorNoise

    @property
    def scale(self) -> float:
        return self._noise.scale

    @property
    def noise(self) -> noise.VectorNoise:
        return self._noise

    def release(self, values: Sequence[Any]) -> list[Any]:
        return self._noise.sample(values)

    def ci_halfwidth(self, alpha: float = 0.05) -> float:
        return self._noise.accuracy(alpha)


@dataclass(frozen=True, slots=True)
class LaplaceMechanism(_AdditiveNoise):
    """Adds (discrete) Laplace noise to a vector whose L1 sensitivity is ``sensitivity``.

    Privacy argument
    ----------------
    Neighbouring relation: two datasets differ in all rows of one protected unit (after
    bounding, one person across all of their devices and, if the query spans k key epochs, all k
    pseudonyms). Sensitivity: the caller states the L1 distance between the two released
    vectors (e.g. L0·L∞ for a vector of bounded counts); the property tests check it. Loss: the
    Laplace mechanism with scale b on an L1-sensitivity-Δ query is (Δ/b)-DP (Dwork et al. 2006;
    the discrete variant, Ghosh–Roughgarden–Sundararajan 2012 / Canonne–Kamath–Steinke 2020).
    Source of the bound: OpenDP's ``make_laplace`` privacy map, which we call and compare with.
    """

    sensitivity: float
    epsilon: Fraction
    integer: bool
    _noise: noise.VectorNoise = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        sens = _positive(self.sensitivity, "sensitivity")
        if self.integer and sens != int(sens):
            raise InvalidParameter("sensitivity: an integer release needs a whole sensitivity")
        object.__setattr__(self, "sensitivity", sens)
        eps = to_fraction(self.epsilon, "epsilon")
        if eps == 0:
            raise InvalidParameter("epsilon: must be > 0")
        object.__setattr__(self, "epsilon", eps)
        object.__setattr__(self, "_noise", _calibrate(
            lambda b: noise.laplace(b, integer=self.integer), sens / float(eps), sens, eps,
            "Laplace"))

    @property
    def event(self) -> PureDp:
        return PureDp(self.epsilon)

    def describe(self) -> dict[str, Any]:
        return {"mechanism": "discrete_laplace" if self.integer else "laplace",
                "scale": self.scale, "sensitivity_l1": self.sensitivity,
                "epsilon": float(self.epsilon)}


@dataclass(frozen=True, slots=True)
class GaussianMechanism(_AdditiveNoise):
    """Adds (discrete) Gaussian noise to a vector whose L2 sensitivity is ``sensitivity``.

    Privacy argument
    ----------------
    Neighbouring relation as for :class:`LaplaceMechanism`. Sensitivity: the L2 distance between
    the released vectors (e.g. √L0·L∞ for bounded counts). Loss: Gaussian noise of standard
    deviation σ on an L2-sensitivity-Δ query is ρ-zCDP with ρ = Δ²/(2σ²) (Bun–Steinke 2016; the
    discrete Gaussian, Canonne–Kamath–Steinke 2020). Source: OpenDP's ``make_gaussian`` map.
    Convert to (ε, δ) with the accountant (:func:`~anonymetry.privacy.accountant.zcdp_to_epsilon`).
    """

    sensitivity: float
    rho: Fraction
    integer: bool
    _noise: noise.VectorNoise = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        sens = _positive(self.sensitivity, "sensitivity")
        object.__setattr__(self, "sensitivity", sens)
        rho = to_fraction(self.rho, "rho")
        if rho == 0:
            raise InvalidParameter("rho: must be > 0")
        object.__setattr__(self, "rho", rho)
        object.__setattr__(self, "_noise", _calibrate(
            lambda b: noise.gaussian(b, integer=self.integer), sens / math.sqrt(2 * float(rho)),
            sens, rho, "Gaussian"))

    @property
    def event(self) -> ZCdp:
        return ZCdp(self.rho)

    def describe(self) -> dict[str, Any]:
        return {"mechanism": "discrete_gaussian" if self.integer else "gaussian",
                "scale": self.scale, "sensitivity_l2": self.sensitivity,
                "rho": float(self.rho)}


@dataclass(frozen=True, slots=True)
class ThresholdSelection:
    """Private partition selection: noisy distinct-unit counts, released only above a threshold.

    Privacy argument
    ----------------
    Neighbouring relation: all rows of one person removed. Input: a map partition → number of
    distinct units, computed after contribution bounding, so one person changes at most
    ``l0`` entries (k·L0 for k pseudonyms), each by at most ``linf`` (k), ``l1`` in total.
    Mechanism: OpenDP's ``make_laplace_threshold`` (Rogers et al. 2023, "A Unifying Privacy
    Analysis Framework for Unknown Domain Algorithms"): discrete Laplace noise of scale b on each
    count; keys whose noisy count is below the threshold T are dropped. Loss: ε = l1/b for the
    counts that exist in both datasets, and δ = the probability that a partition only the
    removed person holds survives the threshold, which OpenDP's map bounds. We pick the smallest
    T whose mapped δ is ≤ the δ allotted, so a group that exists because of one person appears
    with probability ≤ δ (``tests/statistical/test_partition_selection.py``).
    """

    l0: int
    l1: int
    linf: int
    epsilon: Fraction
    delta: Fraction
    _noise: noise.ThresholdNoise = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("l0", "l1", "linf"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidParameter(f"{name}: expected a whole number ≥ 1, got {value!r}")
        eps = to_fraction(self.epsilon, "epsilon")
        dlt = to_fraction(self.delta, "delta")
        if eps == 0:
            raise InvalidParameter("epsilon: partition selection needs ε > 0")
        if not 0 < dlt < 1:
            raise InvalidParameter("delta: private partition selection needs 0 < δ < 1; give "
                                   "--delta or list public partitions")
        object.__setattr__(self, "epsilon", eps)
        object.__setattr__(self, "delta", dlt)
        scale = self.l1 / float(eps)
        for _ in range(_MAX_BUMPS):
            if Fraction(noise.laplace_threshold(scale, self.linf + 1)
                        .privacy_map(self.l0, self.l1, self.linf)[0]) <= eps:
                break
            scale = math.nextafter(scale * (1 + 1e-12), math.inf)
        else:
            raise InternalError("could not calibrate the threshold scale")
        object.__setattr__(self, "_noise", self._find_threshold(scale, dlt))

    def _find_threshold(self, scale: float, delta: Fraction) -> noise.ThresholdNoise:
        def delta_at(t: int) -> float:
            return noise.laplace_threshold(scale, t).privacy_map(self.l0, self.l1, self.linf)[1]

        lo = self.linf  # delta_at(lo) is large
        hi = max(lo + 1, math.ceil(self.linf + scale * math.log(self.l0 / float(delta)) + 1))
        while Fraction(delta_at(hi)) > delta:
            lo, hi = hi, hi * 2
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if Fraction(delta_at(mid)) <= delta:
                hi = mid
            else:
                lo = mid
        return noise.laplace_threshold(scale, hi)

    @property
    def scale(self) -> float:
        return self._noise.scale

    @property
    def threshold(self) -> int:
        return self._noise.threshold

    @property
    def event(self) -> ApproxDp:
        return ApproxDp(self.epsilon, self.delta)

    def mapped_loss(self) -> tuple[float, float]:
        """OpenDP's (ε, δ) for this mechanism at (l0, l1, linf)."""
        return self._noise.privacy_map(self.l0, self.l1, self.linf)

    def release(self, counts: Mapping[str, int]) -> dict[str, int]:
        return self._noise.sample(counts)

    def ci_halfwidth(self, alpha: float = 0.05) -> float:
        return noise.accuracy(noise.NoiseKind.LAPLACE, self.scale, alpha, integer=True)

    def describe(self) -> dict[str, Any]:
        return {"mechanism": "laplace_threshold", "scale": self.scale,
                "threshold": self.threshold, "epsilon": float(self.epsilon),
                "delta": float(self.delta),
                "distance": {"l0": self.l0, "l1": self.l1, "linf": self.linf}}
