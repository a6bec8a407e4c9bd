"""Generalization hierarchies: how a quasi-identifier's values get coarser, level by level.

Entry points::

    Hierarchy.from_spec(column: str, spec: Mapping[str, Any]) -> Hierarchy   # declared
    infer_hierarchies(data: TableLike, columns: Sequence[str], *,
                      con: duckdb.DuckDBPyConnection | None = None) -> dict[str, Hierarchy]
    Hierarchy.sql(expr: str, level: int) -> str      # DuckDB expression of the generalized value
    Generalization(hierarchies: Mapping[str, Hierarchy], levels: Mapping[str, int])

Level 0 is the original value, the top level (``Hierarchy.height``) is ``'*'`` (the column is
suppressed); levels in between are strings. Every hierarchy is *nested*: each level-``l``
group lies inside one level-``l+1`` group. That makes k-anonymity and distinct ℓ-diversity
monotone over the generalization lattice and information loss non-decreasing, which the search
in :mod:`anonymetry.risk.generalize` relies on; :meth:`Hierarchy.from_spec` refuses
hierarchies that are not nested.

Declared format (a mapping, e.g. from YAML or JSON; a policy section may carry these later)::

    {"type": "interval", "widths": [5, 10, 50], "origin": 0}   # numbers; each width a multiple
                                                                # of the previous
    {"type": "date", "levels": ["day", "month", "year"]}      # dates/times; a chain of
                                                                # hour ⊂ day ⊂ week | month ⊂
                                                                # quarter ⊂ year
    {"type": "prefix", "keep": [4, 3, 1]}                      # codes: keep n leading chars,
                                                                # '*' for the rest
    {"type": "table", "rows": [["Paris", "IDF", "FR"], ...]}   # ARX style: value, level 1, …
    {"type": "suppress"}                                       # enums: value → '*'

Inferred (:func:`infer_hierarchies`): numbers → intervals of growing width (a 1-2-5 series
from about range/64, every other step, so each width is a multiple of the previous: e.g. ages
17–90 → widths 2, 10, 50); timestamps → day, month, year; dates → month, year; equal-length
alphanumeric codes (zip codes) → prefix truncation one character at a time (at most six
levels); other strings, booleans and the rest → '*'.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import duckdb

from anonymetry.errors import InvalidParameter
from anonymetry.risk._inputs import TableLike, first_row, open_input, quote

__all__ = ["DATE_PARTS", "Generalization", "Hierarchy", "infer_hierarchies"]

KINDS = ("interval", "date", "prefix", "table", "suppress")
#: Time parts a date hierarchy may use, with the parts each one nests in.
DATE_PARTS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "hour": ("day", "week", "month", "quarter", "year"),
        "day": ("week", "month", "quarter", "year"),
        "week": (),
        "month": ("quarter", "year"),
        "quarter": ("year",),
        "year": (),
    }
)
_DATE_FORMAT = {
    "hour": "%Y-%m-%d %H:00",
    "day": "%Y-%m-%d",
    "week": "week of %Y-%m-%d",
    "month": "%Y-%m",
    "quarter": "%Y-%m (quarter)",
    "year": "%Y",
}
_NUMERIC = (
    "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
    "UBIGINT", "FLOAT", "DOUBLE", "REAL",
)  # fmt: skip


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


@dataclass(frozen=True, slots=True, kw_only=True)
class Hierarchy:
    """A nested generalization hierarchy of one column (see module doc)."""

    column: str
    kind: str
    steps: tuple[Any, ...] = ()  # widths | date parts | kept lengths | per-level value maps
    origin: float = 0.0
    inferred: bool = False

    def __post_init__(self) -> None:
        where = f"hierarchy of {self.column!r}"
        if self.kind not in KINDS:
            raise InvalidParameter(f"{where}: unknown type {self.kind!r}; use one of {KINDS}")
        if self.kind == "interval":
            ws = [float(w) for w in self.steps]
            if not ws or any(not math.isfinite(w) or w <= 0 for w in ws):
                raise InvalidParameter(f"{where}: widths must be finite and > 0")
            if not math.isfinite(self.origin):
                raise InvalidParameter(f"{where}: origin must be finite")
            for a, b in itertools.pairwise(ws):
                ratio = b / a
                if ratio <= 1 or abs(ratio - round(ratio)) > 1e-9:
                    raise InvalidParameter(
                        f"{where}: each width must be a multiple (> 1×) of the previous so the "
                        f"levels nest; got {_num(a)} then {_num(b)}"
                    )
        elif self.kind == "date":
            if not self.steps:
                raise InvalidParameter(f"{where}: a date hierarchy needs at least one level")
            for part in self.steps:
                if part not in DATE_PARTS:
                    raise InvalidParameter(
                        f"{where}: unknown date level {part!r}; use {', '.join(DATE_PARTS)}"
                    )
            for a, b in itertools.pairwise(self.steps):
                if b not in DATE_PARTS[a]:
                    raise InvalidParameter(
                        f"{where}: {a!r} does not nest in {b!r} (weeks cross months and years);"
                        " use a chain like day, month, year"
                    )
        elif self.kind == "prefix":
            keep = list(self.steps)
            if not keep or any(not isinstance(k, int) or k < 0 for k in keep):
                raise InvalidParameter(f"{where}: keep must be non-negative integers")
            if any(b >= a for a, b in itertools.pairwise(keep)):
                raise InvalidParameter(f"{where}: keep lengths must decrease level by level")
        elif self.kind == "table":
            self._check_table(where)
        elif self.steps:
            raise InvalidParameter(f"{where}: a suppress hierarchy takes no levels")

    def _check_table(self, where: str) -> None:
        if not self.steps:
            raise InvalidParameter(f"{where}: a table hierarchy needs at least one level")
        for i, level in enumerate(self.steps, start=1):
            if not isinstance(level, Mapping):
                raise InvalidParameter(f"{where}: level {i} must map values to labels")
        # nested: two values in one group at level l must share a group at level l + 1
        for i in range(len(self.steps) - 1):
            lower, upper = self.steps[i], self.steps[i + 1]
            if set(lower) != set(upper):
                raise InvalidParameter(f"{where}: every row must have a value at every level")
            parent: dict[str, str] = {}
            for value, group in lower.items():
                prev = parent.setdefault(group, upper[value])
                if prev != upper[value]:
                    raise InvalidParameter(
                        f"{where}: level {i + 1} group {group!r} is split at level {i + 2}; "
                        "the hierarchy must nest"
                    )

    # -- building ------------------------------------------------------------------------
    @classmethod
    def from_spec(cls, column: str, spec: Mapping[str, Any]) -> Hierarchy:
        """Build a declared hierarchy (format in the module doc); errors name the column."""
        if isinstance(spec, Hierarchy):
            return spec
        where = f"hierarchy of {column!r}"
        if not isinstance(spec, Mapping) or "type" not in spec:
            raise InvalidParameter(f"{where}: expected a mapping with a 'type' key")
        kind = spec["type"]
        known = {
            "interval": {"type", "widths", "origin"},
            "date": {"type", "levels"},
            "prefix": {"type", "keep"},
            "table": {"type", "rows"},
            "suppress": {"type"},
        }
        if kind not in known:
            raise InvalidParameter(f"{where}: unknown type {kind!r}; use one of {KINDS}")
        extra = set(spec) - known[kind]
        if extra:
            raise InvalidParameter(f"{where}: unknown key(s) {sorted(extra)} for type {kind!r}")
        try:
            if kind == "interval":
                return cls(
                    column=column,
                    kind=kind,
                    steps=tuple(float(w) for w in spec["widths"]),
                    origin=float(spec.get("origin", 0.0)),
                )
            if kind == "date":
                return cls(column=column, kind=kind, steps=tuple(spec["levels"]))
            if kind == "prefix":
                return cls(column=column, kind=kind, steps=tuple(spec["keep"]))
            if kind == "table":
                return cls(column=column, kind=kind, steps=_table_levels(where, spec["rows"]))
        except KeyError as exc:
            raise InvalidParameter(f"{where}: missing key {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            if isinstance(exc, InvalidParameter):
                raise
            raise InvalidParameter(f"{where}: malformed levels ({type(exc).__name__})") from None
        return cls(column=column, kind=kind)

    # -- using ---------------------------------------------------------------------------
    @property
    def height(self) -> int:
        """The top level (``'*'``); levels run 0 … height."""
        return len(self.steps) + 1

    def sql(self, expr: str, level: int) -> str:
        """DuckDB SQL for the value of ``expr`` at ``level`` (0: unchanged; else VARCHAR)."""
        if not 0 <= level <= self.height:
            raise InvalidParameter(
                f"hierarchy of {self.column!r}: level {level} outside 0..{self.height}"
            )
        if level == 0:
            return expr
        if level == self.height:
            return "'*'"
        step = self.steps[level - 1]
        if self.kind == "interval":
            w, o = float(step), self.origin
            integral = w.is_integer() and o.is_integer()
            lo = f"(floor(({expr} - {o!r}) / {w!r}) * {w!r} + {o!r})"
            if integral:
                lo = f"CAST({lo} AS BIGINT)"
                hi = f"({lo} + {int(w)})"
            else:
                hi = f"({lo} + {w!r})"
            return f"('[' || CAST({lo} AS VARCHAR) || ', ' || CAST({hi} AS VARCHAR) || ')')"
        if self.kind == "date":
            return f"strftime(date_trunc('{step}', {expr}), {_lit(_DATE_FORMAT[step])})"
        if self.kind == "prefix":
            k = int(step)
            v = f"CAST({expr} AS VARCHAR)"
            return f"(left({v}, {k}) || repeat('*', greatest(length({v}) - {k}, 0)))"
        # table
        cases = " ".join(f"WHEN {_lit(k)} THEN {_lit(v)}" for k, v in step.items())
        return f"(CASE CAST({expr} AS VARCHAR) {cases} END)"

    def describe(self, level: int) -> str:
        """A readable name of a level, e.g. ``interval width 10`` or ``prefix 3``."""
        if level == 0:
            return "original"
        if level == self.height:
            return "suppressed (*)"
        step = self.steps[level - 1]
        if self.kind == "interval":
            return f"interval width {_num(step)}"
        if self.kind == "date":
            return str(step)
        if self.kind == "prefix":
            return f"prefix {step}"
        return f"table level {level}"

    def to_dict(self) -> dict[str, Any]:
        """The declared format (round-trips through :meth:`from_spec`)."""
        out: dict[str, Any] = {"type": self.kind}
        if self.kind == "interval":
            out["widths"] = [float(w) for w in self.steps]
            out["origin"] = self.origin
        elif self.kind == "date":
            out["levels"] = list(self.steps)
        elif self.kind == "prefix":
            out["keep"] = list(self.steps)
        elif self.kind == "table":
            values = list(self.steps[0])
            out["rows"] = [[v, *(lvl[v] for lvl in self.steps)] for v in values]
        return out


def _table_levels(where: str, rows: Sequence[Sequence[Any]]) -> tuple[Mapping[str, str], ...]:
    rows = [list(map(str, r)) for r in rows]
    if not rows or len({len(r) for r in rows}) != 1 or len(rows[0]) < 2:
        raise InvalidParameter(
            f"{where}: table rows must all have the same length ≥ 2 (value, level 1, …)"
        )
    values = [r[0] for r in rows]
    if len(set(values)) != len(values):
        raise InvalidParameter(f"{where}: a value appears in more than one row")
    width = len(rows[0])
    last = {r[-1] for r in rows}
    if last == {"*"}:  # the '*' top level is implicit
        width -= 1
    return tuple(MappingProxyType({r[0]: r[i] for r in rows}) for i in range(1, width))


@dataclass(frozen=True, slots=True)
class Generalization:
    """One full-domain transformation: a level per column of the given hierarchies."""

    hierarchies: Mapping[str, Hierarchy]
    levels: Mapping[str, int]

    def __post_init__(self) -> None:
        for col, level in self.levels.items():
            if col not in self.hierarchies:
                raise InvalidParameter(f"generalization: no hierarchy for column {col!r}")
            self.hierarchies[col].sql("x", level)  # validates the range

    def sql(self, column: str, expr: str) -> str:
        """``expr`` generalized as ``column`` is (unchanged if it is not generalized)."""
        level = self.levels.get(column, 0)
        return self.hierarchies[column].sql(expr, level) if level else expr

    def to_dict(self) -> dict[str, Any]:
        return {
            col: {
                "level": self.levels[col],
                "describe": self.hierarchies[col].describe(self.levels[col]),
                "hierarchy": self.hierarchies[col].to_dict(),
            }
            for col in self.levels
        }


def _nice_widths(span: float, integral: bool) -> tuple[float, ...]:
    """Every other step of the 1-2-5 series from about span/64, below ``span``."""
    series = [m * 10.0**e for e in range(-12, 19) for m in (1, 2, 5)]
    floor = max(span / 64, 1.0 if integral else 0.0)
    start = next(i for i, w in enumerate(series) if w >= floor and w > 0)
    return tuple(w for w in series[start::2] if w < span)


def _infer_one(con: duckdb.DuckDBPyConnection, src: str, col: str, duck_type: str) -> Hierarchy:
    q = quote(col)
    t = duck_type.upper()
    base = t.split("(")[0]
    if base in _NUMERIC or base == "DECIMAL":
        row = first_row(
            con,
            f"SELECT min({q})::DOUBLE, max({q})::DOUBLE, count(DISTINCT {q}), "
            f"bool_and({q} = round({q})) FROM {src}",
        )
        lo, hi, distinct, integral = row if row else (None, None, 0, True)
        if lo is None or hi is None or distinct <= 2 or hi <= lo:
            return Hierarchy(column=col, kind="suppress", inferred=True)
        widths = _nice_widths(float(hi) - float(lo), bool(integral))
        if not widths:
            return Hierarchy(column=col, kind="suppress", inferred=True)
        return Hierarchy(column=col, kind="interval", steps=widths, inferred=True)
    if base.startswith("TIMESTAMP"):
        return Hierarchy(column=col, kind="date", steps=("day", "month", "year"), inferred=True)
    if base == "DATE":
        return Hierarchy(column=col, kind="date", steps=("month", "year"), inferred=True)
    if base == "VARCHAR":
        row = first_row(
            con,
            f"SELECT min(length({q})), max(length({q})), count(DISTINCT {q}), "
            f"bool_and(regexp_full_match({q}, '[0-9A-Za-z]+')) FROM {src}",
        )
        if (
            row
            and row[0] is not None
            and row[0] == row[1]
            and row[0] >= 3
            and row[2] > 2
            and row[3]
        ):
            length = int(row[0])
            keep = list(range(length - 1, 0, -1))
            if len(keep) > 6:
                stride = math.ceil(len(keep) / 6)
                keep = keep[::stride]
            return Hierarchy(column=col, kind="prefix", steps=tuple(keep), inferred=True)
    return Hierarchy(column=col, kind="suppress", inferred=True)


def infer_hierarchies(
    data: TableLike,
    columns: Sequence[str],
    *,
    con: duckdb.DuckDBPyConnection | None = None,
) -> dict[str, Hierarchy]:
    """Infer a hierarchy for each of ``columns`` from its type and values (module doc)."""
    with open_input("infer hierarchies", con) as ws:
        src = ws.register("table", data, caller_con=con is not None)
        types = ws.require(src, list(columns), "quasi-identifier")
        return {c: infer_from(ws.con, src, c, types[c]) for c in columns}


def infer_from(
    con: duckdb.DuckDBPyConnection, relation: str, column: str, duck_type: str
) -> Hierarchy:
    """Infer one column's hierarchy from an open relation (used by the generalizer)."""
    return _infer_one(con, relation, column, duck_type)
