"""Past one machine: drills in parallel (pytest-xdist), each on its own stack, still counted
once in the run's record and history; load through locust's master/worker mode."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rollback_drill.evidence import record
from tests.paths import PROJECT_ROOT

pytestmark = pytest.mark.slow  # drill runs under pytest-xdist end to end: not in the fast tier


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rollback_drill.cli", *args],
        capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=600, check=False,
    )  # fmt: skip


# Two drills of the matrix's critical row: what this file tests is running them in parallel,
# and a critical drill cannot be classified above its row by a response-time rise that the
# machine's other work causes (two drills at once beside the suite's other worker: CI saw a
# medium drill read "critical" with other work taking 80 % of the machine).
CRITICAL_PAIR = "(test_emergency_rollback and service_down) or test_redis_rollback"


def test_parallel_drills_are_counted_once(tmp_path: Path) -> None:
    done = _cli(
        "run", "--backend", "local", "--reports-dir", str(tmp_path),
        "--", "-n", "2", "-k", CRITICAL_PAIR,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    (path, data), *others = record.load_all(tmp_path / "records")[0]
    assert not others, "one run, one record"
    tests = [d.test for d in data.drills]
    assert len(tests) == 2 and len(set(tests)) == 2, tests
    assert data.summary.drills == 2 and data.summary.verdict == "pass"
    assert record.verify_sidecar(path)
    artifacts = {d.artifacts for d in data.drills}
    assert len(artifacts) == 2, "each drill keeps its own artifacts"
    history = (tmp_path / "history" / "history.jsonl").read_text().splitlines()
    assert len(history) == 1
    results = json.loads(history[0])["testResults"]
    names = sorted(r["name"] for r in results.values())
    assert len(names) == 2 and "emergency_rollback" in names[0] and "redis" in names[1], names


def test_load_through_locust_workers(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", str(PROJECT_ROOT / "drills" / "test_emergency.py"),
         "-k", "service_down", "--stack-backend", "local", "--load-workers", "2", "-q",
         "-p", "no:cacheprovider", "--drill-artifacts", str(tmp_path / "a"),
         "--drill-records", str(tmp_path / "r")],
        capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:]
    (artifacts,) = (tmp_path / "a").iterdir()
    log = (artifacts / "load" / "locust.log").read_text()
    assert "locust-worker" in log or "--worker" in log, log[-500:]
    samples = (artifacts / "load" / "load-samples.jsonl").read_text().splitlines()
    assert len(samples) > 100
