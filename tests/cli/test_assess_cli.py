"""``anonymetry traces``, ``anonymetry anonymize`` and ``anonymetry linkage`` on real files:
JSON keys, the numbers checked against the written/read data, exit codes 0 and 2."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from anonymetry.risk.traces import GRANULARITIES

ROW_KEYS = {"granularity", "attribute_set", "attributes", "points", "n", "unique", "share",
            "ci_low", "ci_high"}


def _policy_with(tmp_path: Path, trace_max: float) -> Path:
    text = (Path(__file__).parents[2] / "examples" / "policy.yaml").read_text("utf-8")
    assert "trace_uniqueness_max: 0.05" in text
    out = tmp_path / "policy.yaml"
    out.write_text(text.replace("trace_uniqueness_max: 0.05",
                                f"trace_uniqueness_max: {trace_max}"), "utf-8")
    return out


# -- traces ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def traces_json(files, cli_subprocess) -> dict:
    """One real run in a subprocess; the other trace tests read its output."""
    done = cli_subprocess("traces", str(files["traces"]), "--points", "1,2",
                          "--granularities", "minute,hour,day,week", "--seed", "7", "--json")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return json.loads(done.stdout)


def test_traces_json_has_the_table_and_the_policy_choice(traces_json) -> None:
    """Every row carries share, 95 % CI and n; the policy's p (4) is added to --points; the
    sample is the whole (small) population."""
    out = traces_json
    assert {"rows", "finest_granularity", "policy", "seed", "sample_users",
            "population_users", "stored_granularity"} <= set(out)
    assert out["seed"] == 7
    assert out["policy"] == {"trace_points": 4, "trace_uniqueness_max": 0.05,
                             "granularity": "hour"}
    assert {r["points"] for r in out["rows"]} == {1, 2, 4}
    assert out["population_users"] == out["sample_users"] == 300
    assert out["stored_granularity"] == "minute"
    for r in out["rows"]:
        assert set(r) >= ROW_KEYS
        assert r["n"] == 300
        assert 0.0 <= r["ci_low"] <= r["share"] <= r["ci_high"] <= 1.0


def test_traces_uniqueness_falls_as_time_is_coarsened(traces_json) -> None:
    """At p=4 with all attributes, minute bins single out far more people than week bins, and
    no coarser bin singles out more than a finer one (same user sample for all)."""
    shares = [r["share"] for g in ("minute", "hour", "day", "week") for r in traces_json["rows"]
              if r["granularity"] == g and r["attribute_set"] == "all" and r["points"] == 4]
    assert len(shares) == 4
    assert shares == sorted(shares, reverse=True)
    assert shares[0] > 0.5 > shares[-1]


def test_traces_finest_granularity_is_the_first_meeting_the_policy(traces_json) -> None:
    """The highlighted choice is, recomputed from the rows, the finest granularity whose upper
    95 % bound at the policy's p is within trace_uniqueness_max."""
    rows = sorted((r for r in traces_json["rows"]
                   if r["attribute_set"] == "all" and r["points"] == 4),
                  key=lambda r: GRANULARITIES.index(r["granularity"]))
    expected = next((r["granularity"] for r in rows if r["ci_high"] <= 0.05), None)
    assert traces_json["finest_granularity"] == expected


def test_traces_table_marks_the_chosen_row(cli, files, tmp_path) -> None:
    """Human output: a loose policy (≤ 99 %) is met only where the CI's top is ≤ 0.99; the
    marked row is that granularity and the verdict line names it."""
    policy = _policy_with(tmp_path, 0.99)
    args = ("traces", str(files["traces"]), "--points", "4", "--granularities", "minute,day",
            "--attributes", "event",
            "--seed", "7", "--policy", str(policy))
    done = cli(*args, "--json")
    assert done.returncode == 0, done.stderr
    finest = json.loads(done.stdout)["finest_granularity"]
    assert finest in {"minute", "day"}
    done = cli(*args)
    assert done.returncode == 0, done.stderr
    assert f"{finest} ◀" in done.stdout
    assert f"finest granularity that meets it: {finest}" in done.stdout


