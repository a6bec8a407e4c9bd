"""Remedies (anonymetry.risk.generalize, anonymetry.risk.hierarchy): hierarchies inferred and
declared correctly, the chosen transformation reaches k (and ℓ), checked by an independent
GROUP BY, beats suppression alone, and is the least-loss node of the lattice (brute force)."""

from __future__ import annotations

import datetime as dt
import itertools

import duckdb
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from anonymetry.errors import InvalidParameter
from anonymetry.risk.generalize import anonymize
from anonymetry.risk.hierarchy import Generalization, Hierarchy, infer_hierarchies


def people(n: int, seed: int = 1, zips: int = 400) -> pa.Table:
    """An adult-like microdata table: age, 5-digit zip, sex, education, a sensitive disease."""
    rng = np.random.default_rng(seed)
    pool = rng.integers(10000, 99999, zips)
    return pa.table(
        {
            "pid": np.arange(n),
            "age": rng.integers(17, 91, n),
            "zip": np.array([f"{z:05d}" for z in rng.choice(pool, n)]),
            "sex": rng.choice(["female", "male"], n),
            "edu": rng.choice(["none", "school", "bachelor", "master", "phd"], n),
            "disease": rng.choice(["flu", "cold", "asthma", "diabetes", "hiv"], n),
        }
    )


def _sql_value(h: Hierarchy, value, level: int, duck_type: str | None = None):
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    cast = "$v" if duck_type is None else f"CAST($v AS {duck_type})"
    sql = f"SELECT {h.sql('v', level)} FROM (SELECT {cast} AS v)"
    return con.execute(sql, {"v": value}).fetchall()[0][0]


# -- hierarchies --------------------------------------------------------------------------


def test_hierarchies_are_inferred_from_types_and_values() -> None:
    t = pa.table(
        {
            "age": pa.array([17, 25, 37, 52, 90], pa.int64()),
            "income": pa.array([1200.5, 3400.0, 150000.0, 800.25, 56000.0]),
            "zip": ["13053", "13068", "14850", "14853", "90210"],
            "sex": ["female", "male", "male", "female", "male"],
            "seen": pa.array(
                [dt.datetime(2024, 3, d, 9) for d in (1, 2, 3, 4, 5)], pa.timestamp("s", tz="UTC")
            ),
            "born": pa.array([dt.date(1990, m, 1) for m in (1, 2, 3, 4, 5)]),
            "vip": [True, False, True, False, False],
        }
    )
    h = infer_hierarchies(t, t.column_names)
    assert (h["age"].kind, h["age"].steps) == ("interval", (2.0, 10.0, 50.0))  # range 73
    assert h["income"].kind == "interval"
    assert h["income"].steps[0] >= (150000 - 800.25) / 64
    assert (h["zip"].kind, h["zip"].steps) == ("prefix", (4, 3, 2, 1))
    assert (h["sex"].kind, h["sex"].height) == ("suppress", 1)
    assert (h["seen"].kind, h["seen"].steps) == ("date", ("day", "month", "year"))
    assert (h["born"].kind, h["born"].steps) == ("date", ("month", "year"))
    assert h["vip"].kind == "suppress"
    assert all(x.inferred for x in h.values())
    # and the levels produce the values one would write by hand
    assert _sql_value(h["age"], 37, 1) == "[36, 38)"
    assert _sql_value(h["age"], 37, 2) == "[30, 40)"
    assert _sql_value(h["age"], 37, 3) == "[0, 50)"
    assert _sql_value(h["age"], 37, 4) == "*"
    assert _sql_value(h["age"], None, 2, "BIGINT") is None
    assert _sql_value(h["zip"], "13053", 2) == "130**"
    assert _sql_value(h["sex"], "male", 1) == "*"
    when = dt.datetime(2024, 3, 6, 10, 30, tzinfo=dt.UTC)
    assert _sql_value(h["seen"], when, 1) == "2024-03-06"
    assert _sql_value(h["seen"], when, 2) == "2024-03"
    assert _sql_value(h["seen"], when, 3) == "2024"
    assert _sql_value(h["income"], 1234.5, 0) == 1234.5  # level 0 keeps the value


def test_long_codes_get_at_most_six_prefix_levels() -> None:
    t = pa.table({"code": [f"AB{i:08d}" for i in range(50)]})
    h = infer_hierarchies(t, ["code"])["code"]
    assert h.kind == "prefix"
    assert len(h.steps) <= 6
    assert h.steps[0] == 9
    assert list(h.steps) == sorted(h.steps, reverse=True)


