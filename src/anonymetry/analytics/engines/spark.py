"""The scale-out engine: Apache Spark (PySpark, extra ``spark``), the bounded plan in Spark SQL.

It runs the plan of :mod:`~anonymetry.analytics.engines.duckdb` step for step, so both engines
return the same pre-noise aggregates (``tests/engines/test_engines_agree.py``)::

    src     scan + filter + derive keys + clamp          (DataFrame ops, literals bound as
                                                          Spark literals, never spliced)
    up      GROUP BY unit, partition                     (one shuffle: the user-level floor)
    ranked  row_number() OVER (PARTITION BY unit ORDER BY partition), the unit's group count,
            and the salted rotation of that order as the L0 rank (``order``)
    out     WHERE rank ≤ L0, GROUP BY partition with min(c, L∞) row weights

With ``LinfMode.SAMPLE`` a unit's rows in a partition are first ranked by a salted md5 of the
whole row and only the first L∞ kept (:func:`.order.salted_order_sql`). DuckDB evaluates both
orders identically. Everything is Spark SQL or DataFrame expressions: no Python UDF,
no per-row Python.

Sources: Parquet and CSV files are read by Spark itself. The event store's Parquet files are
encrypted with Parquet modular encryption: when the session's classpath has the KMS client class
the store names, Spark decrypts them with parquet-mr's ``PropertiesDrivenCryptoFactory`` and the
per-epoch master keys the store reader hands over (``StoreReader.spark_hadoop_conf``, set on this
session's Hadoop configuration only, never logged) and the uncompacted WAL rows come as Arrow
and are unioned in; without it (Spark ships no KMS client) pyarrow decrypts the store in this
process and the rows reach Spark through Arrow. An in-memory Arrow
table becomes a Spark DataFrame through Arrow (``createDataFrame``).

The session: pass one (``SparkEngine(spark=...)``), or the engine builds ``local[2]`` with UTC
as the session time zone (day/week keys are UTC days, as in DuckDB) and few shuffle partitions.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pyarrow as pa

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

if TYPE_CHECKING:  # pyspark is the optional extra ``spark``; imported when a session is needed
    from pyspark.sql import Column, DataFrame, SparkSession

__all__ = ["SparkEngine", "arrow_to_spark", "local_session"]

VALUE_BUCKET_OFFSET = 21  # as in the DuckDB engine's value profile


def q(name: str) -> str:
    """Quote a validated identifier for Spark SQL."""
    check_identifier(name)
    return "`" + name.replace("`", "``") + "`"


def _num(x: float) -> str:
    # a DOUBLE literal in Spark SQL (a bare 1.5 would be DECIMAL)
    return f"CAST({float(x)!r} AS DOUBLE)"


def _pyspark() -> Any:
    try:
        import pyspark.sql.functions as sf
    except ImportError:  # pragma: no cover - depends on the install
        raise InvalidParameter("engine spark: PySpark is not installed; install the extra: "
                               "pip install 'anonymetry[spark]' (needs Java 17)") from None
    return sf


def local_session(master: str = "local[2]", *, shuffle_partitions: int = 4,
                  app_name: str = "anonymetry") -> SparkSession:
    """A local SparkSession set up as the engine expects (UTC, no UI, few shuffle partitions),
    bound to loopback only."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    _pyspark()
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master(master)
        .appName(app_name)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark



def arrow_to_spark(spark: SparkSession, table: pa.Table | pa.RecordBatchReader) -> DataFrame:
    """``table`` as a Spark DataFrame. Spark has no large/view string or dictionary types, so
    those columns are cast to plain strings / their value type first."""
    if isinstance(table, pa.RecordBatchReader):
        table = table.read_all()
    fields = []
    for f in table.schema:
        t = f.type
        if pa.types.is_large_string(t) or pa.types.is_string_view(t):
            t = pa.string()
        elif pa.types.is_dictionary(t):
            t = t.value_type
        fields.append(pa.field(f.name, t, f.nullable))
    return spark.createDataFrame(table.cast(pa.schema(fields)))


