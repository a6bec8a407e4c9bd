"""The report renders what the real parts produce, unchanged: a risk assessment, trace risk and
release verdict computed by ``anonymetry.risk`` on a small generated population."""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from anonymetry.policy import default_policy
from anonymetry.report import DashboardData, build_charts, parse_risk, render_html

risk_api = pytest.importorskip("anonymetry.risk")
traces_api = pytest.importorskip("anonymetry.risk.traces")


def _population() -> pa.Table:
    """300 users with 2–3 devices' worth of events over a week (seeded; not-privacy)."""
    rng = np.random.default_rng(7)
    users = np.repeat(np.arange(300), rng.integers(5, 40, size=300))
    n = len(users)
    start = dt.datetime(2024, 5, 6, tzinfo=dt.UTC).timestamp()
    return pa.table({
        "user": [f"u{u:04d}" for u in users],
        "time": pa.array((start + rng.integers(0, 7 * 86400, size=n)).astype("datetime64[s]")),
        "event": rng.choice(["app.screen_view", "app.session_start", "app.crash"], size=n,
                            p=[0.7, 0.25, 0.05]),
        "platform": rng.choice(["ios", "android", "web"], size=n),
        "app_version": rng.choice(["3.9.2", "3.10.0", "3.11.1"], size=n),
        "country": rng.choice(["DE", "FR", "NL", "PL"], size=n),
    })


def test_real_risk_assessment_renders_unchanged() -> None:
    table = _population()
    policy = default_policy()
    con = duckdb.connect()
    con.register("events", table)
    qi = ["platform", "app_version", "country"]
    table_risk = risk_api.assess_table(con, '"events"', qi)
    traces = traces_api.trace_uniqueness(table, points=(1, 2, 4),
                                         granularities=("minute", "hour", "day"),
                                         sample_users=200, seed=11)
    verdict = risk_api.evaluate(policy.release, table=table_risk, traces=traces,
                                trace_granularity="hour")
    # the same JSON `anonymetry check --report` writes
    report = {"verdict": verdict.to_dict(), "table": table_risk.to_dict(),
              "traces": traces.to_dict(), "linkage": None}
    risk = parse_risk(report, source="check report")
    assert risk.k == table_risk.k
    assert dict(risk.class_size_histogram) == dict(table_risk.class_size_histogram)
    assert risk.sample_uniqueness == table_risk.sample_uniqueness
    assert risk.verdict.passed is verdict.passed
    assert [c.name for c in risk.verdict.checks] == [c.name for c in verdict.checks]
    assert sorted((t.granularity, t.points, t.uniqueness) for t in risk.trace_uniqueness) == \
        sorted((r.granularity, r.points, r.share) for r in traces.rows)

    data = DashboardData.build(risk=risk)
    charts = {c.id: c for c in build_charts(data)}
    drawn = sorted(v for t in charts["risk-trace"].figure["data"] for v in t["y"])
    assert drawn == sorted(r.share for r in traces.rows)
    page = render_html(data)
    assert 'data-table-for="risk-gate"' in page
    for check in verdict.checks:
        assert check.name in page


