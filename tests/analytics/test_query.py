"""End-to-end queries through the Python API and the CLI.

What each test shows is in its name; the DP noise is real (OpenDP), so value checks use a large
ε and compare with tolerances far above the stated noise scale.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from anonymetry.analytics import DuckDBEngine, LinfMode, QuerySpec, TimeWindow, compile_query
from anonymetry.analytics import run_query as _run
from anonymetry.analytics.sources import arrow_source, file_source
from anonymetry.cli._common import run_cli
from anonymetry.cli.main import app
from anonymetry.errors import InvalidParameter
from anonymetry.policy import default_policy
from anonymetry.privacy.units import ClampRange

T0 = dt.datetime(2024, 6, 3, tzinfo=dt.UTC)  # Monday
POLICY = default_policy()


def events(users: int = 300, seed: int = 3, *, epochs: bool = False) -> pa.Table:
    """Rows over 14 days from 2024-06-03; with ``epochs`` an ``epoch`` column (30-day key
    epochs: the days straddle the boundary of 2024-06-18, so the table spans 2 epochs)."""
    import numpy as np

    rng = np.random.default_rng(seed)  # not-privacy: fixture data
    rows = users * 10
    u = rng.integers(0, users, rows)
    secs = int(T0.timestamp()) + rng.integers(0, 14 * 86400, rows)
    table = pa.table({
        "user": pa.array([f"user{i:04d}" for i in u]),
        "platform": pa.array(rng.choice(["ios", "android", "web"], rows)),
        "duration_ms": pa.array(rng.uniform(0, 1000, rows)),
        "time": pa.array(secs, pa.timestamp("s", tz="UTC")),
    })
    if epochs:
        table = table.append_column("epoch", pa.array((secs // (30 * 86400)).astype("int32")))
    return table


def run(spec: QuerySpec, table: pa.Table, **kw: Any) -> Any:
    return _run(spec, arrow_source(table, "events"), **kw)


def test_json_result_has_the_contract_keys() -> None:
    spec = QuerySpec.build(metrics=["count", "mean:duration_ms"], by=["platform"], epsilon=1.0,
                           delta=1e-6, unit="user", clamp=ClampRange(lo=0, hi=1000))
    out = run(spec, events()).to_dict()
    for key in ("epsilon", "delta", "unit", "bounds", "rows", "suppressed_partitions",
                "bounding_bias", "budget_split", "partition_selection", "guarantee"):
        assert key in out
    row = out["rows"][0]
    assert set(row) >= {"by", "metric", "value", "noise_scale", "ci95"}
    assert out["epsilon"] <= 1.0
    assert out["delta"] == pytest.approx(1e-6)
    assert {"rows_dropped_share", "values_clamped_share"} <= set(out["bounding_bias"])
    split_eps = sum(s["epsilon"] for s in out["budget_split"])
    assert split_eps == pytest.approx(1.0)


def test_metric_values_are_close_to_truth_with_large_epsilon() -> None:
    table = events()
    spec = QuerySpec.build(metrics=["count", "users", "sum:duration_ms", "mean:duration_ms",
                                    "variance:duration_ms", "p50:duration_ms"],
                           epsilon=200.0, unit="user", clamp=ClampRange(lo=0, hi=1000),
                           max_partitions=1, max_per_partition=100, bins=50)
    res = {r.metric: r for r in run(spec, table).rows}
    vals = table["duration_ms"].to_pylist()
    n = len(vals)
    mean = sum(vals) / n
    assert res["count"].value == pytest.approx(n, abs=30)
    assert res["users"].value == pytest.approx(len(set(table["user"].to_pylist())), abs=5)
    assert res["sum(duration_ms)"].value == pytest.approx(sum(vals), rel=0.02)
    assert res["mean(duration_ms)"].value == pytest.approx(mean, abs=10)
    var = sum((v - mean) ** 2 for v in vals) / n
    assert res["variance(duration_ms)"].value == pytest.approx(var, rel=0.05)
    assert res["p50(duration_ms)"].value == pytest.approx(sorted(vals)[n // 2], abs=40)
    for r in res.values():
        assert r.ci95[0] <= r.value <= r.ci95[1]


def test_histogram_rows_per_bin() -> None:
    spec = QuerySpec.build(metrics=["histogram:duration_ms"], epsilon=50.0, unit="user",
                           clamp=ClampRange(lo=0, hi=1000), bins=4, max_per_partition=100)
    rows = run(spec, events()).rows
    assert [r.by["duration_ms_bin"] for r in rows] == [
        "[0, 250)", "[250, 500)", "[500, 750)", "[750, 1000)"]
    assert sum(r.value for r in rows) == pytest.approx(3000, rel=0.05)


def test_public_partitions_missing_ones_appear_with_noise() -> None:
    spec = QuerySpec.build(metrics=["count"], by=["platform"], epsilon=1.0, unit="user",
                           public_partitions=(("ios",), ("windows",)), min_cohort=0)
    result = run(spec, events())
    assert [r.by["platform"] for r in result.rows] == ["ios", "windows"]
    assert result.partition_selection["mode"] == "public"
    assert result.delta == 0  # no δ spent with public partitions


def test_private_selection_hides_a_one_person_group() -> None:
    table = events()
    solo = pa.table({c: table[c][:1] for c in table.column_names}).set_column(
        1, "platform", pa.array(["symbian"]))
    spec = QuerySpec.build(metrics=["count"], by=["platform"], epsilon=1.0, delta=1e-9,
                           unit="user")
    result = run(spec, pa.concat_tables([table, solo]))
    shown = {r.by["platform"] for r in result.rows}
    assert "symbian" not in shown
    assert shown == {"ios", "android", "web"}
    assert result.suppressed_partitions["threshold"] > 1


def test_private_selection_needs_delta() -> None:
    spec = QuerySpec.build(metrics=["count"], by=["platform"], epsilon=1.0, unit="user")
    with pytest.raises(InvalidParameter, match="delta"):
        run(spec, events())


def test_min_cohort_suppresses_small_noisy_groups() -> None:
    spec = QuerySpec.build(metrics=["count"], by=["platform"], epsilon=5.0, unit="user",
                           public_partitions=(("ios",), ("windows",)), min_cohort=20)
    result = run(spec, events())
    assert [r.by["platform"] for r in result.rows] == ["ios"]
    assert result.suppressed_partitions["by_min_cohort"] == 1


def test_day_and_week_keys_filters_and_time_window() -> None:
    spec = QuerySpec.build(metrics=["count"], by=["week", "platform"], epsilon=10.0,
                           delta=1e-6, unit="user", filters=["platform~ios|web"],
                           window=TimeWindow(T0, T0 + dt.timedelta(days=7)), min_cohort=0)
    rows = run(spec, events()).rows
    assert {r.by["week"] for r in rows} == {"2024-06-03"}
    assert {r.by["platform"] for r in rows} == {"ios", "web"}
    day = QuerySpec.build(metrics=["count"], by=["day"], epsilon=10.0, delta=1e-6,
                          unit="user", min_cohort=0)
    assert len(run(day, events()).rows) == 14


def test_query_spanning_k_epochs_scales_sensitivity_by_k_and_states_it() -> None:
    """Pseudonyms rotate per epoch: 2 epochs in the window → sensitivities ×2, per person."""
    engine = DuckDBEngine()
    table = events(epochs=True)
    src = arrow_source(table, "events")
    assert len(set(table["epoch"].to_pylist())) == 2  # the fixture spans an epoch boundary
    inside = QuerySpec.build(metrics=["count"], epsilon=1.0, unit="user", diagnostics=False,
                             window=TimeWindow(dt.datetime(2024, 6, 3, tzinfo=dt.UTC),
                                               dt.datetime(2024, 6, 10, tzinfo=dt.UTC)))
    assert compile_query(inside, src, engine, policy=POLICY).units_per_person == 1
    spanning = QuerySpec.build(metrics=["count"], epsilon=1.0, unit="user", diagnostics=False)
    c2 = compile_query(spanning, src, engine, policy=POLICY)
    assert c2.units_per_person == 2
    assert c2.components["rows"].mechanism.sensitivity == 2 * 5 * 10
    assert "2 key epochs" in c2.guarantee()
    assert "per person" in c2.guarantee()
    single = QuerySpec.build(metrics=["count"], epsilon=1.0, unit="user", diagnostics=False,
                             epoch=int(table["epoch"][0].as_py()), min_cohort=0)
    c3 = compile_query(single, src, engine, policy=POLICY)
    assert c3.units_per_person == 1
    assert c3.components["rows"].mechanism.sensitivity == 5 * 10
    rows = run(single, table, policy=POLICY).rows
    assert rows[0].noise_scale == pytest.approx(50 / 1.0)


def test_window_epochs_come_from_the_policy_not_the_data() -> None:
    spec = QuerySpec.build(metrics=["count"], epsilon=1.0, unit="user", diagnostics=False,
                           window=TimeWindow(dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
                                             dt.datetime(2024, 4, 1, tzinfo=dt.UTC)))
    c = compile_query(spec, arrow_source(events(epochs=True)), DuckDBEngine(), policy=POLICY)
    assert c.units_per_person == 4  # 91 days over 30-day epochs touch 4 epochs


def test_device_unit_guarantee_says_per_device() -> None:
    table = events().append_column("device", pa.array([f"d{i}" for i in range(3000)]))
    spec = QuerySpec.build(metrics=["count"], epsilon=1.0, unit="device", epoch=None,
                           diagnostics=False)
    result = run(spec, table)
    assert result.unit["kind"] == "device"
    assert "per device" in result.guarantee


@pytest.mark.parametrize("mode", list(LinfMode))
def test_both_linf_modes_bound_to_linf_rows(mode: LinfMode) -> None:
    table = pa.table({"user": ["a"] * 50 + ["b"], "p": ["x"] * 51})
    spec = QuerySpec.build(metrics=["count"], epsilon=1000.0, unit="user", max_per_partition=3,
                           linf_mode=mode, diagnostics=False)
    engine = DuckDBEngine()
    agg = engine.aggregate(compile_query(spec, arrow_source(table), engine).plan)
    assert agg.partitions["rows"].to_pylist() == [4]


def test_explain_mentions_guarantee_bounds_and_bias() -> None:
    spec = QuerySpec.build(metrics=["count"], by=["platform"], epsilon=1.0, delta=1e-6,
                           unit="user")
    text = run(spec, events()).explain()
    assert "differential privacy per person" in text
    assert "partition(s)" in text
    assert "Bias from bounding" in text


def test_store_source_is_queried_through_the_store_reader(tmp_path: Path, cli: Any) -> None:
    from anonymetry.analytics.sources import store_source
    from anonymetry.ingest.store import EventStore, StoredEvent
    from anonymetry.privacy import LocalKeyring

    epoch = 20000
    base = epoch * 30 * 86400 + 3600
    evs = [StoredEvent(dedup=secrets.token_hex(16), epoch=epoch, event="screen.view",
                       time=base + 3600 * (i % 48), user=f"{i % 40:032x}", device=f"{i:032x}",
                       consent="usage",
                       attrs={"platform": "ios" if i % 2 else "web", "app_version": "1.0",
                              "screen": "home", "duration_ms": i})
           for i in range(400)]
    with EventStore(tmp_path, POLICY, LocalKeyring(tmp_path / "keys"), instance="t") as store:
        store.append_blocking(evs)
        store.compact()
    spec = QuerySpec.build(metrics=["count"], by=["platform"], epsilon=50.0, delta=1e-6,
                           min_cohort=0)
    result = _run(spec, store_source(tmp_path, POLICY), policy=POLICY)
    # platform is declared with values in the policy: they are the (public) partitions
    assert [r.by["platform"] for r in result.rows] == [
        "ios", "android", "windows", "macos", "web"]
    assert result.partition_selection["mode"] == "public (declared in policy)"
    assert sum(r.value for r in result.rows) == pytest.approx(400, abs=40)
    assert result.unit["units_per_person"] == 1
    res = cli("query", "--data", str(tmp_path), "--metric", "users", "--by", "platform",
              "--epsilon", "50", "--delta", "1e-6", "--min-cohort", "0", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["unit"]["column"] == "user"
    assert sum(r["value"] for r in out["rows"]) == pytest.approx(40, abs=10)


# -- CLI ----------------------------------------------------------------------------------------
@dataclass
class Ran:
    exit_code: int
    stdout: str
    output: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run ``anonymetry ARGS`` as the console script does (errors → exit codes)."""

    def invoke(*args: str) -> Ran:
        monkeypatch.setattr(sys, "argv", ["anonymetry", *args])
        code = run_cli(app)
        out = capsys.readouterr()
        return Ran(code, out.out, out.out + out.err)

    return invoke


