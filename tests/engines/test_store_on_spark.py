"""Spark reads the event store itself: its compacted Parquet files are encrypted (Parquet modular
encryption, a key per epoch) and its newest rows are still in the WAL.

Properties:
- Spark (parquet-mr decrypting with the per-epoch keys the store reader hands over) plus the WAL
  rows gives the same pre-noise aggregates as DuckDB (which reads the store through Arrow);
- the files really are encrypted: Spark without the keys cannot read them;
- after an epoch's key is destroyed (crypto-shredding), neither engine sees that epoch's rows.
"""

from __future__ import annotations

import dataclasses
import secrets
from pathlib import Path
from typing import Any

import pytest

from anonymetry.analytics import DuckDBEngine, QuerySpec, compile_query
from anonymetry.analytics.engines.spark import SparkEngine
from anonymetry.analytics.sources import store_source
from anonymetry.ingest.store import EventStore, StoredEvent
from anonymetry.policy import default_policy
from anonymetry.privacy import LocalKeyring
from anonymetry.privacy.units import ClampRange

from .test_engines_agree import assert_same, run

pytestmark = pytest.mark.spark

POLICY = default_policy()
EPOCHS = (20000, 20001)


def _events(epoch: int, n: int, offset: int) -> list[StoredEvent]:
    base = epoch * POLICY.identity.key_epoch_days * 86400 + 3600
    return [StoredEvent(dedup=secrets.token_hex(16), epoch=epoch, event="screen.view",
                        time=base + 3600 * (i % 48), user=f"{(i * 7) % 90:032x}",
                        device=f"{i % 150:032x}", consent="usage",
                        attrs={"platform": ("ios", "web", "android", "macos")[i % 4],
                               "app_version": "1.0", "screen": "home",
                               "duration_ms": (i * 37 + offset) % 5000})
            for i in range(n)]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("store")
    with EventStore(path, POLICY, LocalKeyring(path / "keys"), instance="t") as s:
        for epoch in EPOCHS:
            s.append_blocking(_events(epoch, 600, epoch))
        s.compact()
        s.append_blocking(_events(EPOCHS[1], 250, 7))  # stays in the WAL
    return path


def _spec(epoch: int | None = None) -> QuerySpec:
    return QuerySpec.build(metrics=["count", "users", "mean:duration_ms", "p50:duration_ms"],
                           by=["platform"], epsilon=2.0, delta=1e-6, unit="user",
                           clamp=ClampRange(lo=0, hi=4000), max_partitions=2,
                           max_per_partition=3, min_cohort=0, epoch=epoch)


def _both(source: Any, spark_session: Any, spec: QuerySpec) -> tuple[dict, dict]:
    plan = compile_query(spec, source, DuckDBEngine(), policy=POLICY).plan
    plan = dataclasses.replace(plan, salt=12345)
    return run(DuckDBEngine(), plan), run(SparkEngine(spark_session), plan)


def test_spark_on_the_encrypted_store_equals_duckdb(store: Path, spark_session: Any) -> None:
    source = store_source(store, POLICY)
    assert len(source.obj.parquet_files()) >= 2
    assert source.obj.wal_table.num_rows == 250
    duck, spark = _both(source, spark_session, _spec())
    assert sum(p["rows"] for p in duck["partitions"].values()) > 0
    assert_same(duck, spark)
    # and restricted to one epoch (the WAL rows belong to the second)
    for epoch in EPOCHS:
        duck, spark = _both(source, spark_session, _spec(epoch))
        assert_same(duck, spark)


def test_the_store_files_are_unreadable_without_the_keys(store: Path, spark_session: Any
                                                         ) -> None:
    files = store_source(store, POLICY).obj.parquet_files()
    fresh = spark_session.newSession()  # same JVM; hadoop conf without this store's keys
    conf = fresh.sparkContext._jsc.hadoopConfiguration()
    saved = {k: conf.get(k) for k in ("parquet.encryption.key.list",
                                      "parquet.crypto.factory.class")}
    try:
        for k in saved:
            conf.unset(k)
        with pytest.raises(Exception) as info:  # the JVM error type varies
            fresh.read.parquet(*files).collect()
        assert "encrypt" in str(info.value).lower() or "magic" in str(info.value).lower()
    finally:
        for k, v in saved.items():
            if v is not None:
                conf.set(k, v)


def test_a_destroyed_epoch_is_gone_for_both_engines(tmp_path: Path, spark_session: Any) -> None:
    keyring = LocalKeyring(tmp_path / "keys")
    with EventStore(tmp_path, POLICY, keyring, instance="t") as s:
        for epoch in EPOCHS:
            s.append_blocking(_events(epoch, 300, epoch))
        s.compact()
    keyring.destroy(EPOCHS[0])
    source = store_source(tmp_path, POLICY)
    duck, spark = _both(source, spark_session, _spec())
    assert_same(duck, spark)
    kept = sum(p["rows"] for p in duck["partitions"].values())
    only_second, _ = _both(store_source(tmp_path, POLICY), spark_session, _spec(EPOCHS[1]))
    assert kept == sum(p["rows"] for p in only_second["partitions"].values()) > 0
