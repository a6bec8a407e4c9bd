"""Our JSON batch wire format, decoded with msgspec.

::

    {"events": [{"id": "0b7c…", "name": "screen.view", "time": "2025-03-01T12:34:56Z",
                 "user_id": "…", "device_id": "…", "consent": "usage",
                 "attributes": {"screen": "editor", "duration_ms": 5300}}]}

``id`` (1–128 characters, unique per device) is the idempotency key: a retried event with the
same ``device_id`` and ``id`` is stored once. ``time`` is RFC 3339 with a time zone. ``user_id``
is optional (the device then stands for its user); ``consent`` is optional (see the consent
ledger). Unknown envelope keys are ignored.

A well-formed batch is decoded in one pass into Structs. If any event does not fit the
envelope, the batch is decoded again event by event so that the good events are kept and each
bad one gets problems naming its field; only a body that is not a JSON object with an
``events`` array is rejected as a whole (:class:`BatchError`).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec

__all__ = ["MAX_EVENTS", "BadEvent", "BatchError", "WireEvent", "decode_batch", "describe_error"]

MAX_EVENTS = 1000


class WireEvent(msgspec.Struct, gc=False):
    id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    name: str
    time: Annotated[dt.datetime, msgspec.Meta(tz=True)]
    device_id: str | None = None
    user_id: str | None = None
    consent: str | None = None
    attributes: dict[str, Any] = {}


class _Batch(msgspec.Struct):
    events: Annotated[list[WireEvent], msgspec.Meta(max_length=MAX_EVENTS)]


class _LooseBatch(msgspec.Struct):
    events: Annotated[list[msgspec.Raw], msgspec.Meta(max_length=MAX_EVENTS)]


class _MaybeId(msgspec.Struct):
    id: Any = None


@dataclass(frozen=True, slots=True)
class BadEvent:
    """An event whose envelope does not decode; ``id`` only if it was a usable string."""

    id: str | None
    problems: tuple[str, ...]


class BatchError(ValueError):
    """The body as a whole is not a batch; ``field`` names where (``$`` for the body)."""

    def __init__(self, field: str, detail: str) -> None:
        self.field = field
        self.detail = detail
        super().__init__(f"{field}: {detail}")


_EXPECTED = re.compile(r"^Expected (.+?)(?:, got `(\w+)`)? - at `\$(.*)`$")
_AT = re.compile(r"^(.+?) - at `\$(.*)`$")
_MISSING = re.compile(r"^Object missing required field `(\w+)`(?: - at `\$(.*)`)?$")


def _path(raw: str) -> str:
    return raw.lstrip(".") or "$"


def describe_error(message: str, prefix: str = "") -> tuple[str, str]:
    """Turn a msgspec error into ``(field, what)`` without any value from the input."""
    m = _MISSING.match(message)
    if m:
        where = _path(f"{m.group(2) or ''}.{m.group(1)}")
        return prefix + where, "missing (required)"
    m = _EXPECTED.match(message)
    if m:
        expected = m.group(1).replace("`", "")
        got = f", got {m.group(2)}" if m.group(2) else ""
        return prefix + _path(m.group(3)), f"expected {expected}{got}"
    m = _AT.match(message)
    if m:
        what = "expected an RFC 3339 date-time" if "datetime" in m.group(1) else "invalid value"
        return prefix + _path(m.group(2)), what
    if message.startswith("Expected `object`"):
        return prefix or "$", "expected a JSON object"
    return prefix or "$", "invalid value"


def decode_batch(body: bytes) -> list[WireEvent | BadEvent]:
    """Decode a batch; raise :class:`BatchError` if the body is not a batch at all."""
    try:
        return list(msgspec.json.decode(body, type=_Batch).events)
    except msgspec.ValidationError:
        pass  # some event does not fit: go event by event below
    except msgspec.DecodeError:
        raise BatchError("$", "not valid JSON") from None
    except UnicodeDecodeError:
        raise BatchError("$", "not valid UTF-8") from None
    except RecursionError:
        raise BatchError("$", "nested too deeply") from None
    try:
        loose = msgspec.json.decode(body, type=_LooseBatch)
    except msgspec.ValidationError as exc:
        field, what = describe_error(str(exc))
        raise BatchError(field, what) from None
    except RecursionError:
        raise BatchError("$", "nested too deeply") from None
    out: list[WireEvent | BadEvent] = []
    for raw in loose.events:
        try:
            out.append(msgspec.json.decode(raw, type=WireEvent))
        except msgspec.ValidationError as exc:
            field, what = describe_error(str(exc))
            try:
                maybe = msgspec.json.decode(raw, type=_MaybeId).id
            except msgspec.ValidationError:
                maybe = None
            ok_id = maybe if isinstance(maybe, str) and 0 < len(maybe) <= 128 else None
            out.append(BadEvent(ok_id, (f"{field}: {what}",)))
        except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
            out.append(BadEvent(None, ("$: invalid event",)))
    return out
