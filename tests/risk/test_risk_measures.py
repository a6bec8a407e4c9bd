"""Table measures on hand-computed small cases (ties, NULLs), and against a naive per-row
reference on random tables with missing values."""

from __future__ import annotations

import math
from collections import Counter, defaultdict

import duckdb
import numpy as np
import pytest

from anonymetry.errors import InvalidParameter
from anonymetry.risk import (
    ClassCounts,
    assess_counts,
    class_counts,
    class_size_histogram,
    delta_disclosure,
    distinct_l,
    entropy_l,
    k_anonymity,
    recursive_cl,
    recursive_cl_holds,
    reidentification_risk,
    sample_uniqueness,
    t_closeness,
)
from anonymetry.risk.closeness import class_emd


def _cc(rows: list[tuple], sensitive: bool = True, ordered: bool | None = None) -> ClassCounts:
    con = duckdb.connect()
    width = len(rows[0])
    names = [f"q{i}" for i in range(width - (1 if sensitive else 0))]
    cols = names + (["s"] if sensitive else [])
    values = ", ".join("(" + ", ".join("NULL" if v is None else repr(v) for v in r) + ")"
                       for r in rows)
    con.execute(f"CREATE TABLE t AS SELECT * FROM (VALUES {values}) v({', '.join(cols)})")
    return class_counts(con, "t", names, "s" if sensitive else None, ordered=ordered)


def test_k_and_histogram_treat_null_qi_as_its_own_value():
    # classes: (1,'a')×3, (1,NULL)×2, (NULL,NULL)×1 — NULL groups with NULL, not with 'a'
    cc = _cc([(1, "a"), (1, "a"), (1, "a"), (1, None), (1, None), (None, None)],
             sensitive=False)
    assert k_anonymity(cc) == 1
    assert class_size_histogram(cc) == {1: 1, 2: 1, 3: 1}
    assert sample_uniqueness(cc) == pytest.approx(1 / 6)


def test_diversity_with_ties_and_null_sensitive():
    # class A: x,x,y,y (tie) ; class B: x,x,NULL (NULL is a value) ; class C: x,y,z
    cc = _cc([("A", "x"), ("A", "x"), ("A", "y"), ("A", "y"),
              ("B", "x"), ("B", "x"), ("B", None),
              ("C", "x"), ("C", "y"), ("C", "z")])
    assert distinct_l(cc) == 2
    h_b = -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3))
    assert entropy_l(cc) == pytest.approx(math.exp(h_b))  # B has the least entropy
    assert isinstance(entropy_l(cc), float)
    assert entropy_l(cc) != int(entropy_l(cc))


def test_recursive_cl_sorts_counts_descending():
    # class P: counts 3,2,1 ; class Q: 2,2,2 (ties)
    rows = ([("P", "a")] * 1 + [("P", "b")] * 3 + [("P", "c")] * 2
            + [("Q", "a")] * 2 + [("Q", "b")] * 2 + [("Q", "c")] * 2)
    cc = _cc(rows)
    # P: ℓ=2 → 3/(2+1) = 1, ℓ=3 → 3/1 = 3 ; Q: ℓ=2 → 2/4, ℓ=3 → 2/2
    assert recursive_cl(cc) == {2: pytest.approx(1.0), 3: pytest.approx(3.0)}
    # an ascending sort (pyCANON's) would give P: 1/(2+3) = 0.2 at ℓ=2 — not what we report
    assert recursive_cl(cc)[2] != pytest.approx(0.2)
    assert not recursive_cl_holds(cc, 1.0, 2)  # strict: r1 < c·tail fails at equality
    assert recursive_cl_holds(cc, 1.01, 2)
    assert not recursive_cl_holds(cc, 100.0, 4)  # no class has 4 values


def test_t_closeness_ordered_matches_li_et_al_example():
    # Li, Li & Venkatasubramanian 2007, salaries 3k…11k: Q1 = {3k,4k,5k} has EMD 0.375,
    # Q2 = {6k,8k,11k} has EMD 0.167.
    rows = [("A", 3), ("A", 4), ("A", 5), ("B", 6), ("B", 8), ("B", 11),
            ("C", 7), ("C", 9), ("C", 10)]
    cc = _cc(rows)
    assert cc.ordered
    emd = sorted(class_emd(cc))  # classes are numbered by hash: compare the set of values
    # C = {7k, 9k, 10k}: |cumulative differences| 1,2,3,4,2,3,1,1,0 (ninths) → 17/9 / 8
    assert emd == pytest.approx([1 / 6, 17 / 72, 0.375])
    assert t_closeness(cc) == pytest.approx(0.375)


def test_t_closeness_equal_distance_and_null_ranked_last():
    rows = [("A", "x"), ("A", "x"), ("B", "y"), ("B", None)]
    cc = _cc(rows)
    assert not cc.ordered
    # P = x .5, y .25, NULL .25 ; A = x 1 → ½(.5+.25+.25) = .5 ; B = y .5, NULL .5 → .5
    assert t_closeness(cc) == pytest.approx(0.5)
    num = _cc([("A", 1), ("A", 1), ("B", 2), ("B", None)])
    # ranks 1 < 2 < NULL; P cum (.5,.75,1); A cum (1,1,1) → |.5|+|.25| = .75 / (m-1=2)
    # B cum (0,.5,1) → .5 + .25 = .75 / 2
    assert class_emd(num) == pytest.approx([0.375, 0.375])


def test_delta_disclosure_hand_value():
    cc = _cc([("A", "x"), ("A", "x"), ("A", "x"), ("B", "y")])
    # P(x)=3/4, P(y)=1/4; A: ln(1/.75) ; B: ln(1/.25) = ln 4
    assert delta_disclosure(cc) == pytest.approx(math.log(4))