def test_declared_hierarchies_round_trip_and_apply() -> None:
    geo = Hierarchy.from_spec(
        "city",
        {
            "type": "table",
            "rows": [
                ["Paris", "Ile-de-France", "France", "*"],
                ["Versailles", "Ile-de-France", "France", "*"],
                ["Lyon", "Rhone", "France", "*"],
                ["Berlin", "Berlin", "Germany", "*"],
            ],
        },
    )
    assert geo.height == 3  # Paris → region → country → '*'
    assert _sql_value(geo, "Versailles", 1) == "Ile-de-France"
    assert _sql_value(geo, "Lyon", 2) == "France"
    assert _sql_value(geo, "Lyon", 3) == "*"
    assert Hierarchy.from_spec("city", geo.to_dict()) == geo
    ages = Hierarchy.from_spec("age", {"type": "interval", "widths": [5, 20], "origin": 3})
    assert _sql_value(ages, 7, 1) == "[3, 8)"
    assert _sql_value(ages, 7, 2) == "[3, 23)"
    assert Hierarchy.from_spec("age", ages.to_dict()) == ages
    days = Hierarchy.from_spec("d", {"type": "date", "levels": ["day", "month", "year"]})
    assert Hierarchy.from_spec("d", days.to_dict()) == days


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"type": "interval", "widths": [3, 5]}, "multiple"),
        ({"type": "interval", "widths": [0]}, "> 0"),
        ({"type": "date", "levels": ["week", "month"]}, "does not nest"),
        ({"type": "date", "levels": ["fortnight"]}, "unknown date level"),
        ({"type": "prefix", "keep": [2, 3]}, "decrease"),
        ({"type": "table", "rows": [["a", "x", "P"], ["b", "x", "Q"]]}, "split"),
        ({"type": "table", "rows": [["a", "x"], ["a", "y"]]}, "more than one row"),
        ({"type": "circle"}, "unknown type"),
        ({"type": "interval"}, "missing key"),
        ({"type": "suppress", "levels": [1]}, "unknown key"),
    ],
)
def test_declared_hierarchies_that_do_not_nest_are_refused(spec, fragment) -> None:
    with pytest.raises(InvalidParameter, match=fragment) as err:
        Hierarchy.from_spec("col", spec)
    assert "'col'" in str(err.value)


# -- anonymize ----------------------------------------------------------------------------


def _class_sizes(table: pa.Table, qi: list[str]) -> list[int]:
    con = duckdb.connect()
    con.register("t", table)
    cols = ", ".join(qi)
    return [r[0] for r in con.execute(f"SELECT count(*) FROM t GROUP BY {cols}").fetchall()]


QI = ["age", "zip", "sex", "edu"]


@pytest.fixture(scope="module")
def big() -> pa.Table:
    return people(20_000)


@pytest.fixture(scope="module")
def k5(big):
    return anonymize(big, QI, 5, max_suppression=0.05)


def test_result_reaches_k_by_an_independent_group_by(big, k5) -> None:
    sizes = _class_sizes(k5.table, QI)
    assert min(sizes) >= 5 == k5.target_k
    assert min(sizes) == k5.achieved_k
    assert len(sizes) == k5.classes
    assert k5.suppressed_rows <= 0.05 * big.num_rows
    assert k5.rows_out == big.num_rows - k5.suppressed_rows == k5.table.num_rows
    assert k5.table.column_names == big.column_names
    assert k5.optimal


def test_generalization_loses_less_than_suppression_alone(big, k5) -> None:
    """On near-unique QIs, suppression alone would delete most rows; the generalization reaches
    the same k with a small suppression and strictly (and much) less information loss."""
    base = k5.suppression_only
    assert base.suppressed_share > 0.5
    assert k5.suppressed_share <= 0.05
    assert k5.ncp < base.ncp / 3
    assert k5.discernibility < base.discernibility


