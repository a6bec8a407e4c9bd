"""``suggest_bounds``: propose L0, L∞ and a clamp range from three small DP histograms.

Privacy argument
----------------
Neighbouring relation: all rows of one person (k pseudonyms over k key epochs). The engine
returns three *unbounded* profiles in which every unit adds a total weight of at most 1:

- ``partitions``: bucket floor(log2 n) of the number n of partitions a unit touches, weight 1;
- ``rows``: bucket floor(log2 c) of each (unit, partition) row count c, weight 1/n;
- ``values``: the signed log2 bucket of each value, weight 1/(rows of the unit).

Bucket edges are public (powers of two), so each histogram has L1 sensitivity k per person.
Each gets Laplace noise at ε/3 (``privacy.mechanisms.LaplaceMechanism``, float), so the whole
suggestion is ε-DP per person. Everything after the noise is post-processing.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

from anonymetry.analytics.engines.base import Engine
from anonymetry.analytics.engines.duckdb import VALUE_BUCKET_OFFSET
from anonymetry.analytics.plan import BoundedPlan, Source
from anonymetry.analytics.spec import Filter, GroupKey, TimeWindow
from anonymetry.errors import InvalidParameter
from anonymetry.privacy.budget import PrivacyLoss
from anonymetry.privacy.mechanisms import LaplaceMechanism
from anonymetry.privacy.units import ContributionBounds

__all__ = ["suggest_bounds"]

_MAX_LOG2 = 30


def _bucket_counts(table: Any, *, log2: bool) -> dict[int, float]:
    out: dict[int, float] = {}
    for row in table.to_pylist():
        n, w = row.get("n", row.get("b")), float(row["w"])
        b = min(math.floor(math.log2(n)), _MAX_LOG2) if log2 else int(n)
        out[b] = out.get(b, 0.0) + w
    return out


def _value_edges(b: int) -> tuple[float, float]:
    if b == 0:
        return 0.0, 0.0
    mag = abs(b) - VALUE_BUCKET_OFFSET
    lo, hi = 2.0 ** mag, 2.0 ** (mag + 1)
    return (lo, hi) if b > 0 else (-hi, -lo)


def _coverage_bucket(buckets: list[int], noisy: list[float], coverage: float,
                     floor: float) -> int:
    """The first bucket where the cumulative weight reaches ``coverage`` of the total, counting
    only buckets whose noisy weight exceeds ``floor`` (what pure noise reaches only with
    probability 5 % over all buckets), so empty buckets' noise does not pull the bound out."""
    vals = [v if v > floor else 0.0 for v in noisy]
    total = sum(vals)
    if total <= 0:
        return buckets[0]
    acc = 0.0
    for b, v in zip(buckets, vals, strict=True):
        acc += v
        if acc >= coverage * total:
            return b
    return buckets[-1]


def suggest_bounds(source: Source, engine: Engine, *, unit: str, by: tuple[GroupKey, ...],
                   value: str | None = None, epsilon: float = 0.1,
                   filters: tuple[Filter, ...] = (), window: TimeWindow | None = None,
                   units_per_person: int | None = None, coverage: float = 0.9,
                   value_coverage: float = 0.98) -> dict[str, Any]:
    """DP suggestion of L0, L∞ (covering ``coverage`` of units / unit-partitions fully) and a
    clamp range (the central ``value_coverage`` of unit-weighted values). Spends ``epsilon``."""
    if not 0 < coverage < 1 or not 0 < value_coverage < 1:
        raise InvalidParameter("coverage: must be in (0, 1)")
    loss = PrivacyLoss(epsilon)
    if loss.epsilon == 0:
        raise InvalidParameter("epsilon: must be > 0")
    schema = engine.schema(source)
    if unit not in schema.names:
        raise InvalidParameter(f"unit: the source has no column {unit!r}")
    plan = BoundedPlan(source=source, unit=unit, keys=by, filters=filters, window=window,
                       epoch_column="epoch" if "epoch" in schema.names else None,
                       bounds=ContributionBounds(max_partitions=1, max_per_partition=1),
                       value=value, diagnostics=False, bounding=False)
    k = units_per_person or engine.count_epochs(plan)
    n_hists = 3 if value else 2
    share = loss.epsilon / n_hists
    mech = LaplaceMechanism(k, share, False)
    prof = engine.profile(plan, None)
    out: dict[str, Any] = {"epsilon": float(Fraction(share) * n_hists), "delta": 0.0,
                           "units_per_person": k, "noise_scale": mech.scale,
                           "coverage": coverage, "histograms": {}}
    for name in ("partitions", "rows"):
        counts = _bucket_counts(prof[name], log2=True)
        buckets = list(range(_MAX_LOG2 + 1))
        noisy = mech.release([counts.get(b, 0.0) for b in buckets])
        chosen = _coverage_bucket(buckets, noisy, coverage,
                                  mech.ci_halfwidth(0.05 / len(buckets)))
        top = 2 ** (chosen + 1) - 1
        out["max_partitions" if name == "partitions" else "max_per_partition"] = max(1, top)
        out["histograms"][name] = [{"from": 2 ** b, "to": 2 ** (b + 1) - 1, "noisy_weight": v}
                                   for b, v in zip(buckets, noisy, strict=True)
                                   if b <= chosen + 2]
    if value:
        counts = _bucket_counts(prof["values"], log2=False)
        lim = _MAX_LOG2 + VALUE_BUCKET_OFFSET + 20
        buckets = list(range(-lim, lim + 1))
        noisy = mech.release([counts.get(b, 0.0) for b in buckets])
        tail = (1 - value_coverage) / 2
        floor = mech.ci_halfwidth(0.05 / len(buckets))
        lo_b = _coverage_bucket(buckets, noisy, tail, floor)
        hi_b = _coverage_bucket(buckets, noisy, 1 - tail, floor)
        lo = _value_edges(lo_b)[0]
        hi = _value_edges(hi_b)[1]
        if not lo < hi:
            hi = lo + 1.0
        out["clamp"] = [lo, hi]
        out["histograms"]["values"] = [
            {"from": _value_edges(b)[0], "to": _value_edges(b)[1], "noisy_weight": v}
            for b, v in zip(buckets, noisy, strict=True) if v > 3 * mech.scale]
    else:
        out["clamp"] = None
    out["guarantee"] = (f"ε={out['epsilon']:.4g}-differential privacy per person "
                        f"({k} pseudonym(s) per person)")
    out["events"] = [mech.event] * n_hists
    return out
