"""The typed, immutable policy: taxonomy, identity, consent, time, retention, analytics
defaults, budgets, release thresholds and roles.

Every object here is a frozen dataclass built only by :mod:`anonymetry.policy.loader`, which
validates all of it first; inner code trusts these values.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = [
    "AnalyticsDefaults",
    "BudgetPolicy",
    "ConsentLevel",
    "ConsentPolicy",
    "EventSpec",
    "FieldSpec",
    "FieldType",
    "Identity",
    "Policy",
    "ReleasePolicy",
    "RetentionPolicy",
    "Sensitivity",
    "TimeGranularity",
    "TimePolicy",
]


class ConsentLevel(enum.IntEnum):
    """Consent levels, ordered: ``none`` (opted out) < ``essential`` < ``diagnostics`` <
    ``usage``."""

    NONE = 0
    ESSENTIAL = 1
    DIAGNOSTICS = 2
    USAGE = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> ConsentLevel:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            choices = ", ".join(level.label for level in cls)
            raise ValueError(f"unknown consent level {text!r}; expected one of {choices}") from None


class Sensitivity(enum.StrEnum):
    """How sensitive a field is (drives retention classes and risk QI defaults)."""

    TECHNICAL = "technical"
    INTERACTION = "interaction"
    STORED_CONTENT = "stored_content"
    HIGHLY_SENSITIVE = "highly_sensitive"


class FieldType(enum.StrEnum):
    STRING = "string"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    ENUM = "enum"


class TimeGranularity(enum.StrEnum):
    """How coarse stored times are."""

    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"

    @property
    def seconds(self) -> int:
        return {"minute": 60, "hour": 3600, "day": 86400}[self.value]


@dataclass(frozen=True, slots=True, kw_only=True)
class FieldSpec:
    """One declared attribute of an event."""

    name: str
    type: FieldType
    sensitivity: Sensitivity
    consent: ConsentLevel
    required: bool = False
    values: tuple[str, ...] | None = None
    min: float | None = None
    max: float | None = None
    max_length: int | None = None
    unit: str | None = None
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": self.type.value,
            "sensitivity": self.sensitivity.value,
            "consent": self.consent.label,
            "required": self.required,
        }
        for key in ("values", "min", "max", "max_length", "unit"):
            value = getattr(self, key)
            if value is not None:
                out[key] = list(value) if key == "values" else value
        if self.description:
            out["description"] = self.description
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class EventSpec:
    """One event of the taxonomy: its consent level, owner, expiry and fields."""

    name: str
    consent: ConsentLevel
    owner: str
    expires: dt.date | None
    fields: Mapping[str, FieldSpec]
    description: str = ""

    def is_expired(self, today: dt.date) -> bool:
        return self.expires is not None and today > self.expires

    def to_dict(self) -> dict[str, Any]:
        return {
            "consent": self.consent.label,
            "owner": self.owner,
            "expires": self.expires.isoformat() if self.expires else None,
            "description": self.description,
            "fields": {name: spec.to_dict() for name, spec in self.fields.items()},
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Identity:
    """Which attributes carry the person (links their devices) and the device, and how often
    pseudonym keys rotate."""

    user_attribute: str = "user.id"
    device_attribute: str = "device.id"
    key_epoch_days: int = 30


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsentPolicy:
    default_level: ConsentLevel = ConsentLevel.ESSENTIAL
    honor_gpc: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class TimePolicy:
    granularity: TimeGranularity = TimeGranularity.HOUR
    max_age_days: int = 30
    max_future_seconds: int = 300


@dataclass(frozen=True, slots=True, kw_only=True)
class RetentionPolicy:
    """Days to keep data, per data class (a sensitivity name, or ``default``)."""

    days: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({"default": 395}))

    def for_class(self, data_class: str) -> int:
        return self.days.get(data_class, self.days["default"])


@dataclass(frozen=True, slots=True, kw_only=True)
class AnalyticsDefaults:
    """Defaults for contribution bounding and suppression (issue: Analyze)."""

    privacy_unit: str = "user"
    max_partitions: int = 5
    max_per_partition: int = 10
    min_cohort: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class BudgetPolicy:
    """Default budget per analyst and dataset, and its renewal period (``None``: never)."""

    epsilon: float = 10.0
    delta: float = 1e-6
    period_days: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReleasePolicy:
    """Thresholds a release must meet (issue: Assess)."""

    k_min: int = 10
    l_min: int | None = None
    t_max: float | None = None
    population_uniqueness_max: float = 0.001
    trace_points: int = 4
    trace_uniqueness_max: float = 0.05
    linkage_precision_max: float = 0.05


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    """The whole policy. Built by :func:`anonymetry.policy.load_policy`."""

    name: str
    version: int
    events: Mapping[str, EventSpec]
    identity: Identity = Identity()
    consent: ConsentPolicy = ConsentPolicy()
    time: TimePolicy = TimePolicy()
    retention: RetentionPolicy = RetentionPolicy()
    analytics: AnalyticsDefaults = AnalyticsDefaults()
    budgets: BudgetPolicy = BudgetPolicy()
    release: ReleasePolicy = ReleasePolicy()
    roles: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    hierarchies: Mapping[str, Mapping[str, Any]] = field(
        default_factory=lambda: MappingProxyType({}))
    """Generalization hierarchies per column for the risk remedies (``anonymetry anonymize``),
    in the format of :meth:`anonymetry.risk.hierarchy.Hierarchy.from_spec`."""

    def to_dict(self) -> dict[str, Any]:
        """The normalized policy as plain JSON-able data (what ``policy show --json`` prints)."""
        return {
            "name": self.name,
            "version": self.version,
            "identity": {
                "user_attribute": self.identity.user_attribute,
                "device_attribute": self.identity.device_attribute,
                "key_epoch_days": self.identity.key_epoch_days,
            },
            "consent": {
                "default_level": self.consent.default_level.label,
                "honor_gpc": self.consent.honor_gpc,
            },
            "time": {
                "granularity": self.time.granularity.value,
                "max_age_days": self.time.max_age_days,
                "max_future_seconds": self.time.max_future_seconds,
            },
            "retention": dict(self.retention.days),
            "analytics": {
                "privacy_unit": self.analytics.privacy_unit,
                "max_partitions": self.analytics.max_partitions,
                "max_per_partition": self.analytics.max_per_partition,
                "min_cohort": self.analytics.min_cohort,
            },
            "budgets": {
                "epsilon": self.budgets.epsilon,
                "delta": self.budgets.delta,
                "period_days": self.budgets.period_days,
            },
            "release": {
                "k_min": self.release.k_min,
                "l_min": self.release.l_min,
                "t_max": self.release.t_max,
                "population_uniqueness_max": self.release.population_uniqueness_max,
                "trace_points": self.release.trace_points,
                "trace_uniqueness_max": self.release.trace_uniqueness_max,
                "linkage_precision_max": self.release.linkage_precision_max,
            },
            "roles": {name: list(perms) for name, perms in self.roles.items()},
            "hierarchies": {col: _plain(spec) for col, spec in self.hierarchies.items()},
            "events": {name: spec.to_dict() for name, spec in self.events.items()},
        }


def _plain(value: Any) -> Any:
    """Frozen policy data (mapping proxies, tuples) back to JSON-able dicts and lists."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value
