"""A corpus of bad input gets the documented 4xx with a JSON error naming the field, nothing
stored changes, and the server keeps serving."""

from __future__ import annotations

import datetime as dt
import gzip

import httpx
import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from .conftest import Collector, make_token
from .storage import store_stats

NOW = dt.datetime.now(dt.UTC).isoformat()
GOOD = {"id": "good-1", "name": "app.launch", "time": NOW, "device_id": "dev-1",
        "attributes": {"platform": "ios", "app_version": "1.0"}}
J = {"content-type": "application/json"}
PB = {"content-type": "application/x-protobuf"}

# (name, path, headers, body or None for GET, expected status, words the detail must hold)
CORPUS: list[tuple[str, str, dict[str, str], bytes | None, int, str]] = [
    ("malformed json", "/v1/events", J, b'{"events": [', 400, "$"),
    ("not an object", "/v1/events", J, b"[1, 2]", 400, "$"),
    ("events wrong type", "/v1/events", J, b'{"events": "many"}', 400, "events"),
    ("invalid utf-8", "/v1/events", J, b'{"events": [{"id": "\xff\xfe"}]}', 400, "UTF-8"),
    ("deeply nested", "/v1/events", J,
     b'{"events": [{"attributes": ' + b"[" * 200_000 + b"]" * 200_000 + b"}]}", 400, "$"),
    ("nested object", "/v1/events", J, b'{"events": [' + b'{"a":' * 50_000 + b"1"
     + b"}" * 50_000 + b"]}", 400, "$"),
    ("too many events", "/v1/events", J,
     b'{"events": [' + b",".join([b"{}"] * 1001) + b"]}", 400, "events"),
    ("huge body", "/v1/events", J, b'{"events": [], "pad": "' + b"x" * (5 << 20) + b'"}',
     413, "body"),
    ("gzip bomb", "/v1/events", {**J, "content-encoding": "gzip"},
     gzip.compress(b'{"events": [], "pad": "' + b"x" * (8 << 20) + b'"}'), 413, "body"),
    ("bad gzip", "/v1/events", {**J, "content-encoding": "gzip"}, b"not gzip", 400, "body"),
    ("unknown encoding", "/v1/events", {**J, "content-encoding": "br"}, b"{}", 415,
     "content-encoding"),
    ("text/plain", "/v1/events", {"content-type": "text/plain"}, b"{}", 415, "content-type"),
    ("no content type", "/v1/events", {}, b"{}", 415, "content-type"),
    ("xml to logs", "/v1/logs", {"content-type": "application/xml"}, b"<x/>", 415,
     "content-type"),
    ("malformed protobuf", "/v1/logs", PB, b"\xff\xff\xff\xff\x0f", 400, "protobuf"),
    ("protobuf as json", "/v1/logs", J, b"\x0a\x02\x08\x01", 400, "$"),
    ("otlp json wrong types", "/v1/logs", J, b'{"resourceLogs": 7}', 400, "resourceLogs"),
    ("consent bad level", "/v1/consent", J, b'{"device_id": "d", "level": "all"}', 400,
     "level"),
    ("consent no device", "/v1/consent", J, b'{"level": "usage"}', 400, "device_id"),
    ("consent device wrong type", "/v1/consent", J, b'{"device_id": 5, "level": "usage"}', 400,
     "device_id"),
    ("unknown path", "/v1/nope", J, b"{}", 404, "path"),
    ("wrong method", "/v1/events", {}, None, 405, "POST"),
    ("wrong method healthz", "/healthz", J, b"{}", 405, "GET"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data = tmp_path_factory.mktemp("bad") / "data"
    token = make_token(data)
    analyst = make_token(data, role="analyst")
    collector = Collector(data)
    collector.start()
    client = httpx.Client(base_url=collector.url, timeout=30,
                          headers={"authorization": f"Bearer {token}"})
    first = client.post("/v1/events", json={"events": [GOOD]})
    assert first.json()["stored"] == 1
    yield collector, client, analyst
    client.close()
    collector.stop()


@pytest.mark.parametrize(("name", "path", "headers", "body", "status", "field"), CORPUS,
                         ids=[c[0] for c in CORPUS])
def test_corpus_gets_documented_status(server, name, path, headers, body, status, field):
    _, client, _ = server
    if body is None:
        response = client.get(path, headers=headers)
    else:
        response = client.post(path, content=body, headers=headers)
    assert response.status_code == status, response.text
    error = response.json()
    assert set(error) == {"error", "detail"}
    assert field in error["detail"]
    assert "\xff" not in response.text
    assert "xxxx" not in response.text


@pytest.mark.parametrize(("headers", "status"), [
    ({}, 401),
    ({"authorization": "Bearer anm_" + "A" * 43}, 401),
    ({"authorization": "Basic dXNlcjpwYXNz"}, 401),
    ({"authorization": "Bearer"}, 401),
])
def test_bad_tokens_are_401(server, headers, status):
    collector = server[0]
    r = httpx.post(f"{collector.url}/v1/events", json={"events": [GOOD]}, headers=headers)
    assert r.status_code == status
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert "authorization" in r.json()["detail"]


def test_a_role_without_ingest_is_403(server):
    collector, _, analyst = server
    for path in ("/v1/events", "/v1/logs", "/v1/consent"):
        r = httpx.post(f"{collector.url}{path}", json={},
                       headers={"authorization": f"Bearer {analyst}"})
        assert r.status_code == 403, path
        assert r.json()["error"] == "forbidden"


def test_bad_events_are_rejected_one_by_one_naming_the_field(server):
    _, client, _ = server
    secret = "value-that-must-not-echo"
    batch = {"events": [
        {"id": "b1", "name": "no.such_event", "time": NOW, "device_id": "d"},
        {"id": "b2", "name": "screen.view", "time": NOW, "device_id": "d", "consent": "usage",
         "attributes": {"platform": "ios", "app_version": "1", "screen": "home",
                        "duration_ms": secret}},
        {"id": "b3", "name": "app.launch", "time": "yesterday", "device_id": "d"},
        {"id": "b4", "name": "app.launch", "time": NOW},
        {"id": "b5", "name": "app.launch", "time": NOW, "device_id": "d",
         "attributes": {"platform": ["ios"], "app_version": {"x": 1}}},
        42,
    ]}
    r = client.post("/v1/events", json=batch)
    assert r.status_code == 200
    body = r.json()
    assert secret not in r.text
    reasons = [res["reason"] for res in body["results"]]
    assert [res["status"] for res in body["results"]] == ["rejected"] * 6
    assert reasons[0] == "name: not a declared event"
    assert reasons[1] == "fields.duration_ms: expected int, got str"
    assert reasons[2] == "time: expected an RFC 3339 date-time"
    assert reasons[3] == ("device_id: missing; fields.platform: missing (required); "
                          "fields.app_version: missing (required)")
    assert reasons[4] == ("fields.platform: expected enum, got array; "
                          "fields.app_version: expected string, got object")
    assert reasons[5] == "$: expected a JSON object"
    assert body["stored"] == 0
    assert body["rejected"] == 6


def test_otlp_bad_records_are_partial_success(server):
    _, client, _ = server
    request = ExportLogsServiceRequest()
    rec = request.resource_logs.add().scope_logs.add().log_records.add()
    rec.event_name = "app.launch"  # no time, no device, no required fields
    r = client.post("/v1/logs", content=request.SerializeToString(), headers=PB)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/x-protobuf"
    as_json = client.post("/v1/logs", content=json_format.MessageToJson(request),
                          headers=J).json()
    assert as_json["partialSuccess"]["rejectedLogRecords"] == "1"
    assert "time: missing" in as_json["partialSuccess"]["errorMessage"]
    assert "device_id: missing" in as_json["partialSuccess"]["errorMessage"]


def test_zz_nothing_stored_changed_and_still_serving(server):
    collector, client, _ = server
    good = client.post("/v1/events", json={"events": [{**GOOD, "id": "good-2"}]})
    assert good.json()["stored"] == 1
    collector.stop()
    stats = store_stats(collector.data)
    assert stats["stored"] == 2
    assert stats["by_event"] == {"app.launch": 2}
    assert "Traceback" not in collector.log()
