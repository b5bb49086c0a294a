"""The sweep's proofs, each shown both ways: what a dead run left is removed - a marked
process, an nginx-like grandchild that lost its mark, its folders - and what no proof covers
survives untouched and unsignalled: a process with an old-style mark, a shell sitting in the
run's stack folder, a process whose pid is right but whose start time is not."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from rollback_drill.process import ownership, proc, procfs
from rollback_drill.process.procfs import ProcessIdentity
from rollback_drill.process.wait import Wait
from tests.decoy import Decoy

# A run that starts its processes and dies without cleaning up (as after a SIGKILL): prints
# its temp folder, then the pids it left; the nginx-like one drops its environment (env -i).
_DEAD_RUN = """
import sys, time
from rollback_drill.process import proc
folder = proc.make_temp_dir("fake-stack")
marked, _ = proc.popen_owned(["sleep", "600"], {}, None, cwd=folder)
sh, _ = proc.popen_owned(
    ["sh", "-c", "env -i sleep 601 & echo $!; wait"], {}, subprocess.PIPE, cwd=folder
)
worker = int(sh.stdout.readline())
print(folder, marked.pid, worker, flush=True)
time.sleep(600)
"""


@pytest.fixture
def dead_run() -> tuple[Path, list[int]]:
    """A run killed by SIGKILL after starting a marked child and an unmarked grandchild."""
    run = subprocess.Popen(
        [sys.executable, "-c", "import subprocess\n" + _DEAD_RUN],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert run.stdout is not None
    folder, *pids = run.stdout.readline().split()
    run.kill()  # the run dies; PDEATHSIG takes its direct children, not the grandchild
    run.wait()
    return Path(folder), [int(p) for p in pids]


def _alive(pid: int) -> bool:
    return ProcessIdentity.of(pid) is not None


def test_sweep_removes_what_a_dead_run_left_and_nothing_else(
    dead_run: tuple[Path, list[int]], tmp_path: Path
) -> None:
    folder, (marked, worker) = dead_run
    Wait("PDEATHSIG", 10).until(lambda: not _alive(marked))
    assert _alive(worker), "the grandchild outlives its parent, as an nginx worker does"
    Wait("env -i exec", 10).until(lambda: procfs.cmdline(worker) == ["sleep", "601"])
    assert ownership.mark_of(worker) is None, "and it carries no owner mark"
    dead_pid = next(p for p in range(30000, 300, -1) if not Path(f"/proc/{p}").exists())
    with (
        Decoy(tmp_path / "plain.log") as plain,
        Decoy(tmp_path / "old.log", env={ownership.OWNER_VAR: str(dead_pid)}) as old_mark,
        Decoy(tmp_path / "shell.log", cwd=folder) as in_folder,
    ):
        swept = ownership.sweep()
        assert worker in swept.processes
        assert folder in swept.dirs and not folder.exists()
        Wait("worker gone", 10).until(lambda: not _alive(worker))
        for decoy in (plain, old_mark, in_folder):
            assert decoy.alive() and decoy.signals() == []
            assert decoy.pid not in swept.processes


def test_a_live_owners_processes_are_left_alone(tmp_path: Path) -> None:
    """This process is the owner: its own marked child survives any sweep."""
    child, _ = proc.popen_owned(["sleep", "60"], os.environ, None, cwd=tmp_path)
    try:
        assert child.pid in ownership.processes_of(procfs.current())
        assert child.pid not in ownership.sweep().processes
        assert child.poll() is None
    finally:
        child.kill()
        child.wait()


def test_signal_proven_refuses_a_pid_whose_start_time_differs(tmp_path: Path) -> None:
    with Decoy(tmp_path / "decoy.log") as decoy:
        real = procfs.read_process(decoy.pid)
        assert real is not None
        stale = procfs.ProcessInfo(
            real.pid, real.ppid, real.pgid, real.state, real.start_ticks - 1, real.uid
        )
        assert not procfs.signal_proven(stale, signal.SIGTERM)
        assert procfs.signal_proven(real, signal.SIGUSR1)
        Wait("signal seen", 30).until(lambda: decoy.signals() == ["SIGUSR1"])


def test_a_zombie_is_not_alive() -> None:
    child = subprocess.Popen(["true"])

    def zombie() -> bool:
        info = procfs.read_process(child.pid)
        return info is not None and info.state == "Z"

    Wait("zombie", 10).until(zombie)
    identity = ProcessIdentity(child.pid, 0)
    assert ProcessIdentity.of(child.pid) is None and not identity.alive()
    child.wait()


def test_a_record_written_by_another_user_or_world_writable_is_ignored(tmp_path: Path) -> None:
    ownership.RECORDS.mkdir(parents=True, exist_ok=True)
    forged = ownership.RECORDS / "1-1.jsonl"
    forged.write_text('{"group": 1, "leader_start": 0, "cwd": "/"}\n')
    forged.chmod(0o666)
    try:
        assert all(r.path != forged for r in ownership.read_records())
    finally:
        forged.unlink()


_STUCK = """
import sys, threading
from rollback_drill.process import proc
folder = proc.make_temp_dir("stuck")
child = proc.spawn("sleeper", ["sleep", "600"], folder / "sleeper.log")
print(child.pid, folder, flush=True)
proc.exit_if_stuck(77, grace_s=1.0)
lock = threading.Lock()
lock.acquire()  # stands in for a lock an interrupt left held
lock.acquire()  # the unwinding waits on it forever
"""


def test_an_unwinding_that_deadlocks_is_ended_and_cleaned_up() -> None:
    run = subprocess.Popen(
        [sys.executable, "-c", _STUCK], stdout=subprocess.PIPE, text=True, env=os.environ
    )
    assert run.stdout is not None
    pid, folder = run.stdout.readline().split()
    assert run.wait(timeout=60) == 77
    Wait("sleeper gone", 10).until(lambda: not _alive(int(pid)))
    assert not Path(folder).exists()  # removed by the watchdog's cleanup, not by the kernel


_HELD = """
import logging, os, signal, time
from rollback_drill.process import proc

