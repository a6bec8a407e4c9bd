"""Trace uniqueness: how many people p points of their own event trace single out.

Entry point (for the release gate and the CLI)::

    trace_uniqueness(
        data: TableLike, *, con: duckdb.DuckDBPyConnection | None = None,
        unit: str = "user", time: str = "time",
        points: Sequence[int] = (1, 2, 4),
        granularities: Sequence[str] = ("minute", "hour", "day", "week"),
        attributes: Sequence[str] | None = None,          # default: event, platform if present
        attribute_sets: Mapping[str, Sequence[str]] | None = None,
        sample_users: int = 2000, seed: int | None = None,
        exact_sets: bool = False,       # also the median anonymity-set size (slower)
    ) -> TraceRiskResult

    TraceRiskResult.at(granularity, attribute_set="all", points=4) -> TraceRiskRow
    TraceRiskResult.finest_granularity(max_share, attribute_set="all", points=4) -> str | None
    TraceRiskResult.to_dict() -> dict   # JSON-able

``TraceRiskRow.share`` is the estimated share of users singled out, with a 95 % Wilson
interval ``ci_low``/``ci_high`` over the ``n`` sampled users.

The measure (de Montjoye et al., "Unique in the Crowd", Sci. Rep. 2013): a *point* is
``(time bin at granularity g, a1, …, am)`` for the chosen attribute columns (event, platform,
…). A user's trace is the set of distinct points of all their rows. For each sampled user we
draw ``p`` distinct points of their trace uniformly (all of them when the trace has fewer than
``p``; counted in ``short``) and ask how many users' traces contain all of them; the user is
*singled out* when that anonymity set is only themself. The share is estimated on a sample of
at most ``sample_users`` users: the data is only scanned and grouped a few times, and the
matching work grows with the sample, not with the number of users.

Everything runs in DuckDB: one points table per (granularity, attribute set), a
dictionary-encoded point id, the sampled users' chosen points, and a join of those points
against all traces. To keep that join small, each target's candidates are the users holding the
rarest of its first p2 chosen points (p2: the smallest requested p ≥ 2, a subset of every
p ≥ 2 choice); the other points are then checked with an equi-join. Unless
``exact_sets``, a first pass tries 64 random candidates ("witnesses"): a target one of them
matches is not unique at any p, and only the others get the full scan — uniqueness is still
exact, but the anonymity-set median is then not reported. Work is
``O(rows + sample · (popularity of the anchor + p · 64))`` plus the full scans
of the (few) targets without a witness; ``exact_sets=True`` always scans fully.

Randomness: this is an assessment, not a privacy mechanism. Users and points are chosen by
ordering on DuckDB's ``hash(…, seed)``; ``seed`` (an int) makes a run reproducible, and when it
is ``None`` one is drawn with :mod:`secrets` and reported in the result. The same users are
used for every granularity, attribute set and ``p`` (common random numbers), and a user's
``p`` points include their ``p' < p`` points, so uniqueness never falls as ``p`` grows within
one run.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb

from anonymetry.errors import InvalidParameter
from anonymetry.risk._inputs import TableLike, Workspace, first_row, open_input, quote

__all__ = [
    "GRANULARITIES",
    "TraceRiskResult",
    "TraceRiskRow",
    "trace_uniqueness",
    "wilson_interval",
]

#: Time bins (DuckDB ``date_trunc`` parts; ``week`` starts on Monday, ISO).
GRANULARITIES: tuple[str, ...] = ("second", "minute", "hour", "day", "week", "month")
_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_Z95 = 1.959963984540054
_WITNESSES = 64  # other holders tried before a full scan of a target's candidates


def wilson_interval(successes: int, n: int, z: float = _Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95 % by default)."""
    if n <= 0:
        return (0.0, 1.0)
    phat = successes / n
    denom = 1 + z * z / n
    centre = (phat + z * z / (2 * n)) / denom
    half = z * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if successes <= 0 else max(0.0, centre - half)
    hi = 1.0 if successes >= n else min(1.0, centre + half)
    return (lo, hi)


