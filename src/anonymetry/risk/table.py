"""The risk of one table: every measure from one grouped pass, as one JSON-able result.

:func:`assess_table` runs :func:`~anonymetry.risk._engine.class_counts` (one ``GROUP BY``
in DuckDB) and derives k, the class-size histogram, distinct/entropy/recursive ℓ, t, δ,
sample and population uniqueness and the prosecutor/journalist/marketer risks from its small
result; the QI analysis (:mod:`~anonymetry.risk.combinations`) is one more grouped query.
:func:`write_per_record` writes each record's class size and risks (a window query).
:func:`assess_table_spark` gives the same :class:`TableRisk` from Spark (extra ``spark``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from anonymetry.errors import InvalidParameter
from anonymetry.risk._engine import ClassCounts, class_counts, quote
from anonymetry.risk.closeness import delta_disclosure, t_closeness
from anonymetry.risk.combinations import qi_influence
from anonymetry.risk.diversity import distinct_l, entropy_l, recursive_cl
from anonymetry.risk.kanon import class_size_histogram, k_anonymity
from anonymetry.risk.population import PopulationUniqueness, population_uniqueness
from anonymetry.risk.uniqueness import reidentification_risk, sample_uniqueness

__all__ = ["TableRisk", "assess_counts", "assess_table", "assess_table_spark", "write_per_record"]


@dataclass(frozen=True, slots=True, kw_only=True)
class TableRisk:
    """Every table measure; :meth:`to_dict` is what ``anonymetry risk --json`` prints."""

    qi: tuple[str, ...]
    sensitive: str | None
    records: int
    classes: int
    k: int
    class_size_histogram: dict[int, int]
    sample_uniqueness: float
    prosecutor_max: float
    prosecutor_average: float
    journalist_max: float
    journalist_average: float
    marketer: float
    l_distinct: int | None = None
    l_entropy: float | None = None
    c_l_recursive: dict[int, float] | None = None
    t: float | None = None
    t_distance: str | None = None
    delta_disclosure: float | None = None
    population: PopulationUniqueness | None = None
    qi_analysis: dict[str, list[dict[str, Any]]] | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "qi": list(self.qi),
            "sensitive": self.sensitive,
            "records": self.records,
            "classes": self.classes,
            "k": self.k,
            "class_size_histogram": {str(s): c for s, c in self.class_size_histogram.items()},
            "l_distinct": self.l_distinct,
            "l_entropy": self.l_entropy,
            "c_l_recursive": (None if self.c_l_recursive is None
                              else {str(ell): c for ell, c in self.c_l_recursive.items()}),
            "t": self.t,
            "t_distance": self.t_distance,
            "delta_disclosure": self.delta_disclosure,
            "sample_uniqueness": self.sample_uniqueness,
            "population_uniqueness": None if self.population is None else self.population.to_dict(),
            "prosecutor_risk": {"max": self.prosecutor_max, "average": self.prosecutor_average},
            "journalist_risk": {"max": self.journalist_max, "average": self.journalist_average},
            "marketer_risk": self.marketer,
            "qi_analysis": self.qi_analysis,
            "notes": list(self.notes),
        }


def assess_counts(
    cc: ClassCounts,
    qi: Sequence[str],
    sensitive: str | None = None,
    *,
    population: int | None = None,
) -> TableRisk:
    """All measures from already grouped :class:`ClassCounts` (any engine)."""
    if population is not None and population < cc.n_records:
        raise InvalidParameter(
            f"--population: {population} is smaller than the table's {cc.n_records} records; "
            "give the size of the population the table was drawn from"
        )
    hist = class_size_histogram(cc)
    reid = reidentification_risk(cc, population)
    extra: dict[str, Any] = {}
    if cc.has_sensitive:
        t = t_closeness(cc)
        extra = {
            "l_distinct": distinct_l(cc),
            "l_entropy": entropy_l(cc),
            "c_l_recursive": recursive_cl(cc),
            "t": t,
            "t_distance": "ordered" if cc.ordered else "equal",
            "delta_disclosure": delta_disclosure(cc),
        }
    notes = ["NULL quasi-identifier values form classes of their own; a NULL sensitive value "
             "counts as a value of its own"]
    return TableRisk(
        qi=tuple(qi),
        sensitive=sensitive,
        records=cc.n_records,
        classes=cc.n_classes,
        k=k_anonymity(cc),
        class_size_histogram=hist,
        sample_uniqueness=sample_uniqueness(cc),
        prosecutor_max=reid.prosecutor_max,
        prosecutor_average=reid.prosecutor_average,
        journalist_max=reid.journalist_max,
        journalist_average=reid.journalist_average,
        marketer=reid.marketer,
        population=None if population is None else population_uniqueness(hist, population),
        notes=notes,
        **extra,
    )


def assess_table(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    qi: Sequence[str],
    sensitive: str | None = None,
    *,
    population: int | None = None,
    ordered: bool | None = None,
    qi_analysis: bool = True,
    max_subset: int = 2,
) -> TableRisk:
    """Assess ``relation`` (a quoted table/view name or ``(query)``) in the connection ``con``."""
    cc = class_counts(con, relation, qi, sensitive, ordered=ordered)
    risk = assess_counts(cc, qi, sensitive, population=population)
    if qi_analysis:
        analysis = qi_influence(con, relation, qi, max_size=max_subset)
        risk = _replace(risk, qi_analysis=analysis)
    return risk


def assess_table_spark(
    data: Any,
    qi: Sequence[str],
    sensitive: str | None = None,
    *,
    spark: Any = None,
    population: int | None = None,
    ordered: bool | None = None,
    qi_analysis: bool = True,
    max_subset: int = 2,
) -> TableRisk:
    """:func:`assess_table` on Apache Spark (extra ``spark``): the same :class:`TableRisk`.

    ``data`` is a Spark DataFrame, a Parquet/CSV path or a pyarrow Table; ``spark`` a session
    (default: the active one, else ``local[2]``). See :mod:`anonymetry.risk._spark`.
    """
    from anonymetry.risk._spark import class_counts_spark, qi_influence_spark, spark_frame

    df = spark_frame(data, spark)
    cc = class_counts_spark(df, qi, sensitive, ordered=ordered)
    risk = assess_counts(cc, qi, sensitive, population=population)
    if qi_analysis:
        risk = _replace(risk, qi_analysis=qi_influence_spark(df, qi, max_size=max_subset))
    return risk


def _replace(risk: TableRisk, **changes: Any) -> TableRisk:
    from dataclasses import replace

    return replace(risk, **changes)


def write_per_record(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    qi: Sequence[str],
    path: str | Path,
    *,
    population: int | None = None,
) -> int:
    """Write one row per record: its QI values, class size and risks; return rows written.

    Only the QI columns are written (never the sensitive attribute or other columns). The
    format follows the extension: ``.parquet`` or ``.csv``.
    """
    target = Path(path)
    fmt = {".parquet": "PARQUET", ".pq": "PARQUET", ".csv": "CSV"}.get(target.suffix.lower())
    if fmt is None:
        raise InvalidParameter("--per-record: use a file name ending in .parquet or .csv")
    qcols = ", ".join(quote(c) for c in qi)
    total = int(con.execute(f"SELECT count(*) FROM {relation}").fetchall()[0][0])
    scale = 1.0 if population is None else max(1.0, population / max(total, 1))
    if not math.isfinite(scale):
        raise InvalidParameter("--population: not a finite number")
    literal = "'" + str(target).replace("'", "''") + "'"
    con.execute(
        f"COPY (SELECT {qcols}, class_size, 1.0 / class_size AS prosecutor_risk, "
        f"1.0 / greatest(class_size, class_size * {scale!r}) AS journalist_risk "
        f"FROM (SELECT {qcols}, count(*) OVER (PARTITION BY {qcols}) AS class_size "
        f"FROM {relation})) TO {literal} (FORMAT {fmt})"
    )
    return total
