"""Benchmark: the k + ℓ + t bundle (one grouped DuckDB pass + NumPy) against pyCANON and against
a bare DuckDB GROUP BY (the floor), on 1M rows with 7 QIs and one numeric sensitive attribute,
for all-unique and coarse QIs.

    python benchmarks/risk.py [--rows 1000000] [--pycanon-rows-unique 20000]
                              [--pycanon-rows-coarse 100000] [--repeat 3] [--spark]

``--spark`` adds a Spark row (``local[2]``, the same table written to Parquet and read by Spark):
the bundle through :func:`anonymetry.risk._spark.class_counts_spark` and a bare Spark
``groupBy(...).count()`` as its floor, printed beside the DuckDB numbers (``spark_*`` keys).

pyCANON takes minutes on 1M rows, so it runs on a random subsample in its own virtualenv
(``.venv-oracles/pycanon``, created by ``tests/risk/test_risk_pycanon_oracle.py``) and its time
is **extrapolated**: per class for the all-unique table (its cost is a Python loop over classes),
per row for the coarse one. Throughput is rows per second; ratios are ours ÷ theirs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb

from anonymetry.risk import class_counts, distinct_l, entropy_l, k_anonymity, t_closeness

ROOT = Path(__file__).resolve().parents[1]
PYCANON_PY = ROOT / ".venv-oracles" / "pycanon" / "bin" / "python"
QI = ["q1", "q2", "q3", "q4", "q5", "q6", "q7"]

PYCANON_SCRIPT = r"""
import json, sys, time
import pandas as pd
from pycanon import anonymity as a
df = pd.read_csv(sys.argv[1], dtype={"q4": str})
qi = sys.argv[2].split(",")
out = {}
for name, fn in [("k", lambda: a.k_anonymity(df, qi)),
                 ("l", lambda: a.l_diversity(df, qi, ["s"])),
                 ("entropy_l", lambda: a.entropy_l_diversity(df, qi, ["s"])),
                 ("t", lambda: a.t_closeness(df, qi, ["s"]))]:
    t0 = time.perf_counter(); fn(); out[name] = time.perf_counter() - t0
