"""``anonymetry query`` and ``anonymetry suggest-bounds`` (the DP analytics surface).

No privacy logic here: parsing, then :func:`anonymetry.analytics.run_query` /
:func:`anonymetry.analytics.suggest.suggest_bounds`, then printing.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated

import typer

from anonymetry.analytics import GroupKey, LinfMode, QuerySpec, Source, TimeWindow, run_query
from anonymetry.analytics.engines.duckdb import DuckDBEngine
from anonymetry.analytics.ledger import BudgetLedger
from anonymetry.analytics.sources import file_source, load_public_partitions, store_source
from anonymetry.analytics.spec import Filter, Mechanism, MetricSpec
from anonymetry.analytics.suggest import suggest_bounds as _suggest
from anonymetry.cli._common import console, fail, print_json
from anonymetry.errors import InvalidParameter
from anonymetry.policy import Policy, default_policy, load_policy
from anonymetry.privacy.budget import PrivacyLoss
from anonymetry.privacy.units import ClampRange


def _policy(path: Path | None) -> Policy:
    return load_policy(path) if path else default_policy()


def _source(source: str | None, data: Path | None, policy: Policy, dataset: str | None
            ) -> Source:
    if (source is None) == (data is None):
        raise fail("give either SOURCE (a Parquet/CSV file) or --data DIR (the event store)")
    if data is not None:
        return store_source(data, policy, dataset)
    assert source is not None
    return file_source(source, dataset)


def _split(values: list[str] | None) -> list[str]:
    out: list[str] = []
    for v in values or []:
        out.extend(p.strip() for p in v.split(",") if p.strip())
    return out


def _window(since: str | None, until: str | None, time_column: str) -> TimeWindow | None:
    if since is None and until is None:
        return None
    return TimeWindow(since, until, time_column)  # type: ignore[arg-type]


def query(
    source: Annotated[str | None, typer.Argument(
        help="Parquet/CSV file (or folder of Parquet files) with a privacy-unit column.")] = None,
    data: Annotated[Path | None, typer.Option(
        "--data", help="The event store's data directory instead of SOURCE.")] = None,
    unit: Annotated[str | None, typer.Option(
        "--unit", help="Privacy-unit column (default: the policy's, 'user'; or 'device').")] = None,
    metric: Annotated[list[str] | None, typer.Option(
        "--metric", "-m", help="count, users, sum:F, mean:F, variance:F, p50:F, p90:F, p99:F, "
        "quantiles:F, histogram:F (repeatable).")] = None,
    by: Annotated[list[str] | None, typer.Option(
        "--by", help="Group-by columns (comma list or repeated); day, week: of 'time'.")] = None,
    where: Annotated[list[str] | None, typer.Option(
        "--where", help="Filter COL=V, COL!=V, COL<V, COL>=V…, COL~A|B (repeatable).")] = None,
    since: Annotated[str | None, typer.Option("--since", help="ISO date/time, inclusive.")] = None,
    until: Annotated[str | None, typer.Option("--until", help="ISO date/time, exclusive.")] = None,
    time_column: Annotated[str, typer.Option("--time-column")] = "time",
    epoch: Annotated[int | None, typer.Option(
        "--epoch", help="Restrict to one key epoch (one pseudonym per person).")] = None,
    epsilon: Annotated[float, typer.Option("--epsilon", help="Total ε of this query.")] = ...,  # type: ignore[assignment]
    delta: Annotated[float, typer.Option(
        "--delta", help="δ for private partition selection.")] = 0.0,
    max_partitions: Annotated[int | None, typer.Option(
        "--max-partitions", help="L0: partitions per unit (default from the policy).")] = None,
    max_per_partition: Annotated[int | None, typer.Option(
        "--max-per-partition", help="L∞: contributions per unit and partition.")] = None,
    clamp: Annotated[str | None, typer.Option("--clamp", help="LO,HI for value metrics.")] = None,
    bins: Annotated[int, typer.Option("--bins", help="Bins for quantiles/histograms.")] = 32,
    public_partitions: Annotated[Path | None, typer.Option(
        "--public-partitions", help="CSV (header = --by columns) or JSON of public keys.")] = None,
    min_cohort: Annotated[int | None, typer.Option(
        "--min-cohort", help="Suppress groups with fewer noisy units (0: off; default policy).")
    ] = None,
    linf_mode: Annotated[LinfMode, typer.Option(
        "--linf-mode", help="weight (default) or sample.")] = LinfMode.WEIGHT,
    mechanism: Annotated[Mechanism, typer.Option(
        "--mechanism", help="laplace (default; pure ε) or gaussian (zCDP with L2 "
        "sensitivities, needs --delta).")] = Mechanism.LAPLACE,
    stable_unit: Annotated[bool, typer.Option(
        "--stable-unit", help="The unit column is the same id in every key epoch (your own "
        "table): no epoch factor. Refused for --data.")] = False,
    no_diagnostics: Annotated[bool, typer.Option(
        "--no-diagnostics", help="Do not spend 5 % of ε on the bounding-bias report.")] = False,
    ledger: Annotated[Path | None, typer.Option("--ledger", help="Budget ledger directory.")
                      ] = None,
    analyst: Annotated[str | None, typer.Option("--analyst")] = None,
    dataset: Annotated[str | None, typer.Option(
        "--dataset", help="Dataset name in the ledger (default: the source path).")] = None,
    query_id: Annotated[str | None, typer.Option(
        "--query-id", help="Idempotency key: a repeat returns the stored result.")] = None,
    policy_path: Annotated[Path | None, typer.Option("--policy")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Answer a question with user-level differential privacy.

    Spends ε (and δ) from the ledger before computing; over budget: exit 1, nothing spent.
    With --data or --policy, a --by key on `event`, on a field the policy declares with
    values, or on day/week inside --since/--until uses those values as public partitions
    (no δ needed) unless --public-partitions is given.

    Example: anonymetry query events.parquet --unit user --metric count --metric
    mean:duration_ms --by feature --epsilon 1 --delta 1e-6 --clamp 0,5000
    """
    policy = _policy(policy_path)
    if ledger is not None and not analyst:
        raise fail("--ledger needs --analyst NAME")
    src = _source(source, data, policy, dataset)
    keys = tuple(GroupKey.parse(k, time_column) for k in _split(by))
    public = None
    if public_partitions is not None:
        public = load_public_partitions(public_partitions, tuple(k.name for k in keys))
    spec = QuerySpec(
        metrics=tuple(MetricSpec.parse(m) for m in (metric or ["count"])),
        epsilon=epsilon, delta=delta, unit=unit, by=keys,
        filters=tuple(Filter.parse(w) for w in where or []),
        window=_window(since, until, time_column), epoch=epoch,
        max_partitions=max_partitions, max_per_partition=max_per_partition,
        clamp=ClampRange.parse(clamp) if clamp else None, bins=bins,
        public_partitions=public, min_cohort=min_cohort, linf_mode=linf_mode,
        mechanism=mechanism, stable_unit=stable_unit,
        declared_partitions=data is not None or policy_path is not None,
        diagnostics=not no_diagnostics, query_id=query_id)
    book = BudgetLedger(ledger, default_budget=policy.budgets) if ledger else None
    result = run_query(spec, src, engine=DuckDBEngine(), policy=policy, ledger=book,
                       analyst=analyst, dataset=src.dataset_name)
    if as_json:
        print_json(result.to_dict())
        return
    from rich.table import Table

    names = list(dict.fromkeys(k for r in result.rows for k in r.by))
    table = Table(title=f"{result.dataset} — ε={result.epsilon:g}, δ={result.delta:g}")
    for col in [*names, "metric", "value", "±95%", "noise scale"]:
        table.add_column(col)
    for r in result.rows:
        half = (r.ci95[1] - r.ci95[0]) / 2
        ci = f"[{r.ci95[0]:,.4g}, {r.ci95[1]:,.4g}]" if half else ""
        table.add_row(*[str(r.by.get(n, "")) for n in names], r.metric, f"{r.value:,.4g}", ci,
                      f"{r.noise_scale:.4g}")
    console.print(table)
    console.print(result.explain(), highlight=False)


