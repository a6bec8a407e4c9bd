"""Engines behind one relational protocol: ``base.Engine``; ``duckdb.DuckDBEngine`` (default)."""
