"""The policy loader: the example loads, and every kind of mistake is reported with its key
path and line, all at once."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pytest

from anonymetry.errors import PolicyError
from anonymetry.policy import (
    ConsentLevel,
    FieldType,
    Sensitivity,
    TimeGranularity,
    default_policy,
    default_policy_text,
    load_policy,
    parse_policy,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "policy.yaml"

MINIMAL = """
name: t
version: 1
events:
  app.launch:
    consent: essential
    owner: me
    fields:
      platform: {type: enum, values: [ios, web], sensitivity: technical}
"""


def problems(text: str) -> dict[str, tuple[int | None, str]]:
    with pytest.raises(PolicyError) as info:
        parse_policy(textwrap.dedent(text))
    return {p.path: (p.line, p.message) for p in info.value.problems}


def test_example_policy_declares_the_required_events() -> None:
    policy = load_policy(EXAMPLE)
    assert {"app.launch", "app.crash", "feature.used", "screen.view"} <= set(policy.events)
    assert policy.events["app.crash"].consent is ConsentLevel.DIAGNOSTICS
    assert policy.events["feature.used"].consent is ConsentLevel.USAGE
    assert "feature" in policy.events["feature.used"].fields
    assert {"screen", "duration_ms"} <= set(policy.events["screen.view"].fields)
    for name in ("app.launch", "app.crash", "feature.used", "screen.view"):
        fields = policy.events[name].fields
        assert {"platform", "app_version"} <= set(fields), name
    assert set(policy.events["app.launch"].fields["platform"].values or ()) == {
        "ios", "android", "windows", "macos", "web"}
    assert policy.identity.user_attribute == "user.id"
    assert policy.identity.device_attribute == "device.id"
    assert policy.time.granularity is TimeGranularity.HOUR


def test_embedded_default_is_the_example() -> None:
    assert default_policy_text() == EXAMPLE.read_text()
    assert default_policy() == load_policy(EXAMPLE)


def test_defaults_fill_in_what_is_not_said() -> None:
    policy = parse_policy(MINIMAL)
    assert policy.consent.default_level is ConsentLevel.ESSENTIAL
    assert policy.time.granularity is TimeGranularity.HOUR
    assert policy.identity.key_epoch_days == 30
    field = policy.events["app.launch"].fields["platform"]
    assert field.consent is ConsentLevel.ESSENTIAL  # inherits the event's level
    assert field.type is FieldType.ENUM
    assert field.sensitivity is Sensitivity.TECHNICAL


def test_policy_objects_are_immutable() -> None:
    policy = parse_policy(MINIMAL)
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        policy.events["x.y"] = policy.events["app.launch"]  # type: ignore[index]


def test_every_problem_is_reported_at_once_with_path_and_line() -> None:
    found = problems(
        """
        name: t
        version: 0
        identity:
          user_attribute: user.id
          device_attribute: user.id
          key_epoch_days: 0
        consent:
          default_level: sometimes
        time:
          granularity: fortnight
        retention:
          secret_stuff: 10d
        events:
          Bad:
            consent: usage
            owner: me
          ok.event:
            consnet: usage
            owner: me
            expires: not-a-date
            fields:
              n: {type: int, min: 5, max: 1, sensitivity: technical}
              s: {type: text, sensitivity: public}
              e: {type: enum, sensitivity: technical}
              user_id: {type: string, sensitivity: technical}
              low: {type: int, sensitivity: technical, consent: essential}
        """
    )
    expected = {
        "version": 3,
        "identity.device_attribute": 6,
        "identity.key_epoch_days": 7,
        "consent.default_level": 9,
        "time.granularity": 11,
        "retention.secret_stuff": 13,
        "events.Bad": 15,
        "events.ok.event.consnet": 19,
        "events.ok.event.consent": 18,
        "events.ok.event.expires": 21,
        "events.ok.event.fields.n.max": 23,
        "events.ok.event.fields.s.type": 24,
        "events.ok.event.fields.s.sensitivity": 24,
        "events.ok.event.fields.e.values": 25,
        "events.ok.event.fields.user_id": 26,
    }
    for path, line in expected.items():
        assert path in found, (path, sorted(found))
        assert found[path][0] == line, (path, found[path])
    assert "did you mean 'consent'" in found["events.ok.event.consnet"][1]


def test_field_consent_below_its_event_is_refused() -> None:
    found = problems(
        """
        name: t
        events:
          a.b:
            consent: usage
            owner: me
            fields:
              f: {type: int, sensitivity: technical, consent: essential}
        """
    )
    assert "below its event's level" in found["events.a.b.fields.f.consent"][1]


def test_one_field_name_has_one_type_across_events() -> None:
    found = problems(
        """
        name: t
        events:
          a.b:
            consent: usage
            owner: me
            fields: {n: {type: int, sensitivity: technical}}
          c.d:
            consent: usage
            owner: me
            fields: {n: {type: bool, sensitivity: technical}}
        """
    )
    assert "one type across events" in found["events.c.d.fields.n.type"][1]


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("name: [1, 2\n", "(yaml)"),
        ("", "(top)"),
        ("- a\n- b\n", "(top)"),
        ("name: t\nevents: 5\n", "events"),
        ("name: t\nbudgets: {epsilon: .nan}\nevents: {}\n", "budgets.epsilon"),
        ("name: t\nbudgets: {epsilon: -1}\nevents: {}\n", "budgets.epsilon"),
        ("name: t\nroles: {x: [fly]}\nevents: {}\n", "roles.x.0"),
    ],
)
def test_malformed_documents_name_the_place(text: str, path: str) -> None:
    assert path in problems(text)


def test_cli_check_exits_2_and_lists_problems(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: t\nversion: 0\nevents:\n  a.b:\n    consnet: usage\n")
    run = subprocess.run(
        [sys.executable, "-m", "anonymetry.cli.main", "policy", "check", str(bad), "--json"],
        capture_output=True, text=True, check=False,
    )
    assert run.returncode == 2, run.stderr
    paths = {p["path"] for p in orjson.loads(run.stdout)["problems"]}
    assert {"version", "events.a.b.consnet", "events.a.b.consent", "events.a.b.owner"} <= paths


def test_cli_show_prints_the_normalized_policy() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "anonymetry.cli.main", "policy", "show", str(EXAMPLE), "--json"],
        capture_output=True, text=True, check=True,
    )
    shown = orjson.loads(run.stdout)
    assert shown == orjson.loads(orjson.dumps(load_policy(EXAMPLE).to_dict()))
    assert shown["events"]["screen.view"]["fields"]["duration_ms"]["unit"] == "ms"
    assert shown["consent"]["default_level"] == "essential"


def test_hierarchies_are_declared_and_checked() -> None:
    policy = load_policy(EXAMPLE)
    assert policy.hierarchies["app_version"]["type"] == "prefix"
    assert list(policy.to_dict()["hierarchies"]["app_version"]["keep"]) == [3, 1]
    found = problems(
        """
        name: t
        hierarchies:
          age: {type: interval, widths: [5, 10]}
          zip: [1, 2]
          code: {type: astrology}
        events: {}
        """
    )
    assert set(found) >= {"hierarchies.zip", "hierarchies.code"}
    assert "hierarchies.age" not in found
    assert found["hierarchies.code"][0] == 6
