"""An interrupted session starts nothing new, in every process of it.

A pytest run with xdist is a controller and its workers. Ctrl-C or SIGTERM reaches the
controller (and, from a terminal, the workers); xdist then asks each worker to stop, sends it
SIGINT only 5 s later and SIGKILLs it 10 s after the interrupt. A worker that went on to its
next drill meanwhile started a stack it never tore down (the kill came mid-start): six
containers, a network and a stack folder left behind. So the interrupt is made known to the
whole session at once: the process it reaches writes a flag file named after the session
(the controller's identity, handed to the workers), and each worker watches for that file
and interrupts its own main thread as soon as it appears. Whatever starts a stack asks
`check` first, so nothing new starts once the session is interrupted, and a stack part-way
up stops waiting and is torn down.

A file, not a signal to the workers: a process signals only itself here, never one it
cannot prove it started; the file is owner-only, named by the controller's pid and start
time (which no later process shares), and removed when the controller finishes.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from typing import ClassVar

from rollback_drill.process.errors import RollbackDrillError
from rollback_drill.process.ownership import TEMP_ROOT
from rollback_drill.process.procfs import ProcessIdentity, current

FLAGS = TEMP_ROOT / ".interrupted"
WATCH_INTERVAL_S = 0.1


class Interrupted(RollbackDrillError):
    """Something was about to start after the session was interrupted."""


class _State:
    session: ProcessIdentity | None = None  # the controller's identity: names the flag file
    reason: str | None = None  # set once this process knows the session is interrupted
    signalled = False  # this process itself was interrupted (it is unwinding already)
    stop_watch = threading.Event()
    shield = 0  # teardowns in progress (`shielded`): an interrupt waits until they end
    deferred: str | None = None  # an interrupt that came during one
    outer: ClassVar[list[tuple[ProcessIdentity | None, str | None, bool, threading.Event]]] = []


def begin_session(session: str | None = None) -> str:
    """This process belongs to `session` (a worker: what its controller handed it) or starts
    one of its own (returned, to hand to workers). A session begun inside another (a test
    running pytest in-process) is ended by `end_session`, which gives the outer one back."""
    _State.outer.append((_State.session, _State.reason, _State.signalled, _State.stop_watch))
    _State.session = ProcessIdentity.parse(session) if session else current()
    if session is None:
        _forget_dead_sessions()
    _State.reason = None
    _State.signalled = False
    _State.stop_watch = threading.Event()
    return str(_State.session)


def _forget_dead_sessions() -> None:
    """Flags of controllers that are gone (one SIGKILLed before it could remove its own)."""
    for path in FLAGS.glob("*-*") if FLAGS.is_dir() else []:
        owner = ProcessIdentity.parse(path.name.replace("-", ":", 1))
        if owner is not None and not owner.alive():
            path.unlink(missing_ok=True)


def _flag() -> str | None:
    session = _State.session
    return None if session is None else str(FLAGS / f"{session.pid}-{session.start_ticks}")


def interrupt(reason: str) -> None:
    """The session is interrupted: this process and, through the flag file, every other
    process of the session start nothing new. Safe in a signal handler (one small write)."""
    _State.signalled = True
    if _State.reason is None:
        _State.reason = reason
    flag = _flag()
    if flag is None:
        return
    with contextlib.suppress(OSError):
        FLAGS.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(flag, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, reason.encode())
        finally:
            os.close(fd)


def raise_interrupt(reason: str) -> None:
    """What a SIGINT/SIGTERM handler does: the session is interrupted (`interrupt`) and
    KeyboardInterrupt is raised now - or, during a teardown (`shielded`), as soon as it ends:
    raised in the middle, it would leave containers, processes or a folder behind."""
    interrupt(reason)
    if _State.shield:
        _State.deferred = reason
        return
    raise KeyboardInterrupt(reason)


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """A teardown that an interrupt (through `raise_interrupt`) must not cut short: one
    that comes meanwhile is raised when the block ends."""
    _State.shield += 1
    try:
        yield
    finally:
        _State.shield -= 1
        pending = None if _State.shield else _State.deferred
        if pending is not None:
            _State.deferred = None
    if pending is not None:  # (an error out of the block propagates instead)
        raise KeyboardInterrupt(pending)


def interrupted() -> str | None:
    """Why the session was interrupted, or None while it runs on: this process's own
    interrupt, another process's flag file, or the session's controller gone."""
    if _State.reason is not None or _State.session is None:
        return _State.reason
    flag = _flag()
    assert flag is not None
    try:
        with open(flag) as file:
            _State.reason = file.read() or "interrupted"
    except OSError:
        if _State.session != current() and not _State.session.alive():
            _State.reason = "the session's controller is gone"
    return _State.reason


def check(what: str) -> None:
    """Raise `Interrupted` if the session is: `what` (a stack, a service) must not start."""
    reason = interrupted()
    if reason is not None:
        raise Interrupted(f"{what}: not started, the session was interrupted ({reason})")


def watch(on_interrupt: Callable[[str], None]) -> None:
    """Call `on_interrupt(reason)` once, from a daemon thread, when another process of the
    session interrupts it (a worker's reaction to its controller's Ctrl-C)."""
    stop = _State.stop_watch

    def poll() -> None:
        while not stop.wait(WATCH_INTERVAL_S):
            if _State.signalled:
                return  # this process was interrupted itself: it is unwinding already
            reason = interrupted()
            if reason is not None:
                on_interrupt(reason)
                return

    threading.Thread(target=poll, name="session-interrupt-watch", daemon=True).start()


def end_session() -> None:
    """The session is over: stop watching; the controller removes its flag file."""
    _State.stop_watch.set()
    flag = _flag()
    if flag is not None and _State.session == current() and not _nested_in_same_session():
        with contextlib.suppress(OSError):
            os.unlink(flag)
    if _State.outer:
        _State.session, _State.reason, _State.signalled, _State.stop_watch = _State.outer.pop()
    else:
        _State.session = None


def _nested_in_same_session() -> bool:
    return any(session == _State.session for session, *_ in _State.outer)


__all__ = [
    "FLAGS",
    "Interrupted",
    "begin_session",
    "check",
    "end_session",
    "interrupt",
    "interrupted",
    "raise_interrupt",
    "shielded",
    "watch",
]
