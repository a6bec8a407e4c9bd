"""The compiler's plan and budget split (golden values for a few specs)."""

from __future__ import annotations

from fractions import Fraction

import pyarrow as pa
import pytest

from anonymetry.analytics import DuckDBEngine, QuerySpec, compile_query
from anonymetry.analytics.plan import Agg
from anonymetry.analytics.sources import arrow_source
from anonymetry.errors import InvalidParameter
from anonymetry.privacy.units import ClampRange

TABLE = pa.table({"user": ["a", "b"], "page": ["x", "y"], "ms": [1.0, 2.0]})


def compiled(**kw: object) -> object:
    base: dict[str, object] = {"metrics": ["count"], "epsilon": 1.0, "unit": "user"}
    base.update(kw)
    return compile_query(QuerySpec.build(**base), arrow_source(TABLE), DuckDBEngine())


def test_golden_split_for_count_and_mean_with_private_selection() -> None:
    c = compiled(metrics=["count", "mean:ms"], by=["page"], delta=1e-6,
                 clamp=ClampRange(lo=0, hi=100), max_partitions=2, max_per_partition=3)
    assert list(c.components) == ["units", "rows", "csum", "diagnostics"]
    share = Fraction(1) * Fraction(19, 20) / 3
    assert c.components["units"].mechanism.epsilon == share
    assert c.components["rows"].mechanism.sensitivity == 2 * 3
    assert c.components["csum"].mechanism.sensitivity == 2 * 3 * 50
    assert c.components["diagnostics"].mechanism.epsilon == Fraction(1, 20)
    assert c.loss.epsilon == 1
    assert float(c.loss.delta) == 1e-6
    assert c.plan.aggs == frozenset({Agg.UNITS, Agg.ROWS, Agg.CSUM})
    assert c.selection is not None
    assert c.selection.l0 == 2


def test_public_partitions_spend_no_delta_and_no_selection() -> None:
    c = compiled(by=["page"], delta=1e-6, public_partitions=(("x",),), diagnostics=False)
    assert c.selection is None
    assert c.loss.delta == 0
    assert list(c.components) == ["rows"]


def test_variance_and_quantiles_components() -> None:
    c = compiled(metrics=["variance:ms", "p90:ms"], clamp=ClampRange(lo=-10, hi=10),
                 diagnostics=False)
    assert list(c.components) == ["rows", "csum", "csq", "hist"]
    assert c.components["csq"].mechanism.sensitivity == 5 * 10 * 100


def test_salt_is_fresh_per_query() -> None:
    assert compiled().plan.salt != compiled().plan.salt


def test_value_metrics_need_a_clamp_and_one_field() -> None:
    with pytest.raises(InvalidParameter, match="clamp"):
        QuerySpec.build(metrics=["sum:ms"], epsilon=1.0)
    with pytest.raises(InvalidParameter, match="same field"):
        QuerySpec.build(metrics=["sum:ms", "mean:x"], epsilon=1.0,
                        clamp=ClampRange(lo=0, hi=1))


def test_unknown_unit_column_is_named() -> None:
    with pytest.raises(InvalidParameter, match="unit"):
        compiled(unit="device")
