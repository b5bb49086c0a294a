"""The command line as a new user meets it: every option explains itself, a nonsense number is
refused at once, and a bad file or an unreachable store is one line naming the file and the
field - never a traceback."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from rollback_drill.cli.parser import build_parser
from rollback_drill.plugin.verification import ExitCode
from rollback_drill.process import proc
from rollback_drill.stores.fingerprint import CollectionPrint, Fingerprint, pack
from tests.helpers import copy_stack_file, reference_target_doc, silent_server
from tests.paths import PROJECT_ROOT

CLI = [sys.executable, "-m", "rollback_drill.cli"]


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (sub,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_every_option_of_every_command_has_help() -> None:
    missing = [
        f"{name} {action.option_strings or action.dest}"
        for name, command in _subcommands().items()
        for action in command._actions
        if not isinstance(action, argparse._HelpAction)
        and (not action.help or action.help == argparse.SUPPRESS)
    ]
    assert missing == []
    assert set(_subcommands()) >= {"run", "verify", "up", "down", "fingerprint", "history"}


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--seed-users", "-5"],
        ["run", "--seed-users", "0"],
        ["certify", "--from", "1.5.0", "--to", "1.4.0", "--seed-users", "-5"],
        ["up", "--seed-users", "-5"],
        ["up", "--timeout", "-1"],
        ["up", "--timeout", "0"],
        ["up", "--timeout", "nan"],
        ["history", "--limit", "-1"],
        ["history", "--limit", "zero"],
    ],
)
def test_negative_or_nonsense_counts_are_refused(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {argv[-2]}" in err
    assert "expected" in err


def test_pytest_option_seed_users_refuses_a_negative_count(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--seed-users", "-5", "--collect-only", "-q",
         "-p", "no:cacheprovider", str(PROJECT_ROOT / "drills")],
        capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 4, done.stdout + done.stderr
    assert "--seed-users: expected a number of at least 1, got -5" in done.stderr


def _cli(*args: str, cwd: Path = PROJECT_ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SAFEPSY_TEST_PASSWORD": "not-used-here"}
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=120, check=False
    )


def _one_clear_line(done: subprocess.CompletedProcess[str], *names: str, code: int = 2) -> str:
    assert done.returncode == code, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for name in names:
        assert name in lines[0], lines[0]
    return lines[0]


def _services_at(port: int) -> dict[str, str]:
    """The reference target's services, the backend at `port`."""
    given = reference_target_doc()["services"]
    assert isinstance(given, dict)
    return {**{str(k): str(v) for k, v in given.items()}, "backend": f"http://127.0.0.1:{port}"}


def _target(tmp_path: Path, **top: object) -> Path:
    doc = reference_target_doc()
    doc.update(top)
    path = tmp_path / "target.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize(
    "content",
    [
        b"\x00\x01 binary",
        b"{not json",
        b'{"database": "safepsy", "collections": []}',
        b'["a", "list"]',
        b'{"database": "safepsy", "collections": {"users": {"count": "many"}}}',
        b"caf\xe9",
    ],
)
def test_corrupt_or_wrong_shape_baseline(tmp_path: Path, content: bytes) -> None:
    """The command that reads a baseline (verify; fingerprint writes one) says which file is
    wrong, in one line, with the target-file exit code."""
    (tmp_path / "baseline.json").write_bytes(content)
    with silent_server() as port:  # something answers: the target is not simply down
        target = _target(tmp_path, services=_services_at(port))
        done = _cli("verify", "--target", str(target))
    _one_clear_line(done, "baseline.json", code=ExitCode.TARGET_FILE_ERROR)


def test_fingerprint_of_an_unreachable_mongodb(tmp_path: Path) -> None:
    port = proc.free_port()  # nothing listens there
    target = _target(
        tmp_path, mongodb_uri=f"mongodb://127.0.0.1:{port}/?directConnection=true", integrity=None
    )
    done = _cli("fingerprint", "--target", str(target), "-o", str(tmp_path / "out.json"))
    line = _one_clear_line(done, "target.yaml", "cannot read MongoDB", code=ExitCode.UNREACHABLE)
    assert str(port) in line


@pytest.mark.parametrize(
    ("command", "content"),
    [
        (["doctor", "--stack"], b"\x89PNG\r\n\x1a\n\x00"),
        (["up", "--dir", "{tmp}/up", "--stack"], b"name: caf\xe9\n"),
        (["run", "--no-html", "--reports-dir", "{tmp}/r", "--stack"], b"name: x\nname: y\n"),
    ],
)
def test_binary_or_broken_stack_file_from_the_command_line(
    tmp_path: Path, command: list[str], content: bytes
) -> None:
    stack = tmp_path / "stack.yaml"
    stack.write_bytes(content)
    done = _cli(*[c.format(tmp=tmp_path) for c in command], str(stack))
    assert "Traceback" not in done.stdout + done.stderr
    assert done.returncode != 0
    assert "stack.yaml" in done.stdout + done.stderr


def test_verify_with_a_corrupt_baseline_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "baseline.json").write_text(json.dumps({"database": 1, "collections": 2}))
    with silent_server() as port:
        target = _target(tmp_path, services=_services_at(port))
        done = _cli("verify", "--target", str(target), "--", "-q")
    assert "Traceback" not in done.stdout + done.stderr
    assert done.returncode == 4, done.stdout + done.stderr
    assert "baseline.json" in done.stdout + done.stderr


def test_verify_refuses_a_baseline_of_another_database(tmp_path: Path) -> None:
    """A target whose mongodb_database is not its baseline's database is refused at load
    (exit 4), naming both - not left to fail later in integrity.mongodb."""
    packed, digest = pack([b"\x01" * 16])
    users = CollectionPrint(count=1, sha256=digest, documents=packed)
    Fingerprint("safepsy_old", {"users": users, "did_documents": users}).save(
        tmp_path / "baseline.json"
    )
    with silent_server() as port:  # something answers: the target is not simply down
        target = _target(tmp_path, services=_services_at(port))
        done = _cli("verify", "--target", str(target))
    line = _one_clear_line(done, "target.yaml", "integrity.baseline", code=4)
    assert "'safepsy_old'" in line and "mongodb_database is 'safepsy'" in line


def test_doctor_finds_a_service_command_that_is_not_on_path(tmp_path: Path) -> None:
    """`doctor` said ok for a stack file whose local service runs a program this machine does
    not have; `up` found it only once it started the stack."""

    def no_such_program(spec: dict[str, Any]) -> None:
        spec["services"]["backend"]["command"] = ["no-such-program-20", "-m", "safepsy_app.x"]

    stack = copy_stack_file(tmp_path, "stack.yaml", no_such_program)
    done = _cli("doctor", "--stack", str(stack), "--dir", str(tmp_path / "up"))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    (broken,) = [line for line in done.stdout.splitlines() if line.startswith("BROKEN")]
    assert str(stack) in broken
    assert "services.backend.command" in broken and "'no-such-program-20'" in broken
    assert "ok      stack file" not in done.stdout
