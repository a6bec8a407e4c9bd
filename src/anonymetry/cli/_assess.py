"""``anonymetry traces``, ``anonymetry anonymize`` and ``anonymetry linkage``: trace risk, the
remedy (generalization + suppression), and a simulated linkage attack.

No risk logic here: parsing, then :func:`anonymetry.risk.traces.trace_uniqueness`,
:func:`anonymetry.risk.generalize.anonymize`, :func:`anonymetry.risk.linkage.linkage_attack`,
then printing. SOURCE handling (Parquet/CSV, ``duckdb:DB::TABLE``, the store with ``--data``) is
:func:`anonymetry.risk.source.open_source`'s.

``--hierarchy COL=SPEC`` (repeatable) declares a generalization hierarchy; SPEC is one of
``interval:5,10,50`` (widths, each a multiple of the previous), ``date:day,month,year``,
``prefix:4,3,1`` (characters kept), ``suppress``, ``table:FILE.csv`` (ARX rows: value, level 1,
…; ``,`` or ``;`` separated), or the JSON mapping of :meth:`Hierarchy.from_spec`. Columns
without one get an inferred hierarchy.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.table import Table

from anonymetry.cli._common import console, err_console, print_json, working
from anonymetry.errors import InvalidParameter
from anonymetry.policy import Policy, default_policy, load_policy
from anonymetry.risk.source import open_source

_SOURCE_HELP = "Parquet/CSV file, directory of Parquet files, or duckdb:DB_PATH::TABLE."
_OUT_SUFFIXES = (".parquet", ".pq", ".csv")


def _policy(path: Path | None) -> Policy:
    return default_policy() if path is None else load_policy(path)


def _names(text: str, flag: str) -> list[str]:
    names = [c.strip() for c in text.split(",") if c.strip()]
    if not names:
        raise InvalidParameter(f"{flag}: name at least one column, e.g. {flag} age,zip")
    return names


def _ints(text: str, flag: str) -> list[int]:
    try:
        values = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise InvalidParameter(f"{flag}: give whole numbers separated by commas, "
                               f"e.g. {flag} 1,2,4") from None
    if not values or any(v < 1 for v in values):
        raise InvalidParameter(f"{flag}: give whole numbers ≥ 1, e.g. {flag} 1,2,4")
    return values


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


# -- traces ----------------------------------------------------------------------------------

def traces(
    source: Annotated[str | None, typer.Argument(help=_SOURCE_HELP)] = None,
    data: Annotated[Path | None, typer.Option(
        "--data", help="Assess the event store in DIR instead of SOURCE.")] = None,
    unit: Annotated[str, typer.Option("--unit", help="Column of the person a trace belongs to."
                                      )] = "user",
    time_col: Annotated[str, typer.Option("--time", help="Timestamp column.")] = "time",
    points: Annotated[str, typer.Option(
        "--points", help="Points of a trace an attacker knows, comma-separated (the policy's "
        "release.trace_points is always added).")] = "1,2,4",
    granularities: Annotated[str, typer.Option(
        "--granularities", help="Time bins to compare: second, minute, hour, day, week, month."
    )] = "minute,hour,day,week",
    attributes: Annotated[str | None, typer.Option(
        "--attributes", help="Point attributes besides the time bin, comma-separated, or 'none' "
        "(default: event, platform where present).")] = None,
    sample_users: Annotated[int, typer.Option(
        "--sample-users", help="Users sampled (bounds the work, not the data size).")] = 2000,
    seed: Annotated[int | None, typer.Option(
        "--seed", help="Seed of the user/point sample (default: drawn and reported).")] = None,
    policy_file: Annotated[Path | None, typer.Option(
        "--policy", help="Policy YAML with release thresholds (default: embedded).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the table as JSON.")] = False,
) -> None:
    """Share of people singled out by p points of their trace, per time granularity and
    attribute set, with 95 % intervals; marks the finest granularity meeting the policy.

    Example: anonymetry traces --data ./data --points 1,2,4 --granularities minute,hour,day
    """
    from anonymetry.risk.traces import trace_uniqueness

    policy = _policy(policy_file)
    release = policy.release
    ps = sorted({*_ints(points, "--points"), release.trace_points})
    gs = _names(granularities, "--granularities")
    attrs: list[str] | None = None
    if attributes is not None:
        attrs = [] if attributes.strip().lower() == "none" else _names(attributes, "--attributes")
    if sample_users < 1:
        raise InvalidParameter("--sample-users: give a whole number ≥ 1, e.g. 2000")
    with open_source(source, data_dir=data, policy=policy) as src, working(
            f"trace uniqueness: {len(gs)} granularities × p ∈ {ps}, ≤ {sample_users} users",
            quiet=as_json):
        result = trace_uniqueness(src.name, con=src.con, unit=unit, time=time_col, points=ps,
                                  granularities=gs, attributes=attrs,
                                  sample_users=sample_users, seed=seed)
    finest = result.finest_granularity(release.trace_uniqueness_max, "all",
                                       release.trace_points)
    out = {**result.to_dict(), "finest_granularity": finest,
           "policy": {"trace_points": release.trace_points,
                      "trace_uniqueness_max": release.trace_uniqueness_max,
                      "granularity": policy.time.granularity.value}}
    if as_json:
        print_json(out)
        return
    _print_traces(result, finest, policy)


def _print_traces(result: Any, finest: str | None, policy: Policy) -> None:
    release = policy.release
    ps = sorted({r.points for r in result.rows})
    table = Table(title=f"trace uniqueness: % of {result.sample_users} sampled (of "
                        f"{result.population_users}) users singled out by p points [95 % CI]")
    table.add_column("attributes")
    table.add_column("granularity")
    for p in ps:
        table.add_column(f"p={p}" + ("*" if p == release.trace_points else ""),
                         justify="right", overflow="fold")
    table.add_column("n", justify="right")
    by_set: dict[str, dict[str, dict[int, Any]]] = {}
    for r in result.rows:
        by_set.setdefault(r.attribute_set, {}).setdefault(r.granularity, {})[r.points] = r
    for aset, by_g in by_set.items():
        for i, (g, cells) in enumerate(by_g.items()):
            first = next(iter(cells.values()))
            marked = aset == "all" and g == finest
            name = f"all: {', '.join(first.attributes) or 'time only'}" if aset == "all" else aset
            row = [name if i == 0 else "", g + (" ◀" if marked else "")]
            row += [f"{100 * c.share:.1f} [{100 * c.ci_low:.1f}–{100 * c.ci_high:.1f}]"
                    if (c := cells.get(p)) else "—" for p in ps]
            row.append(str(first.n))
            table.add_row(*row, style="bold green" if marked else None,
                          end_section=i == len(by_g) - 1)
    console.print(table)
    rule = (f"* policy: at {release.trace_points} points, upper 95 % bound ≤ "
            f"{_pct(release.trace_uniqueness_max)}")
    if finest is None:
        console.print(f"{rule}: [bold red]no computed granularity meets it[/] with all "
                      "attributes; try coarser --granularities or fewer attributes",
                      highlight=False)
    else:
        current = policy.time.granularity.value
        console.print(f"{rule}: finest granularity that meets it: [bold green]{finest}[/] "
                      f"(the policy stores {current})", highlight=False)
    stored = result.stored_granularity or "unknown"
    console.print(f"data stored at {stored} granularity; seed {result.seed} (pass --seed to "
                  "repeat)", highlight=False)


# -- anonymize -------------------------------------------------------------------------------

def _table_rows(path: Path, col: str) -> list[list[str]]:
    if not path.is_file():
        raise InvalidParameter(f"--hierarchy {col}=table:FILE: no file at {path}; give a CSV "
                               "with rows value,level1,…")
    text = path.read_text("utf-8")
    first = text.splitlines()[0] if text.strip() else ""
    delimiter = ";" if ";" in first else ","
    return [row for row in csv.reader(text.splitlines(), delimiter=delimiter) if row]


def parse_hierarchy(text: str) -> tuple[str, dict[str, Any]]:
    """``COL=SPEC`` → ``(COL, spec mapping for Hierarchy.from_spec)`` (module doc)."""
    col, sep, spec = text.partition("=")
    col, spec = col.strip(), spec.strip()
    usage = ("write COL=SPEC, SPEC one of interval:5,10,50, date:day,month,year, "
             "prefix:4,3,1, suppress, table:FILE.csv, or a JSON mapping")
    if not sep or not col or not spec:
        raise InvalidParameter(f"--hierarchy: {usage}")
    if spec.startswith("{"):
        try:
            parsed = json.loads(spec)
        except json.JSONDecodeError:
            raise InvalidParameter(f"--hierarchy {col}: the JSON does not parse; {usage}"
                                   ) from None
        if not isinstance(parsed, dict):
            raise InvalidParameter(f"--hierarchy {col}: {usage}")
        return col, parsed
    kind, _, args = spec.partition(":")
    kind = kind.strip().lower()
    items = [a.strip() for a in args.split(",") if a.strip()]
    try:
        if kind == "interval" and items:
            return col, {"type": "interval", "widths": [float(a) for a in items]}
        if kind == "prefix" and items:
            return col, {"type": "prefix", "keep": [int(a) for a in items]}
    except ValueError:
        raise InvalidParameter(f"--hierarchy {col}: {kind} levels must be numbers, e.g. "
                               f"{col}={kind}:{'5,10,50' if kind == 'interval' else '4,3,1'}"
                               ) from None
    if kind == "date" and items:
        return col, {"type": "date", "levels": items}
    if kind == "suppress" and not items:
        return col, {"type": "suppress"}
    if kind == "table" and args.strip():
        return col, {"type": "table", "rows": _table_rows(Path(args.strip()), col)}
    raise InvalidParameter(f"--hierarchy {col}: {usage}")


def anonymize(
    source: Annotated[str, typer.Argument(help=_SOURCE_HELP)],
    qi: Annotated[str, typer.Option("--qi", help="Quasi-identifier columns, comma-separated.")],
    k: Annotated[int, typer.Option("--k", help="Smallest equivalence class to reach.")],
    out: Annotated[Path, typer.Option(
        "--out", help="Write the transformed table here (.parquet or .csv).")],
    l_div: Annotated[int | None, typer.Option(
        "--l", help="Also distinct ℓ-diversity of --sensitive in every class.")] = None,
    sensitive: Annotated[str | None, typer.Option(
        "--sensitive", help="Sensitive attribute column (with --l).")] = None,
    max_suppression: Annotated[float, typer.Option(
        "--max-suppression", help="Largest share of rows that may be removed (0…1).")] = 0.05,
    hierarchy: Annotated[list[str] | None, typer.Option(
        "--hierarchy", help="COL=SPEC, repeatable: interval:5,10,50 | date:day,month,year | "
        "prefix:4,3,1 | suppress | table:FILE.csv | JSON (default: inferred).")] = None,
    policy_file: Annotated[Path | None, typer.Option(
        "--policy", help="Policy whose `hierarchies` apply to QIs without --hierarchy.")] = None,
    report: Annotated[Path | None, typer.Option(
        "--report", help="Also write the JSON report here (linkage --transformation reads it)."
    )] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Generalize QIs and suppress rows to reach k (and ℓ) with the least information loss;
    write the table and compare with suppression alone.

    Example: anonymetry anonymize release.parquet --qi age,zip --k 10 --hierarchy
    age=interval:5,10,50 --out safe.parquet
    """
    from anonymetry.risk.generalize import anonymize as run_anonymize

    if out.suffix.lower() not in _OUT_SUFFIXES:
        raise InvalidParameter("--out: the name must end in .parquet or .csv (it picks the "
                               "format)")
    if not out.parent.is_dir():
        raise InvalidParameter(f"--out: the folder {out.parent} does not exist; create it first")
    if (l_div is None) != (sensitive is None):
        raise InvalidParameter("--l and --sensitive go together: --l 2 --sensitive diagnosis")
    if k < 1:
        raise InvalidParameter("--k: give a whole number ≥ 1, e.g. --k 10")
    declared = dict(parse_hierarchy(h) for h in hierarchy or [])
    cols = _names(qi, "--qi")
    if policy_file is not None:
        from_policy = load_policy(policy_file).hierarchies
        declared = {**{c: from_policy[c] for c in cols if c in from_policy}, **declared}
    with open_source(source) as src, working(
            f"searching the generalization lattice of {len(cols)} QIs for k={k}", quiet=as_json):
        result = run_anonymize(src.name, cols, k, con=src.con, hierarchies=declared or None,
                               max_suppression=max_suppression, sensitive=sensitive, l=l_div)
    result.write(out)
    data = {**result.to_dict(), "out": str(out)}
    if report is not None:
        report.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    if as_json:
        print_json(data)
        return
    _print_anonymized(result, out)
    if report is not None:
        err_console.print(f"report written to {report}")


