"""Composition of privacy losses: accountants with explicit, round-trippable state.

A release is described by an **event** (what the mechanism guarantees):

- :class:`PureDp` — ε-DP (Laplace, discrete Laplace);
- :class:`ApproxDp` — (ε, δ)-DP (threshold partition selection);
- :class:`ZCdp` — ρ-zCDP (Gaussian, discrete Gaussian).

An **accountant** composes events and answers ``epsilon(delta)``: the smallest ε it can prove
for the whole sequence at that δ (``math.inf`` if none). Accountants are named in a registry
(:data:`ACCOUNTANTS`, :func:`make_accountant`); their state is the list of events, so
``state_dict()`` / :func:`accountant_from_state` round-trip exactly by replay.

- ``basic`` — sequential composition with exact :class:`fractions.Fraction` sums (pure and
  approximate events), zCDP events summed in ρ and converted once with Bun–Steinke
  (ρ + 2√(ρ·ln(1/δ′))) at δ′ = the δ left after the approximate events.
- ``pld`` (default) — Google's ``dp-accounting`` privacy-loss-distribution accountant. Each
  pure/approximate event enters as the worst-case PLD of an (ε, δ)-DP mechanism
  (``from_privacy_parameters``), valid whatever the mechanism, and identical events are
  self-composed. zCDP events are composed beside it with basic composition (δ split in half).
  The answer is the minimum of this bound and ``basic``'s (both are valid upper bounds; the PLD
  discretisation otherwise overstates a single release by up to 1e-3).
- ``rdp`` — ``dp-accounting``'s Rényi accountant: zCDP events as ``ZCDpEvent(ρ)``, pure events
  as ``ZCDpEvent(ε²/2)`` (ε-DP ⇒ ε²/2-zCDP, Bun–Steinke Prop. 1.4); approximate events beside it
  by basic composition. Also capped by ``basic``.

The accountant only computes; persistence and atomic debits are the ledger's job
(:mod:`anonymetry.analytics.ledger`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar, Protocol

from dp_accounting import dp_event
from dp_accounting.pld import common as pld_common
from dp_accounting.pld import privacy_loss_distribution as pld_lib
from dp_accounting.rdp import rdp_privacy_accountant

from anonymetry.errors import InvalidParameter
from anonymetry.privacy.budget import PrivacyLoss, to_fraction

__all__ = [
    "ACCOUNTANTS",
    "DEFAULT_ACCOUNTANT",
    "Accountant",
    "ApproxDp",
    "BasicAccountant",
    "Event",
    "PldAccountant",
    "PureDp",
    "RdpAccountant",
    "ZCdp",
    "accountant_from_state",
    "event_from_dict",
    "make_accountant",
    "zcdp_to_epsilon",
]


@dataclass(frozen=True, slots=True)
class PureDp:
    """An ε-DP release."""

    epsilon: Fraction

    def __post_init__(self) -> None:
        object.__setattr__(self, "epsilon", to_fraction(self.epsilon, "epsilon"))

    def to_dict(self) -> dict[str, str]:
        return {"kind": "pure", "epsilon": str(self.epsilon)}


@dataclass(frozen=True, slots=True)
class ApproxDp:
    """An (ε, δ)-DP release."""

    epsilon: Fraction
    delta: Fraction

    def __post_init__(self) -> None:
        object.__setattr__(self, "epsilon", to_fraction(self.epsilon, "epsilon"))
        object.__setattr__(self, "delta", to_fraction(self.delta, "delta"))
        if self.delta >= 1:
            raise InvalidParameter("delta: must be < 1")

    def to_dict(self) -> dict[str, str]:
        return {"kind": "approx", "epsilon": str(self.epsilon), "delta": str(self.delta)}


@dataclass(frozen=True, slots=True)
class ZCdp:
    """A ρ-zCDP release."""

    rho: Fraction

    def __post_init__(self) -> None:
        object.__setattr__(self, "rho", to_fraction(self.rho, "rho"))

    def to_dict(self) -> dict[str, str]:
        return {"kind": "zcdp", "rho": str(self.rho)}


Event = PureDp | ApproxDp | ZCdp


def event_from_dict(data: dict[str, Any]) -> Event:
    kind = data.get("kind")
    if kind == "pure":
        return PureDp(Fraction(data["epsilon"]))
    if kind == "approx":
        return ApproxDp(Fraction(data["epsilon"]), Fraction(data["delta"]))
    if kind == "zcdp":
        return ZCdp(Fraction(data["rho"]))
    raise InvalidParameter(f"accounting event: unknown kind {kind!r}; expected pure, approx, zcdp")


def zcdp_to_epsilon(rho: float, delta: float) -> float:
    """ρ-zCDP ⇒ (ρ + 2√(ρ·ln(1/δ)), δ)-DP (Bun & Steinke 2016, Prop. 1.3), rounded up."""
    if rho == 0:
        return 0.0
    if not 0 < delta < 1:
        return math.inf
    eps = rho + 2 * math.sqrt(rho * math.log(1 / delta))
    return math.nextafter(eps, math.inf)


def _check_delta(delta: float) -> float:
    delta = float(delta)
    if not 0 <= delta < 1 or math.isnan(delta):
        raise InvalidParameter(f"delta: must be in [0, 1), got {delta}")
    return delta


class Accountant(Protocol):
    """Composes events; reports the ε it can prove at a δ."""

    name: ClassVar[str]

    @property
    def events(self) -> tuple[Event, ...]: ...

    def compose(self, event: Event, count: int = 1) -> None: ...

    def epsilon(self, delta: float) -> float: ...

    def committed_delta(self) -> Fraction: ...

    def state_dict(self) -> dict[str, Any]: ...


class _Base:
    name: ClassVar[str] = ""

    def __init__(self, events: Iterable[Event] = ()) -> None:
        self._events: list[Event] = []
        for ev in events:
            self.compose(ev)

    @property
    def events(self) -> tuple[Event, ...]:
        return tuple(self._events)

    def compose(self, event: Event, count: int = 1) -> None:
        if not isinstance(event, PureDp | ApproxDp | ZCdp):
            raise InvalidParameter(f"{self.name} accountant: unsupported event {event!r}")
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise InvalidParameter(f"count: expected a whole number ≥ 0, got {count!r}")
        self._events.extend([event] * count)

    def committed_delta(self) -> Fraction:
        """δ spent outright by approximate events (basic composition)."""
        return sum((e.delta for e in self._events if isinstance(e, ApproxDp)), Fraction(0))

    def state_dict(self) -> dict[str, Any]:
        return {"accountant": self.name, "events": [e.to_dict() for e in self._events]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("accountant") != self.name:
            raise InvalidParameter(f"state of accountant {state.get('accountant')!r} loaded "
                                   f"into {self.name!r}")
        self._events = [event_from_dict(e) for e in state.get("events", [])]

    def _basic(self, delta: float) -> float:
        pure = sum((e.epsilon for e in self._events if isinstance(e, PureDp)), Fraction(0))
        approx = [e for e in self._events if isinstance(e, ApproxDp)]
        eps_a = sum((e.epsilon for e in approx), Fraction(0))
        delta_a = sum((e.delta for e in approx), Fraction(0))
        rho = sum((e.rho for e in self._events if isinstance(e, ZCdp)), Fraction(0))
        delta_f = Fraction(delta)
        if delta_a > delta_f:
            return math.inf
        if rho == 0:
            return _round_up(pure + eps_a)
        left = float(delta_f - delta_a)
        if left <= 0:
            return math.inf
        return _round_up(pure + eps_a) + zcdp_to_epsilon(float(rho), left)


def _round_up(x: Fraction) -> float:
    f = float(x)
    return f if Fraction(f) >= x else math.nextafter(f, math.inf)


class BasicAccountant(_Base):
    """Sequential composition, exact (see the module docstring)."""

    name: ClassVar[str] = "basic"

    def epsilon(self, delta: float) -> float:
        return self._basic(_check_delta(delta))


class PldAccountant(_Base):
    """``dp-accounting`` PLD composition of (ε, δ) events, capped by basic composition."""

    name: ClassVar[str] = "pld"
    value_discretization_interval: ClassVar[float] = 1e-3

    def epsilon(self, delta: float) -> float:
        delta = _check_delta(delta)
        basic = self._basic(delta)
        dp_events = [e for e in self._events if isinstance(e, PureDp | ApproxDp)]
        z_events = [e for e in self._events if isinstance(e, ZCdp)]
        if not dp_events:
            return basic
        delta_pld = delta / 2 if z_events else delta
        pld = None
        for (eps, dlt), count in Counter(
                (e.epsilon, getattr(e, "delta", Fraction(0))) for e in dp_events).items():
            one = pld_lib.from_privacy_parameters(
                pld_common.DifferentialPrivacyParameters(float(eps), float(dlt)),
                value_discretization_interval=self.value_discretization_interval)
            part = one.self_compose(count) if count > 1 else one
            pld = part if pld is None else pld.compose(part)
        assert pld is not None
        eps_pld = float(pld.get_epsilon_for_delta(delta_pld))
        if z_events:
            rho = float(sum((e.rho for e in z_events), Fraction(0)))
            eps_pld += zcdp_to_epsilon(rho, delta - delta_pld)
        return min(basic, eps_pld)


class RdpAccountant(_Base):
    """``dp-accounting`` Rényi composition of pure and zCDP events, capped by basic."""

    name: ClassVar[str] = "rdp"

    def epsilon(self, delta: float) -> float:
        delta = _check_delta(delta)
        basic = self._basic(delta)
        approx = [e for e in self._events if isinstance(e, ApproxDp)]
        rest = [e for e in self._events if not isinstance(e, ApproxDp)]
        if not rest:
            return basic
        delta_a = sum((e.delta for e in approx), Fraction(0))
        left = float(Fraction(delta) - delta_a)
        if left <= 0:
            return basic
        acc = rdp_privacy_accountant.RdpAccountant()
        for ev, count in Counter(rest).items():
            rho = ev.rho if isinstance(ev, ZCdp) else ev.epsilon ** 2 / 2
            acc.compose(dp_event.ZCDpEvent(rho=float(rho)), count)
        eps = float(acc.get_epsilon(left)) + _round_up(sum((e.epsilon for e in approx),
                                                           Fraction(0)))
        return min(basic, eps)


ACCOUNTANTS: dict[str, type[_Base]] = {
    BasicAccountant.name: BasicAccountant,
    PldAccountant.name: PldAccountant,
    RdpAccountant.name: RdpAccountant,
}
DEFAULT_ACCOUNTANT = PldAccountant.name


def make_accountant(name: str = DEFAULT_ACCOUNTANT, events: Sequence[Event] = ()) -> _Base:
    try:
        cls = ACCOUNTANTS[name]
    except KeyError:
        raise InvalidParameter(f"accountant: unknown {name!r}; expected one of "
                               f"{', '.join(sorted(ACCOUNTANTS))}") from None
    return cls(events)


def accountant_from_state(state: dict[str, Any]) -> _Base:
    acc = make_accountant(str(state.get("accountant", "")))
    acc.load_state_dict(state)
    return acc


def loss_of(events: Iterable[Event], delta: float, accountant: str = DEFAULT_ACCOUNTANT
            ) -> PrivacyLoss:
    """The (ε, δ) the named accountant proves for ``events`` at ``delta``."""
    acc = make_accountant(accountant, list(events))
    eps = acc.epsilon(delta)
    if math.isinf(eps):
        raise InvalidParameter(f"no finite ε at δ={delta:g} for these releases; raise δ")
    return PrivacyLoss(eps, delta)
