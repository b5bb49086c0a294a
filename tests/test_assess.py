"""`rollback-drill assess` against a live stack, as an on-call engineer runs it: nothing wrong
on a good release; on a bad one, the matrix row its defect calls for, with the reason."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from rollback_drill.files.spec import LoadedStack
from rollback_drill.process.wait import Wait
from rollback_drill.stack.local import LocalStack
from rollback_drill.stack.targetfile import write_target_file
from tests.paths import PROJECT_ROOT


@pytest.fixture(scope="module")
def stack(stack_file: LoadedStack) -> Iterator[LocalStack]:
    with LocalStack(stack_file, seed_users=50).running("1.4.0") as running:
        yield running


def _assess(target: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rollback_drill.cli", "assess", "--target", str(target), *extra],
        capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=120, check=False,
    )  # fmt: skip


def _release(stack: LocalStack, release: str) -> None:
    for service in stack.app_services():
        stack.deploy(service, release)
    for service in stack.app_services():
        Wait(f"{service} answering", 30).until(stack.probe(service, healthy=False))


@pytest.mark.parametrize(
    ("release", "row"),
    [
        ("1.5.0", "critical (Service Down) -> emergency rollback, within 300 s"),
        ("1.7.0", "high (Major Bugs) -> planned rollback, within 1800 s"),
        ("1.8.2", "medium (Minor Issues) -> partial rollback, within 7200 s"),
    ],
)
def test_assess_recommends_the_row_the_matrix_gives(
    stack: LocalStack, tmp_path: Path, release: str, row: str
) -> None:
    target = write_target_file(stack.target(), tmp_path, stack.password_file)
    assert "read_only: false" in target.read_text()  # writes allowed: every flow can look
    healthy = _assess(target)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert "no rollback indicated" in healthy.stdout
    _release(stack, release)
    try:
        broken = _assess(target, "--backups", str(tmp_path / "no-backups-here"))
    finally:
        _release(stack, "1.4.0")
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert f"recommendation: {row}" in broken.stdout, broken.stdout
    assert "because " in broken.stdout
    assert "data-loss risk: no backup taken" in broken.stdout


def test_assess_of_a_read_only_target_does_not_call_unlooked_checks_fine(
    stack: LocalStack, tmp_path: Path
) -> None:
    target = write_target_file(stack.target(), tmp_path, stack.password_file)
    target.write_text(target.read_text().replace("read_only: false", "read_only: true"))
    done = _assess(target)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "NOT VERIFIED" in done.stdout and "could not look" in done.stdout
