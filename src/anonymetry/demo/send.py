"""Stream a demo population to a collector the way real apps would.

Phones and laptops use anonymetry's device SDK (:class:`anonymetry.client.Telemetry`), one
install per device with its own persistent state; web apps use the stock OpenTelemetry SDK's
OTLP/HTTP log exporter (browsers that send ``Sec-GPC: 1`` through a second exporter with that
header). Devices whose person opts out part-way send some events, then opt out, which makes the
collector delete what it stored for them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from anonymetry.client import Telemetry
from anonymetry.demo.population import DemoDevice, Population
from anonymetry.policy import Policy

__all__ = ["SendReport", "send_population"]


@dataclass(slots=True)
class SendReport:
    """What the devices did, as the devices saw it."""

    tracked: int = 0
    sdk_devices: int = 0
    otel_devices: int = 0
    otel_records: int = 0
    dropped_on_device: dict[str, int] = field(default_factory=dict)
    opted_out_devices: int = 0
    undelivered: int = 0

    def drop(self, reason: str, n: int) -> None:
        if n:
            self.dropped_on_device[reason] = self.dropped_on_device.get(reason, 0) + n


class _Clock:
    """The SDK's clock, set to each simulated event's time (the SDK coarsens it itself)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def send_population(
    population: Population,
    *,
    endpoint: str,
    token: str,
    policy: Policy,
    devices_dir: Path,
    progress: Callable[[int], None] = lambda n: None,
) -> SendReport:
    report = SendReport()
    web = [d for d in population.devices if d.kind == "web"]
    apps = [d for d in population.devices if d.kind != "web"]
    for i, device in enumerate(apps):
        _send_with_sdk(device, i, endpoint, token, policy, devices_dir, report)
        progress(len(device.events))
    _send_with_otel(web, endpoint, token, report, progress)
    return report


def _send_with_sdk(device: DemoDevice, index: int, endpoint: str, token: str, policy: Policy,
                   devices_dir: Path, report: SendReport) -> None:
    clock = _Clock()
    telemetry = Telemetry(
        endpoint, token, policy=policy, data_dir=devices_dir / f"device-{index:05d}",
        user_id=device.user_id, batch_size=1000, background=False, clock=clock,
    )
    report.sdk_devices += 1
    try:
        telemetry.set_consent(device.consent)
        for n, event in enumerate(device.events):
            if device.opt_out_after is not None and n == device.opt_out_after:
                telemetry.flush(timeout=30)
                telemetry.set_consent("none")
                report.opted_out_devices += 1
            clock.now = event.time.timestamp()
            telemetry.track(event.name, event.attributes)
            report.tracked += 1
        flushed = telemetry.flush(timeout=60)
        report.undelivered += flushed.remaining
        stats = telemetry.stats()
        for reason, n in stats.dropped.items():
            report.drop(str(reason), n)
    finally:
        telemetry.close(timeout=5)


def _send_with_otel(devices: list[DemoDevice], endpoint: str, token: str, report: SendReport,
                    progress: Callable[[int], None]) -> None:
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.resources import Resource

    providers = {}
    for gpc in (False, True):
        headers = {"Authorization": f"Bearer {token}"}
        if gpc:
            headers["Sec-GPC"] = "1"
        provider = LoggerProvider(resource=Resource.create({"service.name": "acme-notes-web"}))
        provider.add_log_record_processor(BatchLogRecordProcessor(
            OTLPLogExporter(endpoint=f"{endpoint}/v1/logs", headers=headers, timeout=30),
            max_export_batch_size=500, schedule_delay_millis=200, max_queue_size=100_000,
        ))
        providers[gpc] = provider
    try:
        for device in devices:
            report.otel_devices += 1
            if device.consent == "none":
                report.drop("consent", len(device.events))
                progress(len(device.events))
                continue
            logger = providers[device.gpc].get_logger("acme.notes.web")
            for n, event in enumerate(device.events):
                if device.opt_out_after is not None and n == device.opt_out_after:
                    providers[device.gpc].force_flush()
                    httpx.post(f"{endpoint}/v1/consent", timeout=30,
                               headers={"Authorization": f"Bearer {token}"},
                               json={"user_id": device.user_id, "device_id": device.device_id,
                                     "level": "none"}).raise_for_status()
                    report.opted_out_devices += 1
                    report.drop("consent", len(device.events) - n)
                    break
                logger.emit(
                    event_name=event.name,
                    timestamp=int(event.time.timestamp() * 1e9),
                    attributes={"user.id": device.user_id, "device.id": device.device_id,
                                "consent.level": device.consent, **event.attributes},
                )
                report.tracked += 1
                report.otel_records += 1
            progress(len(device.events))
    finally:
        for provider in providers.values():
            provider.force_flush()
            provider.shutdown()
