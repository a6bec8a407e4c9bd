"""Rows inside a sealed WAL chunk, and their Arrow form (the "stored event" contract).

A chunk's plaintext is one :class:`StoredBatch` in msgpack: the chunk's rows as columns (one
list per base column, one per declared field with ``None`` where an event has no value). The
ingest path builds these columns directly, so sealing a group commit is one C call to encode
a handful of lists, not a Python loop over rows. Chunks written before the columnar format (a
msgpack list of row maps) are still read.

The read side stays columnar too: :func:`decode_batch` gives a chunk's columns and
:func:`batches_to_table` turns many chunks into Arrow with one pyarrow call per column.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import chain, compress, repeat
from operator import attrgetter
from typing import Any

import msgspec
import pyarrow as pa

from anonymetry.errors import InvalidParameter, TamperDetected
from anonymetry.ingest._wal import chunk_aad
from anonymetry.policy import FieldType, Policy
from anonymetry.privacy import Sealer

__all__ = [
    "BASE_COLUMNS",
    "Row",
    "StoredBatch",
    "batches_to_table",
    "conform",
    "decode_batch",
    "encode_batch",
    "open_chunk",
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

    def compress(self, keep: Sequence[bool]) -> StoredBatch:
        """The rows where ``keep`` is true, in order (``itertools.compress``, no Python per row)."""
        def pick(values: list[Any]) -> list[Any]:
            return list(compress(values, keep))

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


def decode_batch(data: bytes) -> StoredBatch:
    """The columns of a chunk's plaintext (a columnar chunk as is; an older list of row maps is
    converted)."""
    decoded = _DECODER.decode(data)
    return StoredBatch.from_rows(decoded) if type(decoded) is list else decoded


def open_chunk(sealer: Sealer, segment: str, chunk: int, epoch: int, n: int,
               blob: bytes) -> StoredBatch:
    """Decrypt and decode a sealed chunk of ``DIR/wal/<segment>.sqlite``.

    Raises :class:`KeyUnavailable` for a destroyed epoch and :class:`TamperDetected`, naming the
    segment and chunk, if the AES-GCM tag (over the blob and segment|chunk|epoch|rows) does not
    verify: an altered or moved chunk is never decoded.
    """
    try:
        plain = sealer.open(epoch, blob, chunk_aad(segment, chunk, epoch, n))
    except TamperDetected:
        raise TamperDetected(
            f"wal/{segment}.sqlite: chunk {chunk} (epoch {epoch}) does not authenticate "
            "(AES-GCM); the segment was altered or damaged. Nothing was read from it; restore "
            "the segment from a backup") from None
    return decode_batch(plain)


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


def batches_to_table(batches: Sequence[StoredBatch], schema: pa.Schema | None) -> pa.Table:
    """Chunks' columns → one Arrow table of ``schema``, one pyarrow call per column (the
    chunks' lists are chained in C). ``schema`` ``None``: the base columns plus the attributes
    that have a value somewhere, their types inferred. Attributes not in ``schema`` are left out
    (they were not declared); declared fields no chunk has are null."""
    n = sum(map(len, batches))

    def column(name: str) -> list[Any]:
        return list(chain.from_iterable(map(attrgetter(name), batches)))

    def attribute(name: str) -> list[Any]:
        return list(chain.from_iterable(b.attrs.get(name) or repeat(None, len(b))
                                        for b in batches))

    columns: list[pa.Array] = [
        pa.array(column("event"), pa.string()),
        pa.array(column("time"), pa.int64()).cast(TIME_TYPE),
        pa.array(column("epoch"), pa.int32()),
        pa.array(column("user"), pa.string()),
        pa.array(column("device"), pa.string()),
        pa.array(column("consent"), pa.string()),
    ]
    if schema is None:
        names: dict[str, None] = {}
        for b in batches:
            names.update(dict.fromkeys(b.attrs))
        fields = [pa.field(name, typ) for name, typ in BASE_COLUMNS]
        for name in names:
            values = pa.array(attribute(name))
            if values.null_count < n:  # an attribute without any value is not a column
                fields.append(pa.field(name, values.type))
                columns.append(values)
        return pa.Table.from_arrays(columns, schema=pa.schema(fields))
    for field in list(schema)[len(BASE_COLUMNS):]:
        present = any(field.name in b.attrs for b in batches)
        columns.append(pa.array(attribute(field.name), field.type) if present
                       else pa.nulls(n, field.type))
    return pa.Table.from_arrays(columns, schema=schema)


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with the columns of ``schema`` (cast; null where ``table`` has no such
    column)."""
    if table.schema == schema:
        return table
    cols: list[Any] = []
    for f in schema:
        if f.name in table.column_names:
            cols.append(table[f.name].cast(f.type))
        else:
            cols.append(pa.nulls(table.num_rows, f.type))
    return pa.Table.from_arrays(cols, schema=schema)
