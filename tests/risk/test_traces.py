"""Trace uniqueness (anonymetry.risk.traces): exact small cases, an exact oracle for whole
traces, and the population-level property the policy's time granularity is chosen from."""

from __future__ import annotations

import datetime as dt
from itertools import pairwise

import duckdb
import pyarrow as pa
import pytest

from anonymetry.errors import InvalidParameter
from anonymetry.risk.traces import trace_uniqueness, wilson_interval

try:  # tests/risk as a package or as a rootdir-inserted folder
    from .traces_data import make_population
except ImportError:
    from traces_data import make_population

UTC = dt.UTC


def _t(hour: int, minute: int = 0, day: int = 4) -> dt.datetime:
    return dt.datetime(2024, 3, day, hour, minute, tzinfo=UTC)


def _table(rows: list[tuple]) -> pa.Table:
    """rows: (user, time, event, platform)."""
    return pa.table(
        {
            "user": [r[0] for r in rows],
            "time": pa.array([r[1] for r in rows], pa.timestamp("s", tz="UTC")),
            "event": [r[2] for r in rows],
            "platform": pa.array([r[3] for r in rows], pa.string()),
        }
    )


# a: {9h, 10h}, b: {9h, 11h}, c: {9h, 10h, 11h} (one event type, one platform)
NESTED = _table(
    [
        ("a", _t(9, 5), "app.launch", "ios"),
        ("a", _t(10, 7), "app.launch", "ios"),
        ("b", _t(9, 30), "app.launch", "ios"),
        ("b", _t(11, 2), "app.launch", "ios"),
        ("c", _t(9, 59), "app.launch", "ios"),
        ("c", _t(10, 0), "app.launch", "ios"),
        ("c", _t(11, 45), "app.launch", "ios"),
    ]
)


def test_hand_computed_nested_traces_at_hour_and_day() -> None:
    """At hour bins every single point is shared (nobody unique at p=1); with all their points
    only c is unique (a ⊂ c, b ⊂ c, and both are short of 3 points); at day bins all three
    traces are the same single point."""
    r = trace_uniqueness(
        NESTED, points=(1, 3), granularities=("hour", "day"), seed=11, exact_sets=True
    )
    one, three = r.at("hour", "all", 1), r.at("hour", "all", 3)
    assert (one.n, one.unique, one.short) == (3, 0, 0)
    assert (three.n, three.unique, three.short) == (3, 1, 2)
    assert three.median_anonymity_set == 2.0  # a: {a, c}, b: {b, c}, c: {c}
    day = r.at("day", "all", 3)
    assert (day.unique, day.short, day.median_anonymity_set) == (0, 3, 3.0)
    assert r.population_users == 3
    assert r.sample_users == 3
    assert r.stored_granularity == "minute"


def test_choice_of_points_matters_exactly_as_expected() -> None:
    """30 independent copies of the nested case, one per day. A c's 2 points single it out
    only when they are {10h, 11h}: 1 of its 3 pairs; a and b are never unique. So the unique
    count is Binomial(30, 1/3) over the c's: some but not all copies (a fixed or biased choice
    of points would show 0 or 30; by chance that has probability < 1e-5), and the share
    among the c's is consistent with 1/3."""
    rows = []
    for day in range(1, 31):
        for user, hours in (("a", (9, 10)), ("b", (9, 11)), ("c", (9, 10, 11))):
            rows += [(f"{user}{day}", _t(h, 0, day), "app.launch", "ios") for h in hours]
    r = trace_uniqueness(_table(rows), points=(2,), granularities=("hour",), seed=5)
    row = r.at("hour", "all", 2)
    assert row.n == 90
    assert 0 < row.unique < 30
    lo, hi = wilson_interval(row.unique, 30)
    assert lo <= 1 / 3 <= hi


def test_attributes_and_missing_values_are_part_of_a_point() -> None:
    """Same hours, different platforms: unique with platform, not without. A missing platform
    is a value of its own that two users can share."""
    t = _table(
        [
            ("u1", _t(9), "app.launch", "ios"),
            ("u2", _t(9), "app.launch", "android"),
            ("u3", _t(9), "app.launch", None),
            ("u4", _t(9), "app.launch", None),
        ]
    )
    r = trace_uniqueness(t, points=(1,), granularities=("hour",), seed=1)
    assert r.at("hour", "all", 1).unique == 2  # u1, u2; u3 and u4 share (9h, launch, NULL)
    assert r.at("hour", "without platform", 1).unique == 0
    assert r.at("hour", "time only", 1).unique == 0
    assert r.at("hour", "all", 1).attributes == ("event", "platform")


