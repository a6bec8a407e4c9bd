"""Remedies: full-domain generalization plus record suppression to reach a target k (and ℓ).

Entry point::

    anonymize(
        data: TableLike, qi: Sequence[str], target_k: int, *,
        con: duckdb.DuckDBPyConnection | None = None,
        hierarchies: Mapping[str, Hierarchy | Mapping[str, Any]] | None = None,  # else inferred
        max_suppression: float = 0.05,
        sensitive: str | None = None, l: int | None = None,   # distinct ℓ-diversity
        max_evaluations: int = 5000,
    ) -> AnonymizationResult

    AnonymizationResult.table -> pyarrow.Table            # the transformed, released table
    AnonymizationResult.generalization -> Generalization  # for risk.linkage
    AnonymizationResult.write(path)                       # .parquet or .csv
    AnonymizationResult.to_dict() -> dict                 # JSON-able, without the table

The search (ARX-style lattice, exact). A *node* gives each QI a level of its hierarchy
(:mod:`anonymetry.risk.hierarchy`). At a node every equivalence class (rows with equal
generalized QIs) with fewer than ``k`` rows — or, with ``l``, fewer than ``l`` distinct
sensitive values — is suppressed (its rows are removed); the node is *anonymous* when at most
``max_suppression`` of the rows are. Among anonymous nodes we choose the one with the least
information loss, measured as the normalized certainty penalty (NCP; Xu et al. 2006): a cell's
loss is ``(max - min) / range`` of the original values that share its generalized value in the
whole column for numbers, ``(distinct - 1) / (distinct in column - 1)`` otherwise (so a
released interval or prefix costs what it can hide, whatever its class), 1 for a suppressed
cell or ``'*'``; NCP is the mean over all QI cells of the input (0: unchanged, 1: all
suppressed). The discernibility metric (Σ class size² + suppressed rows × n) is reported too.

Because hierarchies nest, (1) a node that is not anonymous makes every less general node not
anonymous (classes only split), and (2) each column's average cell loss at a level is a lower
bound that only grows with the level, and NCP(node) ≥ the mean of those bounds (a suppressed
cell costs 1 ≥ its generalized loss). So nodes are visited in increasing lower bound; nodes
below a known non-anonymous node are skipped; the search stops when the bound reaches the best
NCP found — the result is the optimum over the whole lattice (``optimal`` is False only when
``max_evaluations`` stopped it first). Each evaluation is one GROUP BY in DuckDB over a table
holding every level of every QI, computed once.

The *suppression-only* baseline (no generalization, suppress every class below k / ℓ) is
reported alongside, so the gain of generalization is visible.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from anonymetry.errors import InvalidParameter
from anonymetry.risk._inputs import TableLike, Workspace, first_row, open_input, quote
from anonymetry.risk.hierarchy import Generalization, Hierarchy, infer_from

__all__ = ["AnonymizationResult", "SuppressionBaseline", "anonymize"]

_MAX_LATTICE = 1_000_000
_NUMERIC_PREFIXES = (
    "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
    "UBIGINT", "FLOAT", "DOUBLE", "REAL", "DECIMAL",
)  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class SuppressionBaseline:
    """What suppression alone (no generalization) would need for the same k / ℓ."""

    suppressed_rows: int
    suppressed_share: float
    ncp: float
    discernibility: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "suppressed_rows": self.suppressed_rows,
            "suppressed_share": self.suppressed_share,
            "ncp": self.ncp,
            "discernibility": self.discernibility,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class AnonymizationResult:
    """The chosen transformation, its cost, and the transformed table (``table``)."""

    table: pa.Table = field(repr=False)
    qi: tuple[str, ...]
    target_k: int
    l: int | None  # noqa: E741 - ℓ of ℓ-diversity, the name used in the literature
    sensitive: str | None
    max_suppression: float
    generalization: Generalization
    rows_in: int
    rows_out: int
    suppressed_rows: int
    achieved_k: int  # smallest class among the released rows (0 if none released)
    classes: int
    ncp: float
    discernibility: int
    suppression_only: SuppressionBaseline
    lattice_size: int
    nodes_evaluated: int
    optimal: bool

    @property
    def suppressed_share(self) -> float:
        return self.suppressed_rows / self.rows_in if self.rows_in else 0.0

    @property
    def levels(self) -> Mapping[str, int]:
        return self.generalization.levels

    def write(self, path: str | Path) -> Path:
        """Write the transformed table as Parquet (``.parquet``) or CSV (``.csv``)."""
        out = Path(path)
        suffix = out.suffix.lower()
        if suffix in {".parquet", ".pq"}:
            pq.write_table(self.table, out)
        elif suffix == ".csv":
            pa_csv.write_csv(self.table, out)
        else:
            raise InvalidParameter(
                "anonymize: output name must end in .parquet or .csv to choose the format"
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "measure": "anonymize",
            "qi": list(self.qi),
            "target_k": self.target_k,
            "l": self.l,
            "sensitive": self.sensitive,
            "max_suppression": self.max_suppression,
            "transformation": self.generalization.to_dict(),
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "suppressed_rows": self.suppressed_rows,
            "suppressed_share": self.suppressed_share,
            "achieved_k": self.achieved_k,
            "classes": self.classes,
            "ncp": self.ncp,
            "discernibility": self.discernibility,
            "suppression_only": self.suppression_only.to_dict(),
            "lattice_size": self.lattice_size,
            "nodes_evaluated": self.nodes_evaluated,
            "optimal": self.optimal,
        }


@dataclass(frozen=True, slots=True)
class _Eval:
    suppressed: int
    classes: int
    min_class: int
    dm: int
    ncp: float


def _check_args(
    qi: Sequence[str],
    target_k: int,
    max_suppression: float,
    l: int | None,  # noqa: E741 - ℓ of ℓ-diversity
    sensitive: str | None,
) -> None:
    if not qi or len(set(qi)) != len(qi):
        raise InvalidParameter("anonymize: qi must name at least one column, each once")
    if isinstance(target_k, bool) or not isinstance(target_k, int) or target_k < 1:
        raise InvalidParameter(f"anonymize: target_k must be an integer ≥ 1, got {target_k!r}")
    if not (isinstance(max_suppression, int | float) and 0.0 <= max_suppression <= 1.0):
        raise InvalidParameter(
            f"anonymize: max_suppression must be a share in [0, 1], got {max_suppression!r}"
        )
    if l is not None:
        if isinstance(l, bool) or not isinstance(l, int) or l < 1:
            raise InvalidParameter(f"anonymize: l must be an integer ≥ 1, got {l!r}")
        if sensitive is None:
            raise InvalidParameter("anonymize: l-diversity needs sensitive=<column>")
        if sensitive in qi:
            raise InvalidParameter("anonymize: the sensitive column cannot also be a QI")


def anonymize(
    data: TableLike,
    qi: Sequence[str],
    target_k: int,
    *,
    con: duckdb.DuckDBPyConnection | None = None,
    hierarchies: Mapping[str, Hierarchy | Mapping[str, Any]] | None = None,
    max_suppression: float = 0.05,
    sensitive: str | None = None,
    l: int | None = None,  # noqa: E741 - ℓ of ℓ-diversity
    max_evaluations: int = 5000,
) -> AnonymizationResult:
    """Least-loss generalization + suppression reaching ``target_k`` (and ``l``); module doc."""
    qi = tuple(qi)
    _check_args(qi, target_k, max_suppression, l, sensitive)
    with open_input("anonymize", con) as ws:
        src = ws.register("input", data, caller_con=con is not None)
        types = ws.require(src, [*qi, *([sensitive] if sensitive else [])], "QI/sensitive")
        hier: dict[str, Hierarchy] = {}
        for c in qi:
            given = (hierarchies or {}).get(c)
            hier[c] = (
                Hierarchy.from_spec(c, given)
                if given is not None
                else infer_from(ws.con, src, c, types[c])
            )
        unknown = set(hierarchies or {}) - set(qi)
        if unknown:
            raise InvalidParameter(
                f"anonymize: hierarchies given for non-QI column(s) {sorted(unknown)}"
            )
        search = _Search(ws, src, qi, hier, types, target_k, l, sensitive, max_suppression)
        best, best_eval, baseline, evaluated, optimal = search.run(max_evaluations)
        levels = MappingProxyType(dict(zip(qi, best, strict=True)))
        gen = Generalization(MappingProxyType(hier), levels)
        table = search.transformed(gen)
    return AnonymizationResult(
        table=table,
        qi=qi,
        target_k=target_k,
        l=l,
        sensitive=sensitive,
        max_suppression=float(max_suppression),
        generalization=gen,
        rows_in=search.n,
        rows_out=table.num_rows,
        suppressed_rows=best_eval.suppressed,
        achieved_k=best_eval.min_class,
        classes=best_eval.classes,
        ncp=best_eval.ncp,
        discernibility=best_eval.dm,
        suppression_only=baseline,
        lattice_size=search.lattice_size,
        nodes_evaluated=evaluated,
        optimal=optimal,
    )


class _Search:
    """The lattice of one anonymize() call, evaluated in DuckDB."""

    def __init__(
        self,
        ws: Workspace,
        src: str,
        qi: tuple[str, ...],
        hier: Mapping[str, Hierarchy],
        types: Mapping[str, str],
        k: int,
        l: int | None,  # noqa: E741
        sensitive: str | None,
        max_suppression: float,
    ) -> None:
        self.ws, self.src, self.qi, self.hier = ws, src, qi, hier
        self.k, self.l, self.sensitive = k, l, sensitive
        self.heights = [hier[c].height for c in qi]
        self.lattice_size = math.prod(h + 1 for h in self.heights)
        if self.lattice_size > _MAX_LATTICE:
            raise InvalidParameter(
                f"anonymize: the lattice has {self.lattice_size} nodes (limit {_MAX_LATTICE}); "
                "use fewer QIs or hierarchies with fewer levels"
            )
        con = ws.con
        # Every level of every QI, once: g{j}_{lvl}.
        cols = [
            f"{hier[c].sql(quote(c), lvl)} AS g{j}_{lvl}"
            for j, c in enumerate(qi)
            for lvl in range(self.heights[j] + 1)
        ]
        if sensitive:
            cols.append(f"{quote(sensitive)} AS s")
        self.gen = ws.temp("levels")
        con.execute(f"CREATE TEMP TABLE {self.gen} AS SELECT {', '.join(cols)} FROM {src}")
        self.n = int(_one(con, f"SELECT count(*) FROM {self.gen}"))
        if self.n == 0:
            raise InvalidParameter("anonymize: the input table has no rows")
        self.budget = math.floor(max_suppression * self.n + 1e-9)
        self._check_table_coverage()
        # Per column and level: cell loss per generalized value, and the mean over all rows.
        self.loss_tables: dict[tuple[int, int], str] = {}
        self.mean_loss: list[list[float]] = []
        for j, c in enumerate(qi):
            numeric = types[c].upper().startswith(_NUMERIC_PREFIXES)
            means = []
            for lvl in range(self.heights[j] + 1):
                name = ws.temp(f"loss_{j}_{lvl}")
                means.append(self._loss_table(name, j, lvl, numeric))
                self.loss_tables[(j, lvl)] = name
            self.mean_loss.append(means)

    def _check_table_coverage(self) -> None:
        for j, c in enumerate(self.qi):
            h = self.hier[c]
            if h.kind != "table":
                continue
            missing = _one(
                self.ws.con,
                f"SELECT count(*) FROM {self.gen} WHERE g{j}_0 IS NOT NULL AND g{j}_1 IS NULL",
            )
            if missing:
                raise InvalidParameter(
                    f"anonymize: the hierarchy of {c!r} has no row for {missing} value(s) of "
                    "the data; add them to the table"
                )

    def _loss_table(self, name: str, j: int, lvl: int, numeric: bool) -> float:
        con, g0, gl = self.ws.con, f"g{j}_0", f"g{j}_{lvl}"
        if lvl == self.heights[j]:
            cell = "1.0"
        elif lvl == 0:
            cell = "0.0"
        elif numeric:
            span = _one(con, f"SELECT max({g0})::DOUBLE - min({g0})::DOUBLE FROM {self.gen}")
            cell = (
                f"coalesce((max({g0})::DOUBLE - min({g0})::DOUBLE) / {span!r}, 0.0)"
                if span
                else "0.0"
            )
        else:
            d = _one(con, f"SELECT count(DISTINCT {g0}) FROM {self.gen}")
            cell = f"(count(DISTINCT {g0}) - 1)::DOUBLE / {d - 1}" if d and d > 1 else "0.0"
        con.execute(
            f"CREATE TEMP TABLE {name} AS SELECT {gl} AS v, {cell} AS loss, count(*) AS rows "
            f"FROM {self.gen} GROUP BY {gl}"
        )
        return float(_one(con, f"SELECT sum(loss * rows) / {self.n} FROM {name}") or 0.0)

    def evaluate(self, node: tuple[int, ...], *, unlimited: bool = False) -> _Eval:
        keys = [f"g{j}_{lvl}" for j, lvl in enumerate(node)]
        div = ", count(DISTINCT s) AS d" if self.l else ""
        bad = f"c < {self.k}" + (f" OR d < {self.l}" if self.l else "")
        joins = " ".join(
            f"JOIN {self.loss_tables[(j, lvl)]} AS L{j} ON L{j}.v IS NOT DISTINCT FROM cls.k{j}"
            for j, lvl in enumerate(node)
        )
        loss_sum = " + ".join(f"L{j}.loss" for j in range(len(node)))
        sql = f"""
            WITH cls AS (
                SELECT {", ".join(f"{key} AS k{j}" for j, key in enumerate(keys))},
                       count(*) AS c{div}
                FROM {self.gen} GROUP BY ALL
            ),
            marked AS (SELECT cls.*, ({bad}) AS bad, {loss_sum} AS cell FROM cls {joins})
            SELECT coalesce(sum(c) FILTER (WHERE bad), 0),
                   count(*) FILTER (WHERE NOT bad),
                   coalesce(min(c) FILTER (WHERE NOT bad), 0),
                   coalesce(sum(c * c) FILTER (WHERE NOT bad), 0),
                   coalesce(sum(c * cell) FILTER (WHERE NOT bad), 0.0)
            FROM marked
        """
        row = first_row(self.ws.con, sql)
        assert row is not None
        suppressed, classes, min_class, dm, loss = (
            int(row[0]),
            int(row[1]),
            int(row[2]),
            int(row[3]),
            float(row[4]),
        )
        m = len(node)
        ncp = (loss + suppressed * m) / (self.n * m)
        return _Eval(suppressed, classes, min_class, dm + suppressed * self.n, ncp)

    def run(
        self, max_evaluations: int
    ) -> tuple[tuple[int, ...], _Eval, SuppressionBaseline, int, bool]:
        nodes = list(itertools.product(*(range(h + 1) for h in self.heights)))
        m = len(self.qi)

        def bound(node: tuple[int, ...]) -> float:
            return sum(self.mean_loss[j][lvl] for j, lvl in enumerate(node)) / m

        nodes.sort(key=lambda nd: (bound(nd), sum(nd), nd))
        failing: list[tuple[int, ...]] = []  # maximal known non-anonymous nodes
        best: tuple[int, ...] | None = None
        best_eval: _Eval | None = None
        evaluated = 0
        optimal = True
        bottom = self.evaluate(tuple(0 for _ in self.qi))
        baseline = SuppressionBaseline(
            suppressed_rows=bottom.suppressed,
            suppressed_share=bottom.suppressed / self.n,
            ncp=bottom.ncp,
            discernibility=bottom.dm,
        )
        evaluated += 1
        for node in nodes:
            if best_eval is not None and bound(node) >= best_eval.ncp - 1e-12:
                break
            if any(all(a <= b for a, b in zip(node, f, strict=True)) for f in failing):
                continue
            if evaluated >= max_evaluations:
                optimal = False
                break
            ev = bottom if not any(node) else self.evaluate(node)
            if any(node):
                evaluated += 1
            if ev.suppressed <= self.budget:
                if best_eval is None or ev.ncp < best_eval.ncp - 1e-12:
                    best, best_eval = node, ev
            else:
                failing = [
                    f for f in failing if not all(a <= b for a, b in zip(f, node, strict=True))
                ]
                failing.append(node)
        if best is None or best_eval is None:
            top = tuple(self.heights)
            top_eval = self.evaluate(top)
            if top_eval.suppressed > self.budget:
                need = f"k={self.k}" + (f", l={self.l}" if self.l else "")
                raise InvalidParameter(
                    f"anonymize: {need} cannot be reached within max_suppression even with every "
                    "QI fully generalized (the table is too small or too uniform); lower k/l or "
                    "allow more suppression"
                )
            best, best_eval, optimal = top, top_eval, False
        return best, best_eval, baseline, evaluated, optimal

    def transformed(self, gen: Generalization) -> pa.Table:
        """The input with QIs generalized and the suppressed classes' rows removed."""
        replace = ", ".join(
            f"{gen.sql(c, quote(c))} AS {quote(c)}" for c in self.qi if gen.levels[c]
        )
        star = f"* REPLACE ({replace})" if replace else "*"
        part = ", ".join(quote(c) for c in self.qi)
        div = (
            f", count(DISTINCT {quote(self.sensitive)}) OVER (PARTITION BY {part}) AS __d"
            if self.l and self.sensitive
            else ""
        )
        keep = "__c >= " + str(self.k) + (f" AND __d >= {self.l}" if self.l else "")
        excl = "__c, __rid" + (", __d" if self.l else "")
        sql = f"""
            SELECT * EXCLUDE ({excl}) FROM (
                SELECT *, count(*) OVER (PARTITION BY {part}) AS __c{div} FROM (
                    SELECT {star}, row_number() OVER () AS __rid FROM {self.src}
                )
            ) WHERE {keep} ORDER BY __rid
        """
        return self.ws.con.sql(sql).to_arrow_table()


def _one(con: duckdb.DuckDBPyConnection, sql: str) -> Any:
    row = first_row(con, sql)
    return row[0] if row else None
