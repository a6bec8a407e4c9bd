"""The default engine: DuckDB in-process, one SQL pipeline per query.

The plan (measured in ``benchmarks/dp_plan_floor.py``)::

    src     scan + filter + derive keys + clamp        (vectorized scan, no per-row Python)
    up      GROUP BY hash(unit), partition             (the user-level floor's work, on 64-bit
                                                        ids instead of pseudonym text)
    ranked  row_number() OVER (PARTITION BY hash(unit) ORDER BY partition) and the unit's
            number of groups n, on the (unit, partition) groups — ~#units·#partitions rows,
            not #rows; kept: a salted rotation of that order ranks ≤ L0 (``order``); the
            same window partitioning also sums the unit's raw rows for the bias report
    out     GROUP BY partition with min(c, L∞) row weights

so bounding costs one window over the already aggregated (unit, partition) table instead of a
window over every row, and only kept groups are materialized. Integer units need no hash at all
(an exact integer mix); other units one md5 of the unit's text per group. With
``LinfMode.SAMPLE`` the L∞ rows are chosen by a second window over rows ordered by
``md5(row, salt)`` (slower; kept for literal row sampling).

The salt is a fresh 63-bit value from :mod:`secrets` per query (drawn by the compiler), so the
order that decides which partitions and rows a unit keeps cannot be predicted or replayed, and
it depends on the unit's own rows only.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from anonymetry.analytics.engines.order import (
    integer_unit,
    l0_position_sql,
    l0_rank_sql,
    salted_order_sql,
    unit_hash_sql,
)
from anonymetry.analytics.plan import (
    Agg,
    BoundedAggregates,
    BoundedPlan,
    Diagnostics,
    Source,
    SourceKind,
)
from anonymetry.analytics.spec import Filter, GroupKey, GroupTransform, LinfMode, check_identifier
from anonymetry.errors import InvalidParameter

__all__ = ["DuckDBEngine", "layout_epochs"]

VALUE_BUCKET_OFFSET = 21  # value profile buckets: ±(floor(log2|v|) + 21), 0 for v == 0
_IN_LIST_MAX = 1000  # public partitions of one key filtered by an IN list up to this many


def q(name: str) -> str:
    """Quote a validated identifier."""
    check_identifier(name)
    return '"' + name.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _num(x: float) -> str:
    return repr(float(x))


def _table(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None
           ) -> pa.Table:
    """Run a query and materialize its whole result, so no result stays open on ``con``.

    DuckDB ≥ 2.0 refuses any further work on a connection that still holds an unfinished
    ``execute()`` result (``ResourceInUseException``), so every read here goes through this
    function and every statement through :func:`_exec`; nothing else touches the connection.
    """
    return con.sql(sql, params=params or None).to_arrow_table()


def _exec(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> None:
    """Run a statement (DDL, SET) and finish its result before anything else runs."""
    if params:
        con.execute(sql, params)
    else:
        con.execute(sql)
    con.complete()


_EPOCH_DIR = re.compile(r"(?:^|/)epoch=(-?\d+)(?:/|$)")


def layout_epochs(source: Source, column: str) -> int | None:
    """How many key epochs the source can hold, from its layout, without reading data; an
    upper bound on the distinct epochs of any filtered subset (so the k-fold sensitivity holds).
    ``None`` when the layout does not say (CSV; Parquet without statistics). Shared by every
    engine, so they calibrate the same k:

    - event store: the distinct epochs of its live files (``epoch=<e>/``) and WAL rows;
    - Parquet: max − min + 1 of the column's footer statistics (DuckDB reads only footers);
    - an in-memory Arrow table: its distinct values.
    """
    if source.kind is SourceKind.STORE:
        epochs: set[int] = set()
        for path in source.obj.parquet_files():
            m = _EPOCH_DIR.search(str(path).replace("\\", "/"))
            if m is None:
                return None
            epochs.add(int(m.group(1)))
        wal = getattr(source.obj, "wal_table", None)
        if wal is not None and column in wal.column_names:
            epochs.update(int(e) for e in pc.unique(wal.column(column)).to_pylist()
                          if e is not None)
        return max(1, len(epochs))
    if source.kind is SourceKind.ARROW and isinstance(source.obj, pa.Table):
        if column not in source.obj.column_names:
            return 1
        return max(1, int(pc.count_distinct(source.obj.column(column)).as_py()))
    if source.kind is SourceKind.PARQUET:
        con = duckdb.connect(":memory:")
        try:
            stats = _table(
                con, "SELECT min(TRY_CAST(stats_min_value AS BIGINT)) AS lo, "
                "max(TRY_CAST(stats_max_value AS BIGINT)) AS hi, count(*) AS n, "
                "count(TRY_CAST(stats_min_value AS BIGINT)) AS n_min, "
                "count(TRY_CAST(stats_max_value AS BIGINT)) AS n_max "
                f"FROM parquet_metadata({_lit(str(source.path))}) WHERE path_in_schema = ?",
                [column]).to_pylist()[0]
        finally:
            con.close()
        if stats["n"] and stats["n"] == stats["n_min"] == stats["n_max"]:
            return max(1, int(stats["hi"]) - int(stats["lo"]) + 1)
    return None


class DuckDBEngine:
    """Runs bounded plans in an in-process DuckDB: one in-memory database per engine (created on
    first use, again after a fork), a fresh connection to it per call. Reusing the database spares
    each query DuckDB's start-up (thread pool, allocator warm-up): ~8 % of a 10M-row query,
    alternated A/B in ``BENCHMARKS.md``. Nothing outlives a call: sources, public lists and
    temporary tables are the call's connection's own (temporary views and registrations)."""

    name = "duckdb"

    def __init__(self, *, threads: int | None = None, memory_limit: str | None = None) -> None:
        self.threads = threads
        self.memory_limit = memory_limit
        self._lock = threading.Lock()
        self._database: duckdb.DuckDBPyConnection | None = None
        self._pid = 0

    def close(self) -> None:
        """Release the engine's database (a later call opens a new one)."""
        with self._lock:
            if self._database is not None:
                self._database.close()
            self._database = None

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        with self._lock:
            if self._database is None or self._pid != os.getpid():
                database = duckdb.connect(":memory:")
                # no result here depends on row order (every read aggregates); letting DuckDB
                # drop it spares order bookkeeping in scans, joins and temp tables
                _exec(database, "SET preserve_insertion_order = false")
                if self.threads:
                    _exec(database, f"SET threads = {int(self.threads)}")
                if self.memory_limit:
                    _exec(database, f"SET memory_limit = {_lit(self.memory_limit)}")
                self._database, self._pid = database, os.getpid()
            return self._database.cursor()

    # -- connection and source ---------------------------------------------------------------
    def _connect(self, source: Source, public: pa.Table | None = None) -> duckdb.DuckDBPyConnection:
        con = self._cursor()
        with contextlib.suppress(duckdb.Error):  # no ICU: timestamps are naive UTC already
            _exec(con, "SET TimeZone = 'UTC'")
        path = _lit(str(source.path))
        if source.kind is SourceKind.PARQUET:
            _exec(con, f"CREATE TEMP VIEW __src AS SELECT * FROM read_parquet({path})")
        elif source.kind is SourceKind.CSV:
            _exec(con, f"CREATE TEMP VIEW __src AS SELECT * FROM read_csv_auto({path})")
        elif source.kind is SourceKind.ARROW:
            con.register("__src", source.obj)
        elif source.kind is SourceKind.STORE:
            source.obj.duckdb_register(con, "__src")
            con.complete()  # whatever the reader ran on the connection is finished here
        else:  # pragma: no cover - enum is closed
            raise InvalidParameter(f"source: unsupported kind {source.kind}")
        if public is not None:
            con.register("__public", public)
        return con

    def schema(self, source: Source) -> pa.Schema:
        con = self._connect(source)
        try:
            return _table(con, "SELECT * FROM __src LIMIT 0").schema
        finally:
            con.close()

    # -- SQL pieces ----------------------------------------------------------------------------
    def _key_expr(self, key: GroupKey, schema: pa.Schema) -> str:
        col = q(key.column)
        if key.transform is GroupTransform.NONE:
            return f"CAST({col} AS VARCHAR)"
        typ = schema.field(key.column).type if key.column in schema.names else None
        ts = f"to_timestamp({col})" if typ is not None and pa.types.is_integer(typ) else \
            f"CAST({col} AS TIMESTAMP)"
        if key.transform is GroupTransform.DAY:
            return f"strftime({ts}, '%Y-%m-%d')"
        return f"strftime(date_trunc('week', {ts}), '%Y-%m-%d')"

    def _where(self, plan: BoundedPlan, schema: pa.Schema) -> tuple[str, list[Any]]:
        names = set(schema.names)
        needed = [plan.unit, *(k.column for k in plan.keys), *(f.column for f in plan.filters)]
        if plan.value:
            needed.append(plan.value)
        if plan.window:
            needed.append(plan.window.column)
        if plan.epoch is not None and plan.epoch_column:
            needed.append(plan.epoch_column)
        missing = sorted({c for c in needed if c not in names})
        if missing:
            raise InvalidParameter(f"source: no column(s) {', '.join(missing)}; it has "
                                   f"{', '.join(schema.names)}")
        clauses = [f"{q(plan.unit)} IS NOT NULL"]
        params: list[Any] = []
        if plan.value:
            clauses.append(f"{q(plan.value)} IS NOT NULL")
        for flt in plan.filters:
            clauses.append(self._filter(flt, params))
        if plan.window:
            col = q(plan.window.column)
            typ = schema.field(plan.window.column).type
            for bound, op in ((plan.window.since, ">="), (plan.window.until, "<")):
                if bound is None:
                    continue
                if pa.types.is_integer(typ):
                    clauses.append(f"{col} {op} ?")
                    params.append(int(bound.timestamp()))
                elif pa.types.is_timestamp(typ) and typ.tz is not None:
                    clauses.append(f"{col} {op} CAST(? AS TIMESTAMPTZ)")
                    params.append(bound.isoformat())
                else:
                    clauses.append(f"CAST({col} AS TIMESTAMP) {op} CAST(? AS TIMESTAMP)")
                    params.append(bound.replace(tzinfo=None).isoformat(sep=" "))
        if plan.epoch is not None and plan.epoch_column:
            clauses.append(f"{q(plan.epoch_column)} = ?")
            params.append(int(plan.epoch))
        return " AND ".join(clauses), params

    @staticmethod
    def _filter(flt: Filter, params: list[Any]) -> str:
        col = q(flt.column)
        if flt.op == "~":
            params.extend(flt.values)
            return f"{col} IN ({', '.join('?' for _ in flt.values)})"
        params.append(flt.values[0])
        return f"{col} {flt.op} ?"

    def _src(self, plan: BoundedPlan, schema: pa.Schema, *, with_hash: bool
             ) -> tuple[str, list[Any]]:
        where, params = self._where(plan, schema)
        unit = q(plan.unit)
        # __g, what a unit's rows are grouped by, is the unit's 64-bit hash(): grouping ~10M rows
        # on it takes ~40 % less time than on 32-character pseudonym text and ~5 % less than on
        # integer ids (alternated A/B, BENCHMARKS.md). On 64-bit integers it is a bijection; two
        # text units whose hashes collide (~n²/2⁶⁵: 3·10⁻¹⁰ for 100k units) are bounded together
        # as one unit, which keeps every sensitivity bound (a person's rows stay within one
        # bounded unit) and only costs utility. The L0 order hashes the unit's own value (__u).
        cols = [f"{unit} AS __u", f"hash({unit}) AS __g"]
        cols += [f"{self._key_expr(k, schema)} AS {q(f'k{i}')}" for i, k in enumerate(plan.keys)]
        if plan.value and plan.clamp:
            v = f"CAST({q(plan.value)} AS DOUBLE)"
            lo, hi = _num(plan.clamp.lo), _num(plan.clamp.hi)
            cols.append(f"least(greatest({v}, {lo}), {hi}) AS __v")
            cols.append(f"CAST(({v} < {lo} OR {v} > {hi}) AS INTEGER) AS __cl")
            if Agg.HIST in plan.aggs:
                width = _num(plan.clamp.width / plan.bins)
                cols.append(f"least(CAST(floor((least(greatest({v}, {lo}), {hi}) - {lo}) / {width})"
                            f" AS INTEGER), {plan.bins - 1}) AS __b")
        if with_hash:
            cols.append(f"{salted_order_sql([q(c) for c in schema.names], plan.salt)} AS __h")
        sql = f"SELECT {', '.join(cols)} FROM __src WHERE {where}"
        if plan.public_partitions is not None:
            keys = ", ".join(q(f"k{i}") for i in range(len(plan.keys)))
            if len(plan.keys) == 1 and len(plan.public_partitions) <= _IN_LIST_MAX and all(
                    key[0] is not None for key in plan.public_partitions):
                # a short list of one key: an IN list filters during the scan (cheaper than
                # a semi join on 10M rows); NULL keys need the join's IS NOT DISTINCT semantics
                marks = ", ".join("?" for _ in plan.public_partitions)
                sql = f"SELECT * FROM ({sql}) AS s WHERE {keys} IN ({marks})"
                params = [*params, *(str(key[0]) for key in plan.public_partitions)]
            else:
                sql = f"SELECT * FROM ({sql}) AS s SEMI JOIN __public USING ({keys})"
        return sql, params

    def _ranked_sql(self, plan: BoundedPlan, schema: pa.Schema) -> tuple[str, list[Any]]:
        """``__g, k…, __u, __c (kept rows ≤ L∞ or weight base), __craw, sums…, __uraw, __r``
        per *kept* (unit, partition): one window partitioning by unit numbers a unit's groups in
        key order and counts them, the L0 rank is their salted rotation (:mod:`.order`), and
        ``__uraw`` (the unit's rows before any bounding, a window sum over the same
        partitioning) lets the bias report see the dropped groups without keeping them."""
        keys = [q(f"k{i}") for i in range(len(plan.keys))]
        group = ", ".join(["__g", *keys])
        sample = plan.linf_mode is LinfMode.SAMPLE and plan.bounding
        src, params = self._src(plan, schema, with_hash=sample)
        linf = plan.bounds.max_per_partition
        if sample:
            src = (f"SELECT *, count(*) OVER (PARTITION BY {group}) AS __craw FROM ({src}) AS s0 "
                   f"QUALIFY row_number() OVER (PARTITION BY {group} ORDER BY __h) <= {linf}")
        aggs = ["any_value(__u) AS __u", "count(*) AS __c"]
        aggs.append("max(__craw) AS __craw" if sample else "count(*) AS __craw")
        if plan.value and plan.clamp:
            mid = _num(plan.clamp.mid)
            if Agg.SUM in plan.aggs:
                aggs.append("sum(__v) AS __s")
            if Agg.CSUM in plan.aggs:
                aggs.append(f"sum(__v - {mid}) AS __cs")
            if Agg.CSQ in plan.aggs:
                aggs.append(f"sum((__v - {mid}) * (__v - {mid})) AS __cq")
            aggs.append("sum(__cl) AS __ncl")
        craw = "max(__craw)" if sample else "count(*)"
        h = unit_hash_sql("any_value(__u)", plan.salt, integer=integer_unit(schema, plan.unit),
                          dialect="duckdb")
        inner = (f"SELECT {group}, {', '.join(aggs)}, {h} AS __uh, "
                 f"{l0_position_sql('__g', keys)} AS __pos, "
                 f"count(*) OVER (PARTITION BY __g) AS __n, "
                 f"sum({craw}) OVER (PARTITION BY __g) AS __uraw "
                 f"FROM ({src}) AS s GROUP BY {group}")
        rank = l0_rank_sql("__pos", "__n", "__uh")
        sql = f"SELECT * EXCLUDE (__uh, __pos, __n), {rank} AS __r FROM ({inner}) AS g"
        if plan.bounding:  # only kept (unit, partition) groups leave; __uraw keeps the unit's total
            sql += f" WHERE {rank} <= {plan.bounds.max_partitions}"
        return sql, params

    def _weight(self, plan: BoundedPlan) -> str:
        """Per (unit, partition) weight applied to row-level sums."""
        if not plan.bounding or plan.linf_mode is LinfMode.SAMPLE:
            return "1.0"
        linf = plan.bounds.max_per_partition
        return f"(least(__c, {linf}) / __c)"

    def _rows(self, plan: BoundedPlan) -> str:
        if not plan.bounding or plan.linf_mode is LinfMode.SAMPLE:
            return "__c"
        return f"least(__c, {plan.bounds.max_per_partition})"

    def _kept(self, plan: BoundedPlan) -> str:
        return f"__r <= {plan.bounds.max_partitions}" if plan.bounding else "TRUE"

    # -- the protocol ----------------------------------------------------------------------------
    def count_epochs(self, plan: BoundedPlan) -> int:
        """An upper bound on the key epochs the plan's rows span: :func:`layout_epochs` (the
        source's layout, no data read), else ``count(DISTINCT epoch)`` over the filtered rows
        (CSV, or Parquet without statistics)."""
        col = plan.epoch_column
        if not col:
            return 1
        known = layout_epochs(plan.source, col)
        if known is not None:
            return known
        con = self._connect(plan.source)
        try:
            schema = _table(con, "SELECT * FROM __src LIMIT 0").schema
            if col not in schema.names:
                return 1
            where, params = self._where(plan, schema)
            rows = _table(con, f"SELECT count(DISTINCT {q(col)}) AS n FROM __src "
                               f"WHERE {where}", params).to_pylist()
            return max(1, int(rows[0]["n"]) if rows else 1)
        finally:
            con.close()

    def aggregate(self, plan: BoundedPlan) -> BoundedAggregates:
        public = self._public_table(plan)
        con = self._connect(plan.source, public)
        try:
            schema = _table(con, "SELECT * FROM __src LIMIT 0").schema
            ranked, params = self._ranked_sql(plan, schema)
            keys = [q(f"k{i}") for i in range(len(plan.keys))]
            key_list = ", ".join(keys)
            w, rows, kept = self._weight(plan), self._rows(plan), self._kept(plan)
            outs = ["count(*) AS units", f"CAST(sum({rows}) AS BIGINT) AS rows"]
            if plan.value and plan.clamp:
                if Agg.SUM in plan.aggs:
                    outs.append(f"sum(__s * {w}) AS sum")
                if Agg.CSUM in plan.aggs:
                    outs.append(f"sum(__cs * {w}) AS csum")
                if Agg.CSQ in plan.aggs:
                    outs.append(f"sum(__cq * {w}) AS csq")
            need_temp = plan.diagnostics or Agg.HIST in plan.aggs
            if need_temp:
                _exec(con, f"CREATE TEMP TABLE __ranked AS {ranked}", params)
                base, base_params = "__ranked", []
            else:
                base, base_params = f"({ranked}) AS r", params
            select_keys = ", ".join(f"{k} AS {q(name)}" for k, name in zip(keys, plan.key_names,
                                                                             strict=True))
            group = f" GROUP BY {key_list}" if key_list else ""
            sql = (f"SELECT {select_keys + ', ' if select_keys else ''}{', '.join(outs)} "
                   f"FROM {base} WHERE {kept}{group}")
            partitions = _table(con, sql, base_params)
            if not keys and partitions.num_rows == 1 and partitions.column("units")[0].as_py() == 0:
                partitions = partitions.slice(0, 0)
            diagnostics = self._diagnostics(con, plan) if plan.diagnostics else None
            histogram = self._histogram(con, plan, schema) if Agg.HIST in plan.aggs else None
            return BoundedAggregates(partitions, histogram, diagnostics)
        finally:
            con.close()

    def _public_table(self, plan: BoundedPlan) -> pa.Table | None:
        if plan.public_partitions is None:
            return None
        cols = {f"k{i}": pa.array([None if key[i] is None else str(key[i])
                                   for key in plan.public_partitions], pa.string())
                for i in range(len(plan.keys))}
        return pa.table(cols)

    def _diagnostics(self, con: duckdb.DuckDBPyConnection, plan: BoundedPlan) -> Diagnostics:
        kept, rows, w = self._kept(plan), self._rows(plan), self._weight(plan)
        has_value = plan.value is not None and plan.clamp is not None
        clamped = f"CASE WHEN {kept} THEN __ncl * {w} ELSE 0 END" if has_value else "0"
        sql = (f"SELECT coalesce(sum(1 - kept / raw), 0), "
               f"coalesce(sum(CASE WHEN kept > 0 THEN clamped / kept ELSE 0 END), 0), count(*) "
               f"FROM (SELECT __g, max(__uraw)::DOUBLE AS raw, "
               f"sum(CASE WHEN {kept} THEN {rows} ELSE 0 END)::DOUBLE AS kept, "
               f"sum({clamped})::DOUBLE AS clamped FROM __ranked GROUP BY __g) AS per_unit")
        row = list(_table(con, sql).to_pylist()[0].values())
        return Diagnostics(float(row[0]), float(row[1]), int(row[2]))

    def _histogram(self, con: duckdb.DuckDBPyConnection, plan: BoundedPlan,
                   schema: pa.Schema) -> pa.Table:
        keys = [q(f"k{i}") for i in range(len(plan.keys))]
        join_keys = ", ".join(["__g", *keys])
        select_keys = "".join(f"{k} AS {q(n)}, " for k, n in zip(keys, plan.key_names,
                                                                   strict=True))
        sample = plan.linf_mode is LinfMode.SAMPLE and plan.bounding
        src, params = self._src(plan, schema, with_hash=sample)
        if sample:
            linf = plan.bounds.max_per_partition
            src = (f"SELECT * FROM ({src}) AS s0 QUALIFY row_number() OVER "
                   f"(PARTITION BY {join_keys} ORDER BY __h) <= {linf}")
        w = self._weight(plan)
        sql = (f"WITH b AS (SELECT {join_keys}, __b, count(*) AS __cb FROM ({src}) AS s "
               f"GROUP BY {join_keys}, __b) "
               f"SELECT {select_keys}__b AS bin, sum(__cb * {w}) AS weight FROM b "
               f"JOIN __ranked USING ({join_keys}) WHERE {self._kept(plan)} "
               f"GROUP BY {', '.join([*keys, '__b'])}")
        return _table(con, sql, params)

    def profile(self, plan: BoundedPlan, value_bins: list[float] | None = None) -> dict[str, Any]:
        public = self._public_table(plan)
        con = self._connect(plan.source, public)
        try:
            schema = _table(con, "SELECT * FROM __src LIMIT 0").schema
            src, params = self._src(plan, schema, with_hash=False)
            keys = [q(f"k{i}") for i in range(len(plan.keys))]
            group = ", ".join(["__u", *keys])
            _exec(con, f"CREATE TEMP TABLE __up AS SELECT {group}, count(*) AS c "
                       f"FROM ({src}) AS s GROUP BY {group}", params)
            _exec(con, "CREATE TEMP TABLE __pu AS SELECT __u, count(*) AS np, sum(c) AS nr "
                       "FROM __up GROUP BY __u")
            out: dict[str, Any] = {
                "partitions": _table(
                    con, "SELECT np AS n, count(*)::DOUBLE AS w FROM __pu GROUP BY np"),
                "rows": _table(
                    con, "SELECT c AS n, sum(1.0 / np) AS w FROM __up JOIN __pu USING (__u) "
                    "GROUP BY c"),
            }
            if plan.value:
                v = f"CAST({q(plan.value)} AS DOUBLE)"
                where, wparams = self._where(plan, schema)
                bucket = (f"CASE WHEN {v} = 0 THEN 0 ELSE CAST(sign({v}) * (greatest(least("
                          f"floor(log2(abs({v}))), 40), -20) + {VALUE_BUCKET_OFFSET}) AS INTEGER)"
                          " END")
                out["values"] = _table(
                    con, f"SELECT b, sum(1.0 / nr) AS w FROM (SELECT {q(plan.unit)} AS __u, "
                    f"{bucket} AS b FROM __src WHERE {where}) AS s JOIN __pu USING (__u) "
                    "GROUP BY b", wparams)
            return out
        finally:
            con.close()
