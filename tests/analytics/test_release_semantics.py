"""What released rows mean, and the queries around them that used to go wrong.

- A quantile/histogram query on the event store (WAL rows and compacted Parquet, with filters,
  windows and both L∞ modes) runs without DuckDB's "unfinished result" error, also when the
  source's registration leaves a result open on the connection (the engine settles it).
- ``noise_scale`` of a mean is in value units: its root-mean-square error over many partitions
  is √2·noise_scale (Laplace), not the scale of its sum component.
- Public partitions from the policy (declared values, window bins, their product, the cap).
- ``--mechanism gaussian`` end to end: zCDP events in the ledger, (ε, δ) within the request.
"""

from __future__ import annotations

import datetime as dt
import math
import secrets
from fractions import Fraction
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from anonymetry.analytics import (
    BudgetLedger,
    DuckDBEngine,
    LinfMode,
    QuerySpec,
    TimeWindow,
    compile_query,
    run_query,
)
from anonymetry.analytics.compiler import MAX_DECLARED_PARTITIONS, declared_partitions
from anonymetry.analytics.plan import Source, SourceKind
from anonymetry.analytics.sources import arrow_source, store_source
from anonymetry.policy import default_policy
from anonymetry.privacy.accountant import ZCdp
from anonymetry.privacy.units import ClampRange

POLICY = default_policy()
EPOCH = 20000
BASE = EPOCH * 30 * 86400 + 3600


def _store(path: Path, *, compact_first: int) -> None:
    """A store with ``compact_first`` events compacted to Parquet and the rest in the WAL."""
    from anonymetry.ingest.store import EventStore, StoredEvent
    from anonymetry.privacy import LocalKeyring

    evs = [StoredEvent(dedup=secrets.token_hex(16), epoch=EPOCH, event="screen.view",
                       time=BASE + 3600 * (i % 72), user=f"{i % 60:032x}", device=f"{i:032x}",
                       consent="usage",
                       attrs={"platform": ("ios", "web", "android")[i % 3], "app_version": "1.0",
                              "screen": "home", "duration_ms": (i * 37) % 3000})
           for i in range(600)]
    with EventStore(path, POLICY, LocalKeyring(path / "keys"), instance="t") as store:
        store.append_blocking(evs[:compact_first])
        store.compact()
        store.append_blocking(evs[compact_first:])


@pytest.mark.parametrize("mode", list(LinfMode))
def test_quantile_queries_on_the_store_leave_no_open_result(tmp_path: Path, mode: LinfMode
                                                            ) -> None:
    _store(tmp_path, compact_first=400)
    source = store_source(tmp_path, POLICY)
    assert source.obj.wal_table.num_rows == 200  # both halves of the reader are scanned
    window = TimeWindow(dt.datetime.fromtimestamp(BASE - 3600, dt.UTC),
                        dt.datetime.fromtimestamp(BASE + 4 * 86400, dt.UTC))
    for by, filters, win in (((), (), None), (("platform",), ("event=screen.view",), window),
                             (("day",), ("duration_ms>=10",), window)):
        spec = QuerySpec.build(metrics=["count", "p90:duration_ms", "histogram:duration_ms"],
                               by=by, filters=filters, window=win, epsilon=5.0, delta=1e-6,
                               clamp=ClampRange(lo=0, hi=3000), bins=8, linf_mode=mode,
                               min_cohort=0)
        result = run_query(spec, source, policy=POLICY)
        assert any(r.metric == "p90(duration_ms)" for r in result.rows)


