"""A generated multi-device population of stored events, for trace-risk tests.

People use a phone (iOS/Android), a laptop (Windows/macOS) and/or the web app. Activity is
skewed (log-normal sessions per week: most people open the app a few times a week, a few
dozens of times), each person has habitual hours of day, and a session is an ``app.launch``
followed by a geometric number of ``screen.view`` / ``feature.used`` events minutes apart.
Rows follow the stored-event schema (docs/architecture.md): ``event, time, epoch, user,
device, consent`` plus the fields ``platform, app_version, screen, feature``; times are
floored to the minute.

Seeded numpy generator: demo data only, no privacy role.  # not-privacy
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

START = 1_709_510_400  # 2024-03-04 00:00 UTC, a Monday
DAY = 86_400

_SCREENS = np.array(["home", "editor", "search", "settings", "sharing", "onboarding", "paywall"])
_SCREEN_P = np.array([0.35, 0.3, 0.12, 0.08, 0.07, 0.03, 0.05])
_FEATURES = np.array(
    [
        "search",
        "share",
        "export_pdf",
        "dark_mode",
        "sync",
        "tag",
        "reminder",
        "template",
        "ai_summary",
    ]
)
_FEATURE_P = np.array([0.25, 0.12, 0.05, 0.04, 0.2, 0.14, 0.1, 0.06, 0.04])
_VERSIONS = np.array(["5.2.0", "5.1.3", "5.1.2", "5.0.9", "4.9.1"])
_VERSION_P = np.array([0.45, 0.3, 0.12, 0.08, 0.05])


def _hex_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    return np.array([row.tobytes().hex() for row in raw])


def make_population(n_users: int = 2000, days: int = 28, seed: int = 7) -> pa.Table:
    """Events of ``n_users`` people over ``days`` days (deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    users = _hex_ids(rng, n_users)

    # Devices: (platform, weight in the person's sessions); at least one device per person.
    has_phone = rng.random(n_users) < 0.9
    has_laptop = rng.random(n_users) < 0.5
    has_web = rng.random(n_users) < 0.3
    has_phone |= ~(has_phone | has_laptop | has_web)
    phone_os = np.where(rng.random(n_users) < 0.55, "ios", "android")
    laptop_os = np.where(rng.random(n_users) < 0.6, "windows", "macos")
    slots = np.stack([has_phone, has_laptop, has_web], axis=1)  # person × device slot
    slot_w = slots * np.array([0.6, 0.3, 0.1])
    slot_w = slot_w / slot_w.sum(axis=1, keepdims=True)
    device_ids = _hex_ids(rng, n_users * 3).reshape(n_users, 3)
    version_of = rng.choice(_VERSIONS, size=(n_users, 3), p=_VERSION_P)

    # Skewed activity and habitual hours.
    per_week = np.clip(np.exp(rng.normal(1.4, 1.0, n_users)), 0.3, 80.0)
    habit_hour = rng.choice([8.0, 12.5, 20.5], size=n_users, p=[0.3, 0.25, 0.45])
    habit_hour = habit_hour + rng.normal(0, 1.0, n_users)
    sessions = rng.poisson(per_week * days / 7)
    sessions = np.maximum(sessions, 1)
    s_user = np.repeat(np.arange(n_users), sessions)
    n_s = s_user.size

    cum = np.cumsum(slot_w[s_user], axis=1)
    slot = (rng.random(n_s)[:, None] > cum).sum(axis=1)
    platform = np.where(slot == 0, phone_os[s_user], np.where(slot == 1, laptop_os[s_user], "web"))
    weekday_w = np.array([1.0, 1.0, 1.0, 1.0, 0.9, 0.6, 0.6])
    day_w = np.tile(weekday_w, days // 7 + 1)[:days]
    day = rng.choice(days, size=n_s, p=day_w / day_w.sum())
    hour = np.mod(habit_hour[s_user] + rng.normal(0, 1.5, n_s), 24)
    start = START + day * DAY + (hour * 3600).astype(np.int64)

    # Events per session: a launch, then geometric(1/3) - 1 more, 0-5 minutes apart.
    extra = rng.geometric(1 / 3, n_s) - 1
    n_ev = extra + 1
    e_sess = np.repeat(np.arange(n_s), n_ev)
    first = np.zeros(e_sess.size, dtype=bool)
    first[np.concatenate([[0], np.cumsum(n_ev)[:-1]])] = True
    gaps = np.where(first, 0, rng.integers(10, 300, e_sess.size))
    # cumulative gap within each session
    csum = np.cumsum(gaps)
    sess_base = csum[np.concatenate([[0], np.cumsum(n_ev)[:-1]])]
    offset = csum - np.repeat(sess_base, n_ev)
    t = start[e_sess] + offset
    t = t - t % 60  # stored at minute granularity

    kind = np.where(first, 0, np.where(rng.random(e_sess.size) < 0.6, 1, 2))
    event = np.array(["app.launch", "screen.view", "feature.used"])[kind]
    screen = np.where(kind == 1, rng.choice(_SCREENS, e_sess.size, p=_SCREEN_P), None)
    feature = np.where(kind == 2, rng.choice(_FEATURES, e_sess.size, p=_FEATURE_P), None)
    u = s_user[e_sess]
    sl = slot[e_sess]
    return pa.table(
        {
            "event": pa.array(event),
            "time": pa.array(t, pa.timestamp("s", tz="UTC")),
            "epoch": pa.array((t // (30 * DAY)).astype(np.int32)),
            "user": pa.array(users[u]),
            "device": pa.array(device_ids[u, sl]),
            "consent": pa.array(np.full(e_sess.size, "usage")),
            "platform": pa.array(platform[e_sess]),
            "app_version": pa.array(version_of[u, sl]),
            "screen": pa.array(screen, pa.string()),
            "feature": pa.array(feature, pa.string()),
        }
    )
