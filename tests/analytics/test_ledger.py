"""The budget ledger: atomic, idempotent, never overspent — also under 50 concurrent queries.

Properties:
- a debit that fits is recorded before any number exists; one that does not raises
  ``BudgetExhausted`` naming requested and remaining, and spends nothing;
- a repeated query id returns the stored result (never fresh noise) and spends nothing more;
- budgets are per dataset × analyst × period; composition goes through the named accountant;
- 50 concurrent debits / full queries (threads, and processes) against a small budget never
  pass the cap, and exactly as many succeed as fit.
"""

from __future__ import annotations

import multiprocessing as mp
import threading
from fractions import Fraction
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from anonymetry.analytics import BudgetLedger, QuerySpec, run_query
from anonymetry.analytics.sources import arrow_source
from anonymetry.errors import BudgetExhausted, InvalidParameter
from anonymetry.policy import BudgetPolicy
from anonymetry.privacy.accountant import ApproxDp, PureDp
from anonymetry.privacy.budget import PrivacyLoss


def debit(book: BudgetLedger, qid: str, eps: float, *, dataset: str = "d", analyst: str = "a",
          delta: float = 0) -> Any:
    events = [ApproxDp(eps, delta)] if delta else [PureDp(eps)]
    return book.debit(query_id=qid, dataset=dataset, analyst=analyst, events=events,
                      loss=PrivacyLoss(eps, delta))


def test_debit_within_budget_then_refusal_spends_nothing(tmp_path: Path) -> None:
    book = BudgetLedger(tmp_path)
    book.grant("a", 1.0, 1e-6, accountant="basic")
    d = debit(book, "q1", 0.75)
    assert d.spent_epsilon == pytest.approx(0.75)
    with pytest.raises(BudgetExhausted) as exc:
        debit(book, "q2", 0.5)
    assert "requested ε=0.5" in str(exc.value)
    assert "remaining ε=0.25" in str(exc.value)
    assert exc.value.requested
    assert exc.value.remaining
    assert [e["query_id"] for e in book.entries()] == ["q1"]
    assert debit(book, "q3", 0.25).spent_epsilon == pytest.approx(1.0)  # exactly fills it


def test_exact_fill_uses_exact_arithmetic(tmp_path: Path) -> None:
    """Ten debits of 0.1 fill a budget of 1.0 exactly (Fractions, not float drift)."""
    book = BudgetLedger(tmp_path)
    book.grant("a", "1", 0, accountant="basic")
    for i in range(10):
        book.debit(query_id=f"q{i}", dataset="d", analyst="a",
                   events=[PureDp(Fraction(1, 10))], loss=PrivacyLoss(Fraction(1, 10)))
    with pytest.raises(BudgetExhausted):
        book.debit(query_id="q10", dataset="d", analyst="a", events=[PureDp(Fraction(1, 1000))],
                   loss=PrivacyLoss(Fraction(1, 1000)))


def test_delta_is_a_budget_too(tmp_path: Path) -> None:
    book = BudgetLedger(tmp_path)
    book.grant("a", 10, 1e-6)
    debit(book, "q1", 0.1, delta=9e-7)
    with pytest.raises(BudgetExhausted):
        debit(book, "q2", 0.1, delta=2e-7)


def test_budgets_are_per_dataset_and_analyst_and_grants_fall_back_to_star(tmp_path: Path) -> None:
    book = BudgetLedger(tmp_path)
    book.grant("a", 1.0)
    book.grant("a", 5.0, dataset="big")
    debit(book, "q1", 1.0, dataset="x")
    debit(book, "q2", 1.0, dataset="y")  # '*' means each dataset separately
    debit(book, "q3", 4.0, dataset="big")
    with pytest.raises(BudgetExhausted):
        debit(book, "q4", 1.0, analyst="b")  # no grant, no default
    shown = book.show()
    assert {(a["dataset"], a["spent"]["epsilon"]) for a in shown["accounts"]} == {
        ("x", 1.0), ("y", 1.0), ("big", 4.0)}


def test_periods_renew_the_budget(tmp_path: Path) -> None:
    now = [1_000_000.0]
    book = BudgetLedger(tmp_path, default_budget=BudgetPolicy(epsilon=1.0, delta=0,
                                                              period_days=30),
                        clock=lambda: now[0])
    debit(book, "q1", 1.0)
    with pytest.raises(BudgetExhausted):
        debit(book, "q2", 0.5)
    now[0] += 30 * 86400
    assert debit(book, "q2", 0.5).period == debit(book, "q3", 0.5).period


