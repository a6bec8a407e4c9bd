"""Hypothesis strategies shared by the property tests: small event tables, bounds, clamps.

A *table* is a list of rows ``(person, partition, value, epoch)``; the unit column holds the
person's pseudonym of that epoch (``p{person}e{epoch}``), as in the store, so one person is
several units when the rows span several epochs.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from hypothesis import strategies as st

from anonymetry.privacy.units import ClampRange, ContributionBounds

PARTITIONS = ("a", "b", "c", "d", "e")

rows = st.lists(
    st.tuples(
        st.integers(0, 6),  # person
        st.sampled_from(PARTITIONS),
        st.floats(-60, 160, allow_nan=False, allow_infinity=False).map(lambda x: round(x, 2)),
        st.integers(0, 2),  # key epoch
    ),
    min_size=1, max_size=50)

bounds = st.builds(lambda l0, linf: ContributionBounds(max_partitions=l0, max_per_partition=linf),
                   st.integers(1, 4), st.integers(1, 4))


@st.composite
def clamps(draw: Any) -> ClampRange:
    lo = draw(st.integers(-30, 30))
    width = draw(st.integers(1, 120))
    return ClampRange(lo=float(lo), hi=float(lo + width))


def to_table(data: list[tuple[int, str, float, int]], *, epochs: bool) -> pa.Table:
    """Arrow table; with ``epochs`` the unit is a per-epoch pseudonym, else the person."""
    return pa.table({
        "user": pa.array([f"p{p}e{e}" if epochs else f"p{p}" for p, _, _, e in data],
                         pa.string()),
        "part": pa.array([k for _, k, _, _ in data], pa.string()),
        "value": pa.array([v for _, _, v, _ in data], pa.float64()),
        "epoch": pa.array([e for _, _, _, e in data], pa.int32()),
    })
