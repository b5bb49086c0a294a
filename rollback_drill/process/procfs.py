"""What /proc says about a process, and signalling exactly that process.

A pid alone proves nothing: pids are reused (pid_max is 32768 on these machines), and a stale
one names someone else's process. A process here is its pid *and* its start time (/proc/PID/
stat field 22, clock ticks since boot): the pair does not repeat until reboot. Signals go
through a pidfd opened before the start time is checked again, so a pid reused between the
check and the signal is never hit.

psutil reads the rest (the process list, command lines, working folders, environments, CPU
and memory): it knows /proc's formats and their corner cases. Two reads stay by hand, because
psutil has no equivalent: the start time in clock ticks (psutil gives `create_time()` as
epoch seconds computed from a boot time each process reads once, which moves with the wall
clock, so the same process could get two identities in two processes; ticks are exact and
are what owner marks and records hold), and the pidfd (`os.pidfd_open`) that pins a process
while it is proven and signalled.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil


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
    """/proc/PID/stat by hand (see the module docstring: the start ticks psutil does not give;
    the same line holds ppid, process group and state, so one read serves all)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        uid = os.stat(f"/proc/{pid}").st_uid
    except (OSError, ValueError):
        return None
    fields = stat.rsplit(")", 1)[1].split()  # comm may hold spaces and parentheses
    return ProcessInfo(pid, int(fields[1]), int(fields[2]), fields[0], int(fields[19]), uid)


def all_processes() -> Iterator[ProcessInfo]:
    for pid in psutil.pids():
        info = read_process(pid)
        if info is not None and info.running:
            yield info


def group(pgid: int) -> list[int]:
    """The pids of one process group (psutil has no process-group query: getpgid per pid, a
    system call where reading each /proc/PID/stat took a file read)."""

    def pgid_of(pid: int) -> int | None:
        try:
            return os.getpgid(pid)
        except OSError:
            return None

    return [pid for pid in psutil.pids() if pgid_of(pid) == pgid]


def cmdline(pid: int) -> list[str]:
    try:
        return psutil.Process(pid).cmdline()
    except psutil.Error:
        return []


def cwd_of(pid: int) -> str | None:
    try:
        return psutil.Process(pid).cwd()
    except psutil.Error:
        return None


def environ(pid: int) -> dict[str, str] | None:
    """A process's environment (readable for our own uid only); None when unreadable."""
    try:
        return psutil.Process(pid).environ()
    except psutil.Error:
        return None


def cpu_seconds(pids: Iterable[int]) -> float:
    """User and system CPU these processes have used so far (those gone count nothing)."""
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def rss_bytes(pids: Iterable[int]) -> int:
    """Resident memory of these processes (those gone count nothing)."""
    total = 0
    for pid in pids:
        try:
            total += psutil.Process(pid).memory_info().rss
        except psutil.Error:
            continue
    return total


def memory_total() -> int:
    """The machine's memory in bytes."""
    return int(psutil.virtual_memory().total)


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
    "cpu_seconds",
    "current",
    "cwd_of",
    "environ",
    "group",
    "kill_proven",
    "memory_total",
    "read_process",
    "rss_bytes",
    "signal_proven",
]
