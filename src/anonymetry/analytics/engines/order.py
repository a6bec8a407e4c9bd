"""The salted choices that decide which partitions (L0) and rows (L∞ sample) a unit keeps, as SQL
text that DuckDB and Spark SQL evaluate to the *same* value.

Both engines must pick the same partitions for a unit, or their pre-noise aggregates differ
(``tests/engines/test_engines_agree.py``). DuckDB's ``hash()`` and Spark's ``hash()`` /
``xxhash64()`` are different functions, so neither can be shared. What is shared:

**L0: a salted rotation of the unit's own partitions.** A unit's n partitions, sorted by their
key text (bytewise, NULL first: both engines sort strings by their UTF-8 bytes), sit at positions
0…n−1. With ``h`` the unit's salted hash (:func:`unit_hash_sql`), the partition at position
``pos`` gets rank ``(pos − h mod n) mod n`` and the L0 lowest ranks are kept: L0 consecutive
partitions of the sorted list, cyclically, starting at a pseudo-random offset. Each of the unit's
partitions is kept with probability min(1, L0/n), as under a uniformly random order, so the
bounding bias of every partition is the same; only the *joint* choice differs (neighbours in key
order are kept together). It needs one window over the (unit, partition) groups and no hash per
group: a salted MD5 per group cost ~0.2 s of ~1.4 s on 2M groups (``BENCHMARKS.md``).

``h`` depends on the unit's value and the per-query salt only (63 random bits from
:mod:`secrets`, drawn by the compiler) and the positions on the unit's own partitions only, so
which rows a unit keeps is neither predictable nor influenced by other units.

- Integer units (up to 64 bits): an exact integer mix of ``unit XOR salt`` modulo the Mersenne
  prime 2³¹−1, every intermediate below 2⁶³, so no engine overflows or rounds
  (:func:`unit_hash` is the same function in Python).
- Any other unit: the first 32 bits of ``md5(CAST(unit AS STRING) ␟ salt)``.

**L∞ sample and anything else: the salted MD5 order** (:func:`salted_order_sql`)::

    md5(concat_ws(chr(31), coalesce(CAST(e1 AS STRING), chr(1)), …, '<salt>'))

``STRING`` is an alias of ``VARCHAR`` in DuckDB; ``chr(31)`` (unit separator) keeps
``("ab", "c")`` and ``("a", "bc")`` apart; ``chr(1)`` stands for NULL.

Caveat: ``CAST(… AS STRING)`` of floating-point and timestamp values is spelled differently by
the two engines (``1e+20`` vs ``1.0E20``; time zone suffixes), so only expressions over strings
and integers are portable; group keys are strings already (plans cast them), units are strings
or integers. Ordering rows for ``LinfMode.SAMPLE`` hashes every column and is therefore not
portable unless the source has only string and integer columns (recorded in the scenario table).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Literal

import pyarrow as pa

__all__ = [
    "MIX_PRIME", "integer_unit", "l0_position_sql", "l0_rank_sql", "salted_order_sql", "unit_hash",
    "unit_hash_sql",
]

Dialect = Literal["duckdb", "spark"]

MIX_PRIME = 2**31 - 1  # Mersenne prime: the integer mix works modulo it
_M31 = 2**31 - 1  # low 31 bits
_C1, _C2, _C3 = 1103515245, 69069, 48271  # odd multipliers below 2^31 (LCG constants)


def salted_order_sql(exprs: Sequence[str], salt: int) -> str:
    """SQL for the salted MD5 order of ``exprs`` (already-quoted SQL expressions)."""
    parts = [f"coalesce(CAST({e} AS STRING), chr(1))" for e in exprs]
    parts.append(f"'{int(salt)}'")
    return f"md5(concat_ws(chr(31), {', '.join(parts)}))"


def integer_unit(schema: pa.Schema, column: str) -> bool:
    """Whether ``column`` holds integers that fit a signed 64-bit value (the exact mix applies);
    other units (text, unsigned 64-bit, decimals) are hashed through their text."""
    typ = schema.field(column).type
    return pa.types.is_signed_integer(typ) or typ in (pa.uint8(), pa.uint16(), pa.uint32())


def unit_hash(value: int | str, salt: int) -> int:
    """The unit's salted hash in [0, 2³¹) (or [0, 2³²) for non-integers), as the engines compute
    it: the reference for tests and the definition of :func:`unit_hash_sql`."""
    if isinstance(value, int) and not isinstance(value, bool):
        x = value ^ int(salt)  # Python ints: >> is arithmetic and & sees two's complement bits
        a = (((x & _M31) * _C1 + ((x >> 31) & _M31)) % MIX_PRIME * _C2 + ((x >> 62) & 3)) \
            % MIX_PRIME
        return (a * a % MIX_PRIME * _C3 + a) % MIX_PRIME
    text = f"{value}\x1f{int(salt)}".encode()
    return int(hashlib.md5(text, usedforsecurity=False).hexdigest()[:8], 16)


def unit_hash_sql(expr: str, salt: int, *, integer: bool, dialect: Dialect) -> str:
    """SQL for :func:`unit_hash` of ``expr`` (an integer-typed unit when ``integer``)."""
    salt = int(salt)
    if not integer:
        md5 = f"md5(concat_ws(chr(31), CAST({expr} AS STRING), '{salt}'))"
        if dialect == "duckdb":
            return f"CAST(('0x' || substr({md5}, 1, 8)) AS BIGINT)"
        return f"CAST(conv(substr({md5}, 1, 8), 16, 10) AS BIGINT)"
    if dialect == "duckdb":
        x = f"xor(CAST({expr} AS BIGINT), {salt})"
        hi, top = f"(({x} >> 31) & {_M31})", f"(({x} >> 62) & 3)"
    else:
        x = f"(CAST({expr} AS BIGINT) ^ {salt})"
        hi, top = f"(shiftright({x}, 31) & {_M31})", f"(shiftright({x}, 62) & 3)"
    p = MIX_PRIME
    a = f"(((({x} & {_M31}) * {_C1} + {hi}) % {p} * {_C2} + {top}) % {p})"
    return f"(({a} * {a} % {p} * {_C3} + {a}) % {p})"


def l0_position_sql(unit: str, keys: Sequence[str]) -> str:
    """SQL for the 0-based position of a (unit, partition) group among the unit's groups in key
    order (bytewise, NULL first, spelled the same in both engines); 0 when there are no keys."""
    if not keys:
        return "0"
    order = ", ".join(f"{k} ASC NULLS FIRST" for k in keys)
    return f"(row_number() OVER (PARTITION BY {unit} ORDER BY {order}) - 1)"


def l0_rank_sql(pos: str, n: str, h: str) -> str:
    """SQL for the 1-based L0 rank of the partition at 0-based position ``pos`` of a unit's
    ``n`` sorted partitions, the unit's hash being ``h``: kept iff ≤ L0."""
    return f"(({pos} - {h} % {n} + {n}) % {n} + 1)"
