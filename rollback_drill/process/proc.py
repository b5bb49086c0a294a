"""Child processes that cannot outlive the run.

Three layers, because each covers a way the others fail: process groups killed on normal
teardown and at exit (covers test failures and Ctrl-C); PR_SET_PDEATHSIG so the kernel kills
a direct child when the harness dies by SIGKILL; and an owner mark plus a record of every
group started (`ownership`) so a later sweep removes what a killed run left behind - the
grandchildren PDEATHSIG does not reach, nginx workers (which lose the mark) included.
A group is signalled with `killpg` only while its leader is our unreaped child (so its id
cannot have been recycled); after that, only members `ownership` can prove are ours.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import faulthandler
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from rollback_drill.process import interrupts, ownership, ports, procfs
from rollback_drill.process.errors import StartError
from rollback_drill.process.ownership import SweepResult
from rollback_drill.process.procfs import ProcessIdentity
from rollback_drill.process.wait import Wait

_PR_SET_PDEATHSIG = 1
_live: dict[int, ManagedProcess] = {}
_live_lock = threading.Lock()
_temp_dirs: list[Path] = []
_main_starting = 0  # ManagedProcess.start calls the main thread is inside


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def popen_owned(
    argv: Sequence[str],
    env: Mapping[str, str],
    stdout: IO[bytes] | int | None,
    cwd: Path | None = None,
) -> tuple[subprocess.Popen[bytes], ProcessIdentity | None]:
    """Start a child in its own session that dies with this thread (PR_SET_PDEATHSIG), carries
    the owner mark and is written to this run's owner record; returns it and its leader's
    identity (None if it already exited)."""
    popen = subprocess.Popen(
        list(argv),
        stdout=stdout,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**env, **ownership.owner_env()},
        cwd=cwd,
        start_new_session=True,
        preexec_fn=_die_with_parent,
    )
    return popen, ownership.record_group(popen.pid, cwd or os.getcwd())


_PORTS_FROM = 10_000


def _ephemeral_low() -> int:
    """Where the kernel's ephemeral range starts: outgoing connections (the load's thousands
    of them) take source ports from there, so a server port must not come from it. Read
    from /proc/sys by hand: a kernel setting, not a process, which psutil does not read."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return max(low, _PORTS_FROM + 1000)


def free_port(host: str = "127.0.0.1", within: tuple[int, int] | None = None) -> int:
    """A port for a server of a stack: below the ephemeral range (so no client connection
    can be holding it when the server binds later), free now, chosen at random, and reserved
    for this process (`ports`: no other process - the other xdist worker, a concurrent run -
    gets it while this one holds it, bound or not) until `release_ports` or this process's
    end. `within` (first, last) narrows it to an environment's range."""
    low, high = within or (_PORTS_FROM, _ephemeral_low() - 1)
    return ports.reserve(low, high, host)


