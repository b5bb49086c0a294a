"""A drill's artifact folder is never left half-written: it ends with `drill.json`, either the
drill's own record or one that says it was interrupted.

Ctrl-C and SIGTERM reach the fixture's teardown, which writes the interrupted record there and
then. A SIGKILL (or a crash) reaches nothing, so each folder carries an in-progress marker
naming the run (pid and start time) that owns it; the next run finishes every folder whose
owner is gone. The preserved logs and backups stay: they are what someone will want to read.
"""

from __future__ import annotations

import time
from pathlib import Path

from rollback_drill.files.drillartifacts import INTERRUPTED_FORMAT, InProgress, InterruptedDrill
from rollback_drill.process import procfs
from rollback_drill.process.procfs import ProcessIdentity

RECORD = "drill.json"
IN_PROGRESS = ".in-progress"


def _utc(at: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


def begin(folder: Path, test_id: str) -> None:
    """Mark `folder` as being written by this run."""
    folder.mkdir(parents=True, exist_ok=True)
    InProgress(owner=str(procfs.current()), test=test_id, started_utc=_utc()).save(
        folder / IN_PROGRESS
    )


def finish(folder: Path, reason: str, finished_by: str = "teardown") -> bool:
    """End the folder: if the drill wrote no record, write one that says interrupted (and
    why); drop the marker. True when an interrupted record was written."""
    marker = InProgress.read(folder / IN_PROGRESS)
    wrote = False
    if not (folder / RECORD).exists():
        InterruptedDrill(
            test=marker.test if marker else None,
            failure=f"interrupted: {reason}",
            started_utc=marker.started_utc if marker else None,
            finished_utc=_utc(),
            finished_by=finished_by,
            files=sorted(p.name for p in folder.iterdir() if p.name != IN_PROGRESS),
        ).save(folder / RECORD)
        wrote = True
    (folder / IN_PROGRESS).unlink(missing_ok=True)
    return wrote


def finish_abandoned(root: Path) -> list[Path]:
    """Finish every folder under `root` whose run is gone (killed before its teardown)."""
    finished: list[Path] = []
    if not root.is_dir():
        return finished
    me = procfs.current()
    for marker in root.glob(f"*/{IN_PROGRESS}"):
        found = InProgress.read(marker)
        owner = ProcessIdentity.parse(found.owner) if found else None
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


__all__ = ["INTERRUPTED_FORMAT", "begin", "finish", "finish_abandoned"]