def test_traces_same_seed_same_table(cli, files) -> None:
    args = ("traces", str(files["traces"]), "--points", "2", "--granularities", "hour",
            "--attributes", "event", "--sample-users", "120", "--seed", "11", "--json")
    first, second = cli(*args), cli(*args)
    assert first.returncode == second.returncode == 0, first.stderr
    a, b = json.loads(first.stdout), json.loads(second.stdout)
    assert a == b
    assert a["sample_users"] == 120
    assert {r["attribute_set"] for r in a["rows"]} == {"all", "time only"}


def test_traces_of_the_event_store(cli, tmp_path) -> None:
    """--data DIR reads the decrypted store: 6 users, each with its own launch hours."""
    from anonymetry.ingest.store import EventStore, StoredEvent
    from anonymetry.policy import default_policy
    from anonymetry.privacy import LocalKeyring

    hour = 3600
    t0 = 1_790_000_000 // hour * hour
    events = [
        StoredEvent(dedup=f"{u}{h}", epoch=t0 // (86400 * 30), event="app.launch",
                    time=t0 + h * hour * (u + 1), user=f"u{u:031d}", device=f"d{u:031d}",
                    consent="essential", attrs={"platform": "ios", "app_version": "4.0.0"})
        for u in range(6) for h in range(3)
    ]
    with EventStore(tmp_path, default_policy(), LocalKeyring(tmp_path / "keys")) as store:
        assert all(store.append_blocking(events))
    done = cli("traces", "--data", str(tmp_path), "--points", "1", "--granularities", "hour",
               "--seed", "1", "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["population_users"] == 6
    assert {r["n"] for r in out["rows"]} == {6}


@pytest.mark.parametrize(("args", "needle"), [
    (("--points", "0"), "--points"),
    (("--points", "two"), "--points"),
    (("--granularities", "fortnight"), "granularity"),
    (("--sample-users", "0"), "--sample-users"),
    (("--attributes", "no_such_column"), "no_such_column"),
    (("--unit", "no_such_column"), "no_such_column"),
])
def test_traces_bad_input_exits_2(cli, files, args, needle) -> None:
    done = cli("traces", str(files["traces"]), *args)
    assert done.returncode == 2
    assert needle in done.stderr
    assert "Traceback" not in done.stderr


# -- anonymize -------------------------------------------------------------------------------

def _classes(path: Path, qi: list[str], sensitive: str | None = None) -> list[tuple]:
    reader = "read_csv_auto" if path.suffix == ".csv" else "read_parquet"
    cols = ", ".join(qi)
    extra = f", count(DISTINCT {sensitive})" if sensitive else ""
    return duckdb.sql(f"SELECT count(*){extra} FROM {reader}('{path}') GROUP BY {cols}"
                      ).fetchall()


def test_anonymize_writes_a_k_anonymous_parquet_and_beats_suppression(cli_subprocess, files,
                                                                      tmp_path) -> None:
    """The written table's every class has ≥ k rows; the report's counts match the file; the
    chosen transformation loses less (NCP) and suppresses fewer rows than suppression alone;
    the declared hierarchy is the one used."""
    out, report = tmp_path / "safe.parquet", tmp_path / "report.json"
    done = cli_subprocess("anonymize", str(files["people"]), "--qi", "age,zip", "--k", "10",
                          "--hierarchy", "age=interval:5,10,50", "--out", str(out),
                          "--report", str(report), "--json")
    assert done.returncode == 0, done.stderr
    res = json.loads(done.stdout)
    assert {"transformation", "ncp", "discernibility", "suppressed_rows", "suppression_only",
            "achieved_k", "rows_in", "rows_out", "optimal", "out"} <= set(res)
    assert json.loads(report.read_text("utf-8")) == res
    table = pq.read_table(out)
    assert table.num_rows == res["rows_out"] == res["rows_in"] - res["suppressed_rows"]
    assert table.column_names == ["person", "age", "zip", "plan"]
    sizes = [c for (c,) in _classes(out, ["age", "zip"])]
    assert min(sizes) == res["achieved_k"] >= 10
    assert res["suppressed_rows"] <= 0.05 * res["rows_in"]
    base = res["suppression_only"]
    assert res["ncp"] < base["ncp"]
    assert res["suppressed_rows"] < base["suppressed_rows"]
    assert res["transformation"]["age"]["hierarchy"]["widths"] == [5.0, 10.0, 50.0]


def test_anonymize_l_diversity_to_csv(cli, files, tmp_path) -> None:
    """With --l 2 --sensitive plan every released class also holds ≥ 2 plans; CSV by name."""
    out = tmp_path / "safe.csv"
    done = cli("anonymize", str(files["people_csv"]), "--qi", "age,zip", "--k", "5", "--l", "2",
               "--sensitive", "plan", "--hierarchy", "zip=prefix:4,3,2,1", "--out", str(out),
               "--json")
    assert done.returncode == 0, done.stderr
    res = json.loads(done.stdout)
    assert res["l"] == 2
    assert pacsv.read_csv(out).num_rows == res["rows_out"]
    classes = _classes(out, ["age", "zip"], "plan")
    assert min(c for c, _ in classes) >= 5
    assert min(d for _, d in classes) >= 2


def test_anonymize_prints_transformation_and_baseline(cli, files, tmp_path) -> None:
    done = cli("anonymize", str(files["people"]), "--qi", "age,zip", "--k", "5",
               "--out", str(tmp_path / "t.parquet"))
    assert done.returncode == 0, done.stderr
    for text in ("chosen transformation", "suppression only (baseline)", "NCP",
                 "discernibility", "achieved k="):
        assert text in done.stdout


def test_anonymize_table_hierarchy_from_csv(cli, files, tmp_path) -> None:
    """table:FILE reads ARX-style rows (value;level1;…); the plan column generalizes to them."""
    rows = tmp_path / "plans.csv"
    rows.write_text("free;unpaid\npro;paid\nteam;paid\nenterprise;paid\n", "utf-8")
    out = tmp_path / "t.parquet"
    done = cli("anonymize", str(files["people"]), "--qi", "plan", "--k", "600",
               "--hierarchy", f"plan=table:{rows}", "--out", str(out), "--json")
    assert done.returncode == 0, done.stderr
    assert set(pq.read_table(out).column("plan").to_pylist()) <= {"unpaid", "paid", "*"}


@pytest.mark.parametrize(("args", "needle"), [
    (("--k", "0"), "--k"),
    (("--k", "ten"), "--k"),
    (("--k", "100000"), "cannot be reached"),
    (("--k", "5", "--max-suppression", "1.5"), "max_suppression"),
    (("--k", "5", "--l", "2"), "--sensitive"),
    (("--k", "5", "--hierarchy", "age=interval:5,7"), "multiple"),
    (("--k", "5", "--hierarchy", "age=cubes"), "--hierarchy"),
    (("--k", "5", "--hierarchy", "age"), "--hierarchy"),
    (("--k", "5", "--hierarchy", "zip=table:/no/such.csv"), "no file"),
    (("--k", "5", "--qi", "no_such_column"), "no_such_column"),
])
def test_anonymize_bad_input_exits_2(cli, files, tmp_path, args, needle) -> None:
    qi = () if "--qi" in args else ("--qi", "age,zip")
    done = cli("anonymize", str(files["people"]), *qi, *args, "--out",
               str(tmp_path / "x.parquet"))
    assert done.returncode == 2, done.stdout
    assert needle in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "x.parquet").exists()  # nothing written on an error


