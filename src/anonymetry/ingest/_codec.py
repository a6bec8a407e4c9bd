"""Rows inside a sealed WAL chunk, and their Arrow form (the "stored event" contract).

A chunk's plaintext is one :class:`StoredBatch` in msgpack: the chunk's rows as columns (one
list per base column, one per declared field with ``None`` where an event has no value). The
ingest path builds these columns directly, so sealing a group commit is one C call to encode
a handful of lists, not a Python loop over rows. Chunks written before the columnar format (a
msgpack list of row maps) are still read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import chain, repeat
from operator import attrgetter
from typing import Any

import msgspec
import pyarrow as pa

from anonymetry.errors import InvalidParameter
from anonymetry.policy import FieldType, Policy

__all__ = [
    "BASE_COLUMNS",
    "Row",
    "StoredBatch",
    "decode_rows",
    "encode_batch",
    "encode_rows",
    "rows_to_table",
    "stored_schema",
]


class Row(msgspec.Struct, frozen=True):
    dedup: str
    epoch: int
    event: str
    time: int
    user: str
    device: str
    consent: str
    attrs: dict[str, Any] = {}


class StoredBatch(msgspec.Struct):
    """Stored events as columns: the fields of a :class:`Row` in parallel lists (all of one
    length), ``attrs`` = declared field → its values (``None`` where an event has none).

    The store's columnar input and the plaintext of a sealed chunk. Treat it as read-only.
    """

    dedup: list[str]
    epoch: list[int]
    event: list[str]
    time: list[int]
    user: list[str]
    device: list[str]
    consent: list[str]
    attrs: dict[str, list[Any]] = {}

    def __len__(self) -> int:
        return len(self.dedup)

    @classmethod
    def from_rows(cls, rows: Sequence[Any]) -> StoredBatch:
        """From objects with the attributes of a :class:`Row` (``StoredEvent``, ``Row``)."""
        names: dict[str, None] = {}
        for row in rows:
            names.update(dict.fromkeys(row.attrs))
        return cls(
            [r.dedup for r in rows], [r.epoch for r in rows], [r.event for r in rows],
            [r.time for r in rows], [r.user for r in rows], [r.device for r in rows],
            [r.consent for r in rows],
            {name: [r.attrs.get(name) for r in rows] for name in names},
        )

    @classmethod
    def concat(cls, batches: Sequence[StoredBatch]) -> StoredBatch:
        if len(batches) == 1:
            return batches[0]
        names: dict[str, None] = {}
        for b in batches:
            names.update(dict.fromkeys(b.attrs))

        def column(name: str) -> list[Any]:
            return list(chain.from_iterable(map(attrgetter(name), batches)))

        return cls(
            column("dedup"), column("epoch"), column("event"), column("time"), column("user"),
            column("device"), column("consent"),
            {name: list(chain.from_iterable(b.attrs.get(name) or repeat(None, len(b))
                                            for b in batches)) for name in names},
        )

    def take(self, index: Sequence[int]) -> StoredBatch:
        """The rows at ``index`` (in that order)."""
        def pick(values: list[Any]) -> list[Any]:
            return [values[i] for i in index]

        return StoredBatch(
            pick(self.dedup), pick(self.epoch), pick(self.event), pick(self.time),
            pick(self.user), pick(self.device), pick(self.consent),
            {name: pick(values) for name, values in self.attrs.items()},
        )

    def rows(self) -> list[Row]:
        """As :class:`Row` objects, each with the fields it has a value for."""
        names = list(self.attrs)
        values = zip(*self.attrs.values(), strict=True) if names else [()] * len(self)
        return [
            Row(dedup, epoch, event, time, user, device, consent,
                {n: v for n, v in zip(names, vals, strict=True) if v is not None})
            for dedup, epoch, event, time, user, device, consent, vals in zip(
                self.dedup, self.epoch, self.event, self.time, self.user, self.device,
                self.consent, values, strict=True)
        ]


def _enc_hook(obj: Any) -> Any:
    if isinstance(obj, Mapping):  # MappingProxyType and friends
        return dict(obj)
    raise TypeError(f"cannot store a value of type {type(obj).__name__}")


_ENCODER = msgspec.msgpack.Encoder(enc_hook=_enc_hook)
_DECODER = msgspec.msgpack.Decoder(StoredBatch | list[Row])


def encode_batch(batch: StoredBatch) -> bytes:
    """A chunk's plaintext."""
    return _ENCODER.encode(batch)


def encode_rows(rows: Sequence[Any]) -> bytes:
    """A chunk's plaintext from row objects (see :meth:`StoredBatch.from_rows`)."""
    return _ENCODER.encode(StoredBatch.from_rows(rows))


def decode_rows(data: bytes) -> list[Row]:
    """The rows of a chunk's plaintext (columnar, or the older list of row maps)."""
    decoded = _DECODER.decode(data)
    return decoded if type(decoded) is list else decoded.rows()


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
