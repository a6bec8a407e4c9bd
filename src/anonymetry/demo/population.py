"""A realistic multi-device population for the demo and for end-to-end tests.

People own a phone (iOS or Android), often a laptop (Windows or macOS) and sometimes use the
web app. Activity is heavy-tailed (a few very active people), follows each person's time zone,
and is split into sessions with launches, screen views, feature use, occasional crashes (more on
old app versions) and rare purchases. Every device makes its own consent choice; a few opt out
after a while. App versions roll out over the period.

This is synthetic demo data: the generator is seeded for reproducibility and is not a privacy
mechanism (NumPy's seeded generator is fine here, and each use is marked ``not-privacy``).
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np  # not-privacy: synthetic demo data only

__all__ = ["DemoDevice", "DemoEvent", "Population", "generate_population"]

_FEATURES = ("search", "share", "export_pdf", "dark_mode", "sync", "tag", "reminder", "template",
             "ai_summary")
_FEATURE_WEIGHTS = np.array([30, 12, 5, 8, 20, 10, 6, 4, 5], dtype=float)
_SCREENS = ("home", "editor", "search", "settings", "sharing", "onboarding", "paywall")
_SCREEN_WEIGHTS = np.array([35, 40, 10, 5, 4, 3, 3], dtype=float)
_CRASH_KINDS = {"ios": ("exception", "oom", "watchdog"), "android": ("exception", "oom", "anr"),
                "windows": ("exception", "native"), "macos": ("exception", "native"),
                "web": ("exception",)}
_VERSIONS = ("3.8.2", "3.9.0", "3.9.1", "4.0.0")
_CONSENT = ("usage", "diagnostics", "essential", "none")
_CONSENT_WEIGHTS = np.array([0.55, 0.2, 0.2, 0.05])


@dataclass(frozen=True, slots=True)
class DemoEvent:
    name: str
    time: dt.datetime
    attributes: dict[str, Any]


@dataclass(slots=True)
class DemoDevice:
    """One device of one person, with the events it would emit (before any consent filter)."""

    user_id: str
    device_id: str
    platform: str
    kind: str  # phone, laptop, web
    consent: str  # usage, diagnostics, essential or none (opted out from the start)
    gpc: bool  # the browser sends Sec-GPC: 1
    opt_out_after: int | None  # opts out after sending this many events (None: never)
    events: list[DemoEvent] = field(default_factory=list)


@dataclass(slots=True)
class Population:
    devices: list[DemoDevice]
    start: dt.datetime
    end: dt.datetime

    @property
    def people(self) -> int:
        return len({d.user_id for d in self.devices})

    @property
    def events(self) -> int:
        return sum(len(d.events) for d in self.devices)

    def iter_events(self) -> Iterator[tuple[DemoDevice, DemoEvent]]:
        for device in self.devices:
            for event in device.events:
                yield device, event


def generate_population(
    people: int = 1000,
    days: int = 14,
    *,
    seed: int = 7,
    end: dt.datetime | None = None,
) -> Population:
    """Generate ``people`` persons over the last ``days`` days ending at ``end`` (default: now).

    Raw ids are random per run (``secrets``), so two runs never share identifiers; the seed only
    fixes the shape of the data.
    """
    rng = np.random.default_rng(seed)  # not-privacy: synthetic demo data
    end = (end or dt.datetime.now(dt.UTC)).replace(microsecond=0)
    start = end - dt.timedelta(days=days)
    devices: list[DemoDevice] = []
    release_day = {v: int(i * days / len(_VERSIONS)) for i, v in enumerate(_VERSIONS)}
    for _ in range(people):
        user_id = f"acct-{secrets.token_hex(6)}@example.com"
        tz_hours = int(rng.choice([-8, -5, 0, 1, 2, 5, 8, 9]))
        activity = float(rng.lognormal(mean=0.0, sigma=1.0))  # heavy tail: a few heavy users
        kinds: list[tuple[str, str]] = []
        if rng.random() < 0.9:
            kinds.append(("phone", "ios" if rng.random() < 0.45 else "android"))
        if rng.random() < 0.6:
            kinds.append(("laptop", "macos" if rng.random() < 0.35 else "windows"))
        if rng.random() < 0.4 or not kinds:
            kinds.append(("web", "web"))
        for kind, platform in kinds:
            consent = str(rng.choice(_CONSENT, p=_CONSENT_WEIGHTS))
            device = DemoDevice(
                user_id=user_id,
                device_id=secrets.token_hex(16),
                platform=platform,
                kind=kind,
                consent=consent,
                gpc=kind == "web" and rng.random() < 0.15,
                opt_out_after=None,
            )
            _fill_sessions(device, rng, start, days, tz_hours, activity, release_day)
            if consent != "none" and len(device.events) > 10 and rng.random() < 0.03:
                device.opt_out_after = int(rng.integers(1, len(device.events)))
            devices.append(device)
    return Population(devices=devices, start=start, end=end)


def _fill_sessions(
    device: DemoDevice,
    rng: np.random.Generator,  # not-privacy: synthetic demo data
    start: dt.datetime,
    days: int,
    tz_hours: int,
    activity: float,
    release_day: dict[str, int],
) -> None:
    """Draw every random quantity of the device at once (vectorized), then lay out events."""
    per_day = {"phone": 2.5, "laptop": 1.2, "web": 0.8}[device.kind] * activity
    crash_rate = np.array([0.06, 0.04, 0.015, 0.02])
    lag = int(rng.integers(0, 4))
    day_version = np.array([
        max(i for i, v in enumerate(_VERSIONS) if release_day[v] + (lag if i else 0) <= day)
        for day in range(days)
    ])
    sessions_per_day = rng.poisson(per_day, size=days)
    session_day = np.repeat(np.arange(days), sessions_per_day)
    n = len(session_day)
    if n == 0:
        return
    local_hour = np.clip(rng.normal(14, 4, size=n), 0, 23.9)
    offsets = session_day * 86400.0 + (local_hour - tz_hours) * 3600.0
    offsets = np.clip(offsets, 0, days * 86400.0 - 1800)
    versions = day_version[session_day]
    os_major = rng.integers(12, 18, size=n)
    cold = rng.random(n) < 0.4
    launch_ms = rng.lognormal(6.5, 0.5, size=n).astype(int)
    screens_per_session = 1 + rng.poisson(3, size=n)
    total = int(screens_per_session.sum())
    gaps = rng.exponential(40, size=total)
    screens = rng.choice(len(_SCREENS), size=total, p=_SCREEN_WEIGHTS / _SCREEN_WEIGHTS.sum())
    durations = np.minimum(rng.lognormal(9.5, 1.0, size=total), 3_600_000).astype(int)
    uses_feature = rng.random(total) < 0.5
    features = rng.choice(len(_FEATURES), size=total, p=_FEATURE_WEIGHTS / _FEATURE_WEIGHTS.sum())
    feature_counts = 1 + rng.poisson(0.5, size=total)
    crashed = rng.random(n) < crash_rate[versions]
    crash_kind = rng.integers(0, 3, size=n)
    uptime = rng.exponential(900, size=n).astype(int)
    purchased = rng.random(n) < 0.004
    yearly = rng.random(n) < 0.4
    legacy = rng.random(n) < 0.01
    legacy_step = rng.integers(1, 6, size=n)

    events = device.events
    platform = device.platform
    kinds = _CRASH_KINDS[platform]
    j = 0
    for i in range(n):
        t = start + dt.timedelta(seconds=float(offsets[i]))
        base = {"platform": platform, "app_version": _VERSIONS[versions[i]]}
        events.append(DemoEvent("app.launch", t, {
            **base, "os_version": f"{platform}-{os_major[i]}",
            "launch_type": "cold" if cold[i] else "warm", "launch_ms": int(launch_ms[i]),
        }))
        for _ in range(screens_per_session[i]):
            t += dt.timedelta(seconds=float(gaps[j]))
            events.append(DemoEvent("screen.view", t, {
                **base, "screen": _SCREENS[screens[j]], "duration_ms": int(durations[j])}))
            if uses_feature[j]:
                events.append(DemoEvent("feature.used", t, {
                    **base, "feature": _FEATURES[features[j]], "count": int(feature_counts[j])}))
            j += 1
        if crashed[i]:
            events.append(DemoEvent("app.crash", t, {
                **base, "crash_kind": kinds[crash_kind[i] % len(kinds)],
                "uptime_s": int(uptime[i])}))
        if purchased[i]:
            events.append(DemoEvent("purchase.completed", t, {
                **base, "plan": "yearly" if yearly[i] else "monthly",
                "amount": 39.99 if yearly[i] else 4.99}))
        if legacy[i]:
            # an old app build still sends an event whose declaration expired
            events.append(DemoEvent("onboarding.legacy_step", t, {
                "platform": platform, "step": int(legacy_step[i])}))
