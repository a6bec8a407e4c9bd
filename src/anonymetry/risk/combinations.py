"""Which quasi-identifiers carry the risk: the effect of dropping or generalizing each QI, and
the QI subsets that single people out most on their own.

All variants are evaluated in **one** DuckDB query with ``GROUPING SETS`` (one scan of the
table, one hash aggregation per set):

- ``drop``: all QIs but one;
- ``generalize``: all QIs with one numeric column cut into 10 equal-width bins over its range,
  or one date/time column truncated to the month;
- ``alone``: every QI subset of size 1 … ``max_size`` (default 2) by itself.

Each variant reports k, the number of classes, and sample uniqueness (share of records alone in
their class). Remedies are sorted by the uniqueness they leave (most helpful first); subsets by
the uniqueness they cause (riskiest first).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import duckdb

from anonymetry.risk._engine import column_types, quote

__all__ = ["qi_influence"]

_NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
            "UINTEGER", "UBIGINT", "FLOAT", "DOUBLE", "REAL", "DECIMAL")
_TEMPORAL = ("DATE", "TIMESTAMP")
_BINS = 10


def qi_influence(
    con: duckdb.DuckDBPyConnection, relation: str, qi: Sequence[str], *, max_size: int = 2
) -> dict[str, list[dict[str, Any]]]:
    """``{"remedies": [...], "riskiest": [...]}`` for the QIs of ``relation``."""
    types = column_types(con, relation)
    qi = list(qi)
    exprs = [f"{quote(c)} AS {quote(f'__c{i}')}" for i, c in enumerate(qi)]
    coarse: dict[int, str] = {}
    numeric = [i for i, c in enumerate(qi) if types[c].upper().startswith(_NUMERIC)]
    if numeric:
        # the bins span the finite values; ±inf and NaN fall in the end bins (below)
        parts = ", ".join(
            f"min({quote(qi[i])}::DOUBLE) FILTER (WHERE isfinite({quote(qi[i])}::DOUBLE)), "
            f"max({quote(qi[i])}::DOUBLE) FILTER (WHERE isfinite({quote(qi[i])}::DOUBLE))"
            for i in numeric)
        bounds = con.execute(f"SELECT {parts} FROM {relation}").fetchall()[0]
        for j, i in enumerate(numeric):
            lo, hi = bounds[2 * j], bounds[2 * j + 1]
            if lo is None or hi is None or hi <= lo:
                continue
            width = (hi - lo) / _BINS
            coarse[i] = (f"least(floor(({quote(qi[i])}::DOUBLE - {lo!r}) / {width!r}), "
                         f"{_BINS - 1})")
    for i, c in enumerate(qi):
        if types[c].upper().startswith(_TEMPORAL):
            coarse[i] = f"date_trunc('month', {quote(c)})"
    exprs += [f"{e} AS {quote(f'__g{i}')}" for i, e in coarse.items()]

    variants: dict[frozenset[str], list[tuple[str, list[str]]]] = {}
    full = [f"__c{i}" for i in range(len(qi))]
    if len(qi) > 1:
        for i, c in enumerate(qi):
            variants.setdefault(frozenset(x for x in full if x != f"__c{i}"), []).append(
                ("drop", [c]))
    for i in coarse:
        cols = [f"__g{i}" if x == f"__c{i}" else x for x in full]
        variants.setdefault(frozenset(cols), []).append(("generalize", [qi[i]]))
    for size in range(1, min(max_size, len(qi) - 1) + 1):
        for combo in itertools.combinations(range(len(qi)), size):
            variants.setdefault(frozenset(f"__c{i}" for i in combo), []).append(
                ("alone", [qi[i] for i in combo]))
    if not variants:
        return {"remedies": [], "riskiest": []}
    allcols = [*full, *(f"__g{i}" for i in coarse)]
    keyed = list(variants.items())
    sets = ", ".join("(" + ", ".join(quote(c) for c in sorted(cols)) + ")" for cols, _ in keyed)
    gid = "GROUPING(" + ", ".join(quote(c) for c in allcols) + ")"
    rows = con.execute(
        f"WITH base AS (SELECT {', '.join(exprs)} FROM {relation}) "
        f"SELECT g, count(*) FILTER (WHERE n = 1) AS uniques, min(n) AS k, count(*) AS classes, "
        f"sum(n) AS records FROM (SELECT {gid} AS g, count(*) AS n FROM base "
        f"GROUP BY GROUPING SETS ({sets})) GROUP BY g"
    ).fetchall()
    by_gid = {int(r[0]): r for r in rows}
    remedies: list[dict[str, Any]] = []
    riskiest: list[dict[str, Any]] = []
    for cols, labels in keyed:
        # GROUPING() sets bit (len-1-j) when column j is NOT grouped.
        mask = sum(1 << (len(allcols) - 1 - j) for j, c in enumerate(allcols) if c not in cols)
        r = by_gid[mask]
        for action, names in labels:
            item = {"action": action, "columns": names, "k": int(r[2]), "classes": int(r[3]),
                    "sample_uniqueness": int(r[1]) / int(r[4])}
            (riskiest if action == "alone" else remedies).append(item)
    remedies.sort(key=lambda d: (d["sample_uniqueness"], -d["k"]))
    riskiest.sort(key=lambda d: (-d["sample_uniqueness"], len(d["columns"])))
    return {"remedies": remedies, "riskiest": riskiest}
