"""Which processes and folders a run started, proved by more than a pid.

A process is its pid and its start time (`procfs.ProcessIdentity`), never a pid alone. A live
process belongs to a run (an owner) only by one of these proofs:

- the owner mark: every child gets ROLLBACK_DRILL_OWNER=<pid>:<start> in its environment;
- the group record: nginx overwrites its workers' environment (setproctitle), so every
  process group a run starts is written to the owner's record file (group id, the leader's
  start time, working directory). A process of our uid is ours if it is that leader (same
  start time), or a member of that group started no earlier than the leader and running in
  that directory - a folder the run itself made and recorded (its stack directory): while
  any member lives the kernel does not hand the group id to anyone else, and a process that
  got the id later leads its own group instead;
- folders carry an owner file naming the run that made them.

`sweep` removes what belongs to runs whose owner is gone and touches nothing no proof covers
(signals go through `procfs.signal_proven`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from rollback_drill.process.procfs import (
    ProcessIdentity,
    ProcessInfo,
    all_processes,
    current,
    cwd_of,
    environ,
    signal_proven,
)

OWNER_VAR = "ROLLBACK_DRILL_OWNER"
OWNER_FILE = ".rollback-drill-owner"
TEMP_ROOT = Path(tempfile.gettempdir()) / "rollback-drill"
RECORDS = TEMP_ROOT / ".owners"


def mark_of(pid: int) -> ProcessIdentity | None:
    """The owner mark in a process's environment (readable for our own uid only)."""
    mark = (environ(pid) or {}).get(OWNER_VAR)
    return None if mark is None else ProcessIdentity.parse(mark)


def owner_env() -> dict[str, str]:
    """The mark to put in a child's environment."""
    return {OWNER_VAR: str(current())}


# -- the owner record: groups and folders a run started ------------------------------------------
@dataclass(frozen=True)
class GroupRecord:
    pgid: int
    leader_start: int
    cwd: str


@dataclass
class OwnerRecord:
    owner: ProcessIdentity
    path: Path
    groups: list[GroupRecord] = field(default_factory=list)
    dirs: list[Path] = field(default_factory=list)


def _record_path(owner: ProcessIdentity) -> Path:
    return RECORDS / f"{owner.pid}-{owner.start_ticks}.jsonl"


def _append(entry: dict[str, object]) -> None:
    RECORDS.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = _record_path(current())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, (json.dumps(entry) + "\n").encode())  # one small O_APPEND write: atomic
    finally:
        os.close(fd)


def record_group(leader: int, cwd: Path | str) -> ProcessIdentity | None:
    """Note a process group this run just started (its leader is `leader`)."""
    identity = ProcessIdentity.of(leader)
    if identity is not None:
        _append({"group": leader, "leader_start": identity.start_ticks, "cwd": str(cwd)})
    return identity


def record_dir(path: Path) -> None:
    """Mark a folder as this run's, so a sweep may remove it once this run is gone."""
    path.mkdir(parents=True, exist_ok=True)
    (path / OWNER_FILE).write_text(str(current()) + "\n")
    _append({"dir": str(path)})


def dir_owner(path: Path) -> ProcessIdentity | None:
    try:
        return ProcessIdentity.parse((path / OWNER_FILE).read_text())
    except OSError:
        return None


def forget_current() -> None:
    """This run ended cleanly: its record has nothing left to sweep."""
    with contextlib.suppress(OSError):
        _record_path(current()).unlink()


def read_records() -> list[OwnerRecord]:
    """Every owner record on this machine written by our uid (anything else is ignored: a
    record is an instruction to kill, and only our own are trusted)."""
    records: list[OwnerRecord] = []
    if not RECORDS.is_dir():
        return records
    for path in RECORDS.glob("*.jsonl"):
        pid, _, start = path.stem.partition("-")
        if not (pid.isdigit() and start.isdigit()):
            continue
        try:
            st = path.stat()
            if st.st_uid != os.getuid() or st.st_mode & 0o022:
                continue
            lines = path.read_text().splitlines()
        except OSError:
            continue
        record = OwnerRecord(ProcessIdentity(int(pid), int(start)), path)
        for line in lines:
            try:
                entry = json.loads(line)
                if "group" in entry:
                    record.groups.append(
                        GroupRecord(int(entry["group"]), int(entry["leader_start"]), entry["cwd"])
                    )
                elif "dir" in entry:
                    record.dirs.append(Path(entry["dir"]))
            except (ValueError, KeyError, TypeError):
                continue  # a torn last line after a SIGKILL: the rest still counts
        records.append(record)
    return records


