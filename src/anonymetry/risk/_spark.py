"""The engine boundary of table risk on Apache Spark (extra ``spark``): the same
:class:`~anonymetry.risk._engine.ClassCounts` as the DuckDB executor, from Spark SQL.

:func:`class_counts_spark` runs the grouping inside Spark as DataFrame operations (no Python
UDF, no per-row Python)::

    rows      hash-partitioned by the QIs                    (the one shuffle)
    entries   GROUP BY qis, s → count(*)                     one row per (class, value)
    classes   GROUP BY qis    → collect_list(struct(s, n))   one row per class

Only the ``classes`` result leaves Spark, and only its list column (the sensitive values and
counts of each class; never the QI values): a class is one row, so its number is its row
position — exact, with no hash and no collision case. Spark's grouping puts NULLs together and
NaN with NaN (and ``-0.0`` with ``0.0``), as DuckDB's ``GROUP BY`` does, so the classes are
the same. On the driver, the sensitive values are ranked by value with NULL last exactly as the
DuckDB executor ranks them (the same Arrow sort over the same distinct values), and the entries
are sorted by class and then by that rank.

Class numbering: DuckDB numbers classes by the QI tuple's hash, Spark by the order its
partitions return them; the numbering differs, the classes do not. Every measure is a
function of the classes' entries (minimum, maximum or sum over classes, or a per-class value
computed within the class), so it is invariant to the numbering — integers and per-class
values exactly, sums over classes up to float summation order
(``tests/risk/test_risk_spark.py`` checks both: engine against engine, and each measure under
a random renumbering).

:func:`qi_influence_spark` is :func:`~anonymetry.risk.combinations.qi_influence` in Spark SQL:
the same variants (drop, generalize into 10 equal-width bins or to the month, alone) as one
``GROUPING SETS`` query with ``grouping_id()``.

Sources (:func:`spark_frame`): a Spark DataFrame; a Parquet file, directory or glob, or a CSV
file (read by Spark; Spark's CSV type inference is its own, so declare types in Parquet for
exact parity); or an in-memory :class:`pyarrow.Table` (handed over through Arrow). The session
is the given one, else the active one, else ``local_session()`` of
:mod:`anonymetry.analytics.engines.spark` (``local[2]``, UTC).
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from anonymetry.errors import InvalidParameter
from anonymetry.risk._engine import ClassCounts

if TYPE_CHECKING:  # pyspark is the optional extra ``spark``
    from pyspark.sql import Column, DataFrame, SparkSession

__all__ = ["class_counts_spark", "is_ordered_spark_type", "qi_influence_spark", "spark_frame"]

SparkData = Any  # DataFrame | pa.Table | str | os.PathLike[str]

_ORDERED = re.compile(r"^(tinyint|smallint|int|bigint|float|double|decimal|date|timestamp|time)"
                      r"(\(|_ntz|$)")
_NUMERIC = re.compile(r"^(tinyint|smallint|int|bigint|float|double|decimal)(\(|$)")
_TEMPORAL = re.compile(r"^(date|timestamp)(_ntz)?$")
_BINS = 10
_ids = itertools.count()


def _functions() -> Any:
    try:
        import pyspark.sql.functions as sf
    except ImportError:  # pragma: no cover - depends on the install
        raise InvalidParameter("--engine spark: PySpark is not installed; install the extra: "
                               "pip install 'anonymetry[spark]' (needs Java 17)") from None
    return sf


def _session(spark: SparkSession | None) -> SparkSession:
    _functions()
    from pyspark.sql import SparkSession

    if spark is not None:
        return spark
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    from anonymetry.analytics.engines.spark import local_session

    return local_session()


def quote(name: str) -> str:
    """Quote a column name for Spark SQL (any name; backticks doubled)."""
    return "`" + name.replace("`", "``") + "`"


def _col(name: str) -> Column:
    return _functions().col(quote(name))


def is_ordered_spark_type(simple_string: str) -> bool:
    """Numbers, dates, times and timestamps use the ordered distance (as in DuckDB)."""
    return bool(_ORDERED.match(simple_string.lower()))


def spark_frame(data: SparkData, spark: SparkSession | None = None) -> DataFrame:
    """A Spark DataFrame for ``data`` (a DataFrame, a Parquet/CSV path, or a pyarrow Table)."""
    _functions()
    from pyspark.sql import DataFrame

    if isinstance(data, DataFrame):
        return data
    session = _session(spark)
    if isinstance(data, pa.Table):
        from anonymetry.analytics.engines.spark import arrow_to_spark

        return arrow_to_spark(session, data)
    if not isinstance(data, str | os.PathLike):
        raise InvalidParameter("risk (spark): pass a Spark DataFrame, a Parquet/CSV path or a "
                               "pyarrow Table")
    text = os.fspath(data)
    lower = text.lower()
    if lower.endswith((".csv", ".csv.gz")):
        return session.read.csv(text, header=True, inferSchema=True)
    if lower.endswith((".tsv", ".tsv.gz")):
        return session.read.csv(text, header=True, inferSchema=True, sep="\t")
    if lower.endswith((".parquet", ".pq")):
        return session.read.parquet(text)
    if os.path.isdir(text):
        # every Parquet file below, without inferring key=value folders as columns
        return (session.read.option("recursiveFileLookup", "true")
                .option("pathGlobFilter", "*.parquet").parquet(text))
    raise InvalidParameter(
        "risk (spark): cannot tell the format of SOURCE; use a .parquet/.csv file or a "
        "directory of Parquet files"
    )


def _check_columns(df: DataFrame, qi: Sequence[str], sensitive: str | None) -> dict[str, str]:
    if not qi:
        raise InvalidParameter("risk: give at least one quasi-identifier column (--qi)")
    if len(set(qi)) != len(qi):
        raise InvalidParameter("risk: a quasi-identifier column is listed twice in --qi")
    if sensitive is not None and sensitive in qi:
        raise InvalidParameter(
            "risk: the sensitive attribute is also listed as a quasi-identifier; pick one role"
        )
    types = {f.name: f.dataType.simpleString() for f in df.schema.fields}
    missing = [c for c in [*qi, *([sensitive] if sensitive else [])] if c not in types]
    if missing:
        raise InvalidParameter(
            f"risk: column(s) {', '.join(map(repr, missing))} not in the table; "
            f"it has {', '.join(map(repr, types))}"
        )
    return types


def class_counts_spark(
    df_or_path: SparkData,
    qi: Sequence[str],
    sensitive: str | None = None,
    *,
    ordered: bool | None = None,
    spark: SparkSession | None = None,
) -> ClassCounts:
    """Group the table by ``qi`` (and ``sensitive``) in Spark → :class:`ClassCounts`.

    The same classes, sensitive-value ranks and counts as
    :func:`anonymetry.risk._engine.class_counts` on the same data; ``ordered`` chooses the
    t-closeness distance (default: by the sensitive attribute's Spark type).
    """
    sf = _functions()
    df = spark_frame(df_or_path, spark)
    types = _check_columns(df, qi, sensitive)
    keys = [_col(c) for c in qi]
    if sensitive is None:
        sizes_tbl = df.groupBy(*keys).agg(sf.count(sf.lit(1)).alias("__anon_n")) \
            .select("__anon_n").toArrow()
        sizes = sizes_tbl.column(0).to_numpy().astype(np.int64)
        if sizes.size == 0:
            raise InvalidParameter("risk: the table has no rows; nothing to assess")
        return ClassCounts(n_records=int(sizes.sum()), class_size=sizes)

    # One shuffle: rows hash-partitioned by the QIs, so both aggregations run within
    # partitions (grouping by (QIs, s) first would shuffle again for the QIs alone; on
    # all-unique QIs that doubles the time, on coarse ones partial aggregation saves a little).
    entries = df.repartition(*keys).groupBy(*keys, _col(sensitive).alias("__anon_s")) \
        .agg(sf.count(sf.lit(1)).alias("__anon_n"))
    classes = entries.groupBy(*keys).agg(
        sf.collect_list(sf.struct("__anon_s", "__anon_n")).alias("__anon_e"))
    lists = classes.select("__anon_e").toArrow().column(0).combine_chunks()
    if len(lists) == 0:
        raise InvalidParameter("risk: the table has no rows; nothing to assess")
    entry_class = pc.list_parent_indices(lists).to_numpy().astype(np.int64)
    flat = pc.list_flatten(lists)
    svals = flat.field("__anon_s")
    entry_count = flat.field("__anon_n").to_numpy(zero_copy_only=False).astype(np.int64)
    # Sensitive values → dense codes ranked by value (NULL last): as the DuckDB executor.
    encoded = pc.dictionary_encode(svals, null_encoding="encode")
    dictionary = encoded.dictionary
    by_value = pc.array_sort_indices(dictionary, null_placement="at_end").to_numpy()
    rank = np.empty(len(dictionary), dtype=np.int64)
    rank[by_value] = np.arange(len(dictionary), dtype=np.int64)
    entry_code = rank[encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)]
    # Entries are grouped by class already (one list per class); sort by code within each.
    same = entry_class[1:] == entry_class[:-1]
    if np.any(same & (entry_code[1:] < entry_code[:-1])):
        perm = np.lexsort((entry_code, entry_class))
        entry_class, entry_code, entry_count = (
            entry_class[perm], entry_code[perm], entry_count[perm])
    class_size = np.bincount(entry_class, weights=entry_count,
                             minlength=len(lists)).astype(np.int64)
    if ordered is None:
        ordered = is_ordered_spark_type(types[sensitive])
    return ClassCounts(
        n_records=int(class_size.sum()),
        class_size=class_size,
        entry_class=entry_class,
        entry_code=entry_code,
        entry_count=entry_count,
        n_values=len(dictionary),
        ordered=bool(ordered),
    )


def _double(x: float) -> str:
    return f"CAST('{float(x)!r}' AS DOUBLE)"


def qi_influence_spark(
    df_or_path: SparkData,
    qi: Sequence[str],
    *,
    max_size: int = 2,
    spark: SparkSession | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """:func:`~anonymetry.risk.combinations.qi_influence` on Spark: the same variants and
    numbers, one ``GROUPING SETS`` query."""
    sf = _functions()
    df = spark_frame(df_or_path, spark)
    session = df.sparkSession
    types = _check_columns(df, qi, None)
    qi = list(qi)
    exprs = [f"{quote(c)} AS {quote(f'__c{i}')}" for i, c in enumerate(qi)]
    coarse: dict[int, str] = {}
    numeric = [i for i, c in enumerate(qi) if _NUMERIC.match(types[c])]
    if numeric:
        aggs = []
        for i in numeric:
            v = _col(qi[i]).cast("double")
            # the bins span the finite values (as in DuckDB); ±inf and NaN go to the end bins
            finite = sf.when(~sf.isnan(v) & (v != float("inf")) & (v != float("-inf")), v)
            aggs += [sf.min(finite), sf.max(finite)]
        bounds = df.agg(*aggs).first()
        assert bounds is not None
        for j, i in enumerate(numeric):
            lo, hi = bounds[2 * j], bounds[2 * j + 1]
            if lo is None or hi is None or hi <= lo:
                continue
            width = (hi - lo) / _BINS
            d = f"((CAST({quote(qi[i])} AS DOUBLE) - {_double(lo)}) / {_double(width)})"
            # DuckDB's least(floor(d), 9): NULL and NaN land in the top bin, -inf stays apart
            # (Spark's floor returns BIGINT and would overflow on infinities)
            coarse[i] = (f"CASE WHEN {d} IS NULL OR isnan({d}) OR {d} >= {_BINS - 1} "
                         f"THEN {_double(_BINS - 1)} WHEN {d} = {_double(float('-inf'))} "
                         f"THEN {d} ELSE CAST(floor({d}) AS DOUBLE) END")
    for i, c in enumerate(qi):
        if _TEMPORAL.match(types[c]):
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
    keyed = list(variants.items())
    # Spark's grouping_id() covers the GROUP BY list: list only the columns some set uses.
    used = [c for c in [*full, *(f"__g{i}" for i in coarse)]
            if any(c in cols for cols, _ in keyed)]
    sets = ", ".join("(" + ", ".join(quote(c) for c in sorted(cols)) + ")" for cols, _ in keyed)
    view = f"__anon_risk_{os.getpid()}_{next(_ids)}"
    df.createOrReplaceTempView(view)
    try:
        rows = session.sql(
            f"WITH base AS (SELECT {', '.join(exprs)} FROM {quote(view)}) "
            f"SELECT g, count(*) FILTER (WHERE n = 1) AS uniques, min(n) AS k, "
            f"count(*) AS classes, sum(n) AS records FROM (SELECT grouping_id() AS g, "
            f"count(*) AS n FROM base GROUP BY {', '.join(quote(c) for c in used)} "
            f"GROUPING SETS ({sets})) AS s GROUP BY g"
        ).collect()
    finally:
        session.catalog.dropTempView(view)
    by_gid = {int(r[0]): r for r in rows}
    remedies: list[dict[str, Any]] = []
    riskiest: list[dict[str, Any]] = []
    for cols, labels in keyed:
        # grouping_id() sets bit (len-1-j) when column j of the GROUP BY list is not grouped.
        mask = sum(1 << (len(used) - 1 - j) for j, c in enumerate(used) if c not in cols)
        r = by_gid[mask]
        for action, names in labels:
            item = {"action": action, "columns": names, "k": int(r[2]), "classes": int(r[3]),
                    "sample_uniqueness": int(r[1]) / int(r[4])}
            (riskiest if action == "alone" else remedies).append(item)
    remedies.sort(key=lambda d: (d["sample_uniqueness"], -d["k"]))
    riskiest.sort(key=lambda d: (-d["sample_uniqueness"], len(d["columns"])))
    return {"remedies": remedies, "riskiest": riskiest}
