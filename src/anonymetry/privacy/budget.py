"""``PrivacyLoss``: an (ε, δ) pair as a small frozen type with exact arithmetic.

Why exact: budgets are summed and compared many times (ledger, budget split, CLI); floats drift
and a drift of 1e-16 can let a query through that the budget refuses. Both parts are held as
:class:`fractions.Fraction`, built from ``int``, ``Fraction``, decimal strings or floats. A float
is read as the decimal it prints as (``0.1`` → 1/10), so ten queries of ε=0.1 fill a budget of
1 exactly; the mechanisms then check OpenDP's privacy map against that exact value, so the
noise is never calibrated to more than the stated ε.

Validation happens once, when built: NaN, infinities and negatives are rejected and the message
names the field; ``delta`` must also be < 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from anonymetry.errors import InvalidParameter

__all__ = ["PrivacyLoss", "to_fraction"]

Number = int | float | str | Fraction


def to_fraction(value: Number, field: str) -> Fraction:
    """``value`` as an exact, finite, non-negative Fraction; the error names ``field``."""
    if isinstance(value, bool):
        raise InvalidParameter(f"{field}: expected a number, got a bool")
    try:
        if isinstance(value, float):
            if not math.isfinite(value):
                raise InvalidParameter(f"{field}: must be finite, got {value}")
            out = Fraction(repr(value))
        elif isinstance(value, int | Fraction):
            out = Fraction(value)
        elif isinstance(value, str):
            text = value.strip()
            if text.lower() in {"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity",
                                "+infinity", "-infinity"}:
                raise InvalidParameter(f"{field}: must be finite, got {text!r}")
            out = Fraction(text)
        else:
            raise InvalidParameter(f"{field}: expected a number, got {type(value).__name__}")
    except (ValueError, ZeroDivisionError) as exc:
        if isinstance(exc, InvalidParameter):
            raise
        raise InvalidParameter(f"{field}: not a number: {value!r}") from None
    if out < 0:
        raise InvalidParameter(f"{field}: must be ≥ 0, got {float(out)}")
    return out


@dataclass(frozen=True, slots=True, init=False)
class PrivacyLoss:
    """An (ε, δ) differential-privacy loss, exact. ``PrivacyLoss(1, "1e-6")``.

    Supports ``+`` (basic sequential composition, exact), ``-`` (what is left of a budget; an
    error if it would go negative), ``<=`` (fits within, both parts), ``*`` by a non-negative
    integer (k-fold composition) and :meth:`group` (group privacy for k units).
    """

    epsilon: Fraction
    delta: Fraction

    def __init__(self, epsilon: Number, delta: Number = 0) -> None:
        eps = to_fraction(epsilon, "epsilon")
        dlt = to_fraction(delta, "delta")
        if dlt >= 1:
            raise InvalidParameter(f"delta: must be < 1, got {float(dlt)}")
        object.__setattr__(self, "epsilon", eps)
        object.__setattr__(self, "delta", dlt)

    # -- arithmetic ------------------------------------------------------------------------
    def __add__(self, other: PrivacyLoss) -> PrivacyLoss:
        if not isinstance(other, PrivacyLoss):
            return NotImplemented
        return PrivacyLoss(self.epsilon + other.epsilon, self.delta + other.delta)

    def __sub__(self, other: PrivacyLoss) -> PrivacyLoss:
        if not isinstance(other, PrivacyLoss):
            return NotImplemented
        if other.epsilon > self.epsilon or other.delta > self.delta:
            raise InvalidParameter(
                f"cannot subtract ε={float(other.epsilon):g}, δ={float(other.delta):g} from "
                f"ε={float(self.epsilon):g}, δ={float(self.delta):g}: the result is negative")
        return PrivacyLoss(self.epsilon - other.epsilon, self.delta - other.delta)

    def __mul__(self, k: int) -> PrivacyLoss:
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            return NotImplemented
        return PrivacyLoss(self.epsilon * k, self.delta * k)

    __rmul__ = __mul__

    def __le__(self, other: PrivacyLoss) -> bool:
        if not isinstance(other, PrivacyLoss):
            return NotImplemented
        return self.epsilon <= other.epsilon and self.delta <= other.delta

    def __ge__(self, other: PrivacyLoss) -> bool:
        if not isinstance(other, PrivacyLoss):
            return NotImplemented
        return other <= self

    def fits_within(self, budget: PrivacyLoss) -> bool:
        return self <= budget

    def split(self, n: int) -> PrivacyLoss:
        """An equal 1/n share of both parts (exact)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise InvalidParameter(f"split: need a whole number of shares ≥ 1, got {n!r}")
        return PrivacyLoss(self.epsilon / n, self.delta / n)

    def group(self, k: int) -> PrivacyLoss:
        """Group privacy: the loss for a group of ``k`` units given this loss per unit.

        (ε, δ)-DP per unit gives (kε, k·e^{(k-1)ε}·δ)-DP for k units (Dwork–Roth, Lemma 2.2 and
        its approximate-DP form). ``exp`` is taken in floating point and rounded *up* to the next
        representable value so the stated δ is never smaller than the true one.
        """
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InvalidParameter(f"group: need k ≥ 1 units, got {k!r}")
        if k == 1 or self.delta == 0:
            return PrivacyLoss(self.epsilon * k, self.delta * k)
        factor = Fraction(math.nextafter(math.exp((k - 1) * float(self.epsilon)), math.inf))
        delta = self.delta * k * factor
        if delta >= 1:
            raise InvalidParameter(f"group: δ for {k} units is ≥ 1 (no guarantee); use fewer "
                                   "units per person or a smaller ε")
        return PrivacyLoss(self.epsilon * k, delta)

    # -- presentation ----------------------------------------------------------------------
    @property
    def is_pure(self) -> bool:
        return self.delta == 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: floats for reading plus exact strings for round trips."""
        return {"epsilon": float(self.epsilon), "delta": float(self.delta),
                "epsilon_exact": str(self.epsilon), "delta_exact": str(self.delta)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PrivacyLoss:
        return cls(data.get("epsilon_exact", data["epsilon"]),
                   data.get("delta_exact", data.get("delta", 0)))

    def __str__(self) -> str:
        return f"ε={float(self.epsilon):.6g}, δ={float(self.delta):.3g}"

    def __repr__(self) -> str:
        return f"PrivacyLoss(epsilon={self.epsilon!s}, delta={self.delta!s})"