def suggest_bounds(
    source: Annotated[str | None, typer.Argument(help="Parquet/CSV file.")] = None,
    data: Annotated[Path | None, typer.Option("--data", help="The event store instead.")] = None,
    unit: Annotated[str | None, typer.Option("--unit")] = None,
    by: Annotated[list[str] | None, typer.Option("--by")] = None,
    value: Annotated[str | None, typer.Option("--value", help="Field to propose a clamp for.")
                     ] = None,
    where: Annotated[list[str] | None, typer.Option("--where")] = None,
    epsilon: Annotated[float, typer.Option("--epsilon", help="ε spent on the profile.")] = 0.1,
    coverage: Annotated[float, typer.Option(
        "--coverage", help="Share of units (unit-partitions) whose contributions fit.")] = 0.9,
    ledger: Annotated[Path | None, typer.Option("--ledger")] = None,
    analyst: Annotated[str | None, typer.Option("--analyst")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset")] = None,
    policy_path: Annotated[Path | None, typer.Option("--policy")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Propose L0, L∞ and a clamp range from small DP histograms (spends --epsilon, 0.1).

    Example: anonymetry suggest-bounds events.parquet --unit user --by feature --value
    duration_ms --epsilon 0.1
    """
    policy = _policy(policy_path)
    if ledger is not None and not analyst:
        raise fail("--ledger needs --analyst NAME")
    src = _source(source, data, policy, dataset)
    unit_col = unit or policy.analytics.privacy_unit
    keys = tuple(GroupKey.parse(k) for k in _split(by))
    engine = DuckDBEngine()
    if epsilon <= 0:
        raise InvalidParameter("epsilon: must be > 0")
    budget = None
    if ledger is not None:
        book = BudgetLedger(ledger, default_budget=policy.budgets)
        loss = PrivacyLoss(epsilon)
        from anonymetry.privacy.accountant import PureDp

        n = 3 if value else 2
        share = loss.epsilon / n
        debit = book.debit(query_id=f"suggest-{secrets.token_hex(8)}",
                           dataset=src.dataset_name, analyst=str(analyst),
                           events=[PureDp(share)] * n, loss=PrivacyLoss(share * n),
                           description="suggest-bounds")
        budget = debit.to_dict()
    out = _suggest(src, engine, unit=unit_col, by=keys, value=value, epsilon=epsilon,
                   filters=tuple(Filter.parse(w) for w in where or []), coverage=coverage)
    out.pop("events", None)
    if budget is not None:
        out["budget"] = budget
    if as_json:
        print_json(out)
        return
    clamp_txt = f" --clamp {out['clamp'][0]:g},{out['clamp'][1]:g}" if out.get("clamp") else ""
    console.print(f"suggested: --max-partitions {out['max_partitions']} --max-per-partition "
                  f"{out['max_per_partition']}{clamp_txt}")
    console.print(f"({out['guarantee']}; covers ~{coverage:.0%} of units fully)", highlight=False)
