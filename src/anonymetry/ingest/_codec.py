"""Rows inside a sealed WAL chunk, and their Arrow form (the "stored event" contract).

A chunk's plaintext is the msgpack list of its rows, each a map with the fields of
:class:`~anonymetry.ingest.store.StoredEvent`; msgspec encodes the dataclasses in C, so the
per-event cost on the ingest path is one C call per chunk, not a Python loop.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
import pyarrow as pa

from anonymetry.errors import InvalidParameter
from anonymetry.policy import FieldType, Policy

__all__ = ["BASE_COLUMNS", "Row", "decode_rows", "encode_rows", "rows_to_table", "stored_schema"]


class Row(msgspec.Struct, frozen=True):
    dedup: str
    epoch: int
    event: str
    time: int
    user: str
    device: str
    consent: str
    attrs: dict[str, Any] = {}


def _enc_hook(obj: Any) -> Any:
    if isinstance(obj, Mapping):  # MappingProxyType and friends
        return dict(obj)
    raise TypeError(f"cannot store a value of type {type(obj).__name__}")


_ENCODER = msgspec.msgpack.Encoder(enc_hook=_enc_hook)
_DECODER = msgspec.msgpack.Decoder(list[Row])


def encode_rows(rows: Sequence[Any]) -> bytes:
    return _ENCODER.encode(rows)


def decode_rows(data: bytes) -> list[Row]:
    return _DECODER.decode(data)


TIME_TYPE = pa.timestamp("s", tz="UTC")
BASE_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("event", pa.string()),
    ("time", TIME_TYPE),
    ("epoch", pa.int32()),
    ("user", pa.string()),
    ("device", pa.string()),
    ("consent", pa.string()),
)
_ARROW_TYPE = {
    FieldType.STRING: pa.string(),
    FieldType.ENUM: pa.string(),
    FieldType.INT: pa.int64(),
    FieldType.FLOAT: pa.float64(),
    FieldType.BOOL: pa.bool_(),
}


def stored_schema(policy: Policy) -> pa.Schema:
    """The Arrow schema of stored events under ``policy``: the base columns, then one column per
    declared field (first declaration order) typed by the policy."""
    fields = [pa.field(name, typ) for name, typ in BASE_COLUMNS]
    base = {name for name, _ in BASE_COLUMNS}
    seen: dict[str, pa.DataType] = {}
    for spec in policy.events.values():
        for name, field in spec.fields.items():
            if name in base:
                raise InvalidParameter(
                    f"events.{spec.name}.fields.{name}: the name clashes with a stored column; "
                    "rename the field"
                )
            seen.setdefault(name, _ARROW_TYPE[field.type])
    fields.extend(pa.field(name, typ) for name, typ in seen.items())
    return pa.schema(fields)


def rows_to_table(rows: Sequence[Row], schema: pa.Schema | None) -> pa.Table:
    """Rows → an Arrow table of ``schema`` (``None``: base columns plus inferred attributes).
    Attributes not in ``schema`` are left out (they were not declared)."""
    if schema is None:
        names: dict[str, None] = {}
        for row in rows:
            names.update(dict.fromkeys(row.attrs))
        extra = [pa.field(n, pa.array([r.attrs.get(n) for r in rows]).type) for n in names]
        schema = pa.schema([pa.field(n, t) for n, t in BASE_COLUMNS] + extra)
    columns: list[pa.Array] = [
        pa.array([r.event for r in rows], pa.string()),
        pa.array([r.time for r in rows], pa.int64()).cast(TIME_TYPE),
        pa.array([r.epoch for r in rows], pa.int32()),
        pa.array([r.user for r in rows], pa.string()),
        pa.array([r.device for r in rows], pa.string()),
        pa.array([r.consent for r in rows], pa.string()),
    ]
    for field in list(schema)[len(BASE_COLUMNS):]:
        name = field.name
        columns.append(pa.array([r.attrs.get(name) for r in rows], field.type))
    return pa.Table.from_arrays(columns, schema=schema)
