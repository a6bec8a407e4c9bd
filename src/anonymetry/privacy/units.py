"""Who is protected and how much one of them may contribute: ``PrivacyUnit``,
``ContributionBounds`` (L0, L∞) and ``ClampRange``. Small frozen types, validated when built.

A *unit* is the thing whose presence a guarantee hides: by default the user pseudonym (which
links one person's devices within a key epoch), or the device. Pseudonyms rotate per key epoch,
so across ``k`` epochs one person is up to ``k`` units: :meth:`ContributionBounds.for_person`
gives the bounds that then hold per person (group privacy by sensitivity scaling).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from anonymetry.errors import InvalidParameter

__all__ = ["ClampRange", "ContributionBounds", "PrivacyUnit"]


class PrivacyUnit(enum.StrEnum):
    """The protected unit. ``USER`` links a person's devices; ``DEVICE`` is one install;
    ``COLUMN`` is an analyst table's own declared unit column."""

    USER = "user"
    DEVICE = "device"
    COLUMN = "column"

    @property
    def describes(self) -> str:
        return {"user": "person (all of their devices)", "device": "device (one install)",
                "column": "declared unit"}[self.value]


def _whole(value: object, field: str, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParameter(f"{field}: expected a whole number, got {type(value).__name__}")
    if value < minimum:
        raise InvalidParameter(f"{field}: must be ≥ {minimum}, got {value}")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class ContributionBounds:
    """At most ``max_partitions`` (L0) partitions per unit and ``max_per_partition`` (L∞)
    contributions per unit per partition."""

    max_partitions: int
    max_per_partition: int

    def __post_init__(self) -> None:
        _whole(self.max_partitions, "max_partitions (L0)")
        _whole(self.max_per_partition, "max_per_partition (L∞)")

    @property
    def l0(self) -> int:
        return self.max_partitions

    @property
    def linf(self) -> int:
        return self.max_per_partition

    def for_person(self, units_per_person: int) -> ContributionBounds:
        """Bounds per person when a person may appear as ``units_per_person`` units (e.g. one
        pseudonym per key epoch): each unit keeps ≤ L0 partitions and ≤ L∞ rows in each, so a
        person touches ≤ k·L0 partitions with ≤ k·L∞ rows in each."""
        k = _whole(units_per_person, "units_per_person")
        return ContributionBounds(max_partitions=self.max_partitions * k,
                                  max_per_partition=self.max_per_partition * k)

    def to_dict(self) -> dict[str, int]:
        return {"max_partitions": self.max_partitions, "max_per_partition": self.max_per_partition}


@dataclass(frozen=True, slots=True, kw_only=True)
class ClampRange:
    """Values are clamped to ``[lo, hi]`` before they are summed."""

    lo: float
    hi: float

    def __post_init__(self) -> None:
        for name in ("lo", "hi"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidParameter(f"clamp.{name}: expected a number, got "
                                       f"{type(value).__name__}")
        if not -math.inf < self.lo < self.hi < math.inf:  # also false for NaN
            raise InvalidParameter(f"clamp: need finite lo < hi, got {self.lo}, {self.hi}")

    @classmethod
    def parse(cls, text: str) -> ClampRange:
        """``"LO,HI"`` as on the command line."""
        parts = [p.strip() for p in text.split(",")]
        if len(parts) != 2:
            raise InvalidParameter(f"clamp: expected LO,HI, got {text!r}")
        try:
            lo, hi = float(parts[0]), float(parts[1])
        except ValueError:
            raise InvalidParameter(f"clamp: expected two numbers LO,HI, got {text!r}") from None
        return cls(lo=lo, hi=hi)

    @property
    def width(self) -> float:
        return self.hi - self.lo

    @property
    def mid(self) -> float:
        return (self.lo + self.hi) / 2

    @property
    def radius(self) -> float:
        """Half the width: the largest distance of a clamped value from :attr:`mid`."""
        return (self.hi - self.lo) / 2

    @property
    def max_abs(self) -> float:
        return max(abs(self.lo), abs(self.hi))

    def to_dict(self) -> dict[str, float]:
        return {"lo": self.lo, "hi": self.hi}