@pytest.fixture
def parquet(tmp_path: Path) -> Path:
    path = tmp_path / "events.parquet"
    pq.write_table(events(), path)
    return path


def test_cli_query_json_and_budget_flow(cli: Any, parquet: Path, tmp_path: Path) -> None:
    ledger = str(tmp_path / "ledger")
    ok = cli("budget", "grant", "--ledger", ledger, "--analyst", "ann", "--epsilon", "1.5",
             "--delta", "1e-5")
    assert ok.exit_code == 0, ok.output
    res = cli("query", str(parquet), "--unit", "user", "--metric", "count", "--metric",
              "mean:duration_ms", "--by", "platform", "--epsilon", "1", "--delta", "1e-6",
              "--clamp", "0,1000", "--max-partitions", "2", "--max-per-partition", "5",
              "--ledger", ledger, "--analyst", "ann", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["budget"]["spent"]["epsilon"] == pytest.approx(1.0)
    assert out["budget"]["remaining"]["epsilon"] == pytest.approx(0.5)
    assert out["bounds"]["max_partitions"] == 2
    refused = cli("query", str(parquet), "--unit", "user", "--metric", "count", "--epsilon",
                  "1", "--ledger", ledger, "--analyst", "ann", "--json")
    assert refused.exit_code == 1
    assert "remaining" in refused.output
    shown = cli("budget", "show", "--ledger", ledger, "--json")
    assert shown.exit_code == 0
    account = json.loads(shown.stdout)["accounts"][0]
    assert account["queries"] == 1
    assert account["spent"]["epsilon"] == pytest.approx(1.0)


def test_cli_bad_input_exits_2_naming_the_field(cli: Any, parquet: Path) -> None:
    res = cli("query", str(parquet), "--unit", "user", "--metric", "mean:duration_ms",
              "--epsilon", "1")
    assert res.exit_code == 2
    assert "clamp" in res.output
    res = cli("query", str(parquet), "--unit", "nope", "--epsilon", "1")
    assert res.exit_code == 2
    assert "unit" in res.output
    res = cli("query", str(parquet), "--unit", "user", "--epsilon", "nan")
    assert res.exit_code == 2


def test_cli_suggest_bounds(cli: Any, parquet: Path) -> None:
    res = cli("suggest-bounds", str(parquet), "--unit", "user", "--by", "platform", "--value",
              "duration_ms", "--epsilon", "1", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["epsilon"] == pytest.approx(1.0)
    assert 1 <= out["max_partitions"] <= 7
    assert 1 <= out["max_per_partition"] <= 31
    lo, hi = out["clamp"]
    assert 0 <= lo < hi <= 2048


def test_file_source_rejects_unknown_suffix(tmp_path: Path) -> None:
    p = tmp_path / "x.txt"
    p.write_text("a")
    with pytest.raises(InvalidParameter, match="parquet"):
        file_source(p)


def test_public_partitions_file_csv_and_json(tmp_path: Path) -> None:
    from anonymetry.analytics.sources import load_public_partitions

    csv_path = tmp_path / "p.csv"
    csv_path.write_text("platform,week\nios,2024-06-03\nweb,2024-06-10\n")
    assert load_public_partitions(csv_path, ("platform", "week")) == (
        ("ios", "2024-06-03"), ("web", "2024-06-10"))
    js = tmp_path / "p.json"
    js.write_text('[{"platform": "ios"}, {"platform": "web"}]')
    assert load_public_partitions(js, ("platform",)) == (("ios",), ("web",))
    with pytest.raises(InvalidParameter, match="lacks"):
        load_public_partitions(csv_path, ("os",))


def test_noise_handles_counts_beyond_32_bits() -> None:
    from anonymetry.privacy.mechanisms import LaplaceMechanism

    out = LaplaceMechanism(1, 1.0, True).release([3_000_000_000])
    assert abs(out[0] - 3_000_000_000) < 1000


def _bias_table(users: int) -> pa.Table:
    """Every user: 20 rows on each of 3 platforms, half at 250 and half at 750 ms. With L0 = 1,
    L∞ = 5 and clamp [0, 500], each unit keeps 5 of its 60 rows (55/60 dropped) and half of its
    kept values are clamped: the true shares are known exactly."""
    n = users * 60
    idx = pa.array(range(n)).to_numpy()
    return pa.table({
        "user": pa.array([f"u{i // 60:05d}" for i in idx]),
        "platform": pa.array([("ios", "android", "web")[(i // 20) % 3] for i in idx]),
        "duration_ms": pa.array([250.0 if i % 2 else 750.0 for i in idx]),
    })


def _bias_spec() -> QuerySpec:
    return QuerySpec.build(metrics=["count", "mean:duration_ms"], by=["platform"], epsilon=1.0,
                           unit="user", clamp=ClampRange(lo=0, hi=500),
                           max_partitions=1, max_per_partition=5,
                           public_partitions=(("ios",), ("android",), ("web",)))


def test_bias_report_intervals_cover_the_true_shares() -> None:
    """The bias shares are DP estimates: their 95 % intervals (union bound over the three noisy
    sums) contain the exact shares in at least 95 % of runs; here in ≥ 36 of 40."""
    table, spec = _bias_table(2000), _bias_spec()
    covered = 0
    for _ in range(40):
        bias = run(spec, table).bounding_bias
        lo, hi = bias["rows_dropped_ci95"]
        clo, chi = bias["values_clamped_ci95"]
        covered += (lo <= 55 / 60 <= hi) and (clo <= 0.5 <= chi)
    assert covered >= 36


def test_bias_report_says_when_too_few_units_make_it_uninformative() -> None:
    """On 20 units the 5 % ε share gives intervals wider than half of [0, 1]: flagged and
    explained; on 20,000 units the interval is narrow and the flag is set."""
    small = run(_bias_spec(), _bias_table(20))
    assert small.bounding_bias["informative"] is False
    assert "Too few units for the bias estimate" in small.explain()
    big = run(_bias_spec(), _bias_table(20_000)).bounding_bias
    assert big["informative"] is True
    lo, hi = big["rows_dropped_ci95"]
    assert hi - lo < 0.1
    assert lo <= 55 / 60 <= hi
