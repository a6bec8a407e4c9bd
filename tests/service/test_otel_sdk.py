"""The stock OpenTelemetry SDK (LoggerProvider + OTLPLogExporter over HTTP/protobuf) exports to
a real ``anonymetry serve`` on 127.0.0.1; events arrive pseudonymized, coarsened and minimized;
a canary user id, an IP and a user agent are in no file under DIR and in no server log."""

from __future__ import annotations

import time

from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource

from anonymetry.policy import default_policy
from anonymetry.privacy import LocalKeyring, Pseudonymizer, epoch_of

from .conftest import Collector, make_token
from .storage import store_stats, stored_rows

CANARY_USER = "canary-user-5f3a9e@example.org"
CANARY_DEVICE = "canary-device-77b1"
CANARY_IP = "203.0.113.77"
CANARY_UA = "CanaryAgent/9.9 (secret-build-4411)"
CANARY_HOST = "host-of-canary-4412"


def test_stock_sdk_export_is_pseudonymized_coarsened_minimized(data_dir):
    token = make_token(data_dir)
    collector = Collector(data_dir, full_cli=True)  # the real `anonymetry serve`
    collector.start()
    try:
        exporter = OTLPLogExporter(
            endpoint=f"{collector.url}/v1/logs",
            headers={"Authorization": f"Bearer {token}", "User-Agent": CANARY_UA,
                     "X-Forwarded-For": CANARY_IP},
            timeout=10,
        )
        provider = LoggerProvider(resource=Resource.create({
            "service.name": "acme-notes", "service.instance.id": "inst-canary-99",
            "host.name": CANARY_HOST, "device.id": CANARY_DEVICE, "platform": "macos",
            "app_version": "4.2.0",
        }))
        provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
        logger = provider.get_logger("acme.notes")
        now_ns = time.time_ns()
        logger.emit(event_name="screen.view", timestamp=now_ns, attributes={
            "user.id": CANARY_USER, "consent.level": "usage", "screen": "editor",
            "duration_ms": 5300, "client.address": CANARY_IP, "user_agent.original": CANARY_UA,
            "note_title": "my secret diary"})
        logger.emit(event_name="app.launch", timestamp=now_ns, attributes={
            "user.id": CANARY_USER, "launch_type": "cold", "launch_ms": 800})
        logger.emit(event_name="feature.used", timestamp=now_ns, attributes={
            "user.id": CANARY_USER, "consent.level": "usage", "feature": "search",
            "count": "three"})  # wrong type: rejected, reported via partial_success
        provider.force_flush()
        provider.shutdown()
        stats = store_stats(data_dir)
        rows = stored_rows(data_dir)
    finally:
        collector.stop()

    assert stats["stored"] == 2
    by_event = {row["event"]: row for row in rows}
    assert set(by_event) == {"screen.view", "app.launch"}
    keyring = LocalKeyring(data_dir / "keys")
    names = Pseudonymizer(keyring)
    epoch = epoch_of(now_ns / 1e9, default_policy().identity.key_epoch_days)
    view = by_event["screen.view"]
    # pseudonymized: the keyed pseudonyms of this epoch, not the raw ids
    assert view["user"] == names.user(CANARY_USER, epoch)
    assert view["device"] == names.device(CANARY_DEVICE, epoch)
    # coarsened to the hour
    assert view["time"] % 3600 == 0
    assert 0 <= now_ns / 1e9 - view["time"] < 3600
    # minimized: declared fields only (resource ones included), nothing SDK-added
    assert view["attrs"] == {"platform": "macos", "app_version": "4.2.0", "screen": "editor",
                             "duration_ms": 5300}
    assert view["consent"] == "usage"
    # app.launch had no consent claim: the default (essential) drops its diagnostics field
    launch = by_event["app.launch"]
    assert launch["consent"] == "essential"
    assert launch["attrs"] == {"platform": "macos", "app_version": "4.2.0",
                               "launch_type": "cold"}
    assert stats["discarded"].get("invalid", 0) == 1

    canaries = [CANARY_USER, CANARY_DEVICE, CANARY_IP, CANARY_UA, CANARY_HOST,
                "inst-canary-99", "my secret diary", "secret-build-4411"]
    files = [p for p in data_dir.rglob("*") if p.is_file()]
    assert files, "the store wrote nothing"
    for path in files:
        blob = path.read_bytes()
        for canary in canaries:
            assert canary.encode() not in blob, f"{canary!r} leaked into {path.name}"
        assert b"127.0.0.1" not in blob, f"client address leaked into {path.name}"
    log = collector.log()
    for canary in canaries:
        assert canary not in log, f"{canary!r} leaked into the server log"