@dataclass(frozen=True, slots=True, kw_only=True)
class TraceRiskRow:
    """Uniqueness at one (granularity, attribute set, p)."""

    granularity: str
    attribute_set: str
    attributes: tuple[str, ...]
    points: int
    n: int  # sampled users evaluated
    unique: int  # of them, singled out by their p points
    short: int  # of them, with fewer than p distinct points (all their points were used)
    median_anonymity_set: float | None
    share: float
    ci_low: float
    ci_high: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "granularity": self.granularity,
            "attribute_set": self.attribute_set,
            "attributes": list(self.attributes),
            "points": self.points,
            "n": self.n,
            "unique": self.unique,
            "short": self.short,
            "median_anonymity_set": self.median_anonymity_set,
            "share": self.share,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class TraceRiskResult:
    """Trace uniqueness over granularities × attribute sets × p, on one user sample."""

    unit: str
    time: str
    population_users: int
    sample_users: int
    seed: int
    stored_granularity: str | None
    rows: tuple[TraceRiskRow, ...]

    def at(self, granularity: str, attribute_set: str = "all", points: int = 4) -> TraceRiskRow:
        """The row for one configuration (``InvalidParameter`` if it was not computed)."""
        for row in self.rows:
            if (row.granularity, row.attribute_set, row.points) == (
                granularity,
                attribute_set,
                points,
            ):
                return row
        raise InvalidParameter(
            f"trace risk: no row for granularity={granularity!r}, "
            f"attribute_set={attribute_set!r}, points={points}; compute it first"
        )

    def finest_granularity(
        self, max_share: float, attribute_set: str = "all", points: int = 4
    ) -> str | None:
        """The finest computed granularity whose upper 95 % bound is ≤ ``max_share``."""
        rows = [r for r in self.rows if r.attribute_set == attribute_set and r.points == points]
        rows.sort(key=lambda r: GRANULARITIES.index(r.granularity))
        for row in rows:
            if row.ci_high <= max_share:
                return row.granularity
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "measure": "trace_uniqueness",
            "unit": self.unit,
            "time": self.time,
            "population_users": self.population_users,
            "sample_users": self.sample_users,
            "seed": self.seed,
            "stored_granularity": self.stored_granularity,
            "rows": [r.to_dict() for r in self.rows],
        }


def _time_expr(col: str, duck_type: str, alias: str = "") -> str:
    q = f"{alias}.{quote(col)}" if alias else quote(col)
    t = duck_type.upper()
    if t.startswith("TIMESTAMP WITH TIME ZONE") or t == "TIMESTAMPTZ":
        return f"timezone('UTC', {q})"
    if t.startswith("TIMESTAMP") or t == "DATE":
        return f"CAST({q} AS TIMESTAMP)"
    if t in {"BIGINT", "INTEGER", "HUGEINT", "SMALLINT", "UBIGINT", "UINTEGER", "DOUBLE"}:
        return f"CAST(to_timestamp({q}) AS TIMESTAMP)"
    raise InvalidParameter(
        f"trace risk: time column {col!r} has type {duck_type}; expected a timestamp, a date "
        "or unix seconds"
    )


def _stored_granularity(ws: Workspace, src: str, texpr: str) -> str | None:
    row = first_row(
        ws.con,
        f"SELECT max(epoch({texpr}) % 60), max(epoch({texpr}) % 3600), "
        f"max(epoch({texpr}) % 86400), count({texpr}) FROM {src}",
    )
    if row is None or not row[3]:
        return None
    if row[2] == 0:
        return "day"
    if row[1] == 0:
        return "hour"
    if row[0] == 0:
        return "minute"
    return "second"


def _check(
    points: Sequence[int], granularities: Sequence[str], sample_users: int
) -> tuple[list[int], list[str]]:
    ps = sorted(set(points))
    if not ps or any(isinstance(p, bool) or not isinstance(p, int) or p < 1 for p in ps):
        raise InvalidParameter(f"trace risk: points must be integers ≥ 1, got {list(points)}")
    gs = list(dict.fromkeys(granularities))
    bad = [g for g in gs if g not in GRANULARITIES]
    if not gs or bad:
        raise InvalidParameter(
            f"trace risk: unknown granularity {bad or gs}; choose from {', '.join(GRANULARITIES)}"
        )
    if isinstance(sample_users, bool) or not isinstance(sample_users, int) or sample_users < 1:
        raise InvalidParameter(f"trace risk: sample_users must be ≥ 1, got {sample_users}")
    return ps, gs


def _default_sets(attributes: Sequence[str]) -> dict[str, tuple[str, ...]]:
    attrs = tuple(attributes)
    sets: dict[str, tuple[str, ...]] = {"all": attrs}
    if len(attrs) > 1:
        for a in attrs:
            if a != "event":
                sets[f"without {a}"] = tuple(x for x in attrs if x != a)
    if attrs:
        sets["time only"] = ()
    return sets