def test_anonymize_bad_output_name_exits_2_before_work(cli, files, tmp_path) -> None:
    for out, needle in ((tmp_path / "x.txt", ".parquet or .csv"),
                        (tmp_path / "missing" / "x.parquet", "does not exist")):
        done = cli("anonymize", str(files["people"]), "--qi", "age", "--k", "5", "--out",
                   str(out))
        assert done.returncode == 2
        assert needle in done.stderr


# -- linkage ---------------------------------------------------------------------------------

def test_linkage_on_the_raw_table_matches_a_direct_count(cli_subprocess, files) -> None:
    """Against the unprotected table every unique (age, zip) match is correct (precision 1),
    and the number of claims equals the auxiliary records whose (age, zip) is unique in the
    release, counted here directly."""
    done = cli_subprocess("linkage", str(files["people"]), str(files["aux"]), "--qi",
                          "age,zip", "--truth", "person", "--json")
    assert done.returncode == 0, done.stderr
    res = json.loads(done.stdout)
    assert {"reidentified_share", "precision", "recall", "claimed", "correct"} <= set(res)
    rel, aux = str(files["people"]), str(files["aux"])
    unique = duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{aux}') a JOIN (SELECT age, zip FROM "
        f"read_parquet('{rel}') GROUP BY ALL HAVING count(*) = 1) u USING (age, zip)"
    ).fetchall()[0][0]
    assert res["claimed"] == res["correct"] == unique > 0
    assert res["precision"] == 1.0
    assert res["recall"] == pytest.approx(unique / 1000)
    assert res["reidentified_share"] == pytest.approx(unique / 2000)


