"""User-level differentially private analytics (imports privacy, policy, ingest's store reader).

- :mod:`~anonymetry.analytics.spec`: ``QuerySpec`` — metrics, group keys, filters, windows.
- :mod:`~anonymetry.analytics.compiler`: spec → bounded plan + calibrated releases, with the
  query's privacy argument.
- :mod:`~anonymetry.analytics.plan`: the engine-neutral ``BoundedPlan``.
- :mod:`~anonymetry.analytics.engines`: the relational ``Engine`` protocol and ``DuckDBEngine``.
- :mod:`~anonymetry.analytics.release`: ``run_query`` — spend, aggregate, select, noise.
- :mod:`~anonymetry.analytics.result`: ``Result`` with ``explain()`` and JSON.
- :mod:`~anonymetry.analytics.ledger`: ``BudgetLedger`` — atomic, idempotent debits.
- :mod:`~anonymetry.analytics.suggest`: ``suggest_bounds`` from a small DP profile.
- :mod:`~anonymetry.analytics.sources`: Parquet/CSV files and the event store as sources.
"""

from anonymetry.analytics.compiler import CompiledQuery, compile_query
from anonymetry.analytics.engines.base import Engine
from anonymetry.analytics.engines.duckdb import DuckDBEngine
from anonymetry.analytics.ledger import BudgetLedger, Debit, EntryState
from anonymetry.analytics.plan import BoundedAggregates, BoundedPlan, Source, SourceKind
from anonymetry.analytics.release import release, run_query
from anonymetry.analytics.result import Result, ResultRow
from anonymetry.analytics.spec import (
    Filter,
    GroupKey,
    LinfMode,
    MetricKind,
    MetricSpec,
    QuerySpec,
    TimeWindow,
)

__all__ = [
    "BoundedAggregates",
    "BoundedPlan",
    "BudgetLedger",
    "CompiledQuery",
    "Debit",
    "DuckDBEngine",
    "Engine",
    "EntryState",
    "Filter",
    "GroupKey",
    "LinfMode",
    "MetricKind",
    "MetricSpec",
    "QuerySpec",
    "Result",
    "ResultRow",
    "Source",
    "SourceKind",
    "TimeWindow",
    "compile_query",
    "release",
    "run_query",
]