def trace_uniqueness(
    data: TableLike,
    *,
    con: duckdb.DuckDBPyConnection | None = None,
    unit: str = "user",
    time: str = "time",
    points: Sequence[int] = (1, 2, 4),
    granularities: Sequence[str] = ("minute", "hour", "day", "week"),
    attributes: Sequence[str] | None = None,
    attribute_sets: Mapping[str, Sequence[str]] | None = None,
    sample_users: int = 2000,
    seed: int | None = None,
    exact_sets: bool = False,
) -> TraceRiskResult:
    """Share of users singled out by ``p`` random points of their trace (see module doc).

    ``attributes`` are the point's columns besides the time bin (default: ``event`` and
    ``platform``, those present). ``attribute_sets`` maps a name to a subset to compare
    (default: ``all``, ``without <each non-event attribute>``, ``time only``).
    ``exact_sets=True`` also measures every anonymity set (``median_anonymity_set``).
    """
    ps, gs = _check(points, granularities, sample_users)
    if seed is None:
        seed = secrets.randbits(62)
    seed = int(seed)
    with open_input("trace risk", con) as ws:
        src = ws.register("traces", data, caller_con=con is not None)
        types = ws.require(src, [unit, time], "unit/time")
        if attributes is None:
            attributes = [c for c in ("event", "platform") if c in types]
        sets = {k: tuple(v) for k, v in (attribute_sets or _default_sets(attributes)).items()}
        needed = sorted({c for cols in sets.values() for c in cols})
        ws.require(src, needed, "attribute")
        if not sets:
            raise InvalidParameter("trace risk: attribute_sets is empty; give at least one")
        uq = quote(unit)

        users = ws.temp("users")
        ws.con.execute(
            f"CREATE TEMP TABLE {users} AS "
            f"SELECT u, row_number() OVER (ORDER BY hash(u, {seed}::BIGINT), u) AS uid "
            f"FROM (SELECT DISTINCT CAST({uq} AS VARCHAR) AS u FROM {src} "
            f"WHERE {uq} IS NOT NULL AND {quote(time)} IS NOT NULL)"
        )
        population = _scalar(ws, f"SELECT count(*) FROM {users}")
        sampled = min(population, sample_users)
        # The projection the configurations read: integer user ids, UTC time, attributes.
        base = ws.temp("base")
        needed_sql = "".join(f", s.{quote(c)}" for c in needed)
        ts = _time_expr(time, types[time], "s")
        ws.con.execute(
            f"CREATE TEMP TABLE {base} AS SELECT users.uid, {ts} AS ts{needed_sql} "
            f"FROM {src} AS s JOIN {users} AS users ON users.u = CAST(s.{uq} AS VARCHAR) "
            f"WHERE s.{quote(time)} IS NOT NULL"
        )
        stored = _stored_granularity(ws, base, "ts")

        rows: list[TraceRiskRow] = []
        for g in gs:
            for name, cols in sets.items():
                rows.extend(
                    _one_configuration(ws, base, sampled, g, name, cols, ps, seed, exact_sets)
                )
    return TraceRiskResult(
        unit=unit,
        time=time,
        population_users=population,
        sample_users=sampled,
        seed=seed,
        stored_granularity=stored,
        rows=tuple(rows),
    )


def _scalar(ws: Workspace, sql: str) -> int:
    row = first_row(ws.con, sql)
    return int(row[0]) if row and row[0] is not None else 0