def test_linkage_after_anonymize_claims_nothing(cli, files, tmp_path) -> None:
    """The attacker generalizes the auxiliary QIs with the published transformation
    (--transformation = anonymize's report): on a 10-anonymous release no match is unique."""
    out, report = tmp_path / "safe.parquet", tmp_path / "report.json"
    done = cli("anonymize", str(files["people"]), "--qi", "age,zip", "--k", "10", "--out",
               str(out), "--report", str(report), "--json")
    assert done.returncode == 0, done.stderr
    done = cli("linkage", str(out), str(files["aux"]), "--qi", "age,zip", "--truth", "person",
               "--transformation", str(report), "--json")
    assert done.returncode == 0, done.stderr
    res = json.loads(done.stdout)
    assert res["generalized"] is True
    assert res["claimed"] == 0
    assert res["guess"]["precision"] <= 0.1 + 1e-9  # ≈ 1/k at most
    done = cli("linkage", str(out), str(files["aux"]), "--qi", "age,zip", "--truth", "person",
               "--transformation", str(report))
    assert done.returncode == 0
    assert "precision" in done.stdout
    assert "re-identified" in done.stdout


@pytest.mark.parametrize(("extra", "needle"), [
    (("--truth", "no_such_column"), "no_such_column"),
    (("--truth", "age"), "truth"),
    (("--truth", "person", "--transformation", "/no/such/report.json"), "--transformation"),
])
def test_linkage_bad_input_exits_2(cli, files, extra, needle) -> None:
    done = cli("linkage", str(files["people"]), str(files["aux"]), "--qi", "age,zip", *extra)
    assert done.returncode == 2
    assert needle in done.stderr
    assert "Traceback" not in done.stderr


def test_linkage_malformed_transformation_exits_2(cli, files, tmp_path) -> None:
    bad = tmp_path / "t.json"
    for content in ("not json", '{"transformation": {"age": {"level": 1}}}'):
        bad.write_text(content, "utf-8")
        done = cli("linkage", str(files["people"]), str(files["aux"]), "--qi", "age,zip",
                   "--truth", "person", "--transformation", str(bad))
        assert done.returncode == 2
        assert "--transformation" in done.stderr


def test_anonymize_takes_hierarchies_from_the_policy(tmp_path: Path) -> None:
    """With --policy, a QI without --hierarchy is generalized by the policy's declared
    hierarchy (the example declares app_version as prefix 3, then 1); without it, the inferred
    hierarchy of this free-text column can only suppress it."""
    import orjson
    import pyarrow as pa
    import pyarrow.parquet as pq
    from typer.testing import CliRunner

    from anonymetry.cli.main import build_app

    versions = [f"{major}.{minor}.{patch}" for major in (3, 4) for minor in range(4)
                for patch in range(5)]
    src = tmp_path / "versions.parquet"
    pq.write_table(pa.table({"app_version": versions * 3}), src)
    policy = Path(__file__).resolve().parents[2] / "examples" / "policy.yaml"

    def run(*extra: str) -> dict:
        done = CliRunner().invoke(build_app("anonymize"), [
            "anonymize", str(src), "--qi", "app_version", "--k", "10", "--max-suppression",
            "0", "--out", str(tmp_path / "safe.parquet"), "--json", *extra])
        assert done.exit_code == 0, done.output
        return orjson.loads(done.output)["transformation"]["app_version"]

    with_policy = run("--policy", str(policy))
    assert with_policy["hierarchy"] == {"type": "prefix", "keep": [3, 1]}
    assert with_policy["describe"] == "prefix 3"  # 3.0.x → 3.0: classes of 15 ≥ k
    counts = pq.read_table(tmp_path / "safe.parquet").group_by("app_version").aggregate(
        [("app_version", "count")])
    assert min(counts.column("app_version_count").to_pylist()) >= 10
    assert run()["hierarchy"] != with_policy["hierarchy"]
