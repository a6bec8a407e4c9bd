"""Identifiers the SDK makes on the device: a random install id, rotating session ids and
per-event ids.

Privacy argument: every id here is drawn from :mod:`secrets` and carries nothing about the
machine or the person. The SDK never reads a hardware id, MAC address, host name, serial number
or advertising id; the install id is the ``device_id`` on the wire and is replaced (a new random
one) when the person opts out, so a later opt-in cannot be linked to the earlier history.
The only person-level id is the ``user_id`` the app sets (its own account id), or none.
"""

from __future__ import annotations

import re
import secrets
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from anonymetry.client._files import write_private
from anonymetry.errors import InvalidParameter

__all__ = ["InstallId", "SessionClock", "new_event_id"]

_HEX32 = re.compile(r"^[0-9a-f]{32}$")


def new_event_id() -> str:
    """A random UUID4 (from ``os.urandom``) as 32 hex characters; the collector deduplicates
    retries on it, so it is made once per event and kept across retries."""
    return uuid.uuid4().hex


class InstallId:
    """The random install id (``secrets.token_hex(16)``), kept in ``DIR/install_id``."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / "install_id"
        self._value = self._load_or_create()

    def _load_or_create(self) -> str:
        try:
            text = self.path.read_text("utf-8").strip()
        except FileNotFoundError:
            text = ""
        if _HEX32.match(text):
            return text
        value = secrets.token_hex(16)
        write_private(self.path, value)
        return value

    @property
    def value(self) -> str:
        return self._value

    def rotate(self) -> str:
        """Replace the install id with a new random one (done on opt-out); returns the new id."""
        self._value = secrets.token_hex(16)
        write_private(self.path, self._value)
        return self._value


class SessionClock:
    """Session ids that rotate: a new one at start and after ``idle_seconds`` without events.

    Sessions are not persisted, so a restart always begins a new session.
    """

    def __init__(
        self, idle_seconds: float = 30 * 60, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not idle_seconds > 0:
            raise InvalidParameter(f"session idle time: need > 0 seconds, got {idle_seconds}")
        self.idle_seconds = float(idle_seconds)
        self._clock = clock
        self._id = secrets.token_hex(16)
        self._last = clock()

    def current(self) -> str:
        """The session id for an event now (rotating first if the session went idle)."""
        now = self._clock()
        if now - self._last > self.idle_seconds:
            self._id = secrets.token_hex(16)
        self._last = now
        return self._id