def test_repeated_query_id_returns_the_stored_result_and_spends_nothing(tmp_path: Path) -> None:
    book = BudgetLedger(tmp_path)
    book.grant("a", 3.0)
    table = pa.table({"user": [f"u{i}" for i in range(50)], "x": ["a"] * 50})
    spec = QuerySpec.build(metrics=["count"], epsilon=1.0, unit="user", query_id="fixed-1",
                           diagnostics=False)
    first = run_query(spec, arrow_source(table, "t"), ledger=book, analyst="a")
    again = run_query(spec, arrow_source(table, "t"), ledger=book, analyst="a")
    assert again.rows == first.rows
    assert len(book.entries()) == 1
    assert book.show()["accounts"][0]["spent"]["epsilon"] == pytest.approx(1.0)
    assert first.budget is not None
    assert first.budget["spent"]["epsilon"] == pytest.approx(1.0)
    assert first.budget["remaining"]["epsilon"] == pytest.approx(2.0)


def test_debited_but_unreleased_query_id_cannot_rerun(tmp_path: Path) -> None:
    book = BudgetLedger(tmp_path)
    book.grant("a", 3.0)
    debit(book, "q1", 1.0)
    with pytest.raises(InvalidParameter, match="never released"):
        debit(book, "q1", 1.0)


def test_refused_query_returns_no_number_and_spends_nothing(tmp_path: Path) -> None:
    book = BudgetLedger(tmp_path)
    book.grant("a", 0.5)
    table = pa.table({"user": ["u1", "u2"], "x": ["a", "b"]})
    spec = QuerySpec.build(metrics=["count"], epsilon=1.0, unit="user")
    with pytest.raises(BudgetExhausted):
        run_query(spec, arrow_source(table, "t"), ledger=book, analyst="a")
    assert book.entries() == []


@pytest.mark.parametrize("accountant", ["basic", "pld", "rdp"])
def test_named_accountant_composes_the_ledger(tmp_path: Path, accountant: str) -> None:
    """20 debits of ε = 0.25: basic composition caps at 4 of them under ε = 1; PLD/RDP at δ =
    1e-5 prove a tighter total and admit at least as many."""
    book = BudgetLedger(tmp_path)
    book.grant("a", 1.0, 1e-5, accountant=accountant)
    ok = 0
    for i in range(20):
        try:
            debit(book, f"q{i}", 0.25)
            ok += 1
        except BudgetExhausted:
            pass
    assert ok >= 4
    if accountant == "basic":
        assert ok == 4
    spent = book.show()["accounts"][0]["spent"]["epsilon"]
    assert spent <= 1.0


# -- concurrency --------------------------------------------------------------------------------
def _debit_in_process(args: tuple[str, int]) -> bool:
    directory, i = args
    book = BudgetLedger(directory)
    try:
        debit(book, f"p{i}", 0.1)
        return True
    except BudgetExhausted:
        return False


def test_50_concurrent_thread_debits_never_overspend(tmp_path: Path) -> None:
    book = BudgetLedger(tmp_path)
    book.grant("a", 1.0, accountant="basic")
    results: list[bool] = []
    lock = threading.Lock()
    start = threading.Barrier(50)

    def worker(i: int) -> None:
        start.wait()
        try:
            debit(BudgetLedger(tmp_path), f"t{i}", 0.1)
            ok = True
        except BudgetExhausted:
            ok = False
        with lock:
            results.append(ok)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(results) == 10
    assert book.show()["accounts"][0]["spent"]["epsilon"] <= 1.0 + 1e-12


def test_50_concurrent_process_debits_never_overspend(tmp_path: Path) -> None:
    book = BudgetLedger(tmp_path)
    book.grant("a", 1.0, accountant="basic")
    with mp.get_context("fork").Pool(8) as pool:
        results = pool.map(_debit_in_process, [(str(tmp_path), i) for i in range(50)])
    assert sum(results) == 10
    assert len(book.entries()) == 10
    assert book.show()["accounts"][0]["spent"]["epsilon"] <= 1.0 + 1e-12


def test_50_concurrent_full_queries_never_overspend(tmp_path: Path) -> None:
    """50 threads run whole DP queries against a budget that fits 5; exactly 5 get numbers."""
    book = BudgetLedger(tmp_path)
    book.grant("a", 2.5, accountant="pld")
    table = pa.table({"user": [f"u{i}" for i in range(40)], "x": ["a"] * 40})
    spec = QuerySpec.build(metrics=["count"], epsilon=0.5, unit="user", diagnostics=False)
    outcomes: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        try:
            run_query(spec, arrow_source(table, "t"), ledger=book, analyst="a")
            out = "ok"
        except BudgetExhausted:
            out = "refused"
        with lock:
            outcomes.append(out)

    threads = [threading.Thread(target=worker) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("ok") == 5
    assert outcomes.count("refused") == 45
    account = book.show()["accounts"][0]
    assert account["spent"]["epsilon"] <= 2.5 + 1e-12
    assert account["released"] == 5
