"""The ``spark_session`` fixture (one SparkSession for the whole run) lives in
``tests/conftest.py``, shared with the risk tests."""
