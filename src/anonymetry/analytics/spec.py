"""What an analyst asks for: ``QuerySpec`` and its parts, parsed and validated at the boundary.

A spec holds no privacy reasoning: the compiler (:mod:`anonymetry.analytics.compiler`) turns it
into a bounded plan with sensitivities. Builders return new objects (``spec.where(...)``).

Text forms (as on the command line):

- metrics: ``count``, ``users`` (alias ``count_distinct``), ``sum:FIELD``, ``mean:FIELD``,
  ``variance:FIELD``, ``p50:FIELD`` / ``p90:FIELD`` / ``p99:FIELD`` / ``quantiles:FIELD``
  (p50, p90, p99), ``histogram:FIELD`` (bins over the clamp range);
- group keys: a column name, ``day`` / ``week`` (of ``time``) or ``day:COLUMN``;
- filters: ``COL=V``, ``COL!=V``, ``COL<V``, ``COL<=V``, ``COL>V``, ``COL>=V``,
  ``COL~A|B|C`` (one of). Values travel as bound parameters, never spliced into SQL.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from anonymetry.errors import InvalidParameter
from anonymetry.privacy.budget import PrivacyLoss
from anonymetry.privacy.units import ClampRange

__all__ = [
    "Filter",
    "GroupKey",
    "LinfMode",
    "Mechanism",
    "MetricKind",
    "MetricSpec",
    "QuerySpec",
    "TimeWindow",
    "check_identifier",
]

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]{0,63}$")


def check_identifier(name: str, what: str = "column") -> str:
    """A column name we can quote safely; the error names ``what``."""
    if not isinstance(name, str) or not _IDENT.match(name):
        raise InvalidParameter(f"{what}: {name!r} is not a valid column name (letters, digits, "
                               "'_' and '.', starting with a letter or '_')")
    return name


class MetricKind(enum.StrEnum):
    COUNT = "count"
    USERS = "users"
    SUM = "sum"
    MEAN = "mean"
    VARIANCE = "variance"
    QUANTILES = "quantiles"
    HISTOGRAM = "histogram"

    @property
    def needs_value(self) -> bool:
        return self not in (MetricKind.COUNT, MetricKind.USERS)


_QUANTILE_ALIASES = {"p50": (0.5,), "p90": (0.9,), "p99": (0.99,), "median": (0.5,),
                     "quantiles": (0.5, 0.9, 0.99)}


@dataclass(frozen=True, slots=True)
class MetricSpec:
    kind: MetricKind
    field: str | None = None
    quantiles: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.kind.needs_value:
            if self.field is None:
                raise InvalidParameter(f"metric {self.kind.value}: needs a field, e.g. "
                                       f"{self.kind.value}:duration_ms")
            check_identifier(self.field, f"metric {self.kind.value} field")
        elif self.field is not None:
            raise InvalidParameter(f"metric {self.kind.value}: takes no field")
        if self.kind is MetricKind.QUANTILES and (
                not self.quantiles or not all(0 < q < 1 for q in self.quantiles)):
                raise InvalidParameter("metric quantiles: each quantile must be in (0, 1)")

    @classmethod
    def parse(cls, text: str) -> MetricSpec:
        name, _, fld = text.strip().partition(":")
        name = name.strip().lower()
        fld_or_none = fld.strip() or None
        if name in ("count", "rows", "events"):
            return cls(MetricKind.COUNT, fld_or_none)
        if name in ("users", "count_distinct", "distinct", "units", "devices"):
            return cls(MetricKind.USERS, fld_or_none)
        if name in _QUANTILE_ALIASES:
            return cls(MetricKind.QUANTILES, fld_or_none, _QUANTILE_ALIASES[name])
        m = re.fullmatch(r"p(\d{1,2}(?:\.\d+)?)", name)
        if m:
            return cls(MetricKind.QUANTILES, fld_or_none, (float(m.group(1)) / 100,))
        try:
            kind = MetricKind(name)
        except ValueError:
            raise InvalidParameter(
                f"metric: unknown {name!r}; expected count, users, sum:F, mean:F, variance:F, "
                "p50:F, p90:F, p99:F, quantiles:F or histogram:F") from None
        return cls(kind, fld_or_none)

    @property
    def label(self) -> str:
        if self.kind is MetricKind.QUANTILES and len(self.quantiles) == 1:
            return f"p{self.quantiles[0] * 100:g}({self.field})"
        return f"{self.kind.value}({self.field})" if self.field else self.kind.value


class GroupTransform(enum.StrEnum):
    NONE = "none"
    DAY = "day"
    WEEK = "week"


@dataclass(frozen=True, slots=True)
class GroupKey:
    """A partition column: ``column`` as is, or the day/week of a time column."""

    column: str
    transform: GroupTransform = GroupTransform.NONE

    def __post_init__(self) -> None:
        check_identifier(self.column, "group-by column")

    @classmethod
    def parse(cls, text: str, time_column: str = "time") -> GroupKey:
        text = text.strip()
        head, sep, col = text.partition(":")
        if head in ("day", "week"):
            return cls(col.strip() if sep else time_column, GroupTransform(head))
        return cls(text)

    @property
    def name(self) -> str:
        """The output column name."""
        if self.transform is GroupTransform.NONE:
            return self.column
        return self.transform.value if self.column == "time" else \
            f"{self.transform.value}_{self.column}"


_OPS = ("!=", "<=", ">=", "=", "<", ">", "~")


@dataclass(frozen=True, slots=True)
class Filter:
    """``column op value(s)``; ``~`` means one of ``values``."""

    column: str
    op: str
    values: tuple[Any, ...]

    def __post_init__(self) -> None:
        check_identifier(self.column, "filter column")
        if self.op not in _OPS:
            raise InvalidParameter(f"filter: unknown operator {self.op!r}")
        if not self.values or (self.op != "~" and len(self.values) != 1):
            raise InvalidParameter(f"filter on {self.column}: wrong number of values")

    @classmethod
    def parse(cls, text: str) -> Filter:
        for op in _OPS:
            col, sep, rest = text.partition(op)
            if sep and col.strip():
                values = tuple(v.strip() for v in rest.split("|")) if op == "~" \
                    else (rest.strip(),)
                return cls(col.strip(), op, tuple(_literal(v) for v in values))
        raise InvalidParameter(f"filter: expected COLUMN OP VALUE (ops {', '.join(_OPS)}), "
                               f"got {text!r}")


def _literal(text: str) -> Any:
    """Numbers stay numbers (so ``launch_ms>100`` compares numerically); the rest is text."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def _as_utc(value: dt.datetime | dt.date | str | None, name: str) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise InvalidParameter(f"{name}: expected an ISO date or time, got {value!r}") \
                from None
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """``since ≤ time < until`` (UTC); either end may be open."""

    since: dt.datetime | None = None
    until: dt.datetime | None = None
    column: str = "time"

    def __post_init__(self) -> None:
        object.__setattr__(self, "since", _as_utc(self.since, "since"))
        object.__setattr__(self, "until", _as_utc(self.until, "until"))
        check_identifier(self.column, "time column")
        if self.since and self.until and not self.since < self.until:
            raise InvalidParameter("time window: since must be before until")

    @property
    def bounded(self) -> bool:
        return self.since is not None and self.until is not None