def test_chosen_node_is_the_least_loss_node_of_the_lattice() -> None:
    """Brute force: every node of the lattice, class sizes and NCP recomputed independently in
    Python from the generalized values (a cell costs the spread, over the whole column, of the
    original values that share its generalized value; 1 when suppressed or '*'); the search's
    choice must be the minimum."""
    t = people(1_500, seed=3, zips=60)
    qi = ["age", "zip", "sex"]
    res = anonymize(t, qi, 4, max_suppression=0.04)
    hier = res.generalization.hierarchies
    con = duckdb.connect()
    con.register("t", t)
    n = t.num_rows
    raw = {c: t.column(c).to_pylist() for c in qi}
    span = {"age": max(raw["age"]) - min(raw["age"]), "zip": len(set(raw["zip"])) - 1}

    def cell_losses(c: str, level: int) -> list[float]:
        """Per row: the loss of its cell when column c is at this level."""
        gen = [r[0] for r in con.execute(f"SELECT {hier[c].sql(c, level)} FROM t").fetchall()]
        if level == hier[c].height:
            return [1.0] * n
        members: dict[object, set] = {}
        for g, v in zip(gen, raw[c], strict=True):
            members.setdefault(g, set()).add(v)
        if c == "age":
            return [(max(members[g]) - min(members[g])) / span[c] for g in gen]
        if c == "zip":
            return [(len(members[g]) - 1) / span[c] for g in gen]
        return [0.0] * n  # sex below its top level is unchanged

    best = None
    for node in itertools.product(*(range(hier[c].height + 1) for c in qi)):
        exprs = ", ".join(hier[c].sql(c, lvl) for c, lvl in zip(qi, node, strict=True))
        gen = con.execute(f"SELECT {exprs} FROM t").fetchall()
        groups: dict[tuple, list[int]] = {}
        for i, key in enumerate(gen):
            groups.setdefault(key, []).append(i)
        kept = [i for rows in groups.values() if len(rows) >= 4 for i in rows]
        suppressed = n - len(kept)
        if suppressed > 0.04 * n:
            continue
        losses = [cell_losses(c, lvl) for c, lvl in zip(qi, node, strict=True)]
        loss = sum(col[i] for col in losses for i in kept)
        ncp = (loss + suppressed * len(qi)) / (n * len(qi))
        if best is None or ncp < best[0] - 1e-12:
            best = (ncp, node)
    assert best is not None
    assert res.ncp == pytest.approx(best[0], abs=1e-9)
    assert res.nodes_evaluated < res.lattice_size  # the bound pruned part of the lattice


def test_l_diversity_is_reached_in_every_released_class(big) -> None:
    res = anonymize(big, QI, 5, max_suppression=0.05, sensitive="disease", l=3)
    con = duckdb.connect()
    con.register("t", res.table)
    worst = con.execute(
        "SELECT min(d), min(c) FROM (SELECT count(DISTINCT disease) d, count(*) c FROM t "
        "GROUP BY age, zip, sex, edu)"
    ).fetchall()[0]
    assert worst[0] >= 3
    assert worst[1] >= 5
    assert res.suppressed_rows <= 0.05 * big.num_rows


def test_declared_hierarchies_are_used_and_reported(big) -> None:
    res = anonymize(
        big,
        ["age", "sex"],
        50,
        hierarchies={"age": {"type": "interval", "widths": [5, 10, 30]}},
        max_suppression=0.0,
    )
    assert res.generalization.hierarchies["age"].steps == (5.0, 10.0, 30.0)
    assert min(_class_sizes(res.table, ["age", "sex"])) >= 50
    d = res.to_dict()
    orjson.dumps(d)
    assert d["transformation"]["age"]["hierarchy"] == {
        "type": "interval",
        "widths": [5.0, 10.0, 30.0],
        "origin": 0.0,
    }
    assert d["suppressed_rows"] == 0


def test_written_table_round_trips(k5, tmp_path) -> None:
    out = k5.write(tmp_path / "release.parquet")
    assert pq.read_table(out).equals(k5.table)
    csv = k5.write(tmp_path / "release.csv")
    assert pa_csv.read_csv(csv).num_rows == k5.table.num_rows
    with pytest.raises(InvalidParameter, match=r"\.parquet or \.csv"):
        k5.write(tmp_path / "release.xlsx")


def test_unreachable_targets_and_bad_arguments_are_refused() -> None:
    tiny = people(8)
    with pytest.raises(InvalidParameter, match="cannot be reached"):
        anonymize(tiny, ["age", "sex"], 10, max_suppression=0.0)
    with pytest.raises(InvalidParameter, match="target_k"):
        anonymize(tiny, ["age"], 0)
    with pytest.raises(InvalidParameter, match="sensitive"):
        anonymize(tiny, ["age"], 2, l=2)
    with pytest.raises(InvalidParameter, match="not found"):
        anonymize(tiny, ["height"], 2)
    with pytest.raises(InvalidParameter, match="non-QI"):
        anonymize(tiny, ["age"], 2, hierarchies={"sex": {"type": "suppress"}})
    with pytest.raises(InvalidParameter, match="no row for"):
        anonymize(
            tiny,
            ["sex"],
            2,
            hierarchies={"sex": {"type": "table", "rows": [["female", "person"]]}},
        )


def test_generalization_validates_levels() -> None:
    h = Hierarchy(column="sex", kind="suppress")
    with pytest.raises(InvalidParameter, match="level 2"):
        Generalization({"sex": h}, {"sex": 2})
    with pytest.raises(InvalidParameter, match="no hierarchy"):
        Generalization({}, {"sex": 1})
