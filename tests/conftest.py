"""Fixtures shared by every test package.

``spark_session``: one SparkSession (``local[2]``) for every Spark test in the run — the engine
tests and the risk tests alike — started on first use and stopped at the end (a JVM start costs
seconds; one per run keeps the ``spark`` suites inside their time budget).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def spark_session() -> Iterator[Any]:
    from anonymetry.analytics.engines.spark import local_session

    spark = local_session("local[2]", shuffle_partitions=2, app_name="anonymetry-tests")
    yield spark
    spark.stop()
