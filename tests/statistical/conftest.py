"""Fixtures of the statistical tests: a deliberately mis-scaled noise source.

``MisScaledNoise`` has the interface of :class:`anonymetry.privacy.noise.VectorNoise` and claims
``scale`` (its privacy map and accuracy are those of the claimed scale) but draws from OpenDP
with ``scale × factor``. Every statistical test must reject it for factor 0.8 and 1.2.
"""

from __future__ import annotations

from typing import Any

import pytest

from anonymetry.privacy import noise


class MisScaledNoise:
    def __init__(self, kind: noise.NoiseKind, scale: float, integer: bool, factor: float) -> None:
        self.kind, self.scale, self.integer = kind, float(scale), integer
        self._claimed = noise.VectorNoise(kind, scale, integer)
        self._actual = noise.VectorNoise(kind, scale * factor, integer)

    def sample(self, values: Any) -> list[Any]:
        return self._actual.sample(values)

    def privacy_map(self, sensitivity: float) -> float:
        return self._claimed.privacy_map(sensitivity)

    def accuracy(self, alpha: float) -> float:
        return self._claimed.accuracy(alpha)

    @property
    def std(self) -> float:
        return self._claimed.std


@pytest.fixture
def mis_scale(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``mis_scale(factor)``: from now on every Laplace/Gaussian noise source built through
    :mod:`anonymetry.privacy.noise` claims its scale but draws with ``scale × factor``."""

    def apply(factor: float) -> None:
        monkeypatch.setattr(noise, "laplace", lambda scale, *, integer: MisScaledNoise(
            noise.NoiseKind.LAPLACE, scale, integer, factor))
        monkeypatch.setattr(noise, "gaussian", lambda scale, *, integer: MisScaledNoise(
            noise.NoiseKind.GAUSSIAN, scale, integer, factor))

    return apply
