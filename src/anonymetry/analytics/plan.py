"""The bounded logical plan: what an engine must compute before any noise, engine-neutral.

A :class:`BoundedPlan` says which rows (filters, time window, epoch), which partitions (group
keys, public list), how contributions are bounded (L0 partitions per unit chosen by a keyed
hash of (unit, partition, salt); ≤ L∞ rows per unit and partition; values clamped) and which
per-partition aggregates to return (the :class:`Agg` columns). Every engine computes exactly
these columns; the compiler attaches the sensitivity of each (:class:`Component`).

Aggregate columns, per partition, after bounding:

=============  ===============================================  =========================
column         meaning                                          L1 per unit (k=1)
=============  ===============================================  =========================
``units``      number of units that kept the partition          L0
``rows``       Σ min(c, L∞) over units (c = unit's rows)         L0·L∞
``sum``        Σ of clamped values (weighted or sampled)         L0·L∞·max(|lo|,|hi|)
``csum``       Σ (clamped value − mid)                           L0·L∞·(hi−lo)/2
``csq``        Σ (clamped value − mid)²                          L0·L∞·((hi−lo)/2)²
``hist``       per value bin (long table ``bin``, ``weight``)    L0·L∞ over all bins
=============  ===============================================  =========================

A person who appears as k units (k key epochs) has k times each L1.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from anonymetry.analytics.spec import Filter, GroupKey, LinfMode, TimeWindow
from anonymetry.privacy.units import ClampRange, ContributionBounds

__all__ = ["Agg", "BoundedAggregates", "BoundedPlan", "Diagnostics", "Source", "SourceKind"]


class SourceKind(enum.StrEnum):
    PARQUET = "parquet"
    CSV = "csv"
    ARROW = "arrow"
    STORE = "store"


@dataclass(frozen=True, slots=True)
class Source:
    """Where rows come from: a Parquet/CSV file or glob, an in-memory Arrow table, or the event
    store (``obj`` is then a store reader with ``duckdb_register``/``dataset``)."""

    kind: SourceKind
    path: str | None = None
    obj: Any = field(default=None, repr=False, compare=False)
    name: str = ""

    @property
    def dataset_name(self) -> str:
        return self.name or self.path or "table"


class Agg(enum.StrEnum):
    UNITS = "units"
    ROWS = "rows"
    SUM = "sum"
    CSUM = "csum"
    CSQ = "csq"
    HIST = "hist"


@dataclass(frozen=True, slots=True, kw_only=True)
class BoundedPlan:
    source: Source
    unit: str
    keys: tuple[GroupKey, ...]
    filters: tuple[Filter, ...] = ()
    window: TimeWindow | None = None
    epoch_column: str | None = None
    epoch: int | None = None
    bounds: ContributionBounds
    clamp: ClampRange | None = None
    value: str | None = None
    aggs: frozenset[Agg] = frozenset({Agg.UNITS, Agg.ROWS})
    bins: int = 32
    linf_mode: LinfMode = LinfMode.WEIGHT
    salt: int = 0
    public_partitions: tuple[tuple[Any, ...], ...] | None = None
    diagnostics: bool = True
    bounding: bool = True  # False only in the audit test's deliberately broken arm

    @property
    def key_names(self) -> tuple[str, ...]:
        return tuple(k.name for k in self.keys)

    def bin_edges(self) -> list[float]:
        assert self.clamp is not None
        w = self.clamp.width / self.bins
        return [self.clamp.lo + i * w for i in range(self.bins)] + [self.clamp.hi]


@dataclass(frozen=True, slots=True)
class Diagnostics:
    """Pre-noise, per-unit bias sums from bounding (released only with noise):
    Σ_u share of u's rows dropped by L0/L∞; Σ_u share of u's kept values clamped; #units."""

    dropped_share_sum: float
    clamped_share_sum: float
    units: int


@dataclass(frozen=True, slots=True)
class BoundedAggregates:
    """What an engine returns: one row per partition that any unit kept (key columns as
    strings, then the requested :class:`Agg` columns), the long histogram table if asked
    (keys, ``bin`` 0..bins-1, ``weight``), and the diagnostics sums."""

    partitions: Any  # pyarrow.Table
    histogram: Any = None  # pyarrow.Table | None
    diagnostics: Diagnostics | None = None
