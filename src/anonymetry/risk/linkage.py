"""Linkage attack: how many released records an attacker with an auxiliary table re-identifies.

Entry point::

    linkage_attack(
        released: TableLike, auxiliary: TableLike, *,
        qi: Sequence[str],                 # QIs present in both tables (the attacker's link)
        truth: str,                        # hidden true-id column in both, used only to score
        con: duckdb.DuckDBPyConnection | None = None,
        generalization: Generalization | None = None,   # e.g. AnonymizationResult.generalization
    ) -> LinkageResult

    LinkageResult.precision / .recall / .reidentified_share / .to_dict()

The attacker holds the auxiliary table: a name-like key per person plus some QIs in their
original form. For each auxiliary record, the *match set* is the released records whose QIs
equal the record's (missing values match missing values). When the release was generalized,
pass its :class:`~anonymetry.risk.hierarchy.Generalization`: the attacker, who knows the
published hierarchies and levels, generalizes the auxiliary QIs the same way before matching.

Two attacker strategies are scored, with the hidden ``truth`` column (never used to match):

- ``unique`` (the headline, what the gate checks): claim a link only when the match set has
  exactly one record; a claim is correct when that record is the same person.
  ``precision`` = correct / claimed (0.0 when nothing is claimed), ``recall`` = correct /
  auxiliary records whose person is in the release, ``reidentified_share`` = released records
  correctly re-identified / released records.
- ``guess``: whenever the match set is non-empty, pick one of its records uniformly. Its
  expected correct links are Σ [person ∈ set] / |set| (computed exactly, no randomness), so
  ``guess_precision`` ≈ 1/k on a k-anonymous release.

The match-set size distribution is returned as ``(size, auxiliary records)`` pairs. All of it is
a few grouped joins in DuckDB, linear in the two tables (no pairwise product).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import duckdb

from anonymetry.errors import InvalidParameter
from anonymetry.risk._inputs import TableLike, first_row, open_input, quote
from anonymetry.risk.hierarchy import Generalization

__all__ = ["LinkageResult", "linkage_attack"]


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkageResult:
    """Outcome of a simulated linkage attack (see module doc)."""

    qi: tuple[str, ...]
    generalized: bool
    released_rows: int
    auxiliary_rows: int
    auxiliary_in_release: int  # auxiliary records whose person is in the release
    claimed: int  # auxiliary records with a unique match
    correct: int  # of those, the true person
    reidentified_records: int  # distinct released records correctly re-identified
    guess_claimed: int  # auxiliary records with a non-empty match set
    guess_expected_correct: float
    match_set_sizes: tuple[tuple[int, int], ...]

    @property
    def precision(self) -> float:
        return self.correct / self.claimed if self.claimed else 0.0

    @property
    def recall(self) -> float:
        return self.correct / self.auxiliary_in_release if self.auxiliary_in_release else 0.0

    @property
    def reidentified_share(self) -> float:
        return self.reidentified_records / self.released_rows if self.released_rows else 0.0

    @property
    def guess_precision(self) -> float:
        return self.guess_expected_correct / self.guess_claimed if self.guess_claimed else 0.0

    @property
    def guess_recall(self) -> float:
        if not self.auxiliary_in_release:
            return 0.0
        return self.guess_expected_correct / self.auxiliary_in_release

    def to_dict(self) -> dict[str, Any]:
        return {
            "measure": "linkage_attack",
            "qi": list(self.qi),
            "generalized": self.generalized,
            "released_rows": self.released_rows,
            "auxiliary_rows": self.auxiliary_rows,
            "auxiliary_in_release": self.auxiliary_in_release,
            "claimed": self.claimed,
            "correct": self.correct,
            "precision": self.precision,
            "recall": self.recall,
            "reidentified_records": self.reidentified_records,
            "reidentified_share": self.reidentified_share,
            "guess": {
                "claimed": self.guess_claimed,
                "expected_correct": self.guess_expected_correct,
                "precision": self.guess_precision,
                "recall": self.guess_recall,
            },
            "match_set_sizes": [[size, count] for size, count in self.match_set_sizes],
        }


def linkage_attack(
    released: TableLike,
    auxiliary: TableLike,
    *,
    qi: Sequence[str],
    truth: str,
    con: duckdb.DuckDBPyConnection | None = None,
    generalization: Generalization | None = None,
) -> LinkageResult:
    """Simulate the attack of the module doc and score it against ``truth``."""
    qi = tuple(qi)
    if not qi or len(set(qi)) != len(qi):
        raise InvalidParameter("linkage attack: qi must name at least one column, each once")
    if truth in qi:
        raise InvalidParameter("linkage attack: the truth column cannot be a QI")
    with open_input("linkage attack", con) as ws:
        rel = ws.register("released", released, caller_con=con is not None)
        aux = ws.register("auxiliary", auxiliary, caller_con=con is not None)
        ws.require(rel, [*qi, truth], "QI/truth (released)")
        ws.require(aux, [*qi, truth], "QI/truth (auxiliary)")

        def aux_key(c: str) -> str:
            expr = quote(c)
            if generalization is not None and c in generalization.levels:
                expr = generalization.sql(c, expr)
            return f"CAST({expr} AS VARCHAR) AS k{j_of[c]}"

        j_of = {c: j for j, c in enumerate(qi)}
        rel_keys = ", ".join(f"CAST({quote(c)} AS VARCHAR) AS k{j}" for j, c in enumerate(qi))
        aux_keys = ", ".join(aux_key(c) for c in qi)
        ks = ", ".join(f"k{j}" for j in range(len(qi)))
        on = lambda a, b: " AND ".join(  # noqa: E731 - local join-condition builder
            f"{a}.k{j} IS NOT DISTINCT FROM {b}.k{j}" for j in range(len(qi))
        )
        tq = quote(truth)
        r = ws.temp("r")
        a = ws.temp("a")
        ws.con.execute(
            f"CREATE TEMP TABLE {r} AS SELECT {rel_keys}, CAST({tq} AS VARCHAR) AS tid FROM {rel}"
        )
        ws.con.execute(
            f"CREATE TEMP TABLE {a} AS SELECT row_number() OVER () AS aid, {aux_keys}, "
            f"CAST({tq} AS VARCHAR) AS tid FROM {aux}"
        )
        scored = ws.temp("scored")
        ws.con.execute(
            f"""
            CREATE TEMP TABLE {scored} AS
            WITH cls AS (SELECT {ks}, count(*) AS m FROM {r} GROUP BY ALL),
            own AS (SELECT {ks}, tid, count(*) AS c FROM {r} GROUP BY ALL)
            SELECT a.aid, a.tid, {", ".join(f"a.k{j}" for j in range(len(qi)))},
                   coalesce(cls.m, 0) AS m, coalesce(own.c, 0) AS c
            FROM {a} AS a
            LEFT JOIN cls ON {on("a", "cls")}
            LEFT JOIN own ON {on("a", "own")} AND own.tid = a.tid
            """
        )
        row = first_row(
            ws.con,
            f"""
            SELECT (SELECT count(*) FROM {r}),
                   count(*),
                   count(*) FILTER (WHERE tid IN (SELECT tid FROM {r})),
                   count(*) FILTER (WHERE m = 1),
                   count(*) FILTER (WHERE m = 1 AND c = 1),
                   count(DISTINCT ({", ".join(f"k{j}" for j in range(len(qi)))}))
                       FILTER (WHERE m = 1 AND c = 1),
                   count(*) FILTER (WHERE m > 0),
                   coalesce(sum(c::DOUBLE / m) FILTER (WHERE m > 0), 0.0)
            FROM {scored}
            """,
        )
        sizes = ws.con.execute(f"SELECT m, count(*) FROM {scored} GROUP BY m ORDER BY m").fetchall()
    assert row is not None
    return LinkageResult(
        qi=qi,
        generalized=generalization is not None,
        released_rows=int(row[0]),
        auxiliary_rows=int(row[1]),
        auxiliary_in_release=int(row[2]),
        claimed=int(row[3]),
        correct=int(row[4]),
        reidentified_records=int(row[5]),
        guess_claimed=int(row[6]),
        guess_expected_correct=float(row[7]),
        match_set_sizes=tuple((int(s), int(n)) for s, n in sizes),
    )
