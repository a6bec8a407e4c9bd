"""How close is the DP plan to the user-level floor? (DuckDB, Parquet, 10M rows by default.)

The *user-level floor* is the least work any user-level query needs::

    SELECT p, count(*), sum(c), sum(s) FROM
      (SELECT unit, p, count(*) c, sum(v) s FROM t GROUP BY unit, p) GROUP BY p

We time, interleaved round by round (the machine may be shared, so each plan is compared with
the floor measured right beside it), the DP count + mean per partition with L0=5, L∞=10:

- ``engine`` — ``DuckDBEngine.aggregate`` (bounding + aggregation, pre-noise), diagnostics off;
- ``engine+diag`` — the same with the bounding-bias diagnostics (materializes the ranked table);
- ``run_query`` — the whole DP query: compile, aggregate, private partition selection, OpenDP
  noise, result (diagnostics on, as by default);
- ``sample`` — ``LinfMode.SAMPLE`` (L∞ rows chosen by a window over rows);
- ``naive`` — a naive window plan: row_number over (unit, p) on every row, then over unit.

Usage::

    python benchmarks/dp_plan_floor.py [--rows 10000000] [--users 100000] [--rounds 5]
        [--data /tmp/events.parquet] [--threads N]

Prints a table and one JSON line. The data are synthetic (seeded, not privacy-relevant):
Pareto-skewed events per user, ~20 partitions, each user preferring one.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from anonymetry.analytics import DuckDBEngine, LinfMode, QuerySpec, Source, SourceKind, run_query
from anonymetry.analytics.compiler import compile_query
from anonymetry.privacy.units import ClampRange


def make_data(path: Path, rows: int, users: int, parts: int = 20) -> None:
    rng = np.random.default_rng(7)  # not-privacy: synthetic benchmark data
    w = rng.pareto(1.2, users) + 1
    w /= w.sum()
    u = rng.choice(users, rows, p=w)
    pref = rng.integers(0, parts, users)
    p = np.where(rng.random(rows) < 0.6, pref[u], rng.zipf(1.5, rows) % parts)
    ids = np.array([f"{i:032x}" for i in range(users)])
    names = np.array([f"f{i:02d}" for i in range(parts)])
    table = pa.table({
        "user": pa.array(ids[u]),
        "feature": pa.array(names[p]),
        "duration_ms": rng.lognormal(6, 1, rows),
    })
    pq.write_table(table, path, row_group_size=1_000_000)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--data", type=Path, default=Path("/tmp/anonymetry_dp_plan_floor.parquet"))
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--skip", default="", help="comma list of plans to skip (e.g. naive,sample)")
    args = ap.parse_args(argv)
    if not args.data.exists():
        print(f"generating {args.rows:,} rows → {args.data}", file=sys.stderr)
        make_data(args.data, args.rows, args.users)
    n_rows = pq.ParquetFile(args.data).metadata.num_rows
    src = Source(SourceKind.PARQUET, str(args.data))
    engine = DuckDBEngine(threads=args.threads)
    clamp = ClampRange(lo=0, hi=5000)

    def spec(**kw: object) -> QuerySpec:
        return QuerySpec.build(metrics=["count", "mean:duration_ms"], by=["feature"],
                               epsilon=1.0, delta=1e-6, unit="user", clamp=clamp,
                               max_partitions=5, max_per_partition=10, **kw)

    con = duckdb.connect()
    if args.threads:
        con.execute(f"SET threads = {args.threads}")
    path = str(args.data).replace("'", "''")
    floor_sql = (f"SELECT feature, count(*), sum(c), sum(s) FROM (SELECT user, feature, "
                 f"count(*) c, sum(duration_ms) s FROM read_parquet('{path}') GROUP BY user, "
                 f"feature) GROUP BY feature")
    naive_sql = (
        f"WITH r AS (SELECT user, feature, least(greatest(duration_ms, 0), 5000) v, "
        f"row_number() OVER (PARTITION BY user, feature ORDER BY hash(duration_ms, 42)) rn "
        f"FROM read_parquet('{path}')), "
        f"up AS (SELECT user, feature, count(*) c, sum(v) s FROM r WHERE rn <= 10 "
        f"GROUP BY user, feature QUALIFY row_number() OVER (PARTITION BY user ORDER BY "
        f"hash(user, feature, 42)) <= 5) SELECT feature, count(*), sum(c), sum(s) FROM up "
        f"GROUP BY feature")

    plan_fast = compile_query(spec(diagnostics=False), src, engine).plan
    plan_diag = compile_query(spec(), src, engine).plan
    plan_sample = compile_query(spec(diagnostics=False, linf_mode=LinfMode.SAMPLE), src,
                                engine).plan
    plans = {
        "floor": lambda: con.execute(floor_sql).fetchall(),
        "engine": lambda: engine.aggregate(plan_fast),
        "engine+diag": lambda: engine.aggregate(plan_diag),
        "run_query": lambda: run_query(spec(), src, engine=engine),
        "sample": lambda: engine.aggregate(plan_sample),
        "naive": lambda: con.execute(naive_sql).fetchall(),
    }
    skip = {s for s in args.skip.split(",") if s}
    plans = {k: v for k, v in plans.items() if k not in skip or k == "floor"}
    for fn in plans.values():  # warm the file cache
        fn()
    times: dict[str, list[float]] = {k: [] for k in plans}
    ratios: dict[str, list[float]] = {k: [] for k in plans if k != "floor"}
    for _ in range(args.rounds):
        for name, fn in plans.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
        for name in ratios:
            ratios[name].append(times[name][-1] / times["floor"][-1])
    print(f"{n_rows:,} rows, {args.rounds} rounds (median seconds; ratio = median of per-round "
          f"plan/floor); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    summary: dict[str, object] = {"rows": n_rows, "rounds": args.rounds,
                                  "loadavg_1m_at_end": round(os.getloadavg()[0], 2),
                                  "cpus": os.cpu_count()}
    for name in plans:
        med = statistics.median(times[name])
        ratio = statistics.median(ratios[name]) if name in ratios else 1.0
        print(f"  {name:12s} {med:7.3f} s  {n_rows / med / 1e6:6.1f} M rows/s  ratio {ratio:5.2f}")
        summary[name] = {"median_s": round(med, 4), "ratio_to_floor": round(ratio, 3)}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
