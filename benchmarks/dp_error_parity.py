"""Error parity with PipelineDP, split into bias and spread per partition.

Usage::

    python benchmarks/dp_error_parity.py [--reps 100] [--int-units] [--diagnostics]

On the whole-user subsample that ``dp_aggregate.py`` made (run it first), the same query
(DP count and DP mean per partition, L0=5, L∞=10, clamp [0, 1000], ε=1) runs ``--reps`` times
through anonymetry (DuckDB) and PipelineDP (its own virtualenv). Printed per contender and
metric: the mean relative error (what ``dp_aggregate.py`` compares), the mean relative bias of
the per-partition average estimate, and the mean relative standard deviation across repetitions.
Also printed: the count error an exact uniform L0 choice with L∞ truncation has in expectation,
Σ min(c, L∞)·min(1, L0/n) per partition, which neither contender can beat on average.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import dp_aggregate as bench


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=100)
    ap.add_argument("--int-units", action="store_true")
    ap.add_argument("--diagnostics", action="store_true",
                    help="ours with the bias report (5 %% of ε), as dp_aggregate's main row")
    args = ap.parse_args(argv)
    from anonymetry.analytics import DuckDBEngine

    spec = bench.DataSpec(10_000_000, 100_000, 20, int_units=args.int_units)
    path = bench.subsample(spec, 300_000).resolve()
    true = bench.truth(path)
    parts = sorted(true)
    src = bench.glob_of(path)
    (ideal,) = bench._con().execute(f"""
        WITH g AS (SELECT {bench.UNIT} AS u, {bench.BY} AS p, count(*) AS c
                   FROM read_parquet('{src}') GROUP BY ALL),
             n AS (SELECT u, count(*) AS n FROM g GROUP BY u),
             e AS (SELECT p, sum(c) AS truth, sum(least(c, {bench.LINF}) *
                          least(1.0, {bench.L0} / n)) AS kept FROM g JOIN n USING (u) GROUP BY p)
        SELECT avg((truth - kept) / truth) FROM e""").fetchone()
    print(f"expected count error of exact uniform L0/L∞ bounding: {ideal:.4f}")
    ours = bench.run_ours(path, parts, DuckDBEngine(), args.reps,
                          diagnostics=args.diagnostics)["results"]
    py, why = bench.peer_venv("pipelinedp", ["pipeline-dp", "pyarrow"])
    if py is None:
        print(f"PipelineDP: {why}")
        return 1
    cfg = bench.query_cfg(args.reps, parts) | {"path": str(path / "part-000.parquet")}
    pdp = bench.run_peer(py, "pipelinedp", bench.PIPELINEDP_RUNNER, cfg)["results"]
    for name, results in (("anonymetry", ours), ("pipelinedp", pdp)):
        for metric in ("count", "mean"):
            est = np.array([[r[p][metric] for p in parts] for r in results])
            t = np.array([true[p][metric] for p in parts])
            print(f"{name:10s} {metric:5s} error {np.mean(np.abs(est - t) / t):.4f}  "
                  f"bias {np.mean((est.mean(0) - t) / t):+.4f}  "
                  f"spread {np.mean(est.std(0, ddof=1) / t):.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
