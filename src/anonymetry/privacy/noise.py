"""The one module that draws privacy noise. Every sample comes from an OpenDP measurement.

Why only here: seeded or non-cryptographic noise can be predicted and subtracted, so all privacy
noise goes through OpenDP's vetted samplers (discrete Laplace and discrete Gaussian, exact on
integers; on floats OpenDP samples on a fine lattice and rounds, its ``k`` granularity), which
draw from the operating system's CSPRNG. NumPy's and the standard library's generators are
banned in this package (ruff TID251), and ``tests/statistical/`` checks the distribution of
what comes out.

What is here:

- :func:`laplace` / :func:`gaussian`: a :class:`VectorNoise` adding i.i.d. noise of a given scale
  to a vector of integers (discrete distributions) or floats. ``privacy_map(d_in)`` is OpenDP's
  own privacy map of the measurement: ε (pure DP) for Laplace with an L1 sensitivity, ρ (zCDP)
  for Gaussian with an L2 sensitivity.
- :func:`laplace_threshold`: OpenDP's ``make_laplace_threshold`` — noisy counts of a map of
  partition keys; keys whose noisy count is below the threshold are removed. Its map gives the
  (ε, δ) for an (L0, L1, L∞) distance.
- :func:`accuracy`: the half-width ``a`` with ``P(|noise| ≥ a) ≤ α`` from OpenDP's accuracy
  helpers, used for confidence intervals.

Calibration (which scale for which ε) and the written privacy arguments are in
:mod:`anonymetry.privacy.mechanisms`; this module only builds and runs OpenDP measurements.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import opendp.prelude as dp

from anonymetry.errors import InternalError, InvalidParameter

__all__ = [
    "NoiseKind",
    "ThresholdNoise",
    "VectorNoise",
    "accuracy",
    "gaussian",
    "laplace",
    "laplace_threshold",
    "opendp_version",
]

dp.enable_features("contrib")
_INT = "i64"  # counts beyond 2^31 must not overflow (OpenDP's default int is i32)


class NoiseKind(enum.StrEnum):
    LAPLACE = "laplace"
    GAUSSIAN = "gaussian"


def opendp_version() -> str:
    return str(getattr(dp, "__version__", "unknown"))


def _check_scale(scale: float) -> float:
    if isinstance(scale, bool) or not isinstance(scale, int | float):
        raise InvalidParameter(f"noise scale: expected a number, got {type(scale).__name__}")
    scale = float(scale)
    if not (math.isfinite(scale) and scale > 0):
        raise InvalidParameter(f"noise scale: must be finite and > 0, got {scale}")
    return scale


def _build(kind: NoiseKind, scale: float, integer: bool) -> Any:
    atom = dp.atom_domain(T=_INT) if integer else dp.atom_domain(T=float, nan=False)
    domain = dp.vector_domain(atom)
    if kind is NoiseKind.LAPLACE:
        metric = dp.l1_distance(T=_INT if integer else float)
        return dp.m.make_laplace(domain, metric, scale=scale)
    metric = dp.l2_distance(T=float)
    return dp.m.make_gaussian(domain, metric, scale=scale)


@dataclass(frozen=True, slots=True)
class VectorNoise:
    """Adds i.i.d. ``kind`` noise of ``scale`` to each entry of a vector, via OpenDP.

    ``scale`` is OpenDP's parameter: for Laplace the density is ∝ exp(-|x|/scale); for
    Gaussian it is the standard deviation. ``integer`` selects the discrete distributions.
    """

    kind: NoiseKind
    scale: float
    integer: bool
    _measurement: Any = field(repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", _check_scale(self.scale))
        object.__setattr__(self, "_measurement", _build(self.kind, self.scale, self.integer))

    def sample(self, values: Sequence[int] | Sequence[float]) -> list[Any]:
        """``values`` plus fresh noise (one OpenDP invocation for the whole vector)."""
        if len(values) == 0:
            return []
        if self.integer:
            data: list[Any] = [int(v) for v in values]
        else:
            data = [float(v) for v in values]
            if not all(math.isfinite(v) for v in data):
                raise InternalError("noise input holds a non-finite value; bounding failed")
        out = self._measurement(data)
        if len(out) != len(data):
            raise InternalError("OpenDP returned a vector of another length")
        return list(out)

    def privacy_map(self, sensitivity: float) -> float:
        """OpenDP's privacy map: ε for Laplace (L1 ``sensitivity``), ρ for Gaussian (L2)."""
        if self.kind is NoiseKind.LAPLACE and self.integer:
            if float(sensitivity) != int(sensitivity):
                raise InvalidParameter("an integer Laplace measurement needs a whole sensitivity")
            return float(self._measurement.map(int(sensitivity)))
        return float(self._measurement.map(float(sensitivity)))

    def accuracy(self, alpha: float) -> float:
        """Half-width ``a`` with ``P(|noise| ≥ a) ≤ alpha`` (OpenDP accuracy helpers)."""
        return accuracy(self.kind, self.scale, alpha, integer=self.integer)

    @property
    def std(self) -> float:
        """The standard deviation of one noise draw (continuous approximation for Laplace)."""
        return self.scale * math.sqrt(2) if self.kind is NoiseKind.LAPLACE else self.scale