class LinfMode(enum.StrEnum):
    """How at most L∞ contributions per unit and partition are kept.

    ``weight`` (default): a unit with c > L∞ rows in a partition contributes L∞ rows' worth, each
    row weighted L∞/c — the expectation of keeping L∞ of its rows uniformly at random, with the
    same sensitivity and less variance. ``sample``: keep the L∞ rows with the smallest keyed hash
    of (row, per-query salt). Both depend only on the unit's own rows.
    """

    WEIGHT = "weight"
    SAMPLE = "sample"


class Mechanism(enum.StrEnum):
    """The noise added to each released vector.

    ``laplace`` (default): pure ε-DP per component, L1 sensitivities. ``gaussian``: ρ-zCDP per
    component with L2 sensitivities (√L0 instead of L0: less noise when a unit may touch many
    partitions), converted to (ε, δ) for the query; it needs δ > 0.
    """

    LAPLACE = "laplace"
    GAUSSIAN = "gaussian"


@dataclass(frozen=True, slots=True, kw_only=True)
class QuerySpec:
    """One DP query. ``epsilon``/``delta`` are the total the query may spend.

    ``declared_partitions``: when the query runs with a policy, group keys whose values the
    policy declares (``event``, enum fields) or that a bounded time window enumerates (``day``,
    ``week``) are public partitions (no δ needed), unless ``public_partitions`` is given.
    ``stable_unit``: the unit column identifies the same person in every key epoch (an
    analyst's own table with a stable id), so no group-privacy factor for epochs is applied;
    refused for the event store, whose pseudonyms rotate per epoch.
    """

    metrics: tuple[MetricSpec, ...]
    epsilon: float
    delta: float = 0.0
    unit: str | None = None
    by: tuple[GroupKey, ...] = ()
    filters: tuple[Filter, ...] = ()
    window: TimeWindow | None = None
    epoch: int | None = None
    max_partitions: int | None = None
    max_per_partition: int | None = None
    clamp: ClampRange | None = None
    bins: int = 32
    public_partitions: tuple[tuple[Any, ...], ...] | None = None
    min_cohort: int | None = None
    linf_mode: LinfMode = LinfMode.WEIGHT
    mechanism: Mechanism = Mechanism.LAPLACE
    declared_partitions: bool = True
    stable_unit: bool = False
    diagnostics: bool = True
    query_id: str | None = None
    unsafe_disable_bounding: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        if not self.metrics:
            raise InvalidParameter("metric: give at least one --metric")
        PrivacyLoss(self.epsilon, self.delta)  # validates, naming the field
        if float(self.epsilon) <= 0:
            raise InvalidParameter("epsilon: must be > 0")
        if self.unit is not None:
            check_identifier(self.unit, "unit")
        value_fields = {m.field for m in self.metrics if m.kind.needs_value}
        if len(value_fields) > 1:
            got = ", ".join(sorted(f for f in value_fields if f))
            raise InvalidParameter("metric: all value metrics of one query must use the same "
                                   f"field (one clamp range); got {got}")
        if value_fields and self.clamp is None:
            raise InvalidParameter("clamp: value metrics need --clamp LO,HI (see "
                                   "`anonymetry suggest-bounds`)")
        if isinstance(self.bins, bool) or not isinstance(self.bins, int) \
                or not 2 <= self.bins <= 1000:
            raise InvalidParameter(f"bins: expected 2..1000, got {self.bins!r}")
        for name in ("max_partitions", "max_per_partition"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 1):
                raise InvalidParameter(f"{name}: must be a whole number ≥ 1, got {value!r}")
        try:
            object.__setattr__(self, "mechanism", Mechanism(self.mechanism))
        except ValueError:
            raise InvalidParameter(f"mechanism: expected laplace or gaussian, got "
                                   f"{self.mechanism!r}") from None
        if self.mechanism is Mechanism.GAUSSIAN and float(self.delta) <= 0:
            raise InvalidParameter("delta: --mechanism gaussian needs --delta > 0 (Gaussian "
                                   "noise gives (ε, δ)-DP, never pure ε-DP)")
        if self.min_cohort is not None and self.min_cohort < 0:
            raise InvalidParameter("min_cohort: must be ≥ 0")
        if self.public_partitions is not None:
            width = len(self.by)
            if width == 0:
                raise InvalidParameter("public partitions: need --by columns")
            for i, key in enumerate(self.public_partitions):
                if len(key) != width:
                    raise InvalidParameter(f"public partitions: entry {i + 1} has {len(key)} "
                                           f"values, expected {width} (one per --by column)")
        names = [k.name for k in self.by]
        if len(set(names)) != len(names):
            raise InvalidParameter("by: a group-by column is listed twice")

    @property
    def value_field(self) -> str | None:
        return next((m.field for m in self.metrics if m.kind.needs_value), None)

    def where(self, *filters: Filter | str) -> QuerySpec:
        extra = tuple(f if isinstance(f, Filter) else Filter.parse(f) for f in filters)
        return dataclasses.replace(self, filters=self.filters + extra)

    def group_by(self, *keys: GroupKey | str) -> QuerySpec:
        extra = tuple(k if isinstance(k, GroupKey) else GroupKey.parse(k) for k in keys)
        return dataclasses.replace(self, by=self.by + extra)

    @classmethod
    def build(cls, *, metrics: Sequence[str | MetricSpec], by: Sequence[str | GroupKey] = (),
              filters: Sequence[str | Filter] = (), **kwargs: Any) -> QuerySpec:
        """Convenience constructor from the text forms."""
        return cls(
            metrics=tuple(m if isinstance(m, MetricSpec) else MetricSpec.parse(m)
                          for m in metrics),
            by=tuple(k if isinstance(k, GroupKey) else GroupKey.parse(k) for k in by),
            filters=tuple(f if isinstance(f, Filter) else Filter.parse(f) for f in filters),
            **kwargs)
