"""A time limit that cuts off a hanging piece of work in the main thread.

A rollback step that waits on something that never answers must not hold the whole procedure
past its budget. A thread cannot be stopped from outside, and a step must not be moved to a
worker thread either (the local backend ties each server's life to the thread that forked it),
so the limit is a real-time timer (SIGALRM): when it fires, `CutOff` is raised in the main
thread wherever it is - also inside a blocking sleep, socket read or subprocess wait, which
Python ends early when a signal handler raises (PEP 475).

`CutOff` is a BaseException, like KeyboardInterrupt: the `except Exception` a step uses to
retry or to turn an error into a result does not swallow it. Off the main thread there is no
such timer; the limit is then checked when the work returns (documented, not silent).
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from rollback_drill.process.proc import raising_now_is_unsafe

RETRY_S = 0.02


class CutOff(BaseException):
    """The work ran past its limit and was cut off."""

    def __init__(self, what: str, limit_s: float) -> None:
        why = (
            f"cut off at its {limit_s:g} s limit"
            if limit_s > 0
            else "not started: no time was left of its budget"
        )
        super().__init__(f"{what}: {why}")
        self.what = what
        self.limit_s = limit_s


@contextmanager
def time_limit(limit_s: float, what: str) -> Iterator[None]:
    """Run the block; raise `CutOff` in it when `limit_s` passes first. Restores whatever
    SIGALRM handler and timer were there before (a limit inside a limit keeps the outer
    one's remaining time, shortened by what the inner block spent)."""
    if limit_s <= 0 or math.isinf(limit_s):
        if limit_s <= 0:
            raise CutOff(what, limit_s)
        yield
        return
    if threading.current_thread() is not threading.main_thread():
        started = time.monotonic()
        yield
        if time.monotonic() - started > limit_s:
            raise CutOff(what, limit_s)
        return

    fired = threading.Event()

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        if fired.is_set():
            return
        # Raising now would leave logging's module lock held, or a started child unremembered
        # (proc.raising_now_is_unsafe): the timer fires again a moment later instead. Not
        # proc.interrupt_is_unsafe: it re-sends the signal from another thread, which could
        # arrive after the block restored the default SIGALRM action and end the process.
        if raising_now_is_unsafe():
            signal.setitimer(signal.ITIMER_REAL, RETRY_S)  # cancelled with the block
            return
        fired.set()
        raise CutOff(what, limit_s)

    previous = signal.signal(signal.SIGALRM, on_alarm)
    outer, _ = signal.setitimer(signal.ITIMER_REAL, limit_s)
    started = time.monotonic()
    try:
        yield
    finally:
        fired.set()  # a late alarm (or a re-sent one) after the block is ignored
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL if previous is None else previous)
        if outer > 0:
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - started), 1e-3))


__all__ = ["CutOff", "time_limit"]