def release_ports(released: list[int]) -> None:
    """Give back ports `free_port` handed out (their stack is torn down)."""
    ports.release(released)


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass
class ManagedProcess:
    """One server process in its own process group, logging to a file."""

    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str]
    cwd: Path | None = None
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    leader: ProcessIdentity | None = field(default=None, repr=False)
    _cwd_seen: str = field(default="", repr=False)

    def start(self) -> ManagedProcess:
        """Start the process and remember it, with no interrupt between the two: an interrupt
        raised in the main thread after the child started and before it was in the table of
        live processes left a server nobody would stop (seen: it kept writing into a stack's
        workdir, which outlived the stack, until a later run's sweep). Interrupt handlers
        wait for it (`interrupt_is_unsafe`); the counter changes with no call in between."""
        global _main_starting
        main = threading.current_thread() is threading.main_thread()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._cwd_seen = str(self.cwd or os.getcwd())
        if main:
            _main_starting += 1
        try:
            with self.log_path.open("ab") as log:
                log.write(f"--- start {' '.join(self.argv)}\n".encode())
                log.flush()
                self.popen, self.leader = popen_owned(self.argv, self.env, log, self.cwd)
            with _live_lock:
                _live[self.popen.pid] = self
        finally:
            if main:
                _main_starting -= 1
        return self

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal_group(self, sig: signal.Signals) -> None:
        if self.popen is None:
            return
        if self.popen.returncode is None:  # not reaped: the group id is still held by our child
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, sig)
        elif self.leader is not None:  # reaped: only members we can prove are ours
            members = ownership.group_members(
                self.popen.pid, self.leader.start_ticks, self._cwd_seen
            )
            procfs.kill_proven(members, sig)

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the group, SIGKILL whatever is left after `grace` seconds."""
        if self.popen is None:
            return
        self.signal_group(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=grace)
        self.signal_group(signal.SIGKILL)  # also reaps grandchildren still in the group
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=5)
        self._forget()

    def kill(self) -> None:
        if self.popen is None:
            return
        self.signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=5)
        self._forget()

    def _forget(self) -> None:
        if self.popen is not None:
            with _live_lock:
                _live.pop(self.popen.pid, None)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait_ready(self, probe: Callable[[], bool], timeout: float) -> float:
        def ready() -> bool:
            interrupts.check(self.name)  # stop waiting: the stack is being torn down
            if not self.alive():
                code = self.popen.returncode if self.popen else None
                raise StartError(
                    f"{self.name} exited with code {code} before it was ready; log tail:\n"
                    f"{self.log_tail()}"
                )
            return probe()

        try:
            fatal = (StartError, interrupts.Interrupted)
            return Wait(f"{self.name} ready", timeout, 0.02, fatal=fatal).until(ready)
        except TimeoutError:
            raise StartError(
                f"{self.name} not ready within {timeout:.1f} s; log tail:\n{self.log_tail()}"
            ) from None


def spawn(
    name: str,
    argv: Sequence[str],
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> ManagedProcess:
    base = dict(os.environ)
    base.update(env or {})
    return ManagedProcess(name, list(argv), log_path, base, cwd).start()


def make_temp_dir(prefix: str) -> Path:
    """A temp dir named and marked with its owner, so a later sweep can tell it from a live
    run's."""
    root = ownership.TEMP_ROOT
    root.mkdir(exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-{prefix}-", dir=root))
    ownership.record_dir(path)
    _temp_dirs.append(path)
    return path


def remove_temp_dir(path: Path) -> None:
    """The folder and everything in it. When something still wrote into it while it went (a
    process nobody had stopped), it stays registered: `kill_all` at exit kills that process
    first and removes the folder then."""
    shutil.rmtree(path, ignore_errors=True)
    if path.exists():
        return
    with contextlib.suppress(ValueError):
        _temp_dirs.remove(path)


def started_in(folder: Path) -> list[ManagedProcess]:
    """Every live process this run started with `folder` as its working directory: a stack
    finds by this what it spawned even when an interrupt came between the spawn and the
    line that remembered it."""
    return [p for p in _registered() if p.cwd == folder]


def _registered() -> list[ManagedProcess]:
    """The processes this run started and has not stopped. The lock is taken with a timeout:
    an interrupted thread may have left it held, and teardown must go on then."""
    locked = _live_lock.acquire(timeout=2)
    try:
        return list(_live.values())
    finally:
        if locked:
            _live_lock.release()


def _pid_alive(pid: int) -> bool:
    """Some process has this pid (maybe not the one you think: see procfs.ProcessIdentity)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def processes_of(owner: ProcessIdentity | int) -> list[int]:
    """Every live process a harness run started, grandchildren and nginx workers included."""
    return ownership.processes_of(owner)


def sweep_orphans() -> SweepResult:
    """Remove processes and folders left by runs whose harness process no longer exists."""
    return ownership.sweep()


def kill_all() -> None:
    """Last-resort cleanup: every process this run started, then every temp dir."""
    procs = _registered()
    for proc in procs:  # every one signalled before any is waited for: a process slow to
        proc.signal_group(signal.SIGKILL)  # die (disk-bound) delays the others not at all
    for proc in procs:
        proc.kill()
    for path in list(_temp_dirs):
        remove_temp_dir(path)
    if not _live and not _temp_dirs:
        ownership.forget_current()


INTERRUPT_GRACE_S = 45.0
_watchdog = threading.Event()


def raising_now_is_unsafe() -> bool:
    """Whether an exception raised in the main thread now would break something for good:
    logging's module lock held (Python 3.11 takes it with a bare acquire() before its `try`:
    an interrupt there wedged teardowns here, worker threads then waiting on it forever), or
    a child started and not yet remembered (`ManagedProcess.start`)."""
    lock = getattr(logging, "_lock", None)
    return _main_starting > 0 or (lock is not None and bool(lock._is_owned()))


def interrupt_is_unsafe(signum: int) -> bool:
    """Raising from a signal handler now is unsafe (`raising_now_is_unsafe`): the signal is
    then sent again to the main thread a moment later."""
    if not raising_now_is_unsafe():
        return False
    main = threading.main_thread().ident
    if main is not None:
        threading.Timer(0.02, signal.pthread_kill, (main, signum)).start()
    return True


def exit_if_stuck(
    code: int, grace_s: float = INTERRUPT_GRACE_S, before: Callable[[], None] | None = None
) -> None:
    """Call when an interrupt (Ctrl-C, SIGTERM) starts unwinding the main thread. Python
    raises it between any two bytecodes, also between a lock's acquire and the `try` that
    releases it; the unwinding can then wait forever. If the process has not exited `grace_s`
    later, print where every thread is, kill everything this run started and exit; the next
    run sweeps anything else. `before` runs first (pytest uses it to stop capturing output,
    so the message reaches the terminal)."""
    if _watchdog.is_set():
        return
    _watchdog.set()

    def fire() -> None:
        time.sleep(grace_s)
        with contextlib.suppress(Exception):
            if before is not None:
                before()
        message = (
            f"rollback-drill: teardown still running {grace_s:g} s after the interrupt; "
            "killing what this run started and exiting. Threads:\n"
        )
        os.write(2, message.encode())
        faulthandler.dump_traceback(file=2, all_threads=True)
        kill_all()
        os._exit(code)

    threading.Thread(target=fire, name="interrupt-watchdog", daemon=True).start()


def _on_sigterm(signum: int, frame: object) -> None:
    if interrupt_is_unsafe(signum):
        return
    exit_if_stuck(128 + signum)
    raise SystemExit(128 + signum)


atexit.register(kill_all)
if threading.current_thread() is threading.main_thread():
    with contextlib.suppress(ValueError):
        if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
            signal.signal(signal.SIGTERM, _on_sigterm)
