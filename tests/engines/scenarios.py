"""The scenario table every engine runs: queries (as the compiler plans them) over one small,
seeded event table, with the salt fixed so that bounding is reproducible.

Each :class:`Scenario` is a ``QuerySpec`` plus a fixed salt. ``order_free`` says that no unit
has more partitions than L0 in it (checked by ``test_order_free_scenarios_are_order_free``) and
that L∞ is weighted, not sampled: its result cannot depend on the salted order at all, so it
pins aggregation, filters, keys, clamping and weights even where engines order differently.
The others exercise the salted order (L0 selection, L∞ sampling).

Recorded per-engine divergences (``DIVERGENCES``) are the inherent ones: cases where engines
may legitimately differ and the table therefore compares with a stated tolerance or not at all.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from anonymetry.analytics.spec import LinfMode, QuerySpec, TimeWindow
from anonymetry.privacy.units import ClampRange

EVENTS = ("app.open", "screen.view", "search", "checkout", "error", "settings")
PLATFORMS = ("ios", "android", "web", None)
T0 = dt.datetime(2024, 6, 3, tzinfo=dt.UTC)  # a Monday
DAYS = 21

# Floating-point sums are compared with this relative tolerance: the engines add the same
# doubles in a different order (parallel partial sums), so the last bits may differ.
FLOAT_RTOL = 1e-9

DIVERGENCES: dict[str, str] = {
    "float sums": "sum/csum/csq/weights/diagnostics are doubles summed in engine-specific order: "
                  f"equal within rtol {FLOAT_RTOL}, not bit for bit",
    "csv": "Spark's CSV type inference differs from DuckDB's read_csv_auto (e.g. timestamps): "
           "the table uses Parquet; CSV sources are compared only on string/int columns",
    "sample over non-string columns": "LinfMode.SAMPLE orders rows by md5 of every column cast "
                                      "to text; DuckDB and Spark spell doubles and timestamps "
                                      "differently, so sampled rows differ unless the source "
                                      "holds only strings and integers",
}


def make_table(seed: int = 7, users: int = 48, rows: int = 2400) -> pa.Table:
    """Store-shaped events: a few heavy users, nulls in a key and in the value, outliers."""
    rng = np.random.default_rng(seed)  # not-privacy: fixture data
    weight = rng.pareto(1.2, users) + 1.0
    u = rng.choice(users, size=rows, p=weight / weight.sum())
    user_ids = np.array([f"{i:02d}" + f"{i * 7919:030x}" for i in range(users)])
    n_dev = rng.integers(1, 4, users)
    dev = (rng.random(rows) * n_dev[u]).astype(int)
    favourite = rng.integers(0, len(EVENTS), users)
    ev = np.where(rng.random(rows) < 0.5, favourite[u], rng.integers(0, len(EVENTS), rows))
    plat = rng.integers(0, len(PLATFORMS), users)[u]
    secs = int(T0.timestamp()) + rng.integers(0, DAYS * 86400, rows)
    secs -= secs % 3600
    # values on a 0.25 grid (exact in binary), with negatives, outliers and nulls
    value = np.round(rng.normal(20, 25, rows) * 4) / 4
    value[rng.random(rows) < 0.02] = 5000.0
    value_null = rng.random(rows) < 0.03
    return pa.table({
        "event": pa.array([EVENTS[i] for i in ev], pa.string()),
        "time": pa.array(secs, pa.timestamp("s", tz="UTC")),
        "epoch": pa.array((secs // (14 * 86400)).astype(np.int32)),
        "user": pa.array(user_ids[u], pa.string()),
        "device": pa.array([f"{uid}-{d}" for uid, d in zip(user_ids[u], dev, strict=True)],
                           pa.string()),
        "consent": pa.array(["usage"] * rows, pa.string()),
        "platform": pa.array([PLATFORMS[i] for i in plat], pa.string()),
        "duration_ms": pa.array(value, pa.float64(), mask=value_null),
        "items": pa.array(rng.integers(0, 5, rows), pa.int64()),
    })


def write_parquet(directory: Path, table: pa.Table, files: int = 3) -> Path:
    """The table as ``files`` Parquet files in ``directory``; returns the glob."""
    directory.mkdir(parents=True, exist_ok=True)
    step = -(-table.num_rows // files)
    for i in range(files):
        pq.write_table(table.slice(i * step, step), directory / f"part-{i}.parquet")
    return directory / "*.parquet"


@dataclass(frozen=True)
class Scenario:
    name: str
    spec: QuerySpec
    salt: int = 0x5EED_5A17
    order_free: bool = False
    notes: str = ""
    tags: tuple[str, ...] = field(default=())


def _q(metrics: list[str], **kw: object) -> QuerySpec:
    kw.setdefault("epsilon", 1.0)
    kw.setdefault("public_partitions", None)
    return QuerySpec.build(metrics=metrics, **kw)  # type: ignore[arg-type]


CLAMP = ClampRange(lo=0.0, hi=100.0)
WIDE = ClampRange(lo=-10.0, hi=60.0)

SCENARIOS: tuple[Scenario, ...] = (
    Scenario("count by event, L0 binds", _q(["count"], by=["event"], delta=1e-6,
                                            max_partitions=2, max_per_partition=3)),
    Scenario("count by event, L0 never binds", _q(["count"], by=["event"], delta=1e-6,
                                                  max_partitions=6, max_per_partition=4),
             order_free=True),
    Scenario("distinct users by event and platform (null key)",
             _q(["users"], by=["event", "platform"], delta=1e-6, max_partitions=3,
                max_per_partition=5)),
    Scenario("distinct users by event and platform, L0 never binds",
             _q(["users", "count"], by=["event", "platform"], delta=1e-6, max_partitions=6,
                max_per_partition=2), order_free=True),
    Scenario("sum clamped [0, 100] by event", _q(["sum:duration_ms"], by=["event"],
                                                 delta=1e-6, max_partitions=3,
                                                 max_per_partition=2, clamp=CLAMP)),
    Scenario("mean and count by platform, clamp [-10, 60]",
             _q(["mean:duration_ms", "count"], by=["platform"], delta=1e-6, max_partitions=4,
                max_per_partition=7, clamp=WIDE), order_free=True),
    Scenario("variance by event", _q(["variance:duration_ms"], by=["event"], delta=1e-6,
                                     max_partitions=2, max_per_partition=10, clamp=WIDE)),
    Scenario("p50 and histogram by event (bins)",
             _q(["p50:duration_ms", "histogram:duration_ms"], by=["event"], delta=1e-6,
                max_partitions=3, max_per_partition=4, clamp=CLAMP, bins=8)),
    Scenario("count by day in a window", _q(
        ["count"], by=["day"], delta=1e-6, max_partitions=5, max_per_partition=3,
        window=TimeWindow(since=T0 + dt.timedelta(days=2), until=T0 + dt.timedelta(days=9)))),
    Scenario("count by week with filters", _q(
        ["count", "mean:duration_ms"], by=["week"], delta=1e-6, max_partitions=3,
        max_per_partition=6, clamp=CLAMP,
        filters=["event~search|checkout|error", "duration_ms>=0", "items!=3"]),
        order_free=True),
    Scenario("public partitions (one missing, others dropped before L0)", _q(
        ["count", "users"], by=["event"], max_partitions=1, max_per_partition=2,
        public_partitions=(("search",), ("checkout",), ("no.such.event",)))),
    Scenario("no grouping: global count and mean", _q(
        ["count", "mean:duration_ms"], max_partitions=1, max_per_partition=5, clamp=CLAMP),
        order_free=True),
    Scenario("unit = device", _q(["count", "users"], unit="device", by=["event"], delta=1e-6,
                                 max_partitions=2, max_per_partition=3)),
    Scenario("one epoch", _q(["count"], by=["platform"], delta=1e-6, epoch=1420,
                             max_partitions=1, max_per_partition=3), order_free=True),
    Scenario("nothing matches", _q(["count", "sum:duration_ms"], by=["event"], delta=1e-6,
                                   filters=["duration_ms>1e9"], max_partitions=2,
                                   max_per_partition=2, clamp=CLAMP), order_free=True),
    Scenario("L∞ sampled rows (LinfMode.SAMPLE)", _q(
        ["count", "sum:duration_ms"], by=["event"], delta=1e-6, max_partitions=6,
        max_per_partition=2, clamp=CLAMP, linf_mode=LinfMode.SAMPLE),
        notes="see DIVERGENCES['sample over non-string columns']",
        tags=("sample",)),
    Scenario("bounding disabled (audit arm)", _q(
        ["count", "sum:duration_ms"], by=["event"], delta=1e-6, max_partitions=1,
        max_per_partition=1, clamp=CLAMP, unsafe_disable_bounding=True), order_free=True),
)