# -- proofs --------------------------------------------------------------------------------------
class Ownership:
    """Answers "whose is this process?" against one snapshot of the owner records."""

    def __init__(self, records: list[OwnerRecord] | None = None) -> None:
        self.records = read_records() if records is None else records
        self._groups: dict[int, list[tuple[GroupRecord, ProcessIdentity]]] = {}
        for record in self.records:
            for group in record.groups:
                if _inside(group.cwd, record.dirs):  # only groups run in a folder of the run's
                    self._groups.setdefault(group.pgid, []).append((group, record.owner))

    def owner_of(self, info: ProcessInfo) -> ProcessIdentity | None:
        if info.uid != os.getuid() or not info.running:
            return None
        mark = mark_of(info.pid)
        if mark is not None:
            return mark
        for group, owner in self._groups.get(info.pgid, []):
            if in_group(info, group.pgid, group.leader_start, group.cwd):
                return owner
        return None

    def processes_of(self, owner: ProcessIdentity | int) -> list[ProcessInfo]:
        def matches(found: ProcessIdentity | None) -> bool:
            if found is None:
                return False
            return found == owner if isinstance(owner, ProcessIdentity) else found.pid == owner

        me = os.getpid()
        return [p for p in all_processes() if p.pid != me and matches(self.owner_of(p))]


def processes_of(owner: ProcessIdentity | int) -> list[int]:
    """Live processes a run started, grandchildren and nginx workers included; an int means
    any run with that pid (tests that know only the pid of a harness they started)."""
    return [p.pid for p in Ownership().processes_of(owner)]


def _inside(path: str, dirs: list[Path]) -> bool:
    return any(path == str(d) or path.startswith(str(d) + "/") for d in dirs)


def in_group(info: ProcessInfo, pgid: int, leader_start: int, cwd: str | None) -> bool:
    """`info` is a member of the group a run started as (pgid, leader_start) in `cwd`: the
    leader itself (same start time), or a member started no earlier than it, in that folder.
    Once the leader is dead its id may be given to a new process, which then leads a group of
    that id too - but is never a non-leader member of it, and started later than it."""
    if info.pgid != pgid or info.uid != os.getuid():
        return False
    if info.pid == pgid:
        return info.start_ticks == leader_start
    return info.start_ticks >= leader_start and (cwd is None or cwd_of(info.pid) == cwd)


def group_members(pgid: int, leader_start: int, cwd: str | None) -> list[ProcessInfo]:
    """Members of a group this run started whose leader may already be reaped (so `killpg`
    could hit a recycled group id): the same proof as the group record."""
    return [p for p in all_processes() if in_group(p, pgid, leader_start, cwd)]


# -- the sweep -----------------------------------------------------------------------------------
@dataclass
class SweepResult:
    processes: list[int] = field(default_factory=list)
    dirs: list[Path] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.processes or self.dirs)

    def describe(self) -> str:
        parts = []
        if self.processes:
            parts.append(f"{len(self.processes)} leftover process(es) {sorted(self.processes)}")
        if self.dirs:
            parts.append(", ".join(str(d) for d in self.dirs))
        return "; ".join(parts) or "nothing left over"


def _remove_dir(path: Path, owner: ProcessIdentity, result: SweepResult) -> None:
    if path.is_dir() and dir_owner(path) == owner:
        shutil.rmtree(path, ignore_errors=True)
        result.dirs.append(path)


def sweep(only: ProcessIdentity | None = None) -> SweepResult:
    """SIGKILL the processes, and remove the folders, of runs whose owner is gone (or of the
    one dead run `only`). A live owner's things are never touched, nor this process's own."""
    me = current()
    result = SweepResult()
    ownership = Ownership()

    def dead(owner: ProcessIdentity) -> bool:
        if owner == me or (only is not None and owner != only):
            return False
        return not owner.alive()

    verdicts: dict[ProcessIdentity, bool] = {}
    for info in all_processes():
        if info.pid == me.pid:
            continue
        owner = ownership.owner_of(info)
        if owner is None:
            continue
        if owner not in verdicts:
            verdicts[owner] = dead(owner)
        if verdicts[owner] and signal_proven(info, signal.SIGKILL):
            result.processes.append(info.pid)
    for record in ownership.records:
        if not dead(record.owner):
            continue
        for path in record.dirs:
            _remove_dir(path, record.owner, result)
        with contextlib.suppress(OSError):
            record.path.unlink()
    if only is None:
        _sweep_temp_root(me, result)
    return result


def _sweep_temp_root(me: ProcessIdentity, result: SweepResult) -> None:
    """Temp folders under TEMP_ROOT: by their owner file, or (older ones) by the owner pid at
    the front of their name."""
    if not TEMP_ROOT.is_dir():
        return
    for path in TEMP_ROOT.iterdir():
        if path == RECORDS or not path.is_dir():
            continue
        owner = dir_owner(path)
        if owner is not None:
            if owner != me and not owner.alive():
                shutil.rmtree(path, ignore_errors=True)
                result.dirs.append(path)
            continue
        head = path.name.split("-", 1)[0]
        if head.isdigit() and int(head) != me.pid and ProcessIdentity.of(int(head)) is None:
            shutil.rmtree(path, ignore_errors=True)
            result.dirs.append(path)


__all__ = [
    "OWNER_VAR",
    "TEMP_ROOT",
    "Ownership",
    "SweepResult",
    "dir_owner",
    "group_members",
    "in_group",
    "mark_of",
    "owner_env",
    "processes_of",
    "record_dir",
    "record_group",
    "sweep",
]
