"""A drill's artifact folder is never left half-written: it ends with `drill.json`, either the
drill's own record or one that says it was interrupted.

Ctrl-C and SIGTERM reach the fixture's teardown, which writes the interrupted record there and
then. A SIGKILL (or a crash) reaches nothing, so each folder carries an in-progress marker
naming the run (pid and start time) that owns it; the next run finishes every folder whose
owner is gone. The preserved logs and backups stay: they are what someone will want to read.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any

from rollback_drill.process import procfs
from rollback_drill.process.procfs import ProcessIdentity

RECORD = "drill.json"
IN_PROGRESS = ".in-progress"
INTERRUPTED_FORMAT = "rollback-drill/interrupted-drill/1"


def _utc(at: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


def begin(folder: Path, test_id: str) -> None:
    """Mark `folder` as being written by this run."""
    folder.mkdir(parents=True, exist_ok=True)
    marker = {"owner": str(procfs.current()), "test": test_id, "started_utc": _utc()}
    (folder / IN_PROGRESS).write_text(json.dumps(marker))


def finish(folder: Path, reason: str, finished_by: str = "teardown") -> bool:
    """End the folder: if the drill wrote no record, write one that says interrupted (and
    why); drop the marker. True when an interrupted record was written."""
    marker = _marker(folder)
    wrote = False
    if not (folder / RECORD).exists():
        record: dict[str, Any] = {
            "format": INTERRUPTED_FORMAT,
            "test": marker.get("test"),
            "passed": False,
            "interrupted": True,
            "failure": f"interrupted: {reason}",
            "started_utc": marker.get("started_utc"),
            "finished_utc": _utc(),
            "finished_by": finished_by,
            "files": sorted(p.name for p in folder.iterdir() if p.name != IN_PROGRESS),
        }
        (folder / RECORD).write_text(json.dumps(record, indent=2) + "\n")
        wrote = True
    (folder / IN_PROGRESS).unlink(missing_ok=True)
    return wrote


def _marker(folder: Path) -> dict[str, Any]:
    with contextlib.suppress(OSError, ValueError):
        data = json.loads((folder / IN_PROGRESS).read_text())
        if isinstance(data, dict):
            return data
    return {}


def finish_abandoned(root: Path) -> list[Path]:
    """Finish every folder under `root` whose run is gone (killed before its teardown)."""
    finished: list[Path] = []
    if not root.is_dir():
        return finished
    me = procfs.current()
    for marker in root.glob(f"*/{IN_PROGRESS}"):
        owner = ProcessIdentity.parse(str(_marker(marker.parent).get("owner", "")))
        if owner is not None and (owner == me or owner.alive()):
            continue
        finish(
            marker.parent,
            "the run that wrote this folder died before its teardown (SIGKILL or a crash); "
            "nothing here is a verdict",
            finished_by=f"the next run (pid {me.pid})",
        )
        finished.append(marker.parent)
    return finished


__all__ = ["begin", "finish", "finish_abandoned"]
