"""What /proc says about a process, and signalling exactly that process.

A pid alone proves nothing: pids are reused (pid_max is 32768 on these machines), and a stale
one names someone else's process. A process here is its pid *and* its start time (/proc/PID/
stat field 22, clock ticks since boot): the pair does not repeat until reboot. Signals go
through a pidfd opened before the start time is checked again, so a pid reused between the
check and the signal is never hit.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, order=True)
class ProcessIdentity:
    """A process as pid + start time: what a pid means once it may have been reused."""

    pid: int
    start_ticks: int

    @classmethod
    def of(cls, pid: int) -> ProcessIdentity | None:
        """The live (non-zombie) process with this pid now, or None."""
        info = read_process(pid)
        return info.identity if info is not None and info.running else None

    @classmethod
    def parse(cls, text: str) -> ProcessIdentity | None:
        """`<pid>:<start>` as written by `str()`; None for anything else."""
        pid, sep, start = text.strip().partition(":")
        if not (sep and pid.isdigit() and start.isdigit()):
            return None
        return cls(int(pid), int(start))

    def alive(self) -> bool:
        return ProcessIdentity.of(self.pid) == self

    def __str__(self) -> str:
        return f"{self.pid}:{self.start_ticks}"


@dataclass(frozen=True)
class ProcessInfo:
    """One line of /proc/PID/stat that matters here, plus the owning uid."""

    pid: int
    ppid: int
    pgid: int
    state: str
    start_ticks: int
    uid: int

    @property
    def identity(self) -> ProcessIdentity:
        return ProcessIdentity(self.pid, self.start_ticks)

    @property
    def running(self) -> bool:
        return self.state not in ("Z", "X", "x")


def read_process(pid: int) -> ProcessInfo | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        uid = os.stat(f"/proc/{pid}").st_uid
    except (OSError, ValueError):
        return None
    fields = stat.rsplit(")", 1)[1].split()  # comm may hold spaces and parentheses
    return ProcessInfo(pid, int(fields[1]), int(fields[2]), fields[0], int(fields[19]), uid)


def all_processes() -> Iterator[ProcessInfo]:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            info = read_process(int(entry.name))
            if info is not None and info.running:
                yield info


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def cwd_of(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return None


_current: ProcessIdentity | None = None


def current() -> ProcessIdentity:
    """This process (recomputed after a fork)."""
    global _current
    if _current is None or _current.pid != os.getpid():
        info = read_process(os.getpid())
        assert info is not None, "/proc is not mounted"
        _current = info.identity
    return _current


def signal_proven(info: ProcessInfo, sig: signal.Signals) -> bool:
    """Signal the process `info` describes, and no other: the pidfd pins the process, then
    its start time is checked again, so a pid reused meanwhile is left alone."""
    try:
        fd = os.pidfd_open(info.pid)
    except OSError:
        return False
    try:
        now = read_process(info.pid)
        if now is None or now.identity != info.identity or not now.running:
            return False
        signal.pidfd_send_signal(fd, sig)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def kill_proven(infos: Iterable[ProcessInfo], sig: signal.Signals) -> list[int]:
    return [info.pid for info in infos if signal_proven(info, sig)]


__all__ = [
    "ProcessIdentity",
    "ProcessInfo",
    "all_processes",
    "cmdline",
    "current",
    "cwd_of",
    "kill_proven",
    "read_process",
    "signal_proven",
]
