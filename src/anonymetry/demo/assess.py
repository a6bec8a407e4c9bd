"""The demo's risk assessment of what would be shared.

Two candidates leave the system in the demo story:

- a per-device profile extract a partner asked for (platform, app version, OS version, most
  used feature, whether it crashed; sensitive: the plan bought), assessed as a table, then
  generalized to the policy's k with the least information loss and assessed again;
- the event traces themselves (pseudonym, coarse time, event, platform), whose trace
  uniqueness by time granularity shows why the stored granularity matters.

Every number comes from :mod:`anonymetry.risk`; this module only builds the candidates.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from anonymetry.ingest.store import open_reader
from anonymetry.policy import Policy
from anonymetry.privacy import LocalKeyring
from anonymetry.risk import TableRisk, Verdict, assess_table, evaluate
from anonymetry.risk.generalize import AnonymizationResult, anonymize
from anonymetry.risk.traces import TraceRiskResult, trace_uniqueness

__all__ = ["PROFILE_QI", "PROFILE_SENSITIVE", "DemoRisk", "assess_demo"]

PROFILE_QI = ("platform", "app_version", "os_version", "top_feature", "crashed")
PROFILE_SENSITIVE = "plan"

_PROFILE_SQL = """
SELECT
    any_value(platform) FILTER (WHERE platform IS NOT NULL) AS platform,
    max(app_version) AS app_version,
    any_value(os_version) FILTER (WHERE os_version IS NOT NULL) AS os_version,
    coalesce(mode(feature) FILTER (WHERE event = 'feature.used'), 'none') AS top_feature,
    CASE WHEN count(*) FILTER (WHERE event = 'app.crash') > 0 THEN 'yes' ELSE 'no' END
        AS crashed,
    coalesce(max(plan), 'none') AS plan
FROM events
GROUP BY device
"""


@dataclass(frozen=True, slots=True)
class DemoRisk:
    extract: TableRisk
    traces: TraceRiskResult
    verdict: Verdict
    remedy: AnonymizationResult
    remedied: TableRisk
    remedied_verdict: Verdict

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict.to_dict(),
            "table": self.extract.to_dict(),
            "traces": self.traces.to_dict(),
            "remedy": self.remedy.to_dict(),
            "remedied_table": self.remedied.to_dict(),
            "remedied_verdict": self.remedied_verdict.to_dict(),
        }


def assess_demo(data_dir: Path, policy: Policy, out: Path, *, sample_users: int = 500) -> DemoRisk:
    reader = open_reader(data_dir, LocalKeyring(data_dir / "keys"), policy)
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    try:
        reader.duckdb_register(con, "events")
        profile: pa.Table = con.sql(_PROFILE_SQL).to_arrow_table()
        pq.write_table(profile, out / "partner_extract.parquet")
        con.register("profile", profile)
        extract = assess_table(con, "profile", PROFILE_QI, PROFILE_SENSITIVE)
        traces = trace_uniqueness(
            "events", con=con, unit="user", time="time", points=(1, 2, 4),
            granularities=("hour", "day", "week"), attributes=("event", "platform"),
            sample_users=sample_users, seed=7)
        verdict = evaluate(policy.release, table=extract, traces=traces,
                           trace_granularity=policy.time.granularity.value)
        declared = {c: policy.hierarchies[c] for c in PROFILE_QI if c in policy.hierarchies}
        remedy = anonymize(profile, list(PROFILE_QI), policy.release.k_min, con=con,
                           hierarchies=declared or None, max_suppression=0.05)
        remedy.write(out / "partner_extract_k_anonymous.parquet")
        con.register("remedied", remedy.table)
        remedied = assess_table(con, "remedied", PROFILE_QI, PROFILE_SENSITIVE)
        remedied_verdict = evaluate(policy.release, table=remedied)
    finally:
        con.close()
    return DemoRisk(extract, traces, verdict, remedy, remedied, remedied_verdict)
