"""Install, session and event ids are random and never derived from the machine."""

from __future__ import annotations

import re
import socket
import stat
import uuid
from pathlib import Path

import pytest

from anonymetry.client import InstallId, SessionClock, new_event_id
from anonymetry.errors import InvalidParameter

CLIENT_SRC = Path(__file__).resolve().parents[2] / "src" / "anonymetry" / "client"


def test_install_id_is_random_hex_persisted_privately_and_rotates(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = InstallId(tmp_path / "a")
    assert re.fullmatch(r"[0-9a-f]{32}", first.value)
    assert InstallId(tmp_path / "a").value == first.value  # survives a restart
    assert stat.S_IMODE((tmp_path / "a" / "install_id").stat().st_mode) == 0o600
    assert InstallId(tmp_path / "b").value != first.value  # another install, another id
    old = first.value
    new = first.rotate()
    assert new != old
    assert first.value == new
    assert InstallId(tmp_path / "a").value == new  # the rotation is persisted


def test_install_id_is_not_derived_from_the_machine(tmp_path):
    value = InstallId(tmp_path).value
    assert f"{uuid.getnode():012x}" not in value  # MAC address
    assert socket.gethostname().lower() not in value


def test_client_code_never_reads_hardware_identifiers():
    banned = (
        "getnode",
        "gethostname",
        "platform.node",
        "os.uname",
        "machine-id",
        "uuid1",
        "IOPlatformSerialNumber",
        "MachineGuid",
        "getmac",
    )
    for path in CLIENT_SRC.glob("*.py"):
        text = path.read_text()
        for word in banned:
            assert word not in text, f"{path.name} mentions {word}"


def test_sessions_rotate_on_start_and_after_idle():
    now = [0.0]
    clock = SessionClock(60, clock=lambda: now[0])
    a = clock.current()
    now[0] = 59.0
    assert clock.current() == a  # active within the idle window
    now[0] = 118.0
    assert clock.current() == a  # each event extends the session
    now[0] = 178.5
    b = clock.current()
    assert b != a  # idle for > 60 s: a new session
    assert SessionClock(60, clock=lambda: now[0]).current() not in {a, b}  # new on start
    with pytest.raises(InvalidParameter):
        SessionClock(0)


def test_event_ids_are_uuid4_and_unique():
    ids = {new_event_id() for _ in range(2000)}
    assert len(ids) == 2000
    for i in list(ids)[:50]:
        u = uuid.UUID(hex=i)
        assert u.version == 4
        assert u.hex == i
