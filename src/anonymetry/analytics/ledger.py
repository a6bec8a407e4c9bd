"""The privacy-budget ledger: persistent, per dataset × analyst (× period), atomic, idempotent.

Storage: one SQLite file, ``DIR/ledger.sqlite`` (WAL journal). A debit is one ``BEGIN
IMMEDIATE`` transaction — SQLite's write lock is taken before the budget is read, so concurrent
debits from threads or processes are serialized and can never together pass the cap. Inside it:

1. an entry with this ``query_id`` already there → *released*: its stored result is returned
   (never fresh noise: re-noising the same query would leak); *debited* (a run that died before
   releasing) → refused, choose a new query id (the budget stays spent: conservative);
2. the budget is the grant for (dataset, analyst), else the analyst's ``*`` grant, else the
   policy default; the period is ``floor(now / period_days)`` when the policy sets one;
3. all events of the entries of that (dataset, analyst, period) plus the new ones are composed
   by the grant's accountant (:mod:`anonymetry.privacy.accountant`, default ``pld``); if
   ε(δ_budget) would exceed ε_budget, or the δ spent outright by approximate events would
   exceed δ_budget → :class:`~anonymetry.errors.BudgetExhausted` with requested and remaining;
   nothing is written;
4. else the entry is inserted (state ``debited``) and committed — before any number is
   computed. :meth:`BudgetLedger.record_release` stores the result (state ``released``).
"""

from __future__ import annotations

import enum
import math
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import orjson

from anonymetry.errors import BudgetExhausted, InvalidParameter
from anonymetry.policy import BudgetPolicy
from anonymetry.privacy.accountant import (
    ACCOUNTANTS,
    DEFAULT_ACCOUNTANT,
    Event,
    event_from_dict,
    make_accountant,
)
from anonymetry.privacy.budget import PrivacyLoss

__all__ = ["LEDGER_FILE", "BudgetLedger", "Debit", "EntryState"]

LEDGER_FILE = "ledger.sqlite"
ANY_DATASET = "*"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS grants (
    dataset TEXT NOT NULL, analyst TEXT NOT NULL,
    epsilon TEXT NOT NULL, delta TEXT NOT NULL, accountant TEXT NOT NULL,
    granted_at REAL NOT NULL, PRIMARY KEY (dataset, analyst));