out["classes"] = int(df.groupby(qi).ngroups)
print(json.dumps(out))
"""


def make_table(con: duckdb.DuckDBPyConnection, name: str, rows: int, unique: bool) -> None:
    # all-unique: q1 is a row id in disguise, so every row is its own class
    exprs = ["(i * 2654435761) % 4294967311 AS q1" if unique else "(hash(i, 1) % 4)::INT AS q1"]
    exprs += [
        "(hash(i, 2) % 3)::INT AS q2", "(hash(i, 3) % 2)::INT AS q3",
        "['ios','android','web'][(hash(i, 4) % 3)::INT + 1] AS q4",
        "(hash(i, 5) % 2)::INT AS q5", "(hash(i, 6) % 3)::INT AS q6",
        "(hash(i, 7) % 2)::INT AS q7", "(hash(i, 8) % 50)::INT AS s",
    ]
    con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT {', '.join(exprs)} "
                f"FROM range({rows}) r(i)")


def best_of(repeat: int, fn) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def ours(con: duckdb.DuckDBPyConnection, table: str, repeat: int) -> dict[str, float]:
    qcols = ", ".join(QI)
    bare = best_of(repeat, lambda: con.sql(
        f"SELECT count(*) AS n FROM {table} GROUP BY {qcols}").fetchnumpy())
    timings: dict[str, float] = {}

    def bundle() -> None:
        t0 = time.perf_counter()
        cc = class_counts(con, table, QI, "s")
        t1 = time.perf_counter()
        k_anonymity(cc)
        t2 = time.perf_counter()
        distinct_l(cc)
        entropy_l(cc)
        t3 = time.perf_counter()
        t_closeness(cc)
        t4 = time.perf_counter()
        for key, value in (("group", t1 - t0), ("k", t2 - t1), ("l", t3 - t2), ("t", t4 - t3)):
            timings[key] = min(timings.get(key, float("inf")), value)

    total = best_of(repeat, bundle)
    return {"bare_group_by": bare, "bundle": total, **{f"bundle_{k}": v
                                                         for k, v in timings.items()}}


def spark_row(con: duckdb.DuckDBPyConnection, table: str, repeat: int,
              session: Any) -> dict[str, float]:
    """The bundle on Spark over the same table as Parquet (one warm-up run, then best of)."""
    import pyspark.sql.functions as sf

    from anonymetry.risk._spark import class_counts_spark

    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.parquet"
        con.execute(f"COPY {table} TO '{path}' (FORMAT PARQUET)")
        df = session.read.parquet(str(path))

        def bare() -> None:
            df.groupBy(*QI).agg(sf.count(sf.lit(1)).alias("n")).select("n").toArrow()

        def bundle() -> None:
            t0 = time.perf_counter()
            cc = class_counts_spark(df, QI, "s")
            t1 = time.perf_counter()
            k_anonymity(cc)
            distinct_l(cc)
            entropy_l(cc)
            t_closeness(cc)
            t2 = time.perf_counter()
            for key, value in (("group", t1 - t0), ("measures", t2 - t1)):
                timings[key] = min(timings.get(key, float("inf")), value)

        bare()
        bundle()  # warm-up: JIT and code generation
        out = {"spark_bare_group_by": best_of(repeat, bare),
               "spark_bundle": best_of(repeat, bundle)}
    return {**out, **{f"spark_bundle_{k}": v for k, v in timings.items()}}


def pycanon(con: duckdb.DuckDBPyConnection, table: str, rows: int) -> dict[str, float] | None:
    if not PYCANON_PY.exists():
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sample.csv"  # the oracle venv has no pyarrow
        con.execute(f"COPY (SELECT * FROM {table} USING SAMPLE {rows} ROWS (reservoir, 42)) "
                    f"TO '{path}' (FORMAT CSV, HEADER)")
        done = subprocess.run([str(PYCANON_PY), "-c", PYCANON_SCRIPT, str(path), ",".join(QI)],
                              capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--pycanon-rows-unique", type=int, default=20_000)
    ap.add_argument("--pycanon-rows-coarse", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--spark", action="store_true", help="also time the bundle on Spark")
    args = ap.parse_args()
    con = duckdb.connect()
    session = None
    if args.spark:
        from anonymetry.analytics.engines.spark import local_session

        session = local_session("local[2]")
    report = {}
    for label, unique, sample in (("all-unique", True, args.pycanon_rows_unique),
                                  ("coarse", False, args.pycanon_rows_coarse)):
        make_table(con, "bench", args.rows, unique)
        classes = con.execute(f"SELECT count(*) FROM (SELECT 1 FROM bench GROUP BY {', '.join(QI)})"
                          ).fetchall()[0][0]
        mine = ours(con, "bench", args.repeat)
        theirs = pycanon(con, "bench", sample)
        row: dict[str, object] = {"rows": args.rows, "classes": classes, **mine,
                                  "bundle_vs_bare": mine["bundle"] / mine["bare_group_by"]}
        if session is not None:
            theirs_spark = spark_row(con, "bench", args.repeat, session)
            row.update({**theirs_spark,
                        "spark_bundle_vs_spark_bare": (theirs_spark["spark_bundle"]
                                                       / theirs_spark["spark_bare_group_by"]),
                        "spark_bundle_vs_duckdb_bundle": (theirs_spark["spark_bundle"]
                                                          / mine["bundle"])})
        if theirs is not None:
            # extrapolate to the full table: per class (all-unique) or per row (coarse)
            scale = (classes / theirs["classes"]) if unique else (args.rows / sample)
            est = {m: theirs[m] * scale for m in ("k", "l", "entropy_l", "t")}
            est_bundle = est["k"] + est["l"] + est["entropy_l"] + est["t"]
            row.update({
                "pycanon_sample_rows": sample, "pycanon_sample_classes": theirs["classes"],
                "pycanon_sample_seconds": {m: theirs[m] for m in est},
                "pycanon_extrapolated_seconds": est,
                "pycanon_extrapolation": "per class" if unique else "per row",
                "speedup_bundle": est_bundle / mine["bundle"],
                "speedup_k": est["k"] / (mine["bundle_group"] + mine["bundle_k"]),
                "speedup_l": (est["l"] + est["entropy_l"]) / (mine["bundle_group"]
                                                              + mine["bundle_l"]),
                "speedup_t": est["t"] / (mine["bundle_group"] + mine["bundle_t"]),
            })
        report[label] = row
        print(label, json.dumps(row, indent=2), flush=True)
    json.dump(report, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