def test_store_dir_counters_are_shown_as_the_store_holds_them(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`store: DIR` reads the real store's counters (stored per event, discarded per reason)."""
    import secrets

    from anonymetry.ingest.reader import store_stats
    from anonymetry.ingest.store import EventStore, StoredEvent
    from anonymetry.privacy import LocalKeyring
    from anonymetry.report import build_dashboard, parse_spec

    policy = default_policy()
    data = tmp_path / "data"
    epoch = 20000
    events = [StoredEvent(dedup=secrets.token_hex(16), epoch=epoch, event=name,
                          time=epoch * 30 * 86400 + 3600 + i, user="u" * 32, device="d" * 32,
                          consent="usage", attrs={"platform": "ios"})
              for i, name in enumerate(["screen.view"] * 5 + ["app.crash"] * 2)]
    with EventStore(data, policy, LocalKeyring(data / "keys")) as store:
        store.append_blocking(events, discards={"consent": 3, "invalid": 1})
    truth = store_stats(data, LocalKeyring(data / "keys"))
    dash = build_dashboard(parse_spec({"store": "data"}, base=tmp_path))
    assert dash.store is not None
    assert dash.store.stored == truth["stored"] == 7
    assert dict(dash.store.by_event) == truth["by_event"]
    assert dash.store.discarded["consent"] == 3
    assert dash.store.discarded_total == 4


def _sessions_parquet(path) -> None:  # type: ignore[no-untyped-def]
    """2000 users' sessions over 14 days on three platforms (seeded; not-privacy)."""
    import pyarrow.parquet as pq

    rng = np.random.default_rng(5)
    n = 30_000
    start = dt.datetime(2024, 5, 6, tzinfo=dt.UTC).timestamp()
    pq.write_table(pa.table({
        "user": [f"u{u:05d}" for u in rng.integers(0, 2000, size=n)],
        "time": pa.array((start + rng.integers(0, 14 * 86400, size=n)).astype("datetime64[s]")),
        "platform": rng.choice(["ios", "android", "web"], size=n),
        "duration_ms": rng.gamma(2.0, 800.0, size=n),
    }), path)


def test_real_dp_result_and_ledger_render_unchanged(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A spec's query runs through anonymetry.analytics (spending from a real ledger); the
    dashboard shows exactly the released numbers and the ledger's spent/left."""
    analytics = pytest.importorskip("anonymetry.analytics")
    if not hasattr(analytics, "run_query"):
        pytest.skip("anonymetry.analytics has no run_query yet")
    from anonymetry.report import build_dashboard, load_spec

    _sessions_parquet(tmp_path / "sessions.parquet")
    analytics.BudgetLedger(tmp_path / "ledger").grant("alice", 4.0, 1e-5)
    (tmp_path / "spec.yaml").write_text(
        "title: real\n"
        "ledger: ledger\n"
        "queries:\n"
        "  - {title: Sessions per day, source: sessions.parquet, unit: user, metric: count,\n"
        "     by: [day, platform], epsilon: 1.0, delta: 1.0e-6, analyst: alice,\n"
        "     options: {max_partitions: 14, max_per_partition: 5}}\n", encoding="utf-8")
    data = build_dashboard(load_spec(tmp_path / "spec.yaml"))
    (result,) = data.results
    released = analytics.BudgetLedger(tmp_path / "ledger").entries()
    assert [e["state"] for e in released] == ["released"]
    assert result.epsilon == 1.0
    assert len(result.rows) > 0

    charts = build_charts(data)
    chart = charts[0]
    drawn = {}
    for t in chart.figure["data"]:
        if t["meta"]["role"] == "value":
            for j, i in enumerate(t["meta"]["rows"]):
                drawn[i] = t["y"][j]
    assert drawn == {i: r.value for i, r in enumerate(result.rows)}
    assert chart.figure["layout"]["xaxis"]["type"] == "date"  # "day" is a time axis
    page = render_html(data)
    for r in result.rows:
        assert f'data-value="{r.value!r}"' in page
    line, unspent = data.budgets  # the account spent from, and alice's grant on any other
    assert (line.dataset, line.analyst) == ("sessions", "alice")
    assert (unspent.dataset, unspent.spent, unspent.remaining) == ("*", 0.0, 4.0)
    assert line.granted == 4.0
    assert 0 < line.spent <= 4.0
    assert line.remaining == pytest.approx(4.0 - line.spent)


def test_bias_report_of_a_real_result_renders_with_its_intervals() -> None:
    """A real analytics result on few people: the chart's details carry the bias shares with
    their 95 % intervals and say that the estimate is uninformative (its ε share is small)."""
    from anonymetry.analytics import QuerySpec, run_query
    from anonymetry.analytics.sources import arrow_source
    from anonymetry.privacy.units import ClampRange
    from anonymetry.report import parse_result
    from anonymetry.report.charts import _details

    table = _population().append_column("duration_ms", pa.array(
        np.arange(_population().num_rows, dtype=float) % 900))  # not-privacy: fixture data
    spec = QuerySpec.build(metrics=["count", "mean:duration_ms"], by=["platform"],
                           epsilon=1.0, delta=1e-6, unit="user", clamp=ClampRange(lo=0, hi=500),
                           min_cohort=0)
    result = parse_result(run_query(spec, arrow_source(table, "events")).to_dict())
    details = "\n".join(_details(result))
    assert "rows dropped share" in details
    assert "95% CI" in details
    assert "uninformative" in details
