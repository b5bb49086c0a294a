"""Acceptance for `pytest -m verify --target FILE`, run as a user runs it (a separate pytest
process against a target file written for a real stack): green twice in a row, listing its
writes; red naming the failed check when the stack breaks; "not verified" - with its own exit
status - when a check could not look."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from rollback_drill.checks import ALL_CHECKS
from rollback_drill.plugin.verification import ExitCode
from rollback_drill.stack.local import LocalStack
from rollback_drill.stack.targetfile import write_target_file
from rollback_drill.stores import mongo
from tests.helpers import run_verify_suite, user_deleted


@pytest.fixture(scope="module")
def target_file(local_stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_target_file(
        local_stack.target(), tmp_path_factory.mktemp("target"), local_stack.password_file
    )


def _variant(target_file: Path, tmp_path: Path, **changes: object) -> Path:
    """A copy of the target file (beside the original, so its relative paths still hold)."""
    data = yaml.safe_load(target_file.read_text())
    data.update(changes)
    path = target_file.parent / f"{tmp_path.name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _verify(target: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_verify_suite(target, *extra)


def _writes(stdout: str) -> dict[str, int]:
    """Documents the summary says the run wrote, per collection (several checks may write)."""
    total: dict[str, int] = {}
    for m in re.finditer(r"^\s+(\w+): (\d+) document\(s\) by", stdout, re.MULTILINE):
        total[m.group(1)] = total.get(m.group(1), 0) + int(m.group(2))
    return total


def test_verify_passes_twice_in_a_row_and_lists_its_writes(
    local_stack: LocalStack, target_file: Path
) -> None:
    collections = ["users", "did_documents", "meta", "sessions", "chat_messages"]
    for _ in range(2):
        before = mongo.fingerprint(local_stack.mongodb_uri, "safepsy", collections)
        run = _verify(target_file)
        after = mongo.fingerprint(local_stack.mongodb_uri, "safepsy", collections)
        assert run.returncode == ExitCode.VERIFIED, run.stdout[-4000:]
        assert f"VERIFIED: all {len(ALL_CHECKS)} checks passed" in run.stdout
        assert f"{len(ALL_CHECKS)} passed" in run.stdout
        written = _writes(run.stdout)
        assert set(written) == {"sessions", "chat_messages"}, run.stdout[-2000:]
        for name in ("users", "did_documents", "meta"):
            assert after.collections[name] == before.collections[name], name
        for name, count in written.items():  # exactly what the summary lists, nothing else
            added = after.collections[name].count - before.collections[name].count
            assert added == count, (name, added, count)
        assert "probe conversation rollback-drill-probe-" in run.stdout


@pytest.fixture
def stopped(local_stack: LocalStack, request: pytest.FixtureRequest) -> Iterator[None]:
    service = request.param
    local_stack.stop(service)
    yield
    local_stack.start(service)


@pytest.mark.parametrize(
    ("stopped", "failing"),
    [
        ("backend", "test_verification[health.backend]"),
        ("redis", "test_verification[connectivity.redis]"),
    ],
    indirect=["stopped"],
)
@pytest.mark.usefixtures("stopped")
def test_verify_fails_naming_the_check(target_file: Path, failing: str) -> None:
    run = _verify(target_file)
    assert run.returncode == ExitCode.NOT_RECOVERED, run.stdout[-3000:]
    assert f"FAILED verifications/test_verify.py::{failing}" in run.stdout
    assert "NOT RECOVERED" in run.stdout


def test_verify_fails_when_a_user_document_is_deleted(
    local_stack: LocalStack, target_file: Path
) -> None:
    with user_deleted(local_stack.mongodb_uri):
        run = _verify(target_file)
    assert run.returncode == ExitCode.NOT_RECOVERED
    assert "FAILED verifications/test_verify.py::test_verification[integrity.mongodb]" in run.stdout
    assert "users: 1 of" in run.stdout and "documents lost" in run.stdout


@pytest.mark.parametrize(
    ("changes", "unverified"),
    [
        ({"read_only": True}, "flow.chat"),
        ({"expected": {}}, "rollback.releases"),
        ({"access": {}}, "errors.logs"),
    ],
    ids=["read_only", "no-expected-releases", "no-access"],
)
def test_a_check_that_cannot_look_is_not_verified_in_summary_and_exit_status(
    target_file: Path, tmp_path: Path, changes: dict[str, object], unverified: str
) -> None:
    run = _verify(_variant(target_file, tmp_path, **changes))
    assert run.returncode == ExitCode.NOT_VERIFIED, run.stdout[-3000:]
    assert re.search(rf"^{re.escape(unverified)}\s+NOT VERIFIED", run.stdout, re.MULTILINE)
    assert "not verified" in run.stdout.splitlines()[-1]  # pytest's own summary line
    assert "NOT VERIFIED:" in run.stdout