def _one_configuration(
    ws: Workspace,
    base: str,
    sampled: int,
    granularity: str,
    set_name: str,
    cols: tuple[str, ...],
    ps: list[int],
    seed: int,
    exact_sets: bool,
) -> list[TraceRiskRow]:
    attr_sql = "".join(f", {quote(c)}" for c in cols)
    up = ws.temp(f"up_{granularity}")
    # One row per (user, distinct point); pid is an exact dense id of (time bin, attributes).
    ws.con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {up} AS
        WITH pts AS (
            SELECT DISTINCT uid, date_trunc('{granularity}', ts) AS tb{attr_sql} FROM {base}
        )
        SELECT uid, dense_rank() OVER (ORDER BY tb{attr_sql}) AS pid FROM pts
        """
    )
    big_p = max(ps)
    # p = 1: the anonymity set is the popularity of the first chosen point. For p ≥ 2 all
    # chosen sets contain the first p2 points (p2 = the smallest requested p ≥ 2), so the other
    # holders of all p points are among the holders of the rarest of those (the anchor); for
    # each such candidate we find the longest prefix of the target's chosen points it holds.
    p2 = min([p for p in ps if p >= 2], default=1)
    p_list = ", ".join(str(p) for p in ps)

    def prefix(cand: str) -> str:
        return f"""
            SELECT c.t, c.v,
                   coalesce(min(ch.r) FILTER (WHERE mine.uid IS NULL), any_value(ch.np) + 1) - 1
                       AS pre
            FROM {cand} AS c
            JOIN ch ON ch.t = c.t
            LEFT JOIN {up} AS mine ON mine.uid = c.v AND mine.pid = ch.pid
            GROUP BY c.t, c.v"""

    holders = f"SELECT a.t, up.uid AS v FROM anchor AS a JOIN {up} AS up ON up.pid = a.apid"
    if exact_sets:
        scan = f"""
        open AS (SELECT t FROM tgt),
        cand AS ({holders} WHERE up.uid <> a.t),"""
    else:
        # Witness pass: a few random other holders of the anchor; a target one of them matches
        # at the largest p is matched at every p (prefixes nest), so only the others get the
        # full scan. Uniqueness stays exact; anonymity-set sizes are then not all known.
        scan = f"""
        cand1 AS (
            {holders} WHERE up.uid <> a.t
            QUALIFY row_number() OVER (PARTITION BY a.t ORDER BY hash(up.uid, {seed}::BIGINT))
                <= {_WITNESSES}
        ),
        pre1 AS ({prefix("cand1")}),
        open AS (
            SELECT tgt.t FROM tgt
            LEFT JOIN (SELECT t, max(pre) AS best FROM pre1 GROUP BY t) AS w USING (t)
            WHERE coalesce(w.best, 0) < least({big_p}, tgt.np)
        ),
        cand AS ({holders} WHERE up.uid <> a.t AND a.t IN (SELECT t FROM open)),"""
    median = "median(m)" if exact_sets else "NULL"
    result = ws.con.execute(
        f"""
        WITH pop AS (SELECT pid, count(*) AS nu FROM {up} GROUP BY pid),
        tp AS (
            SELECT up.uid AS t, up.pid, pop.nu,
                   row_number() OVER (PARTITION BY up.uid
                                      ORDER BY hash(up.uid, up.pid, {seed}::BIGINT), up.pid)
                       AS r,
                   count(*) OVER (PARTITION BY up.uid) AS np
            FROM {up} AS up JOIN pop USING (pid)
            WHERE up.uid <= {sampled}
        ),
        ch AS (SELECT * FROM tp WHERE r <= {big_p}),
        anchor AS (
            SELECT t, arg_min(pid, nu) AS apid FROM ch WHERE r <= {p2} GROUP BY t
        ),
        tgt AS (SELECT t, any_value(np) AS np, min(nu) FILTER (WHERE r = 1) AS nu1
                FROM ch GROUP BY t),
        {scan}
        pre AS ({prefix("cand")}),
        ps AS (SELECT unnest([{p_list}]) AS p),
        others AS (
            SELECT pre.t, ps.p, count(*) AS o
            FROM pre JOIN tgt USING (t) JOIN ps ON pre.pre >= least(ps.p, tgt.np)
            GROUP BY pre.t, ps.p
        ),
        sets AS (
            SELECT ps.p, tgt.t, tgt.np < ps.p AS short,
                   CASE WHEN least(ps.p, tgt.np) = 1 THEN tgt.nu1
                        WHEN tgt.t IN (SELECT t FROM open) THEN 1 + coalesce(others.o, 0)
                        ELSE NULL  -- a witness shares all of these points: not unique
                   END AS m
            FROM tgt CROSS JOIN ps LEFT JOIN others ON others.t = tgt.t AND others.p = ps.p
        )
        SELECT p, count(*) AS n, count(*) FILTER (WHERE m = 1) AS uniq,
               count(*) FILTER (WHERE short) AS short, {median} AS med
        FROM sets GROUP BY p ORDER BY p
        """
    ).fetchall()
    by_p = {int(r[0]): r for r in result}
    out: list[TraceRiskRow] = []
    for p in ps:
        r = by_p.get(p)
        n, uniq, short = (int(r[1]), int(r[2]), int(r[3])) if r else (0, 0, 0)
        med = float(r[4]) if r and r[4] is not None else None
        lo, hi = wilson_interval(uniq, n)
        out.append(
            TraceRiskRow(
                granularity=granularity,
                attribute_set=set_name,
                attributes=cols,
                points=p,
                n=n,
                unique=uniq,
                short=short,
                median_anonymity_set=med,
                share=uniq / n if n else 0.0,
                ci_low=lo,
                ci_high=hi,
            )
        )
    return out
