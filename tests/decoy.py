"""A process the harness did not start, standing beside it: it writes down every signal it
receives (SIGKILL and SIGSTOP cannot be caught: a dead or stopped decoy shows those), so a
test or benchmark can prove that nothing signalled a process it could not prove it started."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

_SCRIPT = r"""
import os, signal, sys, time
log = open(sys.argv[1], "a", buffering=1)
def note(signum, frame):
    log.write(signal.Signals(signum).name + "\n")
for sig in signal.Signals:
    if sig in (signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD):
        continue
    try:
        signal.signal(sig, note)
    except (OSError, ValueError):
        pass
log.write("ready\n")
while True:
    time.sleep(3600)
"""


class Decoy:
    """`with Decoy(log) as d:` - a signal-recording process in its own session."""

    def __init__(
        self, log: Path, cwd: Path | None = None, env: dict[str, str] | None = None
    ) -> None:
        self.log = log
        self.cwd = cwd
        self.env = env
        self._popen: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Decoy:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.log.write_text("")
        self._popen = subprocess.Popen(
            [sys.executable, "-c", _SCRIPT, str(self.log)],
            cwd=self.cwd,
            env={**os.environ, **(self.env or {})},
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while "ready" not in self.log.read_text():
            if time.monotonic() > deadline:  # a signal now would kill it, not be written down
                self._popen.kill()
                raise TimeoutError("the decoy did not install its signal handlers within 30 s")
            time.sleep(0.02)
        return self

    @property
    def pid(self) -> int:
        assert self._popen is not None
        return self._popen.pid

    def alive(self) -> bool:
        """Running and not stopped (a SIGSTOP shows as state T)."""
        if self._popen is None or self._popen.poll() is not None:
            return False
        try:
            state = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return False
        return state not in ("T", "t", "Z", "X")

    def signals(self) -> list[str]:
        """Every signal received so far, by name."""
        return [line for line in self.log.read_text().splitlines() if line != "ready"]

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._popen is not None:
            self._popen.kill()  # our own child, not yet reaped: its pid is still ours
            self._popen.wait()


__all__ = ["Decoy"]
