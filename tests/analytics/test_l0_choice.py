"""The L0 choice keeps each of a unit's n partitions with probability min(1, L0/n).

Property: over many units, the number of units whose rows a partition keeps after L0 bounding
is Binomial-distributed with the per-unit probability L0/n of a uniformly random choice, for
text and consecutive integer units (the exact integer mix must spread neighbours) and for units
with different n. Each count is checked within 5 standard deviations: a correct choice fails one
check with probability < 6·10⁻⁷ (normal tail), 48 checks < 3·10⁻⁵. A choice that ignores the
salt or the unit (always the first L0 partitions in key order) puts 0 or all units in a partition
and fails by more than 20 standard deviations.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pyarrow as pa
import pytest

from anonymetry.analytics import DuckDBEngine, QuerySpec, Source, SourceKind, compile_query

L0 = 2
UNITS = 3000  # half with 7 partitions (p0…p6), half with 3 (p0…p2)
WIDE, NARROW = 7, 3
SALTS = (17, 2**62 + 3)


def _table(integer: bool) -> pa.Table:
    users: list[Any] = []
    events: list[str] = []
    for i in range(UNITS):
        n = WIDE if i % 2 == 0 else NARROW
        for p in range(n):
            users.append(i if integer else f"user-{i:05d}")
            events.append(f"p{p}")
    return pa.table({"user": pa.array(users, pa.int64() if integer else pa.string()),
                     "event": events})


def _expected(partition: int) -> tuple[float, float]:
    """Mean and variance of the kept-unit count of partition ``p<partition>``."""
    mean = var = 0.0
    for n in (WIDE, NARROW):
        if partition < n:
            q = min(1.0, L0 / n)
            mean += UNITS / 2 * q
            var += UNITS / 2 * q * (1 - q)
    return mean, var


@pytest.mark.parametrize("integer", [False, True], ids=["text", "int64"])
@pytest.mark.parametrize("salt", SALTS)
def test_each_partition_is_kept_by_units_at_the_rate_of_a_random_choice(integer: bool,
                                                                         salt: int) -> None:
    source = Source(SourceKind.ARROW, obj=_table(integer))
    spec = QuerySpec.build(metrics=["count"], by=["event"], epsilon=1.0, delta=1e-6,
                           max_partitions=L0, max_per_partition=1, stable_unit=True)
    engine = DuckDBEngine()
    plan = dataclasses.replace(compile_query(spec, source, engine).plan, salt=salt,
                               diagnostics=False)
    kept = {r["event"]: r["units"] for r in engine.aggregate(plan).partitions.to_pylist()}
    assert sum(kept.values()) == UNITS * L0  # every unit keeps exactly L0 of its ≥ 3 partitions
    for p in range(WIDE):
        mean, var = _expected(p)
        got = kept.get(f"p{p}", 0)
        assert abs(got - mean) <= 5 * math.sqrt(var), (p, got, mean)