def _print_anonymized(result: Any, out: Path) -> None:
    target = f"k={result.target_k}" + (f", ℓ={result.l} of {result.sensitive}"
                                       if result.l else "")
    table = Table(title=f"chosen transformation ({target}, at most "
                        f"{_pct(result.max_suppression)} suppressed)")
    table.add_column("QI")
    table.add_column("level", justify="right")
    table.add_column("generalized to")
    for col, item in result.generalization.to_dict().items():
        table.add_row(col, str(item["level"]), item["describe"])
    console.print(table)
    base = result.suppression_only
    cmp = Table(title="information loss")
    for col in ("", "rows suppressed", "NCP", "discernibility"):
        cmp.add_column(col, justify="right" if col else "left")
    cmp.add_row("generalization + suppression", f"{result.suppressed_rows} "
                f"({_pct(result.suppressed_share)})", f"{result.ncp:.4f}",
                f"{result.discernibility:,}", style="bold")
    cmp.add_row("suppression only (baseline)", f"{base.suppressed_rows} "
                f"({_pct(base.suppressed_share)})", f"{base.ncp:.4f}", f"{base.discernibility:,}")
    console.print(cmp)
    search = "optimal" if result.optimal else "best found (search stopped early)"
    console.print(f"achieved k={result.achieved_k} over {result.classes} classes; "
                  f"{result.rows_out} of {result.rows_in} rows written to {out}; "
                  f"{result.nodes_evaluated} of {result.lattice_size} lattice nodes evaluated "
                  f"({search})", highlight=False)


