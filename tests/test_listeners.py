"""The processes behind a target's ports, found from one scan of the machine's sockets shared
by every check of a verify run - and found again when that scan no longer answers: a service
redeployed on its port from a new process, or a port that was not listening when it was
taken. Each case on real listening processes on 127.0.0.1."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from rollback_drill.process import proc
from rollback_drill.stack import access

_LISTENER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
print("listening", flush=True)
sys.stdin.readline()
"""


@contextmanager
def listener(port: int) -> Iterator[int]:
    """A process listening on `port` until the block ends; its pid."""
    child = subprocess.Popen(
        [sys.executable, "-c", _LISTENER, str(port)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "listening"
        yield child.pid
    finally:
        child.kill()
        child.wait(timeout=10)


@pytest.fixture()
def scans(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the scans of the machine's sockets, starting from none held."""
    counted: list[int] = []
    real = access._scan_listeners

    def counting() -> access._Listeners:
        counted.append(1)
        return real()

    monkeypatch.setattr(access, "_listeners", None)
    monkeypatch.setattr(access, "_scan_listeners", counting)
    return counted


def test_checks_asking_at_once_share_one_scan(scans: list[int]) -> None:
    port = proc.free_port()
    with listener(port) as pid:
        found: list[dict[int, set[int]]] = []
        threads = [
            threading.Thread(target=lambda: found.append(access.listening_pids({port})))
            for _ in range(5)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    assert found == [{port: {pid}}] * 5
    assert len(scans) == 1


def test_a_service_restarted_on_its_port_is_found_in_its_new_process(scans: list[int]) -> None:
    port = proc.free_port()
    with listener(port) as first:
        assert access.listening_pids({port}) == {port: {first}}
    with listener(port) as second:
        assert access.listening_pids({port}) == {port: {second}}
    assert len(scans) == 2


def test_a_port_that_starts_listening_after_the_scan_is_found(scans: list[int]) -> None:
    early, late = proc.free_port(), proc.free_port()
    with listener(early) as first:
        assert access.listening_pids({early, late}) == {early: {first}}
        with listener(late) as second:
            assert access.listening_pids({late}) == {late: {second}}
            assert access.listening_pids({early}) == {early: {first}}
    assert len(scans) == 2
