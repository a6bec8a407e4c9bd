"""The person's consent on this device, persisted, and the notices the collector must get.

Levels are ordered ``none`` (opted out) < ``essential`` < ``diagnostics`` < ``usage``. Until the
person chooses, the policy's ``consent.default_level`` applies (and nothing is told to the
collector, which assumes the same default).

Every explicit choice is also a *notice* for the collector (``POST /v1/consent``): the collector
enforces the lower of an event's level and its ledger's, so both downgrades and upgrades must
reach it. Notices are persisted with the level and stay pending until the collector
acknowledged them, so an opt-out made offline still arrives later. The file is
``DIR/consent.json`` (mode 0600); it holds the ids a pending notice is about, as the queue does.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anonymetry.client._files import write_private
from anonymetry.errors import InvalidParameter
from anonymetry.policy import ConsentLevel

__all__ = ["ConsentNotice", "ConsentStore", "parse_level"]


def parse_level(level: ConsentLevel | str) -> ConsentLevel:
    """A :class:`ConsentLevel` from itself or its name (``none``, ``essential``, ...)."""
    if isinstance(level, ConsentLevel):
        return level
    try:
        return ConsentLevel.parse(str(level))
    except ValueError as exc:
        raise InvalidParameter(f"consent level: {exc}") from None


@dataclass(frozen=True, slots=True)
class ConsentNotice:
    """What ``POST /v1/consent`` carries: whose consent changed, on which device, to what."""

    user_id: str | None
    device_id: str
    level: ConsentLevel

    def to_wire(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "device_id": self.device_id, "level": self.level.label}

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> ConsentNotice:
        return cls(data.get("user_id"), str(data["device_id"]), ConsentLevel.parse(data["level"]))


class ConsentStore:
    """The consent level in force on this device and the notices not yet acknowledged."""

    def __init__(self, data_dir: Path, default: ConsentLevel) -> None:
        self.path = Path(data_dir) / "consent.json"
        self.default = default
        self._lock = threading.Lock()
        self._level: ConsentLevel | None = None
        self._pending: list[ConsentNotice] = []
        self._load()

    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_text("utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError):
            # A damaged file must never widen consent: fall back to the most private choice.
            self._level = ConsentLevel.NONE
            return
        level = data.get("level")
        try:
            self._level = None if level is None else ConsentLevel.parse(level)
            self._pending = [ConsentNotice.from_wire(n) for n in data.get("pending", [])]
        except (KeyError, TypeError, ValueError):
            self._level = ConsentLevel.NONE

    def _save(self) -> None:
        data = {
            "level": None if self._level is None else self._level.label,
            "pending": [n.to_wire() for n in self._pending],
        }
        write_private(self.path, json.dumps(data))

    @property
    def level(self) -> ConsentLevel:
        """The level in force: the person's choice, or the policy default if none was made."""
        with self._lock:
            return self.default if self._level is None else self._level

    @property
    def chosen(self) -> bool:
        """Whether the person made an explicit choice on this device."""
        with self._lock:
            return self._level is not None

    def set(self, level: ConsentLevel, notice: ConsentNotice) -> None:
        """Record ``level`` and queue ``notice`` for the collector (replacing an older pending
        notice about the same user and device, since only the latest choice counts)."""
        with self._lock:
            self._level = level
            self._pending = [
                n
                for n in self._pending
                if (n.user_id, n.device_id) != (notice.user_id, notice.device_id)
            ]
            self._pending.append(notice)
            self._save()

    def pending(self) -> list[ConsentNotice]:
        with self._lock:
            return list(self._pending)

    def acknowledge(self, notice: ConsentNotice) -> None:
        """The collector acknowledged ``notice``: forget it."""
        with self._lock:
            if notice in self._pending:
                self._pending.remove(notice)
                self._save()