def test_reidentification_risks_hand_values():
    cc = _cc([(1,), (1,), (2,), (3,), (3,), (3,)], sensitive=False)
    r = reidentification_risk(cc)
    assert r.prosecutor_max == 1.0
    assert r.prosecutor_average == pytest.approx(3 / 6)
    assert r.journalist_max == 1.0
    assert r.marketer == pytest.approx(3 / 6)
    r = reidentification_risk(cc, population=60)  # f = 0.1 → F_c = 10 n_c
    assert r.journalist_max == pytest.approx(1 / 10)
    assert r.marketer == pytest.approx(3 * 0.1 / 6)  # Σ_c n_c/F_c / n = classes·f/n
    with pytest.raises(InvalidParameter):
        reidentification_risk(cc, population=3)


def test_arx_average_risk_on_adult_class_sizes():
    # ARX TestRiskMetrics.testAverageRisk2: average (prosecutor) risk of adult = 0.6465751607983555
    from test_risk_population import ADULT_CLASS_SIZES

    sizes = np.repeat(list(ADULT_CLASS_SIZES), list(ADULT_CLASS_SIZES.values()))
    cc = ClassCounts(n_records=int(sizes.sum()), class_size=sizes)
    r = assess_counts(cc, ["all nine"])
    assert r.prosecutor_average == pytest.approx(0.6465751607983555, abs=1e-12)
    assert r.sample_uniqueness == pytest.approx(0.5142895033485844, abs=1e-12)


def _naive(rows, ordered):
    """Per-row reference: group in Python (NULL = NULL), then every measure by its definition."""
    classes: dict[tuple, list] = defaultdict(list)
    for *q, s in rows:
        classes[tuple(q)].append(s)
    n = len(rows)
    overall = Counter(s for *_, s in rows)
    order = sorted(overall, key=lambda v: (v is None, v if v is not None else 0))
    p = np.array([overall[v] / n for v in order])
    out = {"k": min(map(len, classes.values())), "l": 10**9, "h": 1e9, "t": 0.0, "d": 0.0,
           "c": defaultdict(float)}
    for vals in classes.values():
        cnt = Counter(vals)
        out["l"] = min(out["l"], len(cnt))
        q = np.array([cnt[v] / len(vals) for v in order])
        out["h"] = min(out["h"], -sum(x * math.log(x) for x in q if x > 0))
        if ordered:
            emd = np.abs(np.cumsum(q - p)).sum() / (len(order) - 1) if len(order) > 1 else 0
        else:
            emd = 0.5 * np.abs(q - p).sum()
        out["t"] = max(out["t"], emd)
        ratios = [abs(math.log(a / b)) for a, b in zip(q, p, strict=True) if a > 0]
        out["d"] = max(out["d"], *ratios)
        r = sorted(cnt.values(), reverse=True)
        for ell in range(2, len(r) + 1):
            out["c"][ell] = max(out["c"][ell], r[0] / sum(r[ell - 1:]))
    out["c"] = {ell: c for ell, c in out["c"].items() if ell <= out["l"]}
    return out


@pytest.mark.parametrize("ordered", [True, False])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_engine_matches_naive_reference_with_missing_values(seed, ordered):
    rng = np.random.default_rng(seed)  # not-privacy: fixture data
    n = 300
    rows = []
    for _ in range(n):
        q1 = None if rng.random() < 0.1 else int(rng.integers(0, 4))
        q2 = None if rng.random() < 0.1 else str(rng.choice(["a", "b", "c"]))
        s = None if rng.random() < 0.05 else int(rng.integers(0, 6))
        rows.append((q1, q2, s))
    cc = _cc(rows, ordered=ordered)
    ref = _naive(rows, ordered)
    assert k_anonymity(cc) == ref["k"]
    assert distinct_l(cc) == ref["l"]
    assert entropy_l(cc) == pytest.approx(math.exp(ref["h"]))
    assert t_closeness(cc) == pytest.approx(ref["t"])
    assert delta_disclosure(cc) == pytest.approx(ref["d"])
    assert recursive_cl(cc) == pytest.approx(ref["c"])


def test_bad_columns_are_reported():
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT 1 AS a, 2 AS b")
    with pytest.raises(InvalidParameter, match="not in the table"):
        class_counts(con, "t", ["a", "zz"])
    with pytest.raises(InvalidParameter, match="one role"):
        class_counts(con, "t", ["a"], "a")
    con.execute("CREATE TABLE e AS SELECT 1 AS a, 2 AS b WHERE false")
    with pytest.raises(InvalidParameter, match="no rows"):
        class_counts(con, "e", ["a"], "b")


def test_sorted_fallback_equals_hash_numbering(monkeypatch):
    """If two QI tuples ever shared a hash, the ORDER BY path must give the same classes."""
    from anonymetry.risk import _engine

    rng = np.random.default_rng(5)  # not-privacy: fixture data
    rows = [(None if rng.random() < 0.1 else int(rng.integers(0, 5)),
             str(rng.choice(["a", "b"])), int(rng.integers(0, 4))) for _ in range(200)]
    fast = _cc(rows)
    monkeypatch.setattr(_engine, "_class_ids", lambda grouped, qi: None)
    slow = _cc(rows)
    assert sorted(fast.class_size) == sorted(slow.class_size)
    assert t_closeness(fast) == pytest.approx(t_closeness(slow))
    assert recursive_cl(fast) == pytest.approx(recursive_cl(slow))
    assert entropy_l(fast) == pytest.approx(entropy_l(slow))
