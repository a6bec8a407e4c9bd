"""``anonymetry demo``: the whole path end to end on the embedded default.

1. generate a multi-device population (:mod:`~anonymetry.demo.population`);
2. start a real collector on 127.0.0.1 and stream the population through the device SDK and
   the stock OpenTelemetry exporter (:mod:`~anonymetry.demo.send`), opt-outs included;
3. compact the store into encrypted Parquet;
4. run DP reports against a budget ledger (:mod:`anonymetry.analytics`);
5. assess the re-identification and trace risk of what would be shared (:mod:`anonymetry.risk`);
6. write ``dashboard.html`` (:mod:`anonymetry.report`) and a ``summary.json`` whose numbers come
   from the store and the ledger themselves.

Nothing here computes a privacy-relevant number by itself: it calls the layers below.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from anonymetry.analytics import BudgetLedger, QuerySpec, Result, TimeWindow, run_query
from anonymetry.analytics.sources import store_source
from anonymetry.demo.assess import assess_demo
from anonymetry.demo.collector import CollectorProcess
from anonymetry.demo.population import generate_population
from anonymetry.demo.send import send_population
from anonymetry.errors import InvalidParameter
from anonymetry.governance.tokens import TokenStore
from anonymetry.ingest.reader import store_stats
from anonymetry.ingest.store import EventStore
from anonymetry.policy import Policy, default_policy_text, load_policy
from anonymetry.privacy import LocalKeyring
from anonymetry.report import (
    DashboardData,
    parse_budget,
    parse_result,
    parse_risk,
    parse_store_stats,
    write_html,
)

__all__ = ["DemoConfig", "DemoSummary", "Step", "default_out_dir", "run_demo"]

MARKER = ".anonymetry-demo"
ANALYST = "product-analytics"
DATASET = "acme-notes-events"


def default_out_dir() -> Path:
    return Path.cwd() / f"anonymetry-demo-{dt.datetime.now():%Y%m%d-%H%M%S}"


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoConfig:
    out: Path
    people: int = 300
    days: int = 14
    seed: int = 7
    epsilon_budget: float = 8.0
    workers: int = 1

    def __post_init__(self) -> None:
        if not 10 <= self.people <= 100_000:
            raise InvalidParameter(f"--people: need 10…100000, got {self.people}")
        if not 1 <= self.days <= 28:
            raise InvalidParameter(f"--days: need 1…28 (the policy keeps 30 days), got {self.days}")


@dataclass(slots=True)
class DemoSummary:
    out: str
    dashboard: str
    people: int
    devices: int
    events_generated: int
    stored: int
    by_event: dict[str, int]
    discarded_at_collector: dict[str, int]
    dropped_on_device: dict[str, int]
    dropped_by_consent: int
    opted_out_devices: int
    epsilon_spent: float
    epsilon_remaining: float
    delta_spent: float
    queries: list[dict[str, Any]] = field(default_factory=list)
    risk: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Step:
    """Progress reporting hooks; the CLI renders them with Rich."""

    def start(self, name: str, total: int | None = None) -> None: ...

    def advance(self, n: int = 1) -> None: ...

    def done(self, message: str = "") -> None: ...


@contextmanager
def _step(progress: Step, name: str, total: int | None = None) -> Iterator[Step]:
    progress.start(name, total)
    yield progress
    progress.done()


def prepare_out(out: Path) -> None:
    """Create ``out``; a previous demo run there is replaced, anything else is refused."""
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).exists():
            raise InvalidParameter(f"--out {out}: the folder is not empty and was not made by "
                                   "anonymetry demo; choose a new or empty folder")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("made by anonymetry demo; safe to delete\n")


# The product questions the demo answers. Each spends part of the analyst's budget. Group keys
# that are enums declared in the policy, and the days of the window, are public partitions (the
# analytics layer reads them from the policy): every declared value is released, with noise,
# whether or not anyone used it. Free-text keys (app versions) go through private selection.
DEMO_QUERIES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("Active people per day", {"metrics": ["users"], "by": ["day"], "epsilon": 1.0}),
    ("Events by platform", {"metrics": ["count"], "by": ["platform"], "epsilon": 0.5}),
    ("Feature use by feature", {"metrics": ["count", "users"], "by": ["feature"],
                                    "filters": ["event=feature.used"], "epsilon": 1.0}),
    ("Screen time by screen (ms)", {"metrics": ["mean:duration_ms"], "by": ["screen"],
                                        "filters": ["event=screen.view"], "clamp": (0.0, 120_000.0),
                                        "epsilon": 1.0}),
    ("Crashes by app version", {"metrics": ["count"], "by": ["app_version"],
                                    "filters": ["event=app.crash"], "epsilon": 0.5}),
    ("Launch time by platform (ms)", {"metrics": ["mean:launch_ms"], "by": ["platform"],
                                          "filters": ["event=app.launch"], "clamp": (0.0, 3_000.0),
                                          "epsilon": 1.0}),
)


def run_demo(config: DemoConfig, progress: Step | None = None) -> DemoSummary:
    progress = progress or Step()
    out = config.out
    prepare_out(out)
    policy_file = out / "policy.yaml"
    policy_file.write_text(default_policy_text(), "utf-8")
    policy = load_policy(policy_file)
    data_dir = out / "data"
    data_dir.mkdir()

    with _step(progress, "generating a multi-device population"):
        population = generate_population(config.people, config.days, seed=config.seed)

    token, _ = TokenStore(data_dir, policy).create("collector")
    collector = CollectorProcess(data_dir, policy_file, out / "collector.log",
                                 workers=config.workers)
    with _step(progress, "starting the collector"):
        collector.start()
    try:
        with _step(progress, "sending through the device SDK and OpenTelemetry",
                   total=population.events) as p:
            sent = send_population(population, endpoint=collector.url, token=token,
                                   policy=policy, devices_dir=out / "devices",
                                   progress=p.advance)
    finally:
        collector.stop()

    keyring = LocalKeyring(data_dir / "keys")
    with (_step(progress, "compacting the store into encrypted Parquet"),
          EventStore(data_dir, policy, keyring) as store):
        store.compact()
    stats = store_stats(data_dir, keyring)

    ledger = BudgetLedger(out / "ledger")
    ledger.grant(ANALYST, config.epsilon_budget, policy.budgets.delta, dataset=DATASET)
    results: list[tuple[str, Result]] = []
    with _step(progress, "running DP reports", total=len(DEMO_QUERIES)) as p:
        source = store_source(data_dir, policy, name=DATASET)
        since = population.start.replace(hour=0, minute=0, second=0)
        window = TimeWindow(since=since, until=since + dt.timedelta(days=config.days + 1))
        for title, spec in DEMO_QUERIES:
            results.append((title, _query(spec, source, policy, ledger, window)))
            p.advance()
    for title, result in results:
        (out / "results").mkdir(exist_ok=True)
        (out / "results" / f"{_slug(title)}.json").write_bytes(
            orjson.dumps(result.to_dict(), option=orjson.OPT_INDENT_2))

    with _step(progress, "assessing re-identification and trace risk"):
        risk = assess_demo(data_dir, policy, out)
    (out / "risk.json").write_bytes(orjson.dumps(risk.to_dict(), option=orjson.OPT_INDENT_2))

    with _step(progress, "writing dashboard.html"):
        dashboard = DashboardData.build(
            title="anonymetry demo — Acme Notes",
            results=[parse_result(r.to_dict(), source=_slug(t), title=t) for t, r in results],
            budgets=parse_budget(ledger.show()),
            risk=parse_risk({"verdict": risk.verdict.to_dict(), "table": risk.extract.to_dict(),
                             "traces": risk.traces.to_dict()}),
            store=parse_store_stats(stats),
        )
        write_html(dashboard, out / "dashboard.html")

    budget = _budget_of(ledger)
    consent_dropped = sent.dropped_on_device.get("consent", 0) + stats["discarded"]["consent"]
    summary = DemoSummary(
        out=str(out),
        dashboard=str(out / "dashboard.html"),
        people=population.people,
        devices=len(population.devices),
        events_generated=population.events,
        stored=stats["stored"],
        by_event=dict(stats["by_event"]),
        discarded_at_collector=dict(stats["discarded"]),
        dropped_on_device=dict(sent.dropped_on_device),
        dropped_by_consent=consent_dropped,
        opted_out_devices=sent.opted_out_devices,
        epsilon_spent=budget["spent"]["epsilon"],
        epsilon_remaining=budget["remaining"]["epsilon"],
        delta_spent=budget["spent"]["delta"],
        queries=[{"title": t, "rows": len(r.rows), "epsilon": r.epsilon,
                  "suppressed_partitions": r.to_dict()["suppressed_partitions"]}
                 for t, r in results],
        risk={
            "verdict": "pass" if risk.verdict.passed else "blocked",
            "failed": [c.name for c in risk.verdict.failed],
            "k": risk.extract.k,
            "trace_uniqueness": {
                g: risk.traces.at(g, "all", policy.release.trace_points).share
                for g in ("hour", "day", "week")},
            "remedied_k": risk.remedied.k,
            "remedied_verdict": "pass" if risk.remedied_verdict.passed else "blocked",
        },
    )
    (out / "summary.json").write_bytes(orjson.dumps(summary.to_dict(), option=orjson.OPT_INDENT_2))
    return summary


def _query(spec: dict[str, Any], source: Any, policy: Policy, ledger: BudgetLedger,
           window: TimeWindow) -> Result:
    kwargs = dict(spec)
    clamp = kwargs.pop("clamp", None)
    if clamp is not None:
        from anonymetry.privacy.units import ClampRange

        kwargs["clamp"] = ClampRange(lo=clamp[0], hi=clamp[1])
    query = QuerySpec.build(delta=1e-7, window=window, **kwargs)
    return run_query(query, source, policy=policy, ledger=ledger, analyst=ANALYST,
                     dataset=DATASET)


def _budget_of(ledger: BudgetLedger) -> dict[str, Any]:
    """The demo analyst's account on the demo dataset, as the ledger itself reports it."""
    for account in ledger.show()["accounts"]:
        if account["analyst"] == ANALYST and account["dataset"] == DATASET:
            return account
    raise InvalidParameter(f"ledger: no account for {ANALYST!r} on {DATASET!r}")


def _slug(title: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in title.lower()).strip("-")