# -- linkage ---------------------------------------------------------------------------------

def _transformation(path: Path) -> Any:
    from anonymetry.risk.hierarchy import Generalization, Hierarchy

    if not path.is_file():
        raise InvalidParameter(f"--transformation: no file at {path}; pass the --report of "
                               "anonymetry anonymize")
    try:
        doc = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError:
        raise InvalidParameter("--transformation: not JSON; pass the --report of "
                               "anonymetry anonymize") from None
    spec = doc.get("transformation", doc) if isinstance(doc, dict) else None
    if not isinstance(spec, dict) or not all(
            isinstance(v, dict) and {"level", "hierarchy"} <= set(v) for v in spec.values()):
        raise InvalidParameter("--transformation: expected anonymize's report (a "
                               "'transformation' of {column: {level, hierarchy}})")
    hier = {c: Hierarchy.from_spec(c, v["hierarchy"]) for c, v in spec.items()}
    return Generalization(hier, {c: int(v["level"]) for c, v in spec.items()})


def linkage(
    released: Annotated[str, typer.Argument(help="The released table: " + _SOURCE_HELP)],
    auxiliary: Annotated[str, typer.Argument(
        help="The attacker's table (same forms): QIs in original form plus --truth.")],
    qi: Annotated[str, typer.Option("--qi", help="QIs both tables hold, comma-separated.")],
    truth: Annotated[str, typer.Option(
        "--truth", help="Hidden true-id column in both tables, used only to score.")],
    transformation: Annotated[Path | None, typer.Option(
        "--transformation", help="anonymize's --report: the attacker generalizes the "
        "auxiliary QIs the same way.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Simulate a linkage attack: how many released records an auxiliary table re-identifies
    (share re-identified, precision, recall).

    Example: anonymetry linkage release.parquet voters.csv --qi age,zip --truth person_id
    """
    from anonymetry.risk.linkage import linkage_attack

    generalization = None if transformation is None else _transformation(transformation)
    cols = _names(qi, "--qi")
    with open_source(released) as rel, open_source(auxiliary, con=rel.con) as aux:
        result = linkage_attack(rel.name, aux.name, qi=cols, truth=truth, con=rel.con,
                                generalization=generalization)
    if as_json:
        print_json(result.to_dict())
        return
    table = Table(title=f"linkage attack on {result.released_rows} released records with "
                        f"{result.auxiliary_rows} auxiliary records over {', '.join(cols)}"
                        + (" (generalized)" if result.generalized else ""))
    for col in ("attacker", "claims", "correct", "precision", "recall"):
        table.add_column(col, justify="left" if col == "attacker" else "right")
    table.add_row("unique matches only", str(result.claimed), str(result.correct),
                  _pct(result.precision), _pct(result.recall), style="bold")
    table.add_row("guess within match set", str(result.guess_claimed),
                  f"{result.guess_expected_correct:.1f}", _pct(result.guess_precision),
                  _pct(result.guess_recall))
    console.print(table)
    console.print(f"re-identified: {result.reidentified_records} of {result.released_rows} "
                  f"released records ({_pct(result.reidentified_share)}); "
                  f"{result.auxiliary_in_release} auxiliary people are in the release",
                  highlight=False)
