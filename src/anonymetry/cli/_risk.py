"""``anonymetry risk`` and ``anonymetry check``: measure a table's re-identification risk, and
gate a release candidate on the policy's thresholds.

QIs and the sensitive attribute may come from the policy's sensitivity tags: ``--qi auto`` takes
the declared fields tagged technical/interaction present in the table, ``--sensitive auto`` the
one tagged highly_sensitive (see :mod:`anonymetry.risk.source`). The measures themselves live
in :mod:`anonymetry.risk`; this module only parses, calls and prints.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.table import Table

from anonymetry.cli._common import EXIT_OK, EXIT_REFUSED, console, err_console, print_json
from anonymetry.errors import InvalidParameter
from anonymetry.policy import Policy, default_policy, load_policy
from anonymetry.risk.gate import Verdict, evaluate
from anonymetry.risk.source import Source, choose_columns, open_source
from anonymetry.risk.table import TableRisk, assess_table, assess_table_spark, write_per_record

_SOURCE_HELP = "Parquet/CSV file, directory of Parquet files, or duckdb:DB_PATH::TABLE."
_QI_HELP = "Quasi-identifier columns, comma-separated, or 'auto' (policy: technical/interaction)."
_SENS_HELP = "Sensitive attribute column, or 'auto' (policy: the highly_sensitive field)."
_ENGINE_HELP = "Where the grouped queries run: duckdb, or spark (large Parquet/CSV tables)."


def _policy(path: Path | None) -> Policy:
    return default_policy() if path is None else load_policy(path)


def _split(text: str) -> list[str]:
    return [c.strip() for c in text.split(",") if c.strip()]


def _population(value: int | None) -> int | None:
    if value is not None and value < 1:
        raise InvalidParameter("--population: give the population size, a positive integer")
    return value


def _measure(src: Source, qi: str, sensitive: str | None, population: int | None,
             policy: Policy, qi_analysis: bool, engine: str = "duckdb",
             source: str | None = None) -> TableRisk:
    if engine not in ("duckdb", "spark"):
        raise InvalidParameter("--engine: use duckdb or spark")
    cols, sens = choose_columns(list(src.columns()), _split(qi), sensitive, policy)
    # One QI: nothing to drop or combine, and risk.combinations cannot build its GROUPING SETS
    # query for it (a known library bug), so the QI analysis is skipped.
    qi_analysis = qi_analysis and len(cols) > 1
    if engine == "spark":  # Spark reads files itself; a DuckDB table or the store via Arrow
        data = source if src.description == "file" else src.con.sql(
            f"SELECT * FROM {src.relation}").to_arrow_table()
        return assess_table_spark(data, cols, sens, population=_population(population),
                                  qi_analysis=qi_analysis)
    return assess_table(src.con, src.relation, cols, sens, population=_population(population),
                        qi_analysis=qi_analysis)


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _print_risk(risk: TableRisk) -> None:
    d = risk.to_dict()
    table = Table(title=f"risk of {risk.records} records over QIs {', '.join(risk.qi)}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows: list[tuple[str, Any]] = [
        ("k (smallest class)", risk.k),
        ("classes", risk.classes),
        ("sample uniqueness", risk.sample_uniqueness),
        ("prosecutor risk max / avg", f"{_fmt(risk.prosecutor_max)} / "
                                      f"{_fmt(risk.prosecutor_average)}"),
        ("journalist risk max / avg", f"{_fmt(risk.journalist_max)} / "
                                      f"{_fmt(risk.journalist_average)}"),
        ("marketer risk", risk.marketer),
    ]
    if risk.sensitive:
        rows += [
            (f"distinct ℓ ({risk.sensitive})", risk.l_distinct),
            ("entropy ℓ", risk.l_entropy),
            ("recursive (c,ℓ): c* per ℓ", ", ".join(
                f"ℓ={ell}: c>{c:.4g}" for ell, c in (risk.c_l_recursive or {}).items()) or "—"),
            (f"t ({risk.t_distance} EMD)", risk.t),
            ("δ-disclosure", risk.delta_disclosure),
        ]
    if risk.population is not None:
        p = risk.population
        rows += [(f"population uniqueness (N={p.population})",
                  f"pitman {_fmt(p.pitman)}, zayatz {_fmt(p.zayatz)}, snb {_fmt(p.snb)}; "
                  f"dankar → {_fmt(p.dankar)} ({p.dankar_model})")]
    for name, value in rows:
        table.add_row(name, _fmt(value))
    console.print(table)
    console.print("class sizes: " + ", ".join(
        f"{s}×{c}" for s, c in list(d["class_size_histogram"].items())[:12]), highlight=False)
    if risk.qi_analysis:
        for item in risk.qi_analysis["remedies"][:5]:
            console.print(f"  {item['action']} {', '.join(item['columns'])}: k={item['k']}, "
                          f"uniqueness {item['sample_uniqueness']:.4g}", highlight=False)
        for item in risk.qi_analysis["riskiest"][:5]:
            console.print(f"  riskiest: {', '.join(item['columns'])} alone single out "
                          f"{item['sample_uniqueness']:.4g}", highlight=False)


def risk(
    source: str | None = typer.Argument(None, help=_SOURCE_HELP),
    qi: str = typer.Option(..., "--qi", help=_QI_HELP),
    sensitive: str | None = typer.Option(None, "--sensitive", help=_SENS_HELP),
    population: int | None = typer.Option(
        None, "--population", help="Population size N the table was drawn from."),
    as_json: bool = typer.Option(False, "--json", help="Print the measures as JSON."),
    per_record: Annotated[Path | None, typer.Option(
        "--per-record", help="Per-record QIs, class size and risk (.parquet/.csv).")] = None,
    data: Annotated[Path | None, typer.Option(
        "--data", help="Assess the event store in DIR.")] = None,
    policy_file: Annotated[Path | None, typer.Option(
        "--policy", help="Policy YAML (sensitivity tags for 'auto'; default: embedded).")] = None,
    qi_analysis: bool = typer.Option(
        True, "--qi-analysis/--no-qi-analysis", help="Effect of dropping/generalizing each QI."),
    engine: str = typer.Option("duckdb", "--engine", help=_ENGINE_HELP),
) -> None:
    """Measure re-identification risk: k, ℓ, t, uniqueness, prosecutor/journalist/marketer risk.

    Example: anonymetry risk release.parquet --qi age,zip,platform --sensitive plan --json
    """
    policy = _policy(policy_file)
    with open_source(source, data_dir=data, policy=policy) as src:
        result = _measure(src, qi, sensitive, population, policy, qi_analysis, engine, source)
        if per_record is not None:
            write_per_record(src.con, src.relation, list(result.qi), per_record,
                             population=population)
    if as_json:
        print_json(result.to_dict())
    else:
        _print_risk(result)


def _module_available(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def _print_verdict(verdict: Verdict) -> None:
    table = Table(title="release gate")
    for col in ("check", "value", "threshold", "result", "detail"):
        table.add_column(col)
    for c in verdict.checks:
        result = {True: "[green]pass[/]", False: "[bold red]FAIL[/]", None: "[dim]skipped[/]"}
        threshold = "—" if c.threshold is None else f"{c.op} {_fmt(c.threshold)}"
        table.add_row(c.name, _fmt(c.value), threshold, result[c.passed], c.detail)
    console.print(table)
    if verdict.passed:
        console.print("[bold green]SAFE[/]: every evaluated threshold is met")
    elif not verdict.evaluated:
        console.print("[bold red]BLOCKED[/]: nothing was evaluated")
    else:
        console.print(f"[bold red]BLOCKED[/]: {', '.join(c.name for c in verdict.failed)} "
                      "exceed the policy's thresholds")


def check(
    source: str | None = typer.Argument(None, help=_SOURCE_HELP),
    qi: str = typer.Option(..., "--qi", help=_QI_HELP),
    sensitive: str | None = typer.Option(None, "--sensitive", help=_SENS_HELP),
    population: int | None = typer.Option(
        None, "--population", help="Population size N (else sample uniqueness is gated)."),
    policy_file: Annotated[Path | None, typer.Option(
        "--policy", help="Policy YAML with release thresholds (default: embedded).")] = None,
    report: Annotated[Path | None, typer.Option(
        "--report", help="Write the JSON report here.")] = None,
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    data: Annotated[Path | None, typer.Option(
        "--data", help="Check the event store in DIR.")] = None,
    traces: bool = typer.Option(False, "--traces", help="Also gate trace uniqueness."),
    unit: str = typer.Option("user", "--unit", help="Trace owner column (with --traces)."),
    time_col: str = typer.Option("time", "--time", help="Trace time column (with --traces)."),
    auxiliary: Annotated[Path | None, typer.Option(
        "--auxiliary", help="Attacker's auxiliary table: also gate linkage precision.")] = None,
    truth: str | None = typer.Option(
        None, "--truth", help="Hidden true-id column in both tables (with --auxiliary)."),
    engine: str = typer.Option("duckdb", "--engine", help=_ENGINE_HELP),
) -> None:
    """Gate a release candidate on the policy's thresholds; exit 1 if any is exceeded.

    Example: anonymetry check release.parquet --qi age,zip --report gate.json
    """
    policy = _policy(policy_file)
    if (auxiliary is None) != (truth is None):
        raise InvalidParameter("--auxiliary and --truth go together")
    trace_result = linkage_result = None
    with open_source(source, data_dir=data, policy=policy) as src:
        table = _measure(src, qi, sensitive, population, policy, qi_analysis=False,
                         engine=engine, source=source)
        if traces:
            if not _module_available("anonymetry.risk.traces"):
                raise InvalidParameter("--traces: trace risk is not available in this build")
            from anonymetry.risk.traces import trace_uniqueness

            trace_result = trace_uniqueness(
                src.name, con=src.con, unit=unit, time=time_col,
                points=(policy.release.trace_points,),
                granularities=(policy.time.granularity.value,))
        if auxiliary is not None and truth is not None:
            if not _module_available("anonymetry.risk.linkage"):
                raise InvalidParameter("--auxiliary: linkage attack is not available in this build")
            from anonymetry.risk.linkage import linkage_attack

            linkage_result = linkage_attack(src.name, str(auxiliary), qi=list(table.qi),
                                            truth=truth, con=src.con)
    verdict = evaluate(policy.release, table=table, traces=trace_result,
                       trace_granularity=policy.time.granularity.value if traces else None,
                       linkage=linkage_result)
    out = {"verdict": verdict.to_dict(), "table": table.to_dict(),
           "traces": None if trace_result is None else trace_result.to_dict(),
           "linkage": None if linkage_result is None else linkage_result.to_dict(),
           "policy": {"name": policy.name, "release": policy.to_dict()["release"]}}
    if report is not None:
        report.write_bytes(orjson.dumps(out, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    if as_json:
        print_json(out)
    else:
        _print_verdict(verdict)
        if report is not None:
            err_console.print(f"report written to {report}")
    raise typer.Exit(EXIT_OK if verdict.passed else EXIT_REFUSED)