CREATE TABLE IF NOT EXISTS entries (
    query_id TEXT PRIMARY KEY, dataset TEXT NOT NULL, analyst TEXT NOT NULL,
    period INTEGER NOT NULL, events TEXT NOT NULL, epsilon TEXT NOT NULL, delta TEXT NOT NULL,
    state TEXT NOT NULL, result TEXT, description TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS entries_key ON entries (dataset, analyst, period);
"""


class EntryState(enum.StrEnum):
    DEBITED = "debited"
    RELEASED = "released"


@dataclass(frozen=True, slots=True)
class Debit:
    """The outcome of a debit: the budget and what is spent/left after it, or a replay."""

    query_id: str
    budget: PrivacyLoss
    spent_epsilon: float
    spent_delta: float
    accountant: str
    period: int
    replay: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "query_id": self.query_id,
            "accountant": self.accountant,
            "period": self.period,
            "granted": {"epsilon": float(self.budget.epsilon), "delta": float(self.budget.delta)},
            "spent": {"epsilon": self.spent_epsilon, "delta": self.spent_delta},
            "remaining": {"epsilon": max(0.0, float(self.budget.epsilon) - self.spent_epsilon),
                          "delta": max(0.0, float(self.budget.delta) - self.spent_delta)},
        }


def _check_name(value: str, field: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        raise InvalidParameter(f"{field}: expected a non-empty name of at most 200 characters")
    return value.strip()


class BudgetLedger:
    """See the module docstring. Safe for many threads and processes on one machine."""

    def __init__(self, directory: str | Path, *, default_budget: BudgetPolicy | None = None,
                 timeout: float = 60.0, clock: Any = time.time) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / LEDGER_FILE
        self.default_budget = default_budget
        self.timeout = timeout
        self._clock = clock
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            conn.execute("PRAGMA synchronous = FULL")
            yield conn
        finally:
            conn.close()

    @contextmanager
    def _immediate(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # -- grants --------------------------------------------------------------------------------
    def grant(self, analyst: str, epsilon: float | str, delta: float | str = 0, *,
              dataset: str = ANY_DATASET, accountant: str = DEFAULT_ACCOUNTANT) -> PrivacyLoss:
        """Set the budget of ``analyst`` on ``dataset`` (``*``: each dataset) per period."""
        analyst = _check_name(analyst, "analyst")
        dataset = _check_name(dataset, "dataset")
        budget = PrivacyLoss(epsilon, delta)
        if accountant not in ACCOUNTANTS:
            raise InvalidParameter(f"accountant: unknown {accountant!r}; expected one of "
                                   f"{', '.join(sorted(ACCOUNTANTS))}")
        with self._immediate() as conn:
            conn.execute("INSERT OR REPLACE INTO grants VALUES (?, ?, ?, ?, ?, ?)",
                         (dataset, analyst, str(budget.epsilon), str(budget.delta), accountant,
                          self._clock()))
        return budget

    def _budget(self, conn: sqlite3.Connection, dataset: str, analyst: str
                ) -> tuple[PrivacyLoss, str, int | None]:
        for ds in (dataset, ANY_DATASET):
            row = conn.execute("SELECT epsilon, delta, accountant FROM grants WHERE dataset = ? "
                               "AND analyst = ?", (ds, analyst)).fetchone()
            if row:
                period_days = self.default_budget.period_days if self.default_budget else None
                return PrivacyLoss(Fraction(row[0]), Fraction(row[1])), row[2], period_days
        if self.default_budget is not None:
            b = self.default_budget
            return PrivacyLoss(b.epsilon, b.delta), DEFAULT_ACCOUNTANT, b.period_days
        raise BudgetExhausted(
            f"analyst {analyst!r} has no budget on dataset {dataset!r}; ask a privacy officer "
            "to run `anonymetry budget grant`", requested="", remaining="0")

    def _period(self, period_days: int | None) -> int:
        if not period_days:
            return 0
        return int(self._clock() // (86400 * period_days))

    @staticmethod
    def _events_of(conn: sqlite3.Connection, dataset: str, analyst: str, period: int
                   ) -> list[Event]:
        events: list[Event] = []
        for (blob,) in conn.execute("SELECT events FROM entries WHERE dataset = ? AND "
                                    "analyst = ? AND period = ?", (dataset, analyst, period)):
            events.extend(event_from_dict(e) for e in orjson.loads(blob))
        return events

    # -- debits --------------------------------------------------------------------------------
    def debit(self, *, query_id: str, dataset: str, analyst: str, events: Sequence[Event],
              loss: PrivacyLoss, description: str = "") -> Debit:
        """Spend ``events`` (whose basic composition is ``loss``) atomically; see the module."""
        query_id = _check_name(query_id, "query_id")
        dataset = _check_name(dataset, "dataset")
        analyst = _check_name(analyst, "analyst")
        with self._immediate() as conn:
            budget, acc_name, period_days = self._budget(conn, dataset, analyst)
            existing = conn.execute("SELECT state, result, dataset, analyst, period FROM entries "
                                    "WHERE query_id = ?", (query_id,)).fetchone()
            period = self._period(period_days)
            if existing is not None:
                state, result, e_ds, e_an, e_period = existing
                if (e_ds, e_an) != (dataset, analyst):
                    raise InvalidParameter(f"query_id {query_id!r} is already used by another "
                                           "query; choose a new one")
                if state == EntryState.RELEASED and result:
                    acc = make_accountant(acc_name, self._events_of(conn, e_ds, e_an, e_period))
                    return Debit(query_id, budget, acc.epsilon(float(budget.delta)),
                                 float(acc.committed_delta()), acc_name, e_period,
                                 replay=orjson.loads(result))
                raise InvalidParameter(f"query_id {query_id!r} was debited but never released "
                                       "(an earlier run stopped); run it with a new query id")
            prior = self._events_of(conn, dataset, analyst, period)
            before = make_accountant(acc_name, prior)
            after = make_accountant(acc_name, [*prior, *events])
            eps_after = after.epsilon(float(budget.delta))
            delta_after = after.committed_delta()
            if math.isinf(eps_after) or eps_after > float(budget.epsilon) \
                    or delta_after > budget.delta:
                eps_before = before.epsilon(float(budget.delta))
                remaining = PrivacyLoss(max(0.0, float(budget.epsilon) - eps_before),
                                        max(Fraction(0), budget.delta - before.committed_delta()))
                raise BudgetExhausted(
                    f"dataset {dataset!r}, analyst {analyst!r}: requested {loss}, remaining "
                    f"{remaining} (of {budget}, {acc_name} accountant); nothing was spent — "
                    "ask for less, or for a new grant", requested=str(loss),
                    remaining=str(remaining))
            conn.execute(
                "INSERT INTO entries (query_id, dataset, analyst, period, events, epsilon, "
                "delta, state, description, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (query_id, dataset, analyst, period,
                 orjson.dumps([e.to_dict() for e in events]).decode(), str(loss.epsilon),
                 str(loss.delta), EntryState.DEBITED.value, description[:500], self._clock()))
            return Debit(query_id, budget, eps_after, float(delta_after), acc_name, period)

    def record_release(self, query_id: str, result: dict[str, Any]) -> None:
        with self._immediate() as conn:
            cur = conn.execute("UPDATE entries SET state = ?, result = ? WHERE query_id = ? "
                               "AND state = ?", (EntryState.RELEASED.value,
                                                 orjson.dumps(result).decode(), query_id,
                                                 EntryState.DEBITED.value))
            if cur.rowcount != 1:
                raise InvalidParameter(f"query_id {query_id!r}: no pending debit to release")

    # -- reading -------------------------------------------------------------------------------
    def show(self) -> dict[str, Any]:
        """Grants and, per (dataset, analyst, period), what is spent and left."""
        with self._connect() as conn:
            conn.execute("BEGIN")
            grants = conn.execute("SELECT dataset, analyst, epsilon, delta, accountant FROM "
                                  "grants ORDER BY analyst, dataset").fetchall()
            keys = conn.execute("SELECT DISTINCT dataset, analyst, period FROM entries "
                                "ORDER BY analyst, dataset, period").fetchall()
            accounts = []
            for dataset, analyst, period in keys:
                try:
                    budget, acc_name, _ = self._budget(conn, dataset, analyst)
                except BudgetExhausted:
                    continue
                events = self._events_of(conn, dataset, analyst, period)
                acc = make_accountant(acc_name, events)
                eps = acc.epsilon(float(budget.delta))
                n, released = conn.execute(
                    "SELECT count(*), sum(state = 'released') FROM entries WHERE dataset = ? "
                    "AND analyst = ? AND period = ?", (dataset, analyst, period)).fetchone()
                accounts.append({
                    "dataset": dataset, "analyst": analyst, "period": period,
                    "accountant": acc_name, "queries": n, "released": released or 0,
                    "granted": {"epsilon": float(budget.epsilon), "delta": float(budget.delta)},
                    "spent": {"epsilon": eps, "delta": float(acc.committed_delta())},
                    "remaining": {"epsilon": max(0.0, float(budget.epsilon) - eps),
                                  "delta": max(0.0, float(budget.delta - acc.committed_delta()))},
                })
            conn.execute("COMMIT")
        return {"ledger": str(self.path),
                "grants": [{"dataset": d, "analyst": a, "epsilon": float(Fraction(e)),
                            "delta": float(Fraction(dl)), "accountant": acc}
                           for d, a, e, dl, acc in grants],
                "accounts": accounts}

    def entries(self, dataset: str | None = None, analyst: str | None = None
                ) -> list[dict[str, Any]]:
        with self._connect() as conn:
            rows = conn.execute("SELECT query_id, dataset, analyst, period, epsilon, delta, "
                                "state, description FROM entries ORDER BY created_at").fetchall()
        return [{"query_id": r[0], "dataset": r[1], "analyst": r[2], "period": r[3],
                 "epsilon": float(Fraction(r[4])), "delta": float(Fraction(r[5])),
                 "state": r[6], "description": r[7]}
                for r in rows if (dataset in (None, r[1])) and (analyst in (None, r[2]))]
