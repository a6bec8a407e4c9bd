"""The narrow relational protocol every engine implements.

Modelled on PipelineDP's backend split (the DP logic is written once; backends only move and
aggregate data), but relational rather than per-row: an engine receives a whole
:class:`~anonymetry.analytics.plan.BoundedPlan` — scan, filter, bound contributions, clamp,
aggregate — and runs it as set operations (SQL in DuckDB, DataFrame operations in Spark). It
never sees ε, never draws noise and never calls back into Python per row. Noise, partition
selection and the release happen in :mod:`anonymetry.analytics.release`, identical for all
engines.

What an engine must guarantee (checked by ``tests/properties/test_sensitivity.py`` for each
engine): every unit keeps at most L0 partitions and at most L∞ contributions in each, chosen by
an order that depends only on that unit's own rows and the plan's salt; values are clamped to
the plan's range before they are summed; partitions outside a public list are dropped *before*
L0 bounding.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from anonymetry.analytics.plan import BoundedAggregates, BoundedPlan, Source

__all__ = ["Engine"]


@runtime_checkable
class Engine(Protocol):
    name: str

    def schema(self, source: Source) -> Any:
        """The source's columns as a ``pyarrow.Schema``."""
        ...

    def count_epochs(self, plan: BoundedPlan) -> int:
        """How many distinct values of ``plan.epoch_column`` the filtered rows hold."""
        ...

    def aggregate(self, plan: BoundedPlan) -> BoundedAggregates:
        """Run the bounded plan; return per-partition pre-noise aggregates."""
        ...

    def profile(self, plan: BoundedPlan, value_bins: list[float]) -> dict[str, Any]:
        """Per-unit contribution profiles for ``suggest-bounds`` (unbounded, pre-noise):
        ``partitions`` (Arrow: ``n`` partitions of a unit → Σ 1 per unit),
        ``rows`` (``n`` rows in a (unit, partition) → Σ 1/#partitions of the unit),
        ``values`` (value bin → Σ 1/#rows of the unit). Each unit adds ≤ 1 to each profile."""
        ...
