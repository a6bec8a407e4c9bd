"""The salted order that decides which partitions (L0) and rows (L∞ sample) a unit keeps, as
SQL text that DuckDB and Spark SQL evaluate to the *same* value.

Both engines must pick the same partitions for a unit, or their pre-noise aggregates differ
(``tests/engines/test_engines_agree.py``). DuckDB's ``hash()`` and Spark's ``hash()`` /
``xxhash64()`` are different functions, so neither can be the shared order. MD5 is built into
both, over the same UTF-8 bytes, and both return it as 32 lowercase hex digits, so ordering by
the hex text is ordering by the same 128-bit number::

    md5(concat_ws(chr(31), coalesce(CAST(e1 AS STRING), chr(1)), …, '<salt>'))

``STRING`` is an alias of ``VARCHAR`` in DuckDB; ``chr(31)`` (unit separator) keeps
``("ab", "c")`` and ``("a", "bc")`` apart; ``chr(1)`` stands for NULL. The order depends only on
the unit's own values and the per-query salt (63 random bits from :mod:`secrets`, drawn by the
compiler), so which rows a unit keeps is neither predictable nor influenced by other units.

Caveat: ``CAST(… AS STRING)`` of floating-point and timestamp values is spelled differently by
the two engines (``1e+20`` vs ``1.0E20``; time zone suffixes), so only expressions over strings
and integers are portable; group keys are strings already (plans cast them), units are strings
or integers. Ordering rows for ``LinfMode.SAMPLE`` hashes every column and is therefore not
portable unless the source has only string and integer columns (recorded in the scenario table).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["salted_order_sql"]


def salted_order_sql(exprs: Sequence[str], salt: int) -> str:
    """SQL for the salted MD5 order of ``exprs`` (already-quoted SQL expressions)."""
    parts = [f"coalesce(CAST({e} AS STRING), chr(1))" for e in exprs]
    parts.append(f"'{int(salt)}'")
    return f"md5(concat_ws(chr(31), {', '.join(parts)}))"