class _LeavesAResultOpen:
    """A store-like reader whose registration runs a query and leaves its result unfetched
    (as a reader that inspects the view would): DuckDB then refuses further work on that
    connection unless the engine finishes the result first."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table

    def duckdb_register(self, con: Any, name: str) -> None:
        con.register(name, self.table)
        con.execute(f"SELECT * FROM {name}")  # unfinished on purpose

    def parquet_files(self) -> list[str]:
        return []


def test_engine_settles_a_result_the_source_left_open() -> None:
    rows = 5000
    table = pa.table({"user": [f"u{i % 100}" for i in range(rows)],
                      "v": [float(i % 50) for i in range(rows)]})
    source = Source(SourceKind.STORE, "mem", obj=_LeavesAResultOpen(table), name="mem")
    spec = QuerySpec.build(metrics=["p50:v"], epsilon=5.0, unit="user",
                           clamp=ClampRange(lo=0, hi=50), bins=10)
    result = run_query(spec, source, engine=DuckDBEngine())
    assert 0 <= result.rows[0].value <= 50


# -- noise_scale means what result.py says ------------------------------------------------------

P_MEAN = 1000  # partitions; relative standard error of the RMS below ≈ √((κ−1)/(4P)) ≈ 0.035


def test_mean_noise_scale_is_in_value_units_and_matches_the_spread() -> None:
    """Each of P partitions has 200 users with one value each (L0 = L∞ = 1, nothing dropped,
    nothing clamped), so value − truth is pure noise. For a Laplace-family scale b the std is
    √2·b; the delta-method ``noise_scale`` must predict the RMS error within [0.8, 1.25]
    (~6 standard errors of the RMS estimate for Laplace-ratio noise, κ ≈ 6). The old report
    (the sum component's scale) is ~100× off and fails."""
    users, parts, values = [], [], []
    for p in range(P_MEAN):
        for u in range(200):
            users.append(f"u{p}-{u}")
            parts.append(f"p{p:04d}")
            values.append(10.0 + (p % 5) + (u % 3))
    table = pa.table({"user": users, "part": parts, "v": values})
    truth = {f"p{p:04d}": 10.0 + (p % 5) + (sum(u % 3 for u in range(200)) / 200)
             for p in range(P_MEAN)}
    spec = QuerySpec.build(metrics=["mean:v"], by=["part"], epsilon=1.0, unit="user",
                           max_partitions=1, max_per_partition=1, clamp=ClampRange(lo=0, hi=40),
                           diagnostics=False, min_cohort=0,
                           public_partitions=tuple((k,) for k in truth))
    result = run_query(spec, arrow_source(table))
    rows = result.rows
    assert len(rows) == P_MEAN
    split = {s["component"]: s for s in result.budget_split}
    for r in rows:
        assert r.noise_components == {"csum": split["csum"]["scale"],
                                      "rows": split["rows"]["scale"]}
        assert r.noise_scale < split["csum"]["scale"] / 100  # value units, not the sum's
        half = (r.ci95[1] - r.ci95[0]) / 2
        assert 1.5 * r.noise_scale < half < 10 * r.noise_scale  # the CI is of the same noise
    rms = math.sqrt(sum((r.value - truth[r.by["part"]]) ** 2 for r in rows) / len(rows))
    predicted = math.sqrt(2) * math.sqrt(sum(r.noise_scale ** 2 for r in rows) / len(rows))
    assert 0.8 <= rms / predicted <= 1.25, (rms, predicted)


# -- public partitions from the policy ------------------------------------------------------------

def _events_table() -> pa.Table:
    n = 600
    return pa.table({
        "user": [f"u{i % 50}" for i in range(n)],
        "event": ["screen.view" if i % 4 else "app.crash" for i in range(n)],
        "platform": [("ios", "web", "android")[i % 3] for i in range(n)],
        "app_version": ["1.0"] * n,
        "time": pa.array([BASE + 3600 * (i % 96) for i in range(n)], pa.timestamp("s", "UTC")),
    })


def test_declared_enum_values_are_public_partitions_and_need_no_delta() -> None:
    spec = QuerySpec.build(metrics=["count"], by=["platform"], epsilon=2.0, unit="user",
                           min_cohort=0)  # no δ: private selection would refuse this
    result = run_query(spec, arrow_source(_events_table()), policy=POLICY)
    assert [r.by["platform"] for r in result.rows] == ["ios", "android", "windows", "macos",
                                                      "web"]
    assert result.partition_selection["mode"] == "public (declared in policy)"
    assert result.delta == 0
    assert "declared in policy" in result.explain()


def test_without_a_policy_or_when_switched_off_selection_stays_private() -> None:
    table = _events_table()
    spec = QuerySpec.build(metrics=["count"], by=["platform"], epsilon=2.0, delta=1e-6,
                           unit="user", min_cohort=0)
    assert run_query(spec, arrow_source(table)).partition_selection["mode"] == "private"
    off = QuerySpec.build(metrics=["count"], by=["platform"], epsilon=2.0, delta=1e-6,
                          unit="user", min_cohort=0, declared_partitions=False)
    res = run_query(off, arrow_source(table), policy=POLICY)
    assert res.partition_selection["mode"] == "private"


def test_explicit_public_partitions_win_over_declared_ones() -> None:
    spec = QuerySpec.build(metrics=["count"], by=["platform"], epsilon=2.0, unit="user",
                           min_cohort=0, public_partitions=(("ios",),))
    result = run_query(spec, arrow_source(_events_table()), policy=POLICY)
    assert [r.by["platform"] for r in result.rows] == ["ios"]
    assert result.partition_selection["mode"] == "public"


def test_event_and_day_keys_give_the_cartesian_product_of_policy_and_window() -> None:
    window = TimeWindow(dt.datetime.fromtimestamp(BASE, dt.UTC),
                        dt.datetime.fromtimestamp(BASE + 3 * 86400 + 60, dt.UTC))
    spec = QuerySpec.build(metrics=["count"], by=["event", "day"], epsilon=2.0, unit="user",
                           window=window, min_cohort=0, diagnostics=False)
    keys, mode, note = declared_partitions(spec, POLICY)
    assert note is None
    assert mode == "public (declared in policy and time window)"
    days = [(window.since.date() + dt.timedelta(days=i)).isoformat() for i in range(4)]
    assert keys is not None
    assert len(keys) == len(POLICY.events) * 4
    assert {k[1] for k in keys} == set(days)
    result = run_query(spec, arrow_source(_events_table()), policy=POLICY)
    got = {(r.by["event"], r.by["day"]): r.value for r in result.rows}
    assert len(got) == len(POLICY.events) * 4
    assert result.delta == 0


def test_week_bins_start_on_monday() -> None:
    window = TimeWindow(dt.datetime(2024, 6, 5, tzinfo=dt.UTC),
                        dt.datetime(2024, 6, 20, tzinfo=dt.UTC))  # Wed .. Thu
    spec = QuerySpec.build(metrics=["count"], by=["week"], epsilon=1.0, window=window)
    keys, mode, _ = declared_partitions(spec, POLICY)
    assert keys == (("2024-06-03",), ("2024-06-10",), ("2024-06-17",))
    assert mode == "public (time window)"


def test_an_unbounded_or_undeclared_key_falls_back_to_private_selection() -> None:
    open_window = TimeWindow(dt.datetime(2024, 6, 5, tzinfo=dt.UTC), None)
    for by, window in ((["day"], open_window), (["platform", "app_version"], None)):
        spec = QuerySpec.build(metrics=["count"], by=by, epsilon=1.0, delta=1e-6,
                               window=window)
        assert declared_partitions(spec, POLICY)[0] is None


def test_too_many_declared_partitions_fall_back_with_a_message() -> None:
    window = TimeWindow(dt.datetime(2000, 1, 1, tzinfo=dt.UTC),
                        dt.datetime(2024, 1, 1, tzinfo=dt.UTC))  # 8 766 days × 5 platforms
    spec = QuerySpec.build(metrics=["count"], by=["platform", "day"], epsilon=1.0,
                           delta=1e-6, unit="user", window=window, min_cohort=0)
    keys, _, note = declared_partitions(spec, POLICY)
    assert keys is None
    assert note is not None
    assert f"{MAX_DECLARED_PARTITIONS:,}" in note
    c = compile_query(spec, arrow_source(_events_table()), DuckDBEngine(), policy=POLICY)
    assert c.selection is not None
    assert any("selected privately" in n for n in c.notes)


# -- Gaussian queries ----------------------------------------------------------------------------

def test_gaussian_query_spends_zcdp_events_within_the_requested_budget(tmp_path: Path) -> None:
    book = BudgetLedger(tmp_path)
    book.grant("ana", 3.0, 1e-5)
    spec = QuerySpec.build(metrics=["count", "mean:v"], by=["part"], epsilon=1.0, delta=1e-6,
                           unit="user", clamp=ClampRange(lo=0, hi=10), mechanism="gaussian",
                           min_cohort=0)
    table = pa.table({"user": [f"u{i % 1000}" for i in range(3000)],  # 1000 users per part
                      "part": [f"p{i // 1000}" for i in range(3000)],
                      "v": [float(i % 10) for i in range(3000)]})
    c = compile_query(spec, arrow_source(table), DuckDBEngine())
    assert c.loss.epsilon <= 1
    assert c.loss.delta <= Fraction("1e-6")
    assert {type(e).__name__ for e in c.events} >= {"ZCdp", "ApproxDp"}
    rows = c.components["rows"].mechanism
    assert rows.sensitivity == pytest.approx(math.sqrt(5) * 10)  # k·√L0·L∞
    result = run_query(spec, arrow_source(table), ledger=book, analyst="ana", dataset="t")
    assert {r.mechanism for r in result.rows if r.metric == "count"} == {"discrete_gaussian"}
    assert result.budget is not None
    assert result.budget["spent"]["epsilon"] <= 1.0 + 1e-9
    stored = [e for e in book.entries() if e["state"] == "released"]
    assert len(stored) == 1
    assert any(isinstance(e, ZCdp) for e in c.events)


def test_gaussian_needs_delta() -> None:
    from anonymetry.errors import InvalidParameter

    with pytest.raises(InvalidParameter, match="gaussian"):
        QuerySpec.build(metrics=["count"], epsilon=1.0, mechanism="gaussian")


# -- k (key epochs) from the source's layout, without a data pass ---------------------------------

def test_epoch_count_comes_from_parquet_statistics_and_bounds_the_filtered_count(
        tmp_path: Path) -> None:
    """Footer statistics say epochs 3..7 (a span of 5) although only 3 and 7 hold rows; the
    bound is the span, never below the distinct epochs of any filter (here 1 or 2)."""
    import pyarrow.parquet as pq

    from anonymetry.analytics.engines.duckdb import layout_epochs

    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"user": ["a", "b", "c"], "x": [1, 2, 3],
                             "epoch": pa.array([3, 7, 7], pa.int32())}), path)
    source = Source(SourceKind.PARQUET, str(path))
    assert layout_epochs(source, "epoch") == 5
    spec = QuerySpec.build(metrics=["count"], epsilon=1.0, unit="user", filters=["x=1"])
    c = compile_query(spec, source, DuckDBEngine())
    assert c.units_per_person == 5
    csv = tmp_path / "t.csv"
    csv.write_text("user,x,epoch\na,1,3\nb,2,7\n")
    c = compile_query(spec, Source(SourceKind.CSV, str(csv)), DuckDBEngine())
    assert c.units_per_person == 1  # CSV: the filtered count (only epoch 3 has x = 1)
