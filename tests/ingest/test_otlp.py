"""OTLP logs decoding: event_name (and the older event.name attribute), identity attributes,
resource attributes under record attributes, canonical bytes equal for JSON and protobuf,
undeclared attributes never read, malformed bodies refused."""

from __future__ import annotations

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)

from anonymetry.ingest.otlp import OtlpError, decode_logs, encode_response

T = 1_700_000_000_000_000_000


def _request() -> ExportLogsServiceRequest:
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    for key, value in (("device.id", "dev-1"), ("service.instance.id", "inst-9"),
                       ("host.name", "laptop-of-alice"), ("platform", "web")):
        kv = rl.resource.attributes.add()
        kv.key, kv.value.string_value = key, value
    sl = rl.scope_logs.add()
    rec = sl.log_records.add()
    rec.event_name, rec.time_unix_nano = "screen.view", T
    for key, value in (("user.id", "user-1"), ("platform", "ios"), ("screen", "home"),
                       ("consent.level", "usage")):
        kv = rec.attributes.add()
        kv.key, kv.value.string_value = key, value
    kv = rec.attributes.add()
    kv.key, kv.value.int_value = "duration_ms", 12
    old = sl.log_records.add()  # an older SDK: the name as an attribute, only observed time
    old.observed_time_unix_nano = T
    kv = old.attributes.add()
    kv.key, kv.value.string_value = "event.name", "app.launch"
    return req


WANTED = {"platform", "screen", "duration_ms"}


def decode(body: bytes, *, json: bool):
    return decode_logs(body, json=json, wanted=WANTED, user_attribute="user.id",
                       device_attribute="device.id")


def test_protobuf_records_map_to_events():
    first, second = decode(_request().SerializeToString(), json=False)
    assert first.name == "screen.view"
    assert first.time == T / 1e9
    assert (first.user_id, first.device_id, first.consent) == ("user-1", "dev-1", "usage")
    # record attributes win over resource ones; identity keys are not fields
    assert first.attrs["platform"] == "ios"
    assert first.attrs["duration_ms"] == 12
    assert "user.id" not in first.attrs
    assert "consent.level" not in first.attrs
    # undeclared attributes are present only as unread placeholders (counted, never read)
    assert first.attrs["host.name"] is None
    assert first.attrs["service.instance.id"] is None
    assert second.name == "app.launch"
    assert second.time == T / 1e9
    assert "event.name" not in second.attrs


def test_json_and_protobuf_give_the_same_canonical_bytes():
    req = _request()
    as_pb = decode(req.SerializeToString(), json=False)
    as_json = decode(json_format.MessageToJson(req).encode(), json=True)
    assert [r.canonical for r in as_pb] == [r.canonical for r in as_json]
    assert as_pb[0].canonical != as_pb[1].canonical


@pytest.mark.parametrize(("body", "json"), [
    (b"\xff\xff\xff\xff", False),
    (b"{", True),
    (b"[1, 2]", True),
    (b'{"resourceLogs": 5}', True),
    (b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"timeUnixNano": "x"}]}]}]}', True),
    (b"[" * 100000 + b"]" * 100000, True),
])
def test_malformed_bodies_are_refused(body, json):
    with pytest.raises(OtlpError):
        decode(body, json=json)


def test_response_in_both_encodings():
    pb = ExportLogsServiceResponse.FromString(encode_response(2, "two bad", json=False))
    assert pb.partial_success.rejected_log_records == 2
    assert encode_response(0, "", json=True) == b"{}"
    assert b'"rejectedLogRecords": "2"' in encode_response(2, "two bad", json=True)
