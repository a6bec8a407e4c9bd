"""On-device minimization: only what the policy declares for the consented level leaves.

For one event and the consent level in force, :meth:`Minimizer.apply` decides:

- an event name the taxonomy does not declare: not sent (``undeclared``);
- an event past its expiry date: not sent (``expired``; the collector would drop it anyway);
- an event whose own consent level is above the one in force: not sent (``consent``);
- a field the event does not declare: removed (counted in ``fields_removed``);
- a field whose own consent level is above the one in force: removed (``fields_removed``);
- a value that does not fit its declared type, values or range, or a missing required field:
  the event is not sent (``invalid``), or :class:`~anonymetry.errors.SchemaViolation` is raised
  in strict mode. Messages name the field and the expectation, never the value.

The checks mirror what the collector enforces, so an event that leaves the device is one the
collector will store (unless the collector's consent ledger says less than the device does).
"""

from __future__ import annotations

import datetime as dt
import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from anonymetry.errors import SchemaViolation
from anonymetry.policy import ConsentLevel, EventSpec, FieldSpec, FieldType, Policy

__all__ = ["DropReason", "Minimized", "Minimizer"]


class DropReason(enum.StrEnum):
    """Why an event did not leave the device (the keys of the client's drop counters)."""

    CONSENT = "consent"
    UNDECLARED = "undeclared"
    EXPIRED = "expired"
    INVALID = "invalid"


@dataclass(frozen=True, slots=True)
class Minimized:
    """The outcome for one event: ``attributes`` to send (``None`` if dropped) and why not."""

    attributes: dict[str, Any] | None
    consent: ConsentLevel
    dropped: DropReason | None = None
    fields_removed: int = 0
    problems: tuple[str, ...] = ()


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    return type(value).__name__


def _check(spec: FieldSpec, value: Any) -> str | None:
    """What is wrong with ``value`` for ``spec`` (never quoting the value), or ``None``."""
    ftype = spec.type
    if ftype in (FieldType.STRING, FieldType.ENUM):
        if not isinstance(value, str):
            return f"expected {ftype.value}, got {_kind(value)}"
        if spec.values is not None and value not in spec.values:
            return f"not one of the declared values ({', '.join(spec.values)})"
        if spec.max_length is not None and len(value) > spec.max_length:
            return f"longer than max_length {spec.max_length}"
        return None
    if ftype is FieldType.BOOL:
        return None if isinstance(value, bool) else f"expected bool, got {_kind(value)}"
    if ftype is FieldType.INT:
        if isinstance(value, bool) or not isinstance(value, int):
            return f"expected int, got {_kind(value)}"
    elif isinstance(value, bool) or not isinstance(value, int | float):
        return f"expected float, got {_kind(value)}"
    elif not math.isfinite(value):
        return "expected a finite float"
    if spec.min is not None and value < spec.min:
        return f"below min {spec.min:g}"
    if spec.max is not None and value > spec.max:
        return f"above max {spec.max:g}"
    return None


class Minimizer:
    """Applies the policy's taxonomy and consent levels to events before they are queued.

    ``strict=True`` raises :class:`~anonymetry.errors.SchemaViolation` for undeclared events and
    invalid values (useful in development and tests); otherwise they are dropped and counted.
    """

    def __init__(self, policy: Policy, *, strict: bool = False) -> None:
        self.policy = policy
        self.strict = strict

    def spec(self, name: str) -> EventSpec | None:
        return self.policy.events.get(name)

    def apply(
        self,
        name: str,
        attributes: Mapping[str, Any],
        level: ConsentLevel,
        *,
        today: dt.date | None = None,
    ) -> Minimized:
        spec = self.policy.events.get(name)
        if spec is None:
            if self.strict:
                raise SchemaViolation(
                    ["name: not declared in the policy's taxonomy; declare it or fix the name"],
                    event=None,
                )
            return Minimized(None, level, DropReason.UNDECLARED)
        if spec.is_expired(today or dt.datetime.now(dt.UTC).date()):
            return Minimized(None, level, DropReason.EXPIRED)
        if level < spec.consent:
            return Minimized(None, level, DropReason.CONSENT)

        problems: list[str] = []
        for fname, fspec in spec.fields.items():
            if fname not in attributes or attributes[fname] is None:
                if fspec.required:
                    problems.append(f"fields.{fname}: is required")
                continue
            problem = _check(fspec, attributes[fname])
            if problem is not None:
                problems.append(f"fields.{fname}: {problem}")
        if problems:
            if self.strict:
                raise SchemaViolation(problems, event=name)
            return Minimized(None, level, DropReason.INVALID, problems=tuple(problems))

        kept: dict[str, Any] = {}
        removed = 0
        for key, value in attributes.items():
            fspec = spec.fields.get(key)
            if fspec is None or fspec.consent > level:
                if fspec is not None and fspec.required:
                    # The event cannot be sent in a valid form at this level.
                    return Minimized(None, level, DropReason.CONSENT)
                removed += 1
            elif value is not None:
                kept[key] = value
        return Minimized(kept, level, None, fields_removed=removed)
