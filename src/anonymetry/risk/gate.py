"""The release gate: measured risk against the policy's ``release`` thresholds → a verdict.

Checks (each ``passed`` True/False, or None with a reason when it was not evaluated; only what
was asked is evaluated, and the verdict fails if any evaluated check fails):

=========================  ============================  =====================================
check                      threshold (policy.release)    value
=========================  ============================  =====================================
``k``                      ``k_min`` (≥)                 smallest equivalence class
``l``                      ``l_min`` (≥; if set)         distinct ℓ of the sensitive attribute
``t``                      ``t_max`` (≤; if set)         t-closeness (EMD)
``population_uniqueness``  ``population_uniqueness_max`` Dankar et al.'s estimate with
                           (≤)                           ``--population``; without it, sample
                                                         uniqueness (an upper bound: the
                                                         release is taken as the population)
``trace_uniqueness``       ``trace_uniqueness_max`` (≤)  upper 95 % bound of the share of users
                           at ``trace_points``           singled out by that many points of
                                                         their trace, at the stored granularity
``linkage_precision``      ``linkage_precision_max`` (≤) precision of the unique-match linkage
                                                         attack with an auxiliary table
=========================  ============================  =====================================

Trace and linkage checks come from :mod:`anonymetry.risk.traces` and
:mod:`anonymetry.risk.linkage`; the gate passes their results in when they were computed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from anonymetry.errors import ReleaseBlocked
from anonymetry.policy import ReleasePolicy
from anonymetry.risk.table import TableRisk

__all__ = ["Check", "Verdict", "evaluate"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    """One threshold: ``value`` compared with ``threshold`` by ``op`` (``>=`` or ``<=``)."""

    name: str
    op: str
    threshold: float | None
    value: float | None
    passed: bool | None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "op": self.op, "threshold": self.threshold,
                "value": self.value, "passed": self.passed, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class Verdict:
    checks: tuple[Check, ...]

    @property
    def evaluated(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.passed is not None)

    @property
    def failed(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.passed is False)

    @property
    def passed(self) -> bool:
        """True when at least one check ran and none failed."""
        return bool(self.evaluated) and not self.failed

    def raise_if_blocked(self) -> None:
        if not self.passed:
            names = ", ".join(c.name for c in self.failed) or "no check evaluated"
            raise ReleaseBlocked(f"release gate: blocked ({names}); see the report")

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "failed": [c.name for c in self.failed],
                "checks": [c.to_dict() for c in self.checks]}


def _cmp(name: str, op: str, threshold: float, value: float, detail: str = "") -> Check:
    ok = value >= threshold if op == ">=" else value <= threshold
    return Check(name=name, op=op, threshold=threshold, value=value, passed=bool(ok),
                 detail=detail)


def _skip(name: str, op: str, threshold: float | None, why: str) -> Check:
    return Check(name=name, op=op, threshold=threshold, value=None, passed=None, detail=why)


def evaluate(
    release: ReleasePolicy,
    *,
    table: TableRisk | None = None,
    traces: Any = None,
    trace_granularity: str | None = None,
    linkage: Any = None,
) -> Verdict:
    """Compare the measured results with the thresholds (see the module doc)."""
    checks: list[Check] = []
    if table is None:
        checks.append(_skip("k", ">=", release.k_min, "no table measured (--qi)"))
    else:
        checks.append(_cmp("k", ">=", release.k_min, table.k))
        if release.l_min is None:
            checks.append(_skip("l", ">=", None, "policy sets no l_min"))
        elif table.l_distinct is None:
            checks.append(_skip("l", ">=", release.l_min, "no sensitive attribute given"))
        else:
            checks.append(_cmp("l", ">=", release.l_min, table.l_distinct, "distinct ℓ"))
        if release.t_max is None:
            checks.append(_skip("t", "<=", None, "policy sets no t_max"))
        elif table.t is None:
            checks.append(_skip("t", "<=", release.t_max, "no sensitive attribute given"))
        else:
            checks.append(_cmp("t", "<=", release.t_max, table.t, f"{table.t_distance} EMD"))
        if table.population is not None:
            pu = table.population
            checks.append(_cmp("population_uniqueness", "<=", release.population_uniqueness_max,
                               pu.dankar, f"Dankar ({pu.dankar_model}), N={pu.population}"))
        else:
            checks.append(_cmp("population_uniqueness", "<=",
                               release.population_uniqueness_max, table.sample_uniqueness,
                               "sample uniqueness (no --population: an upper bound)"))
    if traces is None:
        checks.append(_skip("trace_uniqueness", "<=", release.trace_uniqueness_max,
                            "traces not assessed (--traces)"))
    else:
        granularity = trace_granularity or traces.stored_granularity or "hour"
        row = traces.at(granularity, "all", release.trace_points)
        checks.append(_cmp(
            "trace_uniqueness", "<=", release.trace_uniqueness_max, row.ci_high,
            f"upper 95% bound; estimate {row.share:.4f} at {release.trace_points} points, "
            f"{granularity}, n={row.n} users"))
    if linkage is None:
        checks.append(_skip("linkage_precision", "<=", release.linkage_precision_max,
                            "no auxiliary table (--auxiliary, --truth)"))
    else:
        checks.append(_cmp("linkage_precision", "<=", release.linkage_precision_max,
                           linkage.precision,
                           f"{linkage.correct} of {linkage.claimed} unique matches correct"))
    return Verdict(tuple(checks))