def _oracle_whole_trace_unique(table: pa.Table, granularity: str) -> int:
    """Users whose whole trace (set of (bin, event, platform)) is contained in nobody else's."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("pop", table)
    rows = con.execute(
        f"SELECT DISTINCT user, date_trunc('{granularity}', timezone('UTC', time)), event, "
        "platform FROM pop"
    ).fetchall()
    traces: dict[str, set] = {}
    for u, *point in rows:
        traces.setdefault(u, set()).add(tuple(point))
    return sum(
        1
        for u, tr in traces.items()
        if not any(tr <= other for v, other in traces.items() if v != u)
    )


@pytest.mark.parametrize("exact_sets", [False, True])
@pytest.mark.parametrize("granularity", ["hour", "day"])
def test_whole_traces_match_a_brute_force_oracle(granularity: str, exact_sets: bool) -> None:
    """With p above every trace's length, the measure is deterministic: compare it with a
    pure-Python subset check on a small generated population (both scan modes)."""
    pop = make_population(n_users=60, days=7, seed=5)
    r = trace_uniqueness(
        pop,
        points=(10_000,),
        granularities=(granularity,),
        attribute_sets={"all": ("event", "platform")},
        seed=3,
        exact_sets=exact_sets,
    )
    row = r.at(granularity, "all", 10_000)
    assert row.n == 60
    assert row.short == 60
    assert row.unique == _oracle_whole_trace_unique(pop, granularity)
    assert 0 < row.unique < 60


def test_witness_shortcut_gives_the_exact_scan_counts() -> None:
    """The witness pass only skips targets already shown to be shared, so unique counts equal
    the full scan's everywhere; only the full scan reports anonymity-set medians."""
    pop = make_population(n_users=400, days=14, seed=8)
    kw = {"points": (1, 2, 4), "granularities": ("minute", "hour", "day"), "seed": 4}
    fast = trace_uniqueness(pop, **kw)
    full = trace_uniqueness(pop, exact_sets=True, **kw)
    assert [r.unique for r in fast.rows] == [r.unique for r in full.rows]
    assert sum(r.unique for r in fast.rows) > 0
    assert all(r.median_anonymity_set is not None for r in full.rows)
    assert all(r.median_anonymity_set is None for r in fast.rows if r.points > 1)


@pytest.fixture(scope="module")
def population_risk():
    pop = make_population(n_users=1500, days=28, seed=7)
    return trace_uniqueness(
        pop,
        points=(1, 2, 4),
        granularities=("minute", "hour", "day", "week"),
        attribute_sets={"all": ("event", "platform"), "without platform": ("event",)},
        sample_users=800,
        seed=20240304,
    )


def test_uniqueness_falls_as_time_is_coarsened(population_risk) -> None:
    """p=4 on a multi-device population: minute → hour → day → week never rises beyond the
    finer level's 95 % upper bound, the overall fall is significant (week's upper bound below
    minute's lower bound), and the levels are where the literature puts them (minute bins
    single out almost everyone, week bins almost nobody)."""
    order = ["minute", "hour", "day", "week"]
    rows = [population_risk.at(g, "all", 4) for g in order]
    for fine, coarse in pairwise(rows):
        assert coarse.share <= fine.ci_high, (fine, coarse)
    assert rows[-1].ci_high < rows[0].ci_low
    assert rows[0].share >= 0.9
    assert rows[-1].share <= 0.05
    assert all(r.n == 800 for r in rows)


def test_more_points_and_more_attributes_single_out_more(population_risk) -> None:
    """Within a run the chosen points are nested, so uniqueness never falls with p; dropping
    the platform (the device a person uses) lowers it at hour bins."""
    for g in ("minute", "hour", "day", "week"):
        shares = [population_risk.at(g, "all", p).unique for p in (1, 2, 4)]
        assert shares == sorted(shares)
    with_p = population_risk.at("hour", "all", 4)
    without = population_risk.at("hour", "without platform", 4)
    assert without.ci_high < with_p.ci_low


def test_sample_is_bounded_reported_and_reproducible() -> None:
    pop = make_population(n_users=300, days=7, seed=9)
    kw = {"points": (2,), "granularities": ("hour",), "sample_users": 120}
    a = trace_uniqueness(pop, seed=42, **kw)
    b = trace_uniqueness(pop, seed=42, **kw)
    assert a.to_dict() == b.to_dict()
    assert a.sample_users == 120
    assert a.population_users == 300
    assert a.at("hour", "all", 2).n == 120
    fresh = trace_uniqueness(pop, **kw)  # seed drawn with secrets, reported for re-runs
    again = trace_uniqueness(pop, seed=fresh.seed, **kw)
    assert fresh.to_dict() == again.to_dict()


def test_finest_granularity_reads_the_upper_bound(population_risk) -> None:
    g = population_risk.finest_granularity(0.05, "all", 4)
    assert g in ("day", "week")
    assert population_risk.at(g, "all", 4).ci_high <= 0.05
    assert population_risk.finest_granularity(0.0, "all", 4) is None


def test_to_dict_is_json_and_inputs_other_than_arrow(tmp_path) -> None:
    import orjson

    path = tmp_path / "events.parquet"
    import pyarrow.parquet as pq

    pq.write_table(NESTED, path)
    r = trace_uniqueness(str(path), points=(3,), granularities=("hour",), seed=1)
    assert r.at("hour", "all", 3).unique == 1
    orjson.dumps(r.to_dict())
    con = duckdb.connect()
    con.register("nested_view", NESTED)
    con.execute("CREATE TABLE events AS SELECT * FROM nested_view")
    r2 = trace_uniqueness("events", con=con, points=(3,), granularities=("hour",), seed=1)
    assert r2.at("hour", "all", 3).unique == 1
    assert {t[0] for t in con.execute("SHOW TABLES").fetchall()} == {"events", "nested_view"}


def test_wilson_interval_known_values() -> None:
    lo, hi = wilson_interval(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-4)
    assert hi == pytest.approx(0.5962, abs=1e-4)
    assert wilson_interval(0, 10)[0] == 0.0
    assert wilson_interval(10, 10)[1] == 1.0


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"points": (0,)}, "points"),
        ({"granularities": ("fortnight",)}, "granularity"),
        ({"unit": "person"}, "not found"),
        ({"attribute_sets": {"x": ("nope",)}}, "not found"),
        ({"sample_users": 0}, "sample_users"),
    ],
)
def test_bad_arguments_are_named(kwargs, fragment) -> None:
    with pytest.raises(InvalidParameter, match=fragment):
        trace_uniqueness(NESTED, **kwargs)