def handler(signum, frame):
    if proc.interrupt_is_unsafe(signum):
        print("deferred", flush=True)
        return
    raise KeyboardInterrupt

signal.signal(signal.SIGTERM, handler)
logging._lock.acquire()  # where Python 3.11's logging is between acquire() and its try
os.kill(os.getpid(), signal.SIGTERM)
time.sleep(0.3)
print("still holding", flush=True)
logging._lock.release()
try:
    time.sleep(10)
except KeyboardInterrupt:
    print("interrupted after the release", flush=True)
"""


def test_an_interrupt_waits_until_logging_lets_go_of_its_lock() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _HELD], capture_output=True, text=True, timeout=60, check=False
    )
    lines = done.stdout.splitlines()
    assert lines[0] == "deferred", done.stdout + done.stderr
    assert lines[-2:] == ["still holding", "interrupted after the release"], done.stdout


_STARTING = """
import signal, sys, threading, time
from rollback_drill.process import proc

def handler(signum, frame):  # as the plugin's
    if proc.interrupt_is_unsafe(signum):
        return
    raise KeyboardInterrupt

signal.signal(signal.SIGINT, handler)
real = proc.popen_owned

def started_then_interrupted(*args, **kwargs):
    popen, leader = real(*args, **kwargs)
    print(popen.pid, flush=True)
    signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)  # Ctrl-C, right now
    time.sleep(0.2)  # where the handler runs: the child started, not yet remembered
    return popen, leader

proc.popen_owned = started_then_interrupted
folder = proc.make_temp_dir("starting")
print(folder, flush=True)
# a server writing into its stack's folder, as SecantusDB and redis do
writer = f'while :; do mkdir -p "{folder}/data"; date >> "{folder}/data/log"; sleep 0.005; done'
try:
    proc.spawn("writer", ["sh", "-c", writer, sys.argv[1]], folder / "writer.log", cwd=folder)
    time.sleep(5)
    print("never interrupted", flush=True)
except KeyboardInterrupt:
    print("interrupted after the start", flush=True)
for started in proc.started_in(folder):  # the stack's teardown (stack.local._teardown)
    started.stop(grace=0.5)
proc.remove_temp_dir(folder)
"""


def test_an_interrupt_as_a_child_starts_waits_until_it_is_remembered() -> None:
    """Ctrl-C between a child's start and its entry in the table of live processes left a
    server nobody stopped: it kept writing into its stack's folder while the teardown removed
    it, and the folder outlived the run (the interrupted-session test's red under four
    workers). The interrupt waits until the child is remembered, so the teardown stops it."""
    token = f"rollback-drill-test-{os.urandom(4).hex()}"  # in the writer's argv: only ours
    done = subprocess.run(
        [sys.executable, "-c", _STARTING, token],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    lines = done.stdout.splitlines()
    folder, child = Path(lines[0]), int(lines[1])
    try:
        assert lines[2:] == ["interrupted after the start"], done.stdout + done.stderr
        Wait("the started child gone with its run", 10).until(lambda: not _alive(child))
        assert not folder.exists(), f"{folder} outlived the run: {os.listdir(folder)}"
    finally:  # what a run that leaked them left: the writer proven ours by its one-off argument
        with contextlib.suppress(psutil.Error):
            if token in psutil.Process(child).cmdline():
                psutil.Process(child).kill()
        shutil.rmtree(folder, ignore_errors=True)
