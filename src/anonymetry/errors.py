"""The few exceptions anonymetry raises, under one root.

::

    AnonymetryError
    ├── InvalidParameter   (also ValueError)  a privacy parameter or argument is out of range
    ├── PolicyError        (also ValueError)  the policy file is wrong; carries every problem
    ├── SchemaViolation    (also ValueError)  an event does not fit the taxonomy
    ├── ConsentDenied                          the data needs more consent than was given
    ├── BudgetExhausted                        a query would spend more than is left
    ├── ReleaseBlocked                         a release gate threshold is exceeded
    ├── TamperDetected                         a signature, MAC or hash chain does not verify
    ├── KeyUnavailable                         a key epoch is missing or crypto-shredded
    ├── Overloaded                             the collector cannot take more now; retry later
    └── InternalError                          a bug in anonymetry, never the caller's fault

Messages say what, where and what to do next, and never contain a raw identifier or an
event's value. This module is a leaf: it imports nothing of anonymetry's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "AnonymetryError",
    "BudgetExhausted",
    "ConsentDenied",
    "InternalError",
    "InvalidParameter",
    "KeyUnavailable",
    "Overloaded",
    "PolicyError",
    "PolicyProblem",
    "ReleaseBlocked",
    "SchemaViolation",
    "TamperDetected",
]


class AnonymetryError(Exception):
    """Root of every error anonymetry raises on purpose."""


class InvalidParameter(AnonymetryError, ValueError):
    """A parameter (ε, δ, a bound, a flag) is invalid; the message names it."""


@dataclass(frozen=True, slots=True)
class PolicyProblem:
    """One problem in a policy file: the dotted key path, the line (1-based) and what is wrong."""

    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.path} (line {self.line})" if self.line else self.path
        return f"{where}: {self.message}"


class PolicyError(AnonymetryError, ValueError):
    """The policy is invalid. ``problems`` lists every problem found, not only the first."""

    def __init__(self, problems: Sequence[PolicyProblem], source: str = "policy") -> None:
        self.problems = tuple(problems)
        self.source = source
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{source}: {len(self.problems)} problem(s)\n{lines}")


class SchemaViolation(AnonymetryError, ValueError):
    """An event does not fit the declared taxonomy.

    ``problems`` are strings of the form ``fields.amount: expected int, got str``; the event's
    values are never echoed.
    """

    def __init__(self, problems: Sequence[str], event: str | None = None) -> None:
        self.problems = tuple(problems)
        self.event = event
        prefix = f"event {event!r}: " if event else ""
        super().__init__(prefix + "; ".join(self.problems))


class ConsentDenied(AnonymetryError):
    """The data needs a consent level above the one in force."""


class BudgetExhausted(AnonymetryError):
    """A query would exceed the privacy budget; nothing was spent.

    Carries ``requested`` and ``remaining`` (as strings of exact values) so callers can react.
    """

    def __init__(self, message: str, *, requested: str = "", remaining: str = "") -> None:
        self.requested = requested
        self.remaining = remaining
        super().__init__(message)


class ReleaseBlocked(AnonymetryError):
    """A release gate threshold is exceeded; the candidate must not be released."""


class TamperDetected(AnonymetryError):
    """A signature, authentication tag or hash chain does not verify."""


class KeyUnavailable(AnonymetryError):
    """The key for an epoch is missing or was destroyed (crypto-shredded)."""


class Overloaded(AnonymetryError):
    """The collector is at capacity; ``retry_after`` seconds is a hint to the client."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class InternalError(AnonymetryError):
    """A bug in anonymetry. Please report it with the message (it holds no identifiers)."""
