"""The time limit that cuts a hanging rollback step off: it interrupts what blocks (a sleep,
a socket read, a subprocess), is not swallowed by `except Exception`, leaves no timer or
handler behind, and keeps an outer limit's remaining time."""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
import time

import pytest

from rollback_drill.process.cutoff import CutOff, time_limit


def test_a_blocking_sleep_is_cut_off_at_its_limit() -> None:
    started = time.monotonic()
    with (
        pytest.raises(CutOff, match=r"the step: cut off at its 0.3 s limit"),
        time_limit(0.3, "the step"),
    ):
        time.sleep(30)
    assert time.monotonic() - started < 10  # not the 30 s sleep


def test_a_socket_that_never_answers_and_a_subprocess_are_cut_off() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    with (
        socket.create_connection(server.getsockname()) as conn,
        pytest.raises(CutOff),
        time_limit(0.2, "read"),
    ):
        conn.recv(1)  # the server accepts nothing and sends nothing
    server.close()
    with pytest.raises(CutOff), time_limit(0.2, "subprocess"):
        subprocess.run(["sleep", "30"], check=False)  # run() kills its child on the way out


def test_except_exception_does_not_swallow_it() -> None:
    swallowed = False
    with pytest.raises(CutOff), time_limit(0.2, "retry loop"):
        while True:
            try:
                time.sleep(1)
            except Exception:  # what a retrying step does
                swallowed = True
    assert not swallowed


def test_work_that_finishes_leaves_no_timer_and_the_old_handler() -> None:
    before = signal.getsignal(signal.SIGALRM)
    with time_limit(5, "quick"):
        pass
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGALRM) == before
    time.sleep(0.05)  # no late alarm


def test_an_outer_limit_keeps_its_remaining_time() -> None:
    with pytest.raises(CutOff, match="outer"), time_limit(0.6, "outer"):
        with time_limit(5, "inner"):
            time.sleep(0.2)
        time.sleep(5)  # the outer limit (0.4 s left) must still fire


def test_no_time_left_fails_at_once() -> None:
    ran = False
    with pytest.raises(CutOff, match="late step: not started"), time_limit(0, "late step"):
        ran = True
    assert not ran


def test_off_the_main_thread_an_overrun_still_fails_when_the_work_returns() -> None:
    raised: list[BaseException] = []

    def work() -> None:
        try:
            with time_limit(0.1, "in a thread"):
                time.sleep(0.3)
        except CutOff as exc:
            raised.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert raised and "in a thread" in str(raised[0])
