"""Acceptance for `pytest -m verify --target FILE`: green on a healthy stack, and red - naming
the failed check - when the backend is stopped, a user document is deleted, or Redis is
stopped. The suite runs as a user runs it: a separate pytest process against a target file."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from rollback_drill.stack.local import LocalStack
from rollback_drill.stores import mongo
from rollback_drill.targetfile import write_target_file
from tests.helpers import run_verify_suite, user_deleted


@pytest.fixture(scope="module")
def target_file(local_stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_target_file(
        local_stack.target(), tmp_path_factory.mktemp("target"), local_stack.password_file
    )


def _verify(target: Path) -> subprocess.CompletedProcess[str]:
    return run_verify_suite(target)


def test_verify_passes_on_a_healthy_stack(target_file: Path) -> None:
    run = _verify(target_file)
    assert run.returncode == 0, run.stdout[-3000:]
    assert " passed" in run.stdout
    assert "functional.chat writes to the target" in run.stdout  # skipped: read-only


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
    assert run.returncode == 1, run.stdout[-3000:]
    assert f"FAILED verifications/test_verify.py::{failing}" in run.stdout


def test_verify_fails_when_a_user_document_is_deleted(
    local_stack: LocalStack, target_file: Path
) -> None:
    with user_deleted(local_stack.mongodb_uri):
        run = _verify(target_file)
    assert run.returncode == 1
    assert "FAILED verifications/test_verify.py::test_verification[integrity.mongodb]" in run.stdout
    assert "users:" in run.stdout and "documents" in run.stdout


def test_verify_writes_nothing_but_one_login(local_stack: LocalStack, target_file: Path) -> None:
    collections = ["users", "did_documents", "chat_messages", "meta"]
    before = mongo.fingerprint(local_stack.mongodb_uri, "safepsy", [*collections, "sessions"])
    assert _verify(target_file).returncode == 0
    after = mongo.fingerprint(local_stack.mongodb_uri, "safepsy", [*collections, "sessions"])
    for name in collections:
        assert after.collections[name] == before.collections[name], name
    assert after.collections["sessions"].count - before.collections["sessions"].count == 1
