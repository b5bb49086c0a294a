"""Bug 5 of issue 9: an interrupted run left half-written artifact folders with no
`drill.json`. Each folder must end with a record that says "interrupted": written at teardown
on Ctrl-C or SIGTERM, and by the next run after a SIGKILL."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from rollback_drill.process.wait import Wait
from tests.helpers import as_from_a_terminal

_DRILL = """
import time
from pathlib import Path

def test_half_written(drill_artifacts: Path) -> None:
    (drill_artifacts / "rollback-logs.log").write_text("half of it")
    Path({ready!r}).write_text("ready")
    time.sleep(120)
"""


def _pytest(tmp_path: Path, artifacts: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--drill-artifacts",
         str(artifacts), "--drill-records", str(tmp_path / "records"), *extra],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        preexec_fn=as_from_a_terminal,
    )  # fmt: skip


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_interrupted_drill_leaves_a_record_that_says_interrupted(
    tmp_path: Path, sig: signal.Signals
) -> None:
    ready = tmp_path / "ready"
    (tmp_path / "test_half.py").write_text(_DRILL.format(ready=str(ready)))
    artifacts = tmp_path / "artifacts"
    run = _pytest(tmp_path, artifacts, "test_half.py")
    try:
        Wait("drill started", 60).until(ready.exists)
        run.send_signal(sig)
        run.wait(timeout=60)
    finally:
        run.kill()
        run.wait()
    if sig == signal.SIGKILL:  # nothing ran at teardown: the next run finishes the folder
        _pytest(tmp_path, artifacts, "--collect-only", "test_half.py").wait(timeout=60)
    (folder,) = artifacts.iterdir()
    record = json.loads((folder / "drill.json").read_text())
    assert record["interrupted"] is True
    assert record["passed"] is False
    assert "interrupted" in record["failure"]
    assert (folder / "rollback-logs.log").read_text() == "half of it"
