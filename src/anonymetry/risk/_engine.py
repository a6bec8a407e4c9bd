"""The engine boundary of table risk: one grouped query → equivalence-class aggregates.

Every table measure (k, ℓ, t, δ, uniqueness, re-identification risks) is derived from
:class:`ClassCounts`, the result of **one** ``GROUP BY`` over the quasi-identifiers (and the
sensitive attribute) that runs inside the engine. Only that grouped result — one row per
(class, sensitive value), or per class without a sensitive attribute — leaves the engine, and
the derived measures are vectorized NumPy over it (no per-row Python).

:func:`class_counts` is the DuckDB implementation; a Spark one returns the same
:class:`ClassCounts` from the same grouping (``groupBy(qis, s).count()`` sorted by the QIs).

Missing values (documented in :mod:`anonymetry.risk`):

- a NULL in a quasi-identifier is a value of its own: rows whose QI is missing form a class
  together (SQL ``GROUP BY`` semantics; a missing field is as observable as any value).
  NaN likewise groups with NaN.
- a NULL sensitive value is a sensitive value of its own ("missing"): it counts towards
  distinct/entropy/recursive ℓ and δ, and in the ordered distance of t-closeness it is ranked
  after the largest value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from anonymetry.errors import InvalidParameter

__all__ = ["ClassCounts", "class_counts", "column_types", "is_ordered_type", "quote"]

_ORDERED_PREFIXES = (
    "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
    "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "REAL", "DECIMAL", "DATE", "TIMESTAMP", "TIME",
    "INT", "NUMERIC",
)


def quote(name: str) -> str:
    """Quote an SQL identifier for DuckDB."""
    return '"' + name.replace('"', '""') + '"'


def is_ordered_type(duck_type: str) -> bool:
    """Numbers, dates and times use the ordered distance in t-closeness; the rest equal."""
    return duck_type.upper().startswith(_ORDERED_PREFIXES)


def column_types(con: duckdb.DuckDBPyConnection, relation: str) -> dict[str, str]:
    """Column → DuckDB type of ``relation`` (a quoted name or a parenthesised query)."""
    rows = con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
    return {str(r[0]): str(r[1]) for r in rows}


@dataclass(frozen=True, slots=True, eq=False)
class ClassCounts:
    """Equivalence classes of a table over its QIs.

    ``class_size[c]`` is the number of records of class ``c``. With a sensitive attribute,
    the *entries* are the (class, sensitive value) pairs present, sorted by class and then by
    the value's rank: ``entry_class``, ``entry_code`` (rank of the value in ``0..n_values-1``;
    by value for ordered types, NULL last) and ``entry_count`` (records).
    """

    n_records: int
    class_size: np.ndarray
    entry_class: np.ndarray | None = None
    entry_code: np.ndarray | None = None
    entry_count: np.ndarray | None = None
    n_values: int = 0
    ordered: bool = False

    @property
    def n_classes(self) -> int:
        return int(self.class_size.size)

    @property
    def has_sensitive(self) -> bool:
        return self.entry_class is not None


def _distinct(a: pa.Array, b: pa.Array) -> np.ndarray:
    """Element-wise "a is distinct from b" with NULL = NULL and NaN = NaN."""
    ne = pc.not_equal(a, b)
    if a.null_count or b.null_count:
        ne = pc.if_else(pc.is_null(ne), pc.xor(pc.is_null(a), pc.is_null(b)), ne)
    out = ne.to_numpy(zero_copy_only=False).astype(bool)
    if pa.types.is_floating(a.type):
        both_nan = pc.and_(pc.is_nan(a), pc.is_nan(b)).fill_null(False)
        out &= ~both_nan.to_numpy(zero_copy_only=False).astype(bool)
    return out


def _class_ids(grouped: pa.Table, qi: Sequence[str]) -> tuple[np.ndarray, np.ndarray] | None:
    """Sort entries by their QI hash and number the classes: ``(order, class id per entry)``.

    Exact: entries whose hashes are equal are compared column by column; ``None`` if two
    different QI tuples share a hash (then the caller sorts by the QIs themselves).
    """
    h = grouped.column("__h").to_numpy()
    order = np.argsort(h)
    hs = h[order]
    same = hs[1:] == hs[:-1]
    if np.any(same):
        left = pa.array(order[:-1][same])
        right = pa.array(order[1:][same])
        for name in qi:
            col = grouped.column(name).combine_chunks()
            if np.any(_distinct(col.take(left), col.take(right))):
                return None  # a 64-bit hash collision between different QI tuples
    starts = np.r_[True, ~same]
    return order, np.cumsum(starts, dtype=np.int64) - 1


def class_counts(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    qi: Sequence[str],
    sensitive: str | None = None,
    *,
    ordered: bool | None = None,
) -> ClassCounts:
    """Group ``relation`` by ``qi`` (and ``sensitive``) in DuckDB; one pass over the table.

    ``relation`` is a quoted table/view name or a parenthesised query. ``ordered`` chooses the
    t-closeness distance for the sensitive attribute (default: by its type).
    """
    if not qi:
        raise InvalidParameter("risk: give at least one quasi-identifier column (--qi)")
    if len(set(qi)) != len(qi):
        raise InvalidParameter("risk: a quasi-identifier column is listed twice in --qi")
    if sensitive is not None and sensitive in qi:
        raise InvalidParameter(
            "risk: the sensitive attribute is also listed as a quasi-identifier; pick one role"
        )
    types = column_types(con, relation)
    missing = [c for c in [*qi, *([sensitive] if sensitive else [])] if c not in types]
    if missing:
        raise InvalidParameter(
            f"risk: column(s) {', '.join(map(repr, missing))} not in the table; "
            f"it has {', '.join(map(repr, types))}"
        )
    qcols = ", ".join(quote(c) for c in qi)
    if sensitive is None:
        sizes = con.sql(f"SELECT count(*) AS n FROM {relation} GROUP BY {qcols}").fetchnumpy()["n"]
        sizes = np.asarray(sizes, dtype=np.int64)
        if sizes.size == 0:
            raise InvalidParameter("risk: the table has no rows; nothing to assess")
        return ClassCounts(n_records=int(sizes.sum()), class_size=sizes)

    s = quote(sensitive)
    # One GROUP BY over (QIs, sensitive); classes are then numbered by the QI tuple's hash,
    # checked exactly (no ORDER BY over the QIs: a sort costs more than the grouping).
    grouped = con.sql(
        f"SELECT hash({qcols}) AS __h, {qcols}, {s} AS __s, count(*) AS __n "
        f"FROM {relation} GROUP BY {qcols}, {s}"
    ).to_arrow_table()
    rows = grouped.num_rows
    if rows == 0:
        raise InvalidParameter("risk: the table has no rows; nothing to assess")
    ids = _class_ids(grouped, qi)
    if ids is None:  # a 64-bit hash collision: number the classes by sorting on the QIs
        grouped = con.sql(
            f"SELECT {qcols}, {s} AS __s, count(*) AS __n FROM {relation} "
            f"GROUP BY ALL ORDER BY {qcols}"
        ).to_arrow_table()
        starts = np.zeros(rows, dtype=bool)
        starts[0] = True
        for name in qi:
            col = grouped.column(name).combine_chunks()
            starts[1:] |= _distinct(col.slice(1), col.slice(0, rows - 1))
        order, entry_class = np.arange(rows), np.cumsum(starts, dtype=np.int64) - 1
    else:
        order, entry_class = ids
    # Sensitive values → dense codes ranked by value (NULL last).
    svals = grouped.column("__s").combine_chunks()
    encoded = pc.dictionary_encode(svals, null_encoding="encode")
    dictionary = encoded.dictionary
    by_value = pc.array_sort_indices(dictionary, null_placement="at_end").to_numpy()
    rank = np.empty(len(dictionary), dtype=np.int64)
    rank[by_value] = np.arange(len(dictionary), dtype=np.int64)
    entry_code = rank[encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)][order]
    entry_count = grouped.column("__n").to_numpy().astype(np.int64)[order]
    # Sort entries within each class by code.
    if rows > 1:
        same = entry_class[1:] == entry_class[:-1]
        if np.any(same & (entry_code[1:] < entry_code[:-1])):
            perm = np.lexsort((entry_code, entry_class))
            entry_class, entry_code, entry_count = (
                entry_class[perm], entry_code[perm], entry_count[perm])
    class_size = np.bincount(entry_class, weights=entry_count).astype(np.int64)
    if ordered is None:
        ordered = is_ordered_type(types[sensitive])
    return ClassCounts(
        n_records=int(class_size.sum()),
        class_size=class_size,
        entry_class=entry_class,
        entry_code=entry_code,
        entry_count=entry_count,
        n_values=len(dictionary),
        ordered=bool(ordered),
    )
