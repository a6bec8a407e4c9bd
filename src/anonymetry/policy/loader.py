"""Load a policy YAML file into :class:`~anonymetry.policy.model.Policy`, reporting every
problem at once with its dotted key path and line.

The YAML is composed into nodes (so each key keeps its line), converted to plain data, then
checked section by section. Nothing is half-built: either every check passes and a frozen
``Policy`` comes back, or :class:`~anonymetry.errors.PolicyError` lists all problems.
"""

from __future__ import annotations

import datetime as dt
import difflib
import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from anonymetry.errors import PolicyError, PolicyProblem
from anonymetry.policy.model import (
    AnalyticsDefaults,
    BudgetPolicy,
    ConsentLevel,
    ConsentPolicy,
    EventSpec,
    FieldSpec,
    FieldType,
    Identity,
    Policy,
    ReleasePolicy,
    RetentionPolicy,
    Sensitivity,
    TimeGranularity,
    TimePolicy,
)

__all__ = ["load_policy", "parse_policy"]

_EVENT_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
_FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
_RESERVED_FIELDS = frozenset({"user_id", "device_id", "consent", "time", "id", "name"})
_DURATION = re.compile(r"^(\d+)\s*([dwy])$")

Path_ = tuple[str, ...]


class _Located:
    """Plain data from YAML, with the line of every key path."""

    def __init__(self) -> None:
        self.lines: dict[Path_, int] = {}

    def convert(self, node: yaml.Node, path: Path_) -> Any:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = str(key_node.value)
                self.lines[(*path, key)] = key_node.start_mark.line + 1
                out[key] = self.convert(value_node, (*path, key))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.convert(v, (*path, str(i))) for i, v in enumerate(node.value)]
        return yaml.SafeLoader.construct_object(_CONSTRUCTOR, node, deep=True)


_CONSTRUCTOR = yaml.SafeLoader("")