class SparkEngine:
    """Runs bounded plans on a SparkSession (Spark SQL over temporary views)."""

    name = "spark"

    def __init__(self, spark: SparkSession | None = None, *, master: str = "local[2]",
                 shuffle_partitions: int = 4) -> None:
        self._spark = spark
        self.master = master
        self.shuffle_partitions = shuffle_partitions
        self._lock = threading.Lock()
        self._ids = itertools.count()

    @property
    def spark(self) -> SparkSession:
        with self._lock:
            if self._spark is None:
                self._spark = local_session(self.master,
                                            shuffle_partitions=self.shuffle_partitions)
            return self._spark

    # -- source ----------------------------------------------------------------------------------
    def _frame(self, source: Source) -> DataFrame:
        spark = self.spark
        if source.kind is SourceKind.PARQUET:
            return spark.read.parquet(str(source.path))
        if source.kind is SourceKind.CSV:
            # Spark's CSV type inference is its own; declare types in Parquet for exact parity
            return spark.read.csv(str(source.path), header=True, inferSchema=True)
        if source.kind is SourceKind.ARROW:
            return self._from_arrow(source.obj)
        if source.kind is SourceKind.STORE:
            return self._from_store(source.obj)
        raise InvalidParameter(f"source: unsupported kind {source.kind}")  # pragma: no cover

    def _from_arrow(self, table: pa.Table) -> DataFrame:
        return arrow_to_spark(self.spark, table)

    def _jvm_has_class(self, name: str) -> bool:
        try:
            self.spark.sparkContext._jvm.java.lang.Class.forName(name)
        except Exception:  # py4j wraps ClassNotFoundException in its own error type
            return False
        return True

    def _from_store(self, reader: Any) -> DataFrame:
        """The store's rows as a DataFrame. Its Parquet files are encrypted; parquet-mr decrypts
        them when the session has a KMS client class on its classpath (the deployment's KMS, or
        parquet-hadoop's test ``InMemoryKMS``, which Spark does not ship): then Spark reads the
        files itself, in parallel. Otherwise pyarrow decrypts them in this process and the rows
        reach Spark through Arrow (bounded by this machine's memory; shown equal to DuckDB in
        ``tests/engines/test_store_on_spark.py``). Key material goes to this session's Hadoop
        configuration only in the first case, and is never logged."""
        files = list(reader.parquet_files())
        hadoop = reader.spark_hadoop_conf() if files else {}
        kms = hadoop.get("parquet.encryption.kms.client.class", "")
        if not files or not self._jvm_has_class(kms):
            return self._from_arrow(reader.to_arrow_table())
        frames = []
        conf = self.spark.sparkContext._jsc.hadoopConfiguration()
        for key, value in hadoop.items():
            conf.set(key, value)
        frames.append(self.spark.read.schema(self._spark_schema(reader.schema)).parquet(*files))
        if reader.wal_table.num_rows:
            frames.append(self._from_arrow(reader.wal_table.cast(reader.schema)))
        out = frames[0]
        for extra in frames[1:]:
            out = out.unionByName(extra)
        return out

    def _spark_schema(self, schema: pa.Schema) -> Any:
        empty = self._from_arrow(schema.empty_table())
        return empty.schema

    def schema(self, source: Source) -> pa.Schema:
        df = self._frame(source)
        return df.limit(0).toArrow().schema

    @contextmanager
    def _views(self, **frames: DataFrame) -> Iterator[dict[str, str]]:
        """Register ``frames`` as uniquely named temp views; drop them afterwards."""
        n = next(self._ids)
        names = {k: f"__{k}_{n}" for k in frames}
        try:
            for k, df in frames.items():
                df.createOrReplaceTempView(names[k])
            yield names
        finally:
            for name in names.values():
                self.spark.catalog.dropTempView(name)

    # -- plan pieces (DataFrame expressions; literals are bound, never spliced) -------------------
    def _key_expr(self, key: GroupKey, schema: pa.Schema) -> Column:
        sf = _pyspark()
        col = sf.col(q(key.column))
        if key.transform is GroupTransform.NONE:
            return col.cast("string")
        typ = schema.field(key.column).type if key.column in schema.names else None
        ts = sf.timestamp_seconds(col) if typ is not None and pa.types.is_integer(typ) \
            else col.cast("timestamp")
        if key.transform is GroupTransform.DAY:
            return sf.date_format(ts, "yyyy-MM-dd")
        return sf.date_format(sf.date_trunc("week", ts), "yyyy-MM-dd")

    def _conditions(self, plan: BoundedPlan, schema: pa.Schema) -> list[Column]:
        sf = _pyspark()
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
        conds = [sf.col(q(plan.unit)).isNotNull()]
        if plan.value:
            conds.append(sf.col(q(plan.value)).isNotNull())
        conds.extend(self._filter(flt) for flt in plan.filters)
        if plan.window:
            col = sf.col(q(plan.window.column))
            typ = schema.field(plan.window.column).type
            for bound, op in ((plan.window.since, "ge"), (plan.window.until, "lt")):
                if bound is None:
                    continue
                if pa.types.is_integer(typ):
                    lit = sf.lit(int(bound.timestamp()))
                    conds.append(getattr(col, f"__{op}__")(lit))
                else:  # instants compare as instants; the session time zone is UTC
                    lit = sf.lit(bound.replace(tzinfo=None).isoformat(sep=" ")).cast("timestamp")
                    conds.append(getattr(col.cast("timestamp"), f"__{op}__")(lit))
        if plan.epoch is not None and plan.epoch_column:
            conds.append(sf.col(q(plan.epoch_column)) == sf.lit(int(plan.epoch)))
        return conds

    @staticmethod
    def _filter(flt: Filter) -> Column:
        sf = _pyspark()
        col = sf.col(q(flt.column))
        if flt.op == "~":
            return col.isin([sf.lit(v) for v in flt.values])
        lit = sf.lit(flt.values[0])
        return {"=": col == lit, "!=": col != lit, "<": col < lit, "<=": col <= lit,
                ">": col > lit, ">=": col >= lit}[flt.op]

    def _src(self, plan: BoundedPlan, df: DataFrame, schema: pa.Schema, *,
             with_hash: bool) -> DataFrame:
        sf = _pyspark()
        for cond in self._conditions(plan, schema):
            df = df.filter(cond)
        cols = [sf.col(q(plan.unit)).alias("__u")]
        cols += [self._key_expr(k, schema).alias(f"k{i}") for i, k in enumerate(plan.keys)]
        if plan.value and plan.clamp:
            lo, hi = plan.clamp.lo, plan.clamp.hi
            v = sf.col(q(plan.value)).cast("double")
            clamped = sf.least(sf.greatest(v, sf.lit(lo)), sf.lit(hi))
            cols.append(clamped.alias("__v"))
            cols.append(((v < sf.lit(lo)) | (v > sf.lit(hi))).cast("int").alias("__cl"))
            if Agg.HIST in plan.aggs:
                width = plan.clamp.width / plan.bins
                b = sf.floor((clamped - sf.lit(lo)) / sf.lit(width)).cast("int")
                cols.append(sf.least(b, sf.lit(plan.bins - 1)).alias("__b"))
        if with_hash:
            cols.append(sf.expr(salted_order_sql([q(c) for c in schema.names], plan.salt))
                        .alias("__h"))
        out = df.select(*cols)
        if plan.public_partitions is not None:
            public = self._public_frame(plan)
            cond = [out[f"k{i}"] == public[f"k{i}"] for i in range(len(plan.keys))]
            out = out.join(public, on=cond, how="left_semi")
        return out

    def _public_frame(self, plan: BoundedPlan) -> DataFrame:
        assert plan.public_partitions is not None
        cols = {f"k{i}": pa.array([None if key[i] is None else str(key[i])
                                   for key in plan.public_partitions], pa.string())
                for i in range(len(plan.keys))}
        return self._from_arrow(pa.table(cols))

    def _ranked_sql(self, plan: BoundedPlan, src: str, schema: pa.Schema) -> str:
        """``__u, k…, __c, __craw, sums…, __r`` per (unit, partition), as the DuckDB engine: the
        same key order, unit hash and rotation (:mod:`.order`), so the same L0 choice."""
        keys = [f"k{i}" for i in range(len(plan.keys))]
        group = ", ".join(["__u", *keys])
        sample = plan.linf_mode is LinfMode.SAMPLE and plan.bounding
        linf = plan.bounds.max_per_partition
        base = src
        if sample:
            base = (f"(SELECT * FROM (SELECT *, count(*) OVER (PARTITION BY {group}) AS __craw, "
                    f"row_number() OVER (PARTITION BY {group} ORDER BY __h) AS __rn "
                    f"FROM {src}) AS s0 WHERE __rn <= {linf})")
        aggs = ["count(*) AS __c", "max(__craw) AS __craw" if sample else "count(*) AS __craw"]
        if plan.value and plan.clamp:
            mid = _num(plan.clamp.mid)
            if Agg.SUM in plan.aggs:
                aggs.append("sum(__v) AS __s")
            if Agg.CSUM in plan.aggs:
                aggs.append(f"sum(__v - {mid}) AS __cs")
            if Agg.CSQ in plan.aggs:
                aggs.append(f"sum((__v - {mid}) * (__v - {mid})) AS __cq")
            aggs.append("sum(__cl) AS __ncl")
        h = unit_hash_sql("__u", plan.salt, integer=integer_unit(schema, plan.unit),
                          dialect="spark")
        inner = (f"SELECT {group}, {', '.join(aggs)}, {h} AS __uh, "
                 f"{l0_position_sql('__u', keys)} AS __pos, "
                 f"count(*) OVER (PARTITION BY __u) AS __n FROM {base} AS s GROUP BY {group}")
        cols = ", ".join([group, *(a.rsplit(" AS ", 1)[1] for a in aggs)])
        return (f"SELECT {cols}, {l0_rank_sql('__pos', '__n', '__uh')} AS __r "
                f"FROM ({inner}) AS g")

    @staticmethod
    def _weight(plan: BoundedPlan) -> str:
        if not plan.bounding or plan.linf_mode is LinfMode.SAMPLE:
            return _num(1.0)
        return f"(least(__c, {plan.bounds.max_per_partition}) / __c)"

    @staticmethod
    def _rows(plan: BoundedPlan) -> str:
        if not plan.bounding or plan.linf_mode is LinfMode.SAMPLE:
            return "__c"
        return f"least(__c, {plan.bounds.max_per_partition})"

    @staticmethod
    def _kept(plan: BoundedPlan) -> str:
        return f"__r <= {plan.bounds.max_partitions}" if plan.bounding else "TRUE"

    # -- the protocol ------------------------------------------------------------------------------
    def count_epochs(self, plan: BoundedPlan) -> int:
        """Same bound as the DuckDB engine: the source's layout
        (:func:`~anonymetry.analytics.engines.duckdb.layout_epochs`), else a filtered count."""
        if not plan.epoch_column:
            return 1
        from anonymetry.analytics.engines.duckdb import layout_epochs

        known = layout_epochs(plan.source, plan.epoch_column)
        if known is not None:
            return known
        sf = _pyspark()
        df = self._frame(plan.source)
        schema = df.limit(0).toArrow().schema
        if plan.epoch_column not in schema.names:
            return 1
        for cond in self._conditions(plan, schema):
            df = df.filter(cond)
        row = df.agg(sf.count_distinct(sf.col(q(plan.epoch_column)))).first()
        return max(1, int(row[0]) if row else 1)

    def aggregate(self, plan: BoundedPlan) -> BoundedAggregates:
        df = self._frame(plan.source)
        schema = df.limit(0).toArrow().schema
        sample = plan.linf_mode is LinfMode.SAMPLE and plan.bounding
        src = self._src(plan, df, schema, with_hash=sample)
        with self._views(src=src) as v:
            ranked = self.spark.sql(self._ranked_sql(plan, v["src"], schema))
            need_ranked = plan.diagnostics or Agg.HIST in plan.aggs
            if need_ranked:
                ranked = ranked.persist()
            try:
                with self._views(ranked=ranked) as r:
                    partitions = self._partitions(plan, r["ranked"])
                    diagnostics = self._diagnostics(plan, r["ranked"]) \
                        if plan.diagnostics else None
                    histogram = self._histogram(plan, v["src"], r["ranked"]) \
                        if Agg.HIST in plan.aggs else None
            finally:
                if need_ranked:
                    ranked.unpersist()
        return BoundedAggregates(partitions, histogram, diagnostics)

    def _partitions(self, plan: BoundedPlan, ranked: str) -> pa.Table:
        keys = [f"k{i}" for i in range(len(plan.keys))]
        w, rows, kept = self._weight(plan), self._rows(plan), self._kept(plan)
        outs = ["count(*) AS units", f"sum({rows}) AS rows"]
        if plan.value and plan.clamp:
            if Agg.SUM in plan.aggs:
                outs.append(f"sum(__s * {w}) AS sum")
            if Agg.CSUM in plan.aggs:
                outs.append(f"sum(__cs * {w}) AS csum")
            if Agg.CSQ in plan.aggs:
                outs.append(f"sum(__cq * {w}) AS csq")
        select_keys = ", ".join(f"{k} AS {q(name)}" for k, name in zip(keys, plan.key_names,
                                                                        strict=True))
        group = f" GROUP BY {', '.join(keys)}" if keys else ""
        sql = (f"SELECT {select_keys + ', ' if select_keys else ''}{', '.join(outs)} "
               f"FROM {ranked} WHERE {kept}{group}")
        table = self.spark.sql(sql).toArrow()
        if not keys and table.num_rows == 1 and table.column("units")[0].as_py() == 0:
            table = table.slice(0, 0)
        return table

    def _diagnostics(self, plan: BoundedPlan, ranked: str) -> Diagnostics:
        kept, rows, w = self._kept(plan), self._rows(plan), self._weight(plan)
        has_value = plan.value is not None and plan.clamp is not None
        clamped = f"CASE WHEN {kept} THEN __ncl * {w} ELSE 0 END" if has_value else "0"
        sql = (f"SELECT coalesce(sum(1 - kept / raw), 0), "
               f"coalesce(sum(CASE WHEN kept > 0 THEN clamped / kept ELSE 0 END), 0), count(*) "
               f"FROM (SELECT __u, CAST(sum(__craw) AS DOUBLE) AS raw, "
               f"CAST(sum(CASE WHEN {kept} THEN {rows} ELSE 0 END) AS DOUBLE) AS kept, "
               f"CAST(sum({clamped}) AS DOUBLE) AS clamped FROM {ranked} GROUP BY __u) "
               f"AS per_unit")
        row = self.spark.sql(sql).first()
        assert row is not None
        return Diagnostics(float(row[0]), float(row[1]), int(row[2]))

    def _histogram(self, plan: BoundedPlan, src: str, ranked: str) -> pa.Table:
        keys = [f"k{i}" for i in range(len(plan.keys))]
        join_keys = ", ".join(["__u", *keys])
        select_keys = "".join(f"{k} AS {q(n)}, " for k, n in zip(keys, plan.key_names,
                                                                   strict=True))
        base = src
        if plan.linf_mode is LinfMode.SAMPLE and plan.bounding:
            base = (f"(SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY {join_keys} "
                    f"ORDER BY __h) AS __rn FROM {src}) AS s0 "
                    f"WHERE __rn <= {plan.bounds.max_per_partition})")
        w = self._weight(plan)
        sql = (f"WITH b AS (SELECT {join_keys}, __b, count(*) AS __cb FROM {base} AS s "
               f"GROUP BY {join_keys}, __b) "
               f"SELECT {select_keys}__b AS bin, sum(__cb * {w}) AS weight FROM b "
               f"JOIN {ranked} USING ({join_keys}) WHERE {self._kept(plan)} "
               f"GROUP BY {', '.join([*keys, '__b'])}")
        return self.spark.sql(sql).toArrow()

    def profile(self, plan: BoundedPlan, value_bins: list[float] | None = None) -> dict[str, Any]:
        df = self._frame(plan.source)
        schema = df.limit(0).toArrow().schema
        src = self._src(plan, df, schema, with_hash=False)
        keys = [f"k{i}" for i in range(len(plan.keys))]
        group = ", ".join(["__u", *keys])
        with self._views(src=src) as v:
            up_df = self.spark.sql(f"SELECT {group}, count(*) AS c FROM {v['src']} "
                                   f"GROUP BY {group}").persist()
            try:
                with self._views(up=up_df) as u:
                    pu_df = self.spark.sql(f"SELECT __u, count(*) AS np, sum(c) AS nr "
                                           f"FROM {u['up']} GROUP BY __u").persist()
                    try:
                        with self._views(pu=pu_df) as p:
                            out: dict[str, Any] = {
                                "partitions": self.spark.sql(
                                    f"SELECT np AS n, CAST(count(*) AS DOUBLE) AS w "
                                    f"FROM {p['pu']} GROUP BY np").toArrow(),
                                "rows": self.spark.sql(
                                    f"SELECT c AS n, sum(1.0D / np) AS w FROM {u['up']} "
                                    f"JOIN {p['pu']} USING (__u) GROUP BY c").toArrow(),
                            }
                            if plan.value:
                                out["values"] = self._value_profile(plan, df, schema, p["pu"])
                    finally:
                        pu_df.unpersist()
            finally:
                up_df.unpersist()
        return out

    def _value_profile(self, plan: BoundedPlan, df: DataFrame, schema: pa.Schema,
                       pu: str) -> pa.Table:
        sf = _pyspark()
        assert plan.value is not None
        for cond in self._conditions(plan, schema):
            df = df.filter(cond)
        v = f"CAST({q(plan.value)} AS DOUBLE)"
        bucket = (f"CASE WHEN {v} = 0 THEN 0 ELSE CAST(signum({v}) * (greatest(least("
                  f"floor(log2(abs({v}))), 40), -20) + {VALUE_BUCKET_OFFSET}) AS INT) END")
        rows = df.select(sf.col(q(plan.unit)).alias("__u"), sf.expr(bucket).alias("b"))
        with self._views(vals=rows) as v2:
            return self.spark.sql(f"SELECT b, sum(1.0D / nr) AS w FROM {v2['vals']} "
                                  f"JOIN {pu} USING (__u) GROUP BY b").toArrow()
