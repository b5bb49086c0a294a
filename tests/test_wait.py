"""The one wait helper: a timeout names what was awaited, how long, and the last answer; a
fatal error ends the wait at once; `holds` fails at the first false answer."""

from __future__ import annotations

import pytest

from rollback_drill.process.errors import ProcessError, StartError, WaitTimeout
from rollback_drill.process.wait import Wait


def test_a_timeout_says_what_how_long_and_the_last_answer() -> None:
    def probe() -> bool:
        raise ConnectionRefusedError("port 6379 refused")

    with pytest.raises(WaitTimeout) as caught:
        Wait("redis answering", 0.1, 0.01).until(probe)
    message = str(caught.value)
    assert "redis answering" in message
    assert "0.1 s" in message
    assert "ConnectionRefusedError: port 6379 refused" in message
    assert isinstance(caught.value, TimeoutError)  # callers catching the builtin still do
    assert isinstance(caught.value, ProcessError)


def test_until_returns_the_time_it_took_and_fatal_errors_end_it() -> None:
    answers = iter([False, False, True])
    assert 0 <= Wait("third time", 5, 0.001).until(lambda: next(answers)) < 1

    def dead() -> bool:
        raise StartError("exited with code 1")

    with pytest.raises(StartError):
        Wait("server ready", 5, 0.001, fatal=(StartError,)).until(dead)


def test_holds_fails_at_the_first_false_answer() -> None:
    answers = iter([True, True, False, True])
    assert not Wait("staying up", 5, 0.001).holds(lambda: next(answers))
    assert Wait("staying up", 0.05, 0.001).holds(lambda: True)
