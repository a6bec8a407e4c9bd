"""OTLP/HTTP logs (protobuf and OTLP JSON) → events, so the stock OpenTelemetry SDK works.

Mapping (``opentelemetry-proto``'s ``ExportLogsServiceRequest``):

- the event is the log record's ``event_name``; older SDKs put it in the ``event.name``
  attribute, which is accepted too;
- the record's time is ``time_unix_nano``, else ``observed_time_unix_nano``;
- fields come from the record's attributes over its resource's attributes (the record wins);
- the user and the device are the attributes named by ``policy.identity`` (``user.id``,
  ``device.id`` by default) and ``consent.level`` optionally claims a consent level;
- everything else (``service.instance.id``, ``host.name``, ``telemetry.sdk.*``, ``process.*``,
  the body, trace ids, severity) is never read beyond this module: undeclared keys are only
  counted.

OTLP retries are byte-identical, so a record's idempotency key is its canonical bytes: the
deterministic protobuf encoding of its resource and of the record (the same for a JSON and a
protobuf body). The pipeline turns them into a keyed fingerprint; nothing raw is stored.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import msgspec
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)

__all__ = [
    "CONSENT_ATTRIBUTE",
    "EVENT_NAME_ATTRIBUTE",
    "OtlpError",
    "OtlpRecord",
    "decode_logs",
    "encode_response",
]

CONSENT_ATTRIBUTE = "consent.level"
EVENT_NAME_ATTRIBUTE = "event.name"


class OtlpError(ValueError):
    """The body is not an OTLP logs export request; ``field`` names where."""

    def __init__(self, field: str, detail: str) -> None:
        self.field = field
        self.detail = detail
        super().__init__(f"{field}: {detail}")


@dataclass(frozen=True, slots=True)
class OtlpRecord:
    """One log record as an event candidate (not yet validated)."""

    name: Any
    time: float | None
    user_id: Any
    device_id: Any
    consent: Any
    attrs: dict[str, Any]
    canonical: bytes


_UNREAD = None  # placeholder for attributes no event declares: only counted, never read


def _value(av: Any) -> Any:
    kind = av.WhichOneof("value")
    if kind == "string_value":
        return av.string_value
    if kind == "int_value":
        return av.int_value
    if kind == "double_value":
        return av.double_value
    if kind == "bool_value":
        return av.bool_value
    if kind == "array_value":
        return []
    if kind == "kvlist_value":
        return {}
    if kind == "bytes_value":
        return b""
    return None


def _attributes(kvs: Any, wanted: Collection[str], into: dict[str, Any]) -> None:
    for kv in kvs:
        key = kv.key
        into[key] = _value(kv.value) if key in wanted else _UNREAD


def decode_logs(
    body: bytes,
    *,
    json: bool,
    wanted: Collection[str],
    user_attribute: str,
    device_attribute: str,
) -> list[OtlpRecord]:
    """Decode an export request; ``wanted`` are the attribute keys whose values are read
    (declared fields); raise :class:`OtlpError` if the body is not a request at all."""
    request = ExportLogsServiceRequest()
    try:
        if json:
            data = msgspec.json.decode(body)
            if not isinstance(data, dict):
                raise OtlpError("$", "expected a JSON object (ExportLogsServiceRequest)")
            json_format.ParseDict(data, request, ignore_unknown_fields=True)
        else:
            request.ParseFromString(body)
    except OtlpError:
        raise
    except msgspec.DecodeError:
        raise OtlpError("$", "not valid JSON") from None
    except UnicodeDecodeError:
        raise OtlpError("$", "not valid UTF-8") from None
    except RecursionError:
        raise OtlpError("$", "nested too deeply") from None
    except json_format.ParseError as exc:
        raise OtlpError("$", _parse_error_field(str(exc))) from None
    except (DecodeError, ValueError, TypeError):
        raise OtlpError("$", "not a valid ExportLogsServiceRequest protobuf") from None

    ids = {user_attribute, device_attribute, CONSENT_ATTRIBUTE, EVENT_NAME_ATTRIBUTE}
    wanted_all = set(wanted) | ids
    out: list[OtlpRecord] = []
    for rl in request.resource_logs:
        res_attrs: dict[str, Any] = {}
        _attributes(rl.resource.attributes, wanted_all, res_attrs)
        res_bytes = rl.resource.SerializeToString(deterministic=True)
        prefix = len(res_bytes).to_bytes(4, "big") + res_bytes
        for sl in rl.scope_logs:
            for rec in sl.log_records:
                attrs = dict(res_attrs)
                _attributes(rec.attributes, wanted_all, attrs)
                name: Any = rec.event_name or attrs.get(EVENT_NAME_ATTRIBUTE) or None
                nanos = rec.time_unix_nano or rec.observed_time_unix_nano
                user = attrs.pop(user_attribute, None)
                device = attrs.pop(device_attribute, None)
                consent = attrs.pop(CONSENT_ATTRIBUTE, None)
                attrs.pop(EVENT_NAME_ATTRIBUTE, None)
                out.append(OtlpRecord(
                    name=name,
                    time=nanos / 1e9 if nanos else None,
                    user_id=user,
                    device_id=device,
                    consent=consent,
                    attrs=attrs,
                    canonical=prefix + rec.SerializeToString(deterministic=True),
                ))
    return out


def _parse_error_field(message: str) -> str:
    # json_format messages name the field path (e.g. 'Failed to parse resourceLogs field: ...');
    # they may quote a value, so keep only the field names before the first colon.
    head = message.split(":", 1)[0]
    return f"{head}; not a valid OTLP JSON ExportLogsServiceRequest"[:200]


def encode_response(rejected: int, message: str, *, json: bool) -> bytes:
    """An ``ExportLogsServiceResponse`` (with ``partial_success`` if anything was rejected)."""
    response = ExportLogsServiceResponse()
    if rejected:
        response.partial_success.rejected_log_records = rejected
        response.partial_success.error_message = message
    if json:
        return json_format.MessageToJson(response, indent=None).encode()
    return response.SerializeToString()
