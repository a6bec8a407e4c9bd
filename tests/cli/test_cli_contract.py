"""The contract every command keeps (README "Commands"): ``--help`` with an example, and bad
input answered on stderr with exit 2 and no Python traceback.

The commands are walked from ``anonymetry.cli.main.COMMANDS`` (groups: each subcommand), so a
new command is covered by the help test at once and must get bad-input cases here
(``test_every_command_has_bad_input_cases``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer

from anonymetry.cli.main import COMMANDS, build_app


def _command_paths() -> list[tuple[str, ...]]:
    """Every runnable path: ``("risk",)``, ``("policy", "check")``, … plus each group."""
    root = typer.main.get_command(build_app())
    paths: list[tuple[str, ...]] = [()]
    for name in COMMANDS:
        cmd: Any = root.commands[name]  # type: ignore[attr-defined]
        paths.append((name,))
        for sub in getattr(cmd, "commands", {}):
            paths.append((name, sub))
    return paths


PATHS = _command_paths()
LEAVES = [p for p in PATHS if p and not (len(p) == 1 and COMMANDS[p[0]][2])]

# Known gaps of the contract, each with its reason (none today); they run as strict xfails so
# a fixed gap must be removed from here.
KNOWN_GAPS: dict[tuple[tuple[str, ...], str], str] = {}


def _gap(path: tuple[str, ...], case: str) -> list[Any]:
    reason = KNOWN_GAPS.get((path, case))
    return [pytest.mark.xfail(reason=reason, strict=True)] if reason else []


@pytest.mark.parametrize("path", [pytest.param(p, id=" ".join(p) or "anonymetry",
                                               marks=_gap(p, "help")) for p in PATHS])
def test_help_exits_0_and_shows_an_example(cli, path) -> None:
    done = cli(*path, "--help")
    assert done.returncode == 0, done.stderr
    assert "Example" in done.stdout
    assert "Usage" in done.stdout


# Bad inputs per command. Placeholders: {missing} a path that does not exist, {bad_policy} a
# malformed policy YAML, {garbage} a file that is not Parquet, {people} a valid Parquet file,
# {aux} the attacker's table, {tmp} an empty existing directory.
BAD_INPUTS: dict[tuple[str, ...], list[tuple[str, tuple[str, ...]]]] = {
    ("demo",): [
        ("bad number", ("--people", "-3", "--out", "{tmp}/demo")),
        ("not a number", ("--people", "many", "--out", "{tmp}/demo")),
        ("days out of range", ("--days", "100", "--out", "{tmp}/demo")),
    ],
    ("serve",): [
        ("malformed policy", ("--data", "{tmp}/srv", "--policy", "{bad_policy}")),
        ("missing policy", ("--data", "{tmp}/srv", "--policy", "{missing}")),
        ("bad port", ("--data", "{tmp}/srv", "--port", "70000")),
    ],
    ("policy", "check"): [
        ("missing file", ("{missing}",)),
        ("malformed policy", ("{bad_policy}",)),
    ],
    ("policy", "show"): [
        ("missing file", ("{missing}",)),
        ("malformed policy", ("{bad_policy}",)),
    ],
    ("tokens", "create"): [
        # a missing DIR is created on purpose (tokens come before the first `serve`)
        ("unknown role", ("--data", "{tmp}", "--role", "no_such_role")),
    ],
    ("tokens", "list"): [("missing data dir", ("--data", "{missing}"))],
    ("tokens", "revoke"): [
        ("missing data dir", ("--data", "{missing}", "tok_x")),
        ("unknown token", ("--data", "{tmp}", "tok_does_not_exist")),
    ],
    ("store", "stats"): [
        ("missing data dir", ("--data", "{missing}")),
        ("malformed policy", ("--data", "{tmp}", "--policy", "{bad_policy}")),
    ],
    ("store", "compact"): [("missing data dir", ("--data", "{missing}"))],
    ("keys", "list"): [("missing data dir", ("--data", "{missing}"))],
    ("keys", "rotate"): [("missing data dir", ("--data", "{missing}"))],
    ("keys", "destroy"): [
        ("missing data dir", ("--data", "{missing}", "--epoch", "1")),
        ("not a number", ("--data", "{tmp}", "--epoch", "soon")),
        ("unknown epoch", ("--data", "{tmp}", "--epoch", "1")),
    ],
    ("query",): [
        ("missing file", ("{missing}", "--epsilon", "1")),
        ("not a number", ("{people}", "--epsilon", "lots")),
        ("bad number", ("{people}", "--epsilon", "-1")),
        ("malformed policy", ("{people}", "--epsilon", "1", "--policy", "{bad_policy}")),
    ],
    ("suggest-bounds",): [
        ("missing file", ("{missing}",)),
        ("bad number", ("{people}", "--coverage", "2")),
        ("malformed policy", ("{people}", "--policy", "{bad_policy}")),
    ],
    ("budget", "grant"): [
        ("not a number", ("--ledger", "{tmp}/ledger", "--analyst", "a", "--epsilon", "x")),
        ("bad number", ("--ledger", "{tmp}/ledger", "--analyst", "a", "--epsilon", "-1")),
    ],
    ("budget", "show"): [
        ("malformed policy", ("--ledger", "{tmp}/ledger", "--policy", "{bad_policy}")),
        ("missing ledger", ("--ledger", "{missing}")),
    ],
    ("risk",): [
        ("missing file", ("{missing}", "--qi", "age,zip")),
        ("not parquet", ("{garbage}", "--qi", "age,zip")),
        ("bad number", ("{people}", "--qi", "age,zip", "--population", "0")),
        ("not a number", ("{people}", "--qi", "age,zip", "--population", "many")),
        ("unknown column", ("{people}", "--qi", "age,no_such_column")),
        ("malformed policy", ("{people}", "--qi", "age,zip", "--policy", "{bad_policy}")),
    ],
    ("check",): [
        ("missing file", ("{missing}", "--qi", "age,zip")),
        ("malformed policy", ("{people}", "--qi", "age,zip", "--policy", "{bad_policy}")),
        ("half a flag pair", ("{people}", "--qi", "age,zip", "--auxiliary", "{aux}")),
        ("unwritable report", ("{people}", "--qi", "age,zip", "--report", "{missing}/r.json")),
    ],
    ("report",): [
        ("missing file", ("{missing}", "--html", "{tmp}/out.html")),
        ("malformed spec", ("{bad_policy}", "--html", "{tmp}/out.html")),
        ("no output named", ("{bad_policy}",)),
    ],
    ("traces",): [
        ("missing file", ("{missing}",)),
        ("not parquet", ("{garbage}",)),
        ("bad number", ("{people}", "--points", "1,x")),
        ("missing data dir", ("--data", "{missing}")),
        ("malformed policy", ("{people}", "--policy", "{bad_policy}")),
    ],
    ("anonymize",): [
        ("missing file", ("{missing}", "--qi", "age", "--k", "5", "--out", "{tmp}/o.parquet")),
        ("not a number", ("{people}", "--qi", "age", "--k", "five", "--out", "{tmp}/o.parquet")),
        ("bad number", ("{people}", "--qi", "age", "--k", "5", "--max-suppression", "-1",
                        "--out", "{tmp}/o.parquet")),
        ("bad output", ("{people}", "--qi", "age", "--k", "5", "--out", "{missing}/o.parquet")),
    ],
    ("linkage",): [
        ("missing released", ("{missing}", "{aux}", "--qi", "age", "--truth", "person")),
        ("missing auxiliary", ("{people}", "{missing}", "--qi", "age", "--truth", "person")),
        ("not parquet", ("{garbage}", "{aux}", "--qi", "age", "--truth", "person")),
    ],
}


def test_every_command_has_bad_input_cases() -> None:
    assert sorted(BAD_INPUTS) == sorted(LEAVES)


def _cases() -> list[Any]:
    return [pytest.param(path, args, id=f"{' '.join(path)}: {case}", marks=_gap(path, case))
            for path, cases in BAD_INPUTS.items() for case, args in cases]


@pytest.mark.parametrize(("path", "args"), _cases())
def test_bad_input_exits_2_with_a_message_and_no_traceback(cli, files, tmp_path, path,
                                                           args) -> None:
    values = {"missing": str(tmp_path / "does-not-exist"), "bad_policy": str(files["bad_policy"]),
              "garbage": str(files["not_parquet"]), "people": str(files["people"]),
              "aux": str(files["aux"]), "tmp": str(tmp_path)}
    done = cli(*path, *(a.format(**values) for a in args))
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.strip()
    assert "Traceback" not in done.stderr + done.stdout
    assert not Path(values["missing"]).exists()  # nothing created for a path that was wrong


def test_exit_codes_are_documented_in_readme() -> None:
    """README's Commands section names the three exit codes and shows every command."""
    readme = (Path(__file__).parents[2] / "README.md").read_text("utf-8")
    assert "## Commands" in readme
    section = readme.split("## Commands", 1)[1].split("\n## ", 1)[0]
    for code in ("`0`", "`1`", "`2`"):
        assert code in section
    for path in LEAVES:
        assert f"anonymetry {' '.join(path)} " in section, path


def test_risk_with_a_single_qi_answers(cli, files) -> None:
    """One QI is valid input: the measures come back (the QI analysis is skipped, since there is
    nothing to drop or combine) instead of a DuckDB error."""
    done = cli("risk", str(files["people"]), "--qi", "zip", "--json")
    assert done.returncode == 0, done.stderr
    assert '"k"' in done.stdout