class _Checker:
    def __init__(self, located: _Located) -> None:
        self.located = located
        self.problems: list[PolicyProblem] = []

    def fail(self, path: Path_, message: str) -> None:
        line = None
        for n in range(len(path), -1, -1):
            if path[:n] in self.located.lines:
                line = self.located.lines[path[:n]]
                break
        self.problems.append(PolicyProblem(".".join(path) or "(top)", message, line))

    def mapping(self, value: Any, path: Path_, allowed: frozenset[str] | None) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(path, f"expected a mapping, got {_kind(value)}")
            return {}
        if allowed is not None:
            for key in value:
                if key not in allowed:
                    close = difflib.get_close_matches(key, sorted(allowed), n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    choices = ", ".join(sorted(allowed))
                    self.fail((*path, key), f"unknown key{hint}; allowed: {choices}")
        return value

    def value(
        self,
        section: Mapping[str, Any],
        key: str,
        path: Path_,
        convert: Callable[[Any], Any],
        default: Any,
        *,
        required: bool = False,
    ) -> Any:
        if key not in section or section[key] is None:
            if required:
                self.fail((*path, key), "is required")
            return default
        try:
            return convert(section[key])
        except (TypeError, ValueError) as exc:
            self.fail((*path, key), str(exc))
            return default


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def _int(lo: int | None = None, hi: int | None = None) -> Callable[[Any], int]:
    def convert(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected an integer, got {_kind(value)}")
        if lo is not None and value < lo:
            raise ValueError(f"must be ≥ {lo}, got {value}")
        if hi is not None and value > hi:
            raise ValueError(f"must be ≤ {hi}, got {value}")
        return value

    return convert


def _number(lo: float | None = None, hi: float | None = None, *, open_lo: bool = False):
    def convert(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"expected a number, got {_kind(value)}")
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"must be finite, got {value}")
        if lo is not None and (number <= lo if open_lo else number < lo):
            raise ValueError(f"must be {'>' if open_lo else '≥'} {lo}, got {value}")
        if hi is not None and number > hi:
            raise ValueError(f"must be ≤ {hi}, got {value}")
        return number

    return convert


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a non-empty string, got {_kind(value)}")
    return value.strip()


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {_kind(value)}")
    return value


def _choice(enum_type: Any) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        if isinstance(value, str):
            try:
                return enum_type(value.strip().lower())
            except ValueError:
                pass
        choices = ", ".join(member.value for member in enum_type)
        raise ValueError(f"expected one of {choices}, got {value!r}")

    return convert


def _consent(value: Any) -> ConsentLevel:
    if not isinstance(value, str):
        raise ValueError(f"expected a consent level, got {_kind(value)}")
    return ConsentLevel.parse(value)


def _date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValueError(f"expected a date as YYYY-MM-DD, got {value!r}")


def _days(value: Any) -> int:
    """``30`` (days), ``30d``, ``6w`` or ``1y`` → days."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str) and (m := _DURATION.match(value.strip())) and int(m[1]) > 0:
        return int(m[1]) * {"d": 1, "w": 7, "y": 365}[m[2]]
    raise ValueError(f"expected a positive duration like 90, 90d, 12w or 1y, got {value!r}")


_TOP = frozenset(
    {"name", "version", "identity", "consent", "time", "retention", "analytics", "budgets",
     "release", "roles", "events", "hierarchies"}
)
_EVENT_KEYS = frozenset({"consent", "owner", "expires", "description", "fields"})
_FIELD_KEYS = frozenset(
    {"type", "sensitivity", "consent", "required", "values", "min", "max", "max_length", "unit",
     "description"}
)
_HIERARCHY_KINDS = frozenset({"interval", "date", "prefix", "table", "suppress"})


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


_PERMISSIONS = frozenset(
    {"ingest", "query", "grant_budget", "assess", "release", "admin", "read_dashboard", "erase"}
)


def _field(c: _Checker, name: str, raw: Any, path: Path_, event_consent: ConsentLevel):
    if not _FIELD_NAME.match(name):
        c.fail(path, "field names are lower-case words joined by '.' or '_' (e.g. app_version)")
    if name in _RESERVED_FIELDS:
        c.fail(path, f"'{name}' is reserved for the event envelope; choose another field name")
    spec = c.mapping(raw, path, _FIELD_KEYS)
    ftype = c.value(spec, "type", path, _choice(FieldType), FieldType.STRING, required=True)
    sensitivity = c.value(
        spec, "sensitivity", path, _choice(Sensitivity), Sensitivity.TECHNICAL, required=True
    )
    consent = c.value(spec, "consent", path, _consent, event_consent)
    if consent < event_consent:
        c.fail((*path, "consent"), f"is below its event's level '{event_consent.label}'")
    if consent is ConsentLevel.NONE:
        c.fail((*path, "consent"), "'none' cannot be required by data; use essential or above")
    values = None
    if "values" in spec:
        raw_values = spec["values"]
        if not isinstance(raw_values, list) or not raw_values or not all(
            isinstance(v, str | int) and not isinstance(v, bool) for v in raw_values
        ):
            c.fail((*path, "values"), "expected a non-empty list of strings")
        elif len(set(map(str, raw_values))) != len(raw_values):
            c.fail((*path, "values"), "has duplicates")
        else:
            values = tuple(str(v) for v in raw_values)
    if ftype is FieldType.ENUM and values is None and "values" not in spec:
        c.fail((*path, "values"), "is required for type enum")
    if values is not None and ftype not in (FieldType.ENUM, FieldType.STRING):
        c.fail((*path, "values"), f"applies to enum or string fields, not {ftype.value}")
    numeric = ftype in (FieldType.INT, FieldType.FLOAT)
    lo = c.value(spec, "min", path, _number(), None)
    hi = c.value(spec, "max", path, _number(), None)
    for key, bound in (("min", lo), ("max", hi)):
        if bound is not None and not numeric:
            c.fail((*path, key), f"applies to int or float fields, not {ftype.value}")
    if lo is not None and hi is not None and lo >= hi:
        c.fail((*path, "max"), f"must be greater than min ({lo})")
    max_length = c.value(spec, "max_length", path, _int(1, 65536), None)
    if max_length is not None and ftype is not FieldType.STRING:
        c.fail((*path, "max_length"), "applies to string fields only")
    if ftype is FieldType.STRING and values is None and max_length is None:
        max_length = 256
    return FieldSpec(
        name=name,
        type=ftype,
        sensitivity=sensitivity,
        consent=consent,
        required=c.value(spec, "required", path, _boolean, False),
        values=values,
        min=lo,
        max=hi,
        max_length=max_length,
        unit=c.value(spec, "unit", path, _text, None),
        description=c.value(spec, "description", path, _text, ""),
    )


def _event(c: _Checker, name: str, raw: Any, path: Path_) -> EventSpec:
    if not _EVENT_NAME.match(name):
        c.fail(path, "event names are dotted lower-case words (e.g. feature.used)")
    spec = c.mapping(raw, path, _EVENT_KEYS)
    consent = c.value(spec, "consent", path, _consent, ConsentLevel.USAGE, required=True)
    if consent is ConsentLevel.NONE:
        c.fail((*path, "consent"), "'none' cannot be required by data; use essential or above")
    raw_fields = c.mapping(spec.get("fields"), (*path, "fields"), None)
    fields = {
        fname: _field(c, str(fname), fraw, (*path, "fields", str(fname)), consent)
        for fname, fraw in raw_fields.items()
    }
    return EventSpec(
        name=name,
        consent=consent,
        owner=c.value(spec, "owner", path, _text, "", required=True),
        expires=c.value(spec, "expires", path, _date, None),
        description=c.value(spec, "description", path, _text, ""),
        fields=MappingProxyType(fields),
    )


def parse_policy(text: str, source: str = "policy") -> Policy:
    """Parse and validate policy YAML text; raise :class:`PolicyError` with every problem."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(exc, "problem", None) or str(exc)
        problem = PolicyProblem("(yaml)", f"not valid YAML: {reason}", line)
        raise PolicyError([problem], source) from None
    if node is None:
        raise PolicyError([PolicyProblem("(top)", "the policy is empty")], source)
    located = _Located()
    c = _Checker(located)
    try:
        data = located.convert(node, ())
    except yaml.YAMLError as exc:
        raise PolicyError([PolicyProblem("(yaml)", f"not valid YAML: {exc}")], source) from None
    top = c.mapping(data, (), _TOP)

    name = c.value(top, "name", (), _text, "unnamed", required=True)
    version = c.value(top, "version", (), _int(1), 1)

    ident = c.mapping(top.get("identity"), ("identity",), frozenset(
        {"user_attribute", "device_attribute", "key_epoch_days"}))
    identity = Identity(
        user_attribute=c.value(ident, "user_attribute", ("identity",), _text, "user.id"),
        device_attribute=c.value(ident, "device_attribute", ("identity",), _text, "device.id"),
        key_epoch_days=c.value(ident, "key_epoch_days", ("identity",), _days, 30),
    )
    if identity.user_attribute == identity.device_attribute:
        c.fail(("identity", "device_attribute"), "must differ from user_attribute")

    cons = c.mapping(top.get("consent"), ("consent",), frozenset({"default_level", "honor_gpc"}))
    consent = ConsentPolicy(
        default_level=c.value(cons, "default_level", ("consent",), _consent,
                              ConsentLevel.ESSENTIAL),
        honor_gpc=c.value(cons, "honor_gpc", ("consent",), _boolean, True),
    )

    tsec = c.mapping(top.get("time"), ("time",), frozenset(
        {"granularity", "max_age_days", "max_future_seconds"}))
    time = TimePolicy(
        granularity=c.value(tsec, "granularity", ("time",), _choice(TimeGranularity),
                            TimeGranularity.HOUR),
        max_age_days=c.value(tsec, "max_age_days", ("time",), _days, 30),
        max_future_seconds=c.value(tsec, "max_future_seconds", ("time",), _int(0, 86400), 300),
    )

    classes = frozenset({"default", *(s.value for s in Sensitivity)})
    ret = c.mapping(top.get("retention"), ("retention",), classes)
    days = {key: c.value(ret, key, ("retention",), _days, 395) for key in ret}
    days.setdefault("default", 395)
    retention = RetentionPolicy(days=MappingProxyType(days))

    ana = c.mapping(top.get("analytics"), ("analytics",), frozenset(
        {"privacy_unit", "max_partitions", "max_per_partition", "min_cohort"}))
    unit = c.value(ana, "privacy_unit", ("analytics",), _text, "user")
    if unit not in ("user", "device"):
        c.fail(("analytics", "privacy_unit"), f"expected user or device, got {unit!r}")
    analytics = AnalyticsDefaults(
        privacy_unit=unit,
        max_partitions=c.value(ana, "max_partitions", ("analytics",), _int(1, 10_000), 5),
        max_per_partition=c.value(ana, "max_per_partition", ("analytics",), _int(1, 1_000_000), 10),
        min_cohort=c.value(ana, "min_cohort", ("analytics",), _int(1), None),
    )

    bud = c.mapping(top.get("budgets"), ("budgets",),
                    frozenset({"epsilon", "delta", "period_days"}))
    budgets = BudgetPolicy(
        epsilon=c.value(bud, "epsilon", ("budgets",), _number(0, open_lo=True), 10.0),
        delta=c.value(bud, "delta", ("budgets",), _number(0, 1e-2), 1e-6),
        period_days=c.value(bud, "period_days", ("budgets",), _days, None),
    )

    rel = c.mapping(top.get("release"), ("release",), frozenset(
        {"k_min", "l_min", "t_max", "population_uniqueness_max", "trace_points",
         "trace_uniqueness_max", "linkage_precision_max"}))
    share = _number(0, 1)
    release = ReleasePolicy(
        k_min=c.value(rel, "k_min", ("release",), _int(1), 10),
        l_min=c.value(rel, "l_min", ("release",), _int(1), None),
        t_max=c.value(rel, "t_max", ("release",), share, None),
        population_uniqueness_max=c.value(rel, "population_uniqueness_max", ("release",), share,
                                          0.001),
        trace_points=c.value(rel, "trace_points", ("release",), _int(1, 100), 4),
        trace_uniqueness_max=c.value(rel, "trace_uniqueness_max", ("release",), share, 0.05),
        linkage_precision_max=c.value(rel, "linkage_precision_max", ("release",), share, 0.05),
    )

    roles_raw = c.mapping(top.get("roles"), ("roles",), None)
    roles: dict[str, tuple[str, ...]] = {}
    for role, perms in roles_raw.items():
        if not isinstance(perms, list) or not all(isinstance(p, str) for p in perms):
            c.fail(("roles", role), "expected a list of permissions")
            continue
        for i, perm in enumerate(perms):
            if perm not in _PERMISSIONS:
                choices = ", ".join(sorted(_PERMISSIONS))
                c.fail(("roles", role, str(i)), f"unknown permission {perm!r}; allowed: {choices}")
        roles[role] = tuple(perms)

    hierarchies: dict[str, Any] = {}
    for column, spec in c.mapping(top.get("hierarchies"), ("hierarchies",), None).items():
        where = ("hierarchies", str(column))
        if not isinstance(spec, dict) or spec.get("type") not in _HIERARCHY_KINDS:
            kinds = ", ".join(sorted(_HIERARCHY_KINDS))
            c.fail(where, f"expected a mapping with 'type' one of {kinds} (e.g. "
                          "{type: interval, widths: [5, 10, 50]})")
            continue
        hierarchies[str(column)] = _freeze(spec)

    events_raw = c.mapping(top.get("events"), ("events",), None)
    if not events_raw and "events" not in c.located.lines and not c.problems:
        c.fail(("events",), "is required: declare at least one event")
    events = {
        str(ename): _event(c, str(ename), eraw, ("events", str(ename)))
        for ename, eraw in events_raw.items()
    }

    # One wide table holds every event, so a field name means one type everywhere.
    seen: dict[str, tuple[str, FieldType]] = {}
    for ename, espec in events.items():
        for fname, fspec in espec.fields.items():
            first = seen.setdefault(fname, (ename, fspec.type))
            kinds = {first[1], fspec.type} - {FieldType.ENUM, FieldType.STRING}
            if first[1] != fspec.type and (kinds or len({first[1], fspec.type}) > 2):
                c.fail(("events", ename, "fields", fname, "type"),
                       f"is {fspec.type.value} here but {first[1].value} in event {first[0]!r}; "
                       "a field name must have one type across events")
    if identity.key_epoch_days > 366:
        c.fail(("identity", "key_epoch_days"), "must be at most 366 days; keys should rotate")

    if c.problems:
        raise PolicyError(c.problems, source)
    return Policy(
        name=name,
        version=version,
        events=MappingProxyType(events),
        identity=identity,
        consent=consent,
        time=time,
        retention=retention,
        analytics=analytics,
        budgets=budgets,
        release=release,
        roles=MappingProxyType(roles),
        hierarchies=MappingProxyType(hierarchies),
    )


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy file; see :func:`parse_policy`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError([PolicyProblem("(file)", f"no such file: {path}")], str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError([PolicyProblem("(file)", f"cannot read: {exc}")], str(path)) from None
    return parse_policy(text, source=str(path))
