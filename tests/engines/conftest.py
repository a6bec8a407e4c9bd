"""One SparkSession (``local[2]``) for every Spark test, started once and stopped at the end."""

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