def laplace(scale: float, *, integer: bool) -> VectorNoise:
    """(Discrete, if ``integer``) Laplace noise of ``scale`` from OpenDP's ``make_laplace``."""
    return VectorNoise(NoiseKind.LAPLACE, scale, integer)


def gaussian(scale: float, *, integer: bool) -> VectorNoise:
    """(Discrete, if ``integer``) Gaussian noise of std ``scale`` from OpenDP's
    ``make_gaussian`` (zCDP)."""
    return VectorNoise(NoiseKind.GAUSSIAN, scale, integer)


def accuracy(kind: NoiseKind, scale: float, alpha: float, *, integer: bool) -> float:
    """The half-width of a (1 - alpha) interval for one noise draw, from OpenDP."""
    scale = _check_scale(scale)
    if not 0 < alpha < 1:
        raise InvalidParameter(f"alpha: must be in (0, 1), got {alpha}")
    if kind is NoiseKind.LAPLACE:
        fn = dp.discrete_laplacian_scale_to_accuracy if integer else dp.laplacian_scale_to_accuracy
    else:
        fn = dp.discrete_gaussian_scale_to_accuracy if integer else dp.gaussian_scale_to_accuracy
    return float(fn(scale, alpha))


@dataclass(frozen=True, slots=True)
class ThresholdNoise:
    """OpenDP's Laplace threshold mechanism over a map ``key -> integer count``.

    Adds discrete Laplace noise of ``scale`` to each count and keeps only keys whose noisy count
    is ≥ ``threshold``. Keys absent from the input are never released.
    """

    scale: float
    threshold: int
    _measurement: Any = field(repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", _check_scale(self.scale))
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, int):
            raise InvalidParameter("threshold: expected a whole number")
        domain = dp.map_domain(dp.atom_domain(T=str), dp.atom_domain(T=_INT))
        metric = dp.l01inf_distance(dp.absolute_distance(T=_INT))
        meas = dp.m.make_laplace_threshold(domain, metric, scale=self.scale,
                                           threshold=self.threshold)
        object.__setattr__(self, "_measurement", meas)

    def sample(self, counts: Mapping[str, int]) -> dict[str, int]:
        if not counts:
            return {}
        return dict(self._measurement({str(k): int(v) for k, v in counts.items()}))

    def privacy_map(self, l0: int, l1: int, linf: int) -> tuple[float, float]:
        """(ε, δ) when one unit changes ≤ ``l0`` counts, by ≤ ``linf`` each, ``l1`` in total."""
        eps, delta = self._measurement.map((int(l0), int(l1), int(linf)))
        return float(eps), float(delta)


def laplace_threshold(scale: float, threshold: int) -> ThresholdNoise:
    return ThresholdNoise(scale, threshold)
