"""Host ports reserved across processes: what `proc.free_port` hands out.

A stack's server ports are fixed for its life (a stopped container or process binds the same
port again when it restarts, as compose does). Between the stop and the start nothing is
bound, so a bind test alone would let another process - the other xdist worker of the same
run, or a concurrent run - take it, and the restart then fails with "port is already
allocated". A port is therefore reserved by an exclusive `flock` on a lock file named after it
in a folder shared by every run of this user: no other process can take it while the holder
keeps the file open, and the kernel drops the lock when the holder dies (by SIGKILL too), so
a killed run never keeps a port reserved and no sweep is needed. The lock proves ownership
as a pid could not: it cannot outlive its process or be inherited across exec (the file
descriptor is close-on-exec).

A lock file is removed by its holder on release, while still locked; a process that opened
the same name just before then holds a lock on a removed file, so a lock counts only if the
name still leads to the file that was locked.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import socket
import threading
from pathlib import Path

from rollback_drill.process.ownership import TEMP_ROOT

PORTS_DIR = TEMP_ROOT / ".ports"
_held: dict[int, int] = {}  # port -> the open, locked lock file's descriptor
_lock = threading.Lock()


def _lock_file(port: int) -> Path:
    return PORTS_DIR / f"{port}.lock"


def _try_reserve(port: int) -> bool:
    """Take the port's lock if nobody (this process included) holds it."""
    PORTS_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = _lock_file(port)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.fstat(fd).st_ino != os.stat(path).st_ino:  # removed by its releasing holder
            raise OSError("stale lock file")
    except OSError:
        os.close(fd)
        return False
    _held[port] = fd
    return True


def _bindable(port: int, host: str) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def reserve(low: int, high: int, host: str = "127.0.0.1") -> int:
    """A port in [low, high], reserved for this process and free to bind now; chosen at
    random (stacks started at the same moment by parallel runs rarely even try the same)."""
    span = high - low + 1
    candidates = (
        secrets.SystemRandom().sample(range(low, high + 1), span)
        if span <= 200
        else [secrets.randbelow(span) + low for _ in range(200)]
    )
    with _lock:
        for port in candidates:
            if port in _held or not _try_reserve(port):
                continue
            if _bindable(port, host):
                return port
            _release(port)  # bound by something outside the harness
    raise OSError(f"no free port between {low} and {high} on {host}")


def _release(port: int) -> None:
    fd = _held.pop(port, None)
    if fd is None:
        return
    with contextlib.suppress(OSError):
        _lock_file(port).unlink()  # still locked: nobody can be counting on this file
    os.close(fd)


def release(ports: list[int]) -> None:
    """Give ports back (a stack torn down): another process may reserve them from now on."""
    with _lock:
        for port in ports:
            _release(port)


def held() -> list[int]:
    """The ports this process holds now."""
    with _lock:
        return sorted(_held)


__all__ = ["PORTS_DIR", "held", "release", "reserve"]
