"""DuckDB and Spark give identical pre-noise aggregates on the scenario table.

Property: for every scenario (a query as the compiler plans it, salt fixed), the per-partition
aggregates (``units``, ``rows``, ``sum``, ``csum``, ``csq``), the histogram weights and the
bounding diagnostics of the Spark engine equal the DuckDB engine's — integers exactly, doubles
within ``FLOAT_RTOL`` (summation order; see ``scenarios.DIVERGENCES``). Also: both choose a
unit's partitions by the same salted order, count the same epochs, see the same schema and
produce the same contribution profiles for ``suggest-bounds``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pyarrow as pa
import pytest

from anonymetry.analytics import DuckDBEngine, QuerySpec, Source, SourceKind, compile_query
from anonymetry.analytics.engines.base import Engine
from anonymetry.analytics.engines.order import unit_hash
from anonymetry.analytics.engines.spark import SparkEngine
from anonymetry.analytics.plan import BoundedAggregates, BoundedPlan
from anonymetry.analytics.spec import LinfMode

from .scenarios import FLOAT_RTOL, SCENARIOS, Scenario, make_table, write_parquet

pytestmark = pytest.mark.spark

INT_COLUMNS = {"units", "rows"}


@pytest.fixture(scope="module")
def table() -> pa.Table:
    return make_table()


@pytest.fixture(scope="module")
def source(table: pa.Table, tmp_path_factory: pytest.TempPathFactory) -> Source:
    glob = write_parquet(tmp_path_factory.mktemp("events"), table)
    return Source(SourceKind.PARQUET, str(glob))


@pytest.fixture(scope="module")
def duck() -> DuckDBEngine:
    return DuckDBEngine()


@pytest.fixture(scope="module")
def spark(spark_session: Any) -> SparkEngine:
    return SparkEngine(spark_session)


def plan_of(scenario: Scenario, source: Source) -> BoundedPlan:
    compiled = compile_query(scenario.spec, source, DuckDBEngine())
    return dataclasses.replace(compiled.plan, salt=scenario.salt)


def _num(v: Any) -> float | int | None:
    if v is None:
        return None
    f = float(v)
    return int(f) if f.is_integer() and abs(f) < 2**53 else f


def normalize(agg: BoundedAggregates, plan: BoundedPlan) -> dict[str, Any]:
    names = plan.key_names
    parts = {}
    for row in agg.partitions.to_pylist():
        key = tuple(row[n] for n in names)
        parts[key] = {c: _num(v) for c, v in row.items() if c not in names}
    hist = {}
    if agg.histogram is not None:
        for row in agg.histogram.to_pylist():
            hist[(tuple(row[n] for n in names), int(row["bin"]))] = float(row["weight"])
    diag = None
    if agg.diagnostics is not None:
        d = agg.diagnostics
        diag = (d.dropped_share_sum, d.clamped_share_sum, d.units)
    return {"partitions": parts, "histogram": hist, "diagnostics": diag}


def assert_same(a: dict[str, Any], b: dict[str, Any], *, columns: set[str] | None = None) -> None:
    """``a`` and ``b`` agree: same partitions, ints exact, doubles within FLOAT_RTOL."""
    assert a["partitions"].keys() == b["partitions"].keys()
    for key, row in a["partitions"].items():
        other = b["partitions"][key]
        assert row.keys() == other.keys(), key
        for col, v in row.items():
            if columns is not None and col not in columns:
                continue
            w = other[col]
            if col in INT_COLUMNS or v is None or w is None:
                assert v == w, (key, col, v, w)
            else:
                assert math.isclose(v, w, rel_tol=FLOAT_RTOL, abs_tol=1e-9), (key, col, v, w)
    if columns is not None:
        return
    assert a["histogram"].keys() == b["histogram"].keys()
    for key, v in a["histogram"].items():
        assert math.isclose(v, b["histogram"][key], rel_tol=FLOAT_RTOL, abs_tol=1e-9), key
    if a["diagnostics"] is None:
        assert b["diagnostics"] is None
    else:
        fa, ga, na = a["diagnostics"]
        fb, gb, nb = b["diagnostics"]
        assert na == nb
        assert math.isclose(fa, fb, rel_tol=FLOAT_RTOL, abs_tol=1e-9)
        assert math.isclose(ga, gb, rel_tol=FLOAT_RTOL, abs_tol=1e-9)


def run(engine: Engine, plan: BoundedPlan) -> dict[str, Any]:
    return normalize(engine.aggregate(plan), plan)


# -- the salted order -----------------------------------------------------------------------------

def _probe_source(units: list[Any]) -> tuple[Source, list[tuple[Any, str]]]:
    """Units with three partitions each; L0 = 1 keeps one partition per unit."""
    rows = [(u, p) for u in units for p in ("a", "b", "c")]
    table = pa.table({"user": [u for u, _ in rows], "event": [p for _, p in rows]})
    return Source(SourceKind.ARROW, obj=table), rows


TEXT_UNITS = [f"unit{i}" for i in range(8)]
INT_UNITS = [0, 1, -1, 2**63 - 1, -(2**63), 4_000_000_007, -123_456_789_012, 42]


def _choice(engine: Engine, units: list[Any], salt: int) -> set[tuple[str, str]] | None:
    source = _probe_source(units)[0]
    spec = QuerySpec.build(metrics=["count"], by=["event", "user"], epsilon=1.0, delta=1e-6,
                           max_partitions=1, max_per_partition=1)
    # group by (event, user) so each kept (unit, partition) shows up as its own row
    plan = dataclasses.replace(compile_query(spec, source, DuckDBEngine()).plan, salt=salt,
                               diagnostics=False)
    out = engine.aggregate(plan).partitions.to_pylist()
    return {(str(r["user"]), r["event"]) for r in out} if out else None


def _rotation_choice(units: list[Any], salt: int) -> set[tuple[str, str]]:
    """The documented rule (``engines.order``): a unit's partitions sorted by key text, the one
    at position ``unit_hash mod n`` ranks first; L0 = 1 keeps it."""
    rows = _probe_source(units)[1]
    out = set()
    for u in units:
        keys = sorted((p, str(u)) for uu, p in rows if uu == u)
        event, user = keys[unit_hash(u, salt) % len(keys)]
        out.add((user, event))
    return out


SALTS = (3, 2**62 + 11)


@pytest.mark.parametrize("units", [TEXT_UNITS, INT_UNITS], ids=["text", "int64"])
@pytest.mark.parametrize("which", ["duckdb", "spark"])
def test_engine_keeps_the_partitions_of_the_portable_salted_rotation(
        which: str, units: list[Any], duck: DuckDBEngine, spark: SparkEngine) -> None:
    """Which partition a unit keeps under L0 is the salted rotation of ``engines.order``, on
    both engines, for text and 64-bit integer units (extremes and negatives included; 2 salts,
    8 units each: another choice agrees by chance with probability ≤ 3^-16)."""
    engine = duck if which == "duckdb" else spark
    for salt in SALTS:
        assert _choice(engine, units, salt) == _rotation_choice(units, salt)


@pytest.mark.parametrize("units", [TEXT_UNITS, INT_UNITS], ids=["text", "int64"])
def test_probe_depends_on_the_salt(units: list[Any]) -> None:
    """The probe can fail: different salts choose different partitions."""
    assert len({frozenset(_rotation_choice(units, s)) for s in SALTS}) > 1


# -- the scenario table ---------------------------------------------------------------------------

@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_engines_agree(scenario: Scenario, source: Source, duck: DuckDBEngine,
                       spark: SparkEngine) -> None:
    plan = plan_of(scenario, source)
    a, b = run(duck, plan), run(spark, plan)
    if "sample" in scenario.tags:
        # L0 never binds here, so units and rows do not depend on the order; which rows are
        # sampled does (DIVERGENCES['sample over non-string columns']), so sums are not compared
        assert_same(a, b, columns={"units", "rows"})
        return
    assert_same(a, b)


def test_order_free_scenarios_are_order_free(source: Source, duck: DuckDBEngine) -> None:
    """The ``order_free`` flag is true: no unit exceeds L0 partitions and L∞ is weighted."""
    for scenario in SCENARIOS:
        if not scenario.order_free:
            continue
        plan = plan_of(scenario, source)
        assert plan.linf_mode is LinfMode.WEIGHT, scenario.name
        if not plan.bounding:
            continue
        most = max((r["n"] for r in duck.profile(plan)["partitions"].to_pylist()), default=0)
        assert most <= plan.bounds.max_partitions, scenario.name


def test_order_dependent_scenarios_really_bind(source: Source, duck: DuckDBEngine) -> None:
    """The other scenarios do exercise the order: some unit has more than L0 partitions."""
    for scenario in SCENARIOS:
        if scenario.order_free or "sample" in scenario.tags:
            continue
        plan = plan_of(scenario, source)
        most = max(r["n"] for r in duck.profile(plan)["partitions"].to_pylist())
        assert most > plan.bounds.max_partitions, scenario.name


def test_arrow_source_matches_parquet_source(table: pa.Table, source: Source,
                                             spark: SparkEngine) -> None:
    """An in-memory Arrow table handed to Spark gives what Spark reads from Parquet."""
    scenario = next(s for s in SCENARIOS if s.name.startswith("mean and count"))
    plan = plan_of(scenario, source)
    arrow_plan = dataclasses.replace(plan, source=Source(SourceKind.ARROW, obj=table))
    assert_same(run(spark, plan), run(spark, arrow_plan))


def test_count_epochs_and_schema_agree(source: Source, duck: DuckDBEngine,
                                       spark: SparkEngine) -> None:
    plan = plan_of(SCENARIOS[0], source)
    assert duck.count_epochs(plan) == spark.count_epochs(plan) == 3
    window = next(s for s in SCENARIOS if s.spec.window is not None)
    wplan = plan_of(window, source)
    assert duck.count_epochs(wplan) == spark.count_epochs(wplan)
    assert duck.schema(source).names == spark.schema(source).names


def _profile_dict(profile: dict[str, Any]) -> dict[str, dict[Any, float]]:
    out = {}
    for name, tab in profile.items():
        rows = tab.to_pylist()
        key = "b" if name == "values" else "n"
        out[name] = {int(r[key]): float(r["w"]) for r in rows}
    return out


def test_profiles_agree(source: Source, duck: DuckDBEngine, spark: SparkEngine) -> None:
    """``suggest-bounds`` sees the same contribution profiles on both engines."""
    scenario = next(s for s in SCENARIOS if s.name.startswith("sum clamped"))
    plan = plan_of(scenario, source)
    a, b = _profile_dict(duck.profile(plan)), _profile_dict(spark.profile(plan))
    assert a.keys() == b.keys() == {"partitions", "rows", "values"}
    for name in a:
        assert a[name].keys() == b[name].keys(), name
        for k, v in a[name].items():
            assert math.isclose(v, b[name][k], rel_tol=FLOAT_RTOL), (name, k)


def test_scenarios_cover_every_aggregate(source: Source) -> None:
    """The table exercises every aggregate column and both L∞ modes."""
    seen = set()
    for scenario in SCENARIOS:
        plan = plan_of(scenario, source)
        seen |= {a.value for a in plan.aggs} | {plan.linf_mode.value}
    assert {"units", "rows", "sum", "csum", "csq", "hist", "weight", "sample"} <= seen

