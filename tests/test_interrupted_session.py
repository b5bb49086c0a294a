"""Ctrl-C during `pytest -n 2 --dist loadfile --stack-backend all drills/...`: the local
stacks went, but one xdist worker started a docker stack 2 s after the interrupt and was
killed by xdist (10 s after it) before tearing it down - six `rd-<id>-*` containers, their
network and a stack folder left. Once a session is interrupted, in the controller or any
worker, no stack starts, and one part-way up is torn down."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import docker
import psutil
import pytest

from rollback_drill.files.spec import LoadedStack
from rollback_drill.process import interrupts, ownership
from rollback_drill.process.procfs import ProcessIdentity
from rollback_drill.process.wait import Wait
from rollback_drill.stack.select import docker_available
from tests.helpers import as_from_a_terminal
from tests.paths import PROJECT_ROOT

# A worker of a session whose controller is another process: its stack is part-way up when
# the controller's interrupt (the flag file) comes; then it tries to start one more stack.
_WORKER = """
import signal, sys, threading, time
from rollback_drill.files.spec import load_stack
from rollback_drill.process import interrupts, ports, proc
from rollback_drill.stack.local import LocalStack
def handler(signum, frame):  # as the plugin's
    if not proc.interrupt_is_unsafe(signum):
        interrupts.raise_interrupt("SIGINT")
signal.signal(signal.SIGINT, handler)
interrupts.begin_session(sys.argv[2])
main = threading.main_thread().ident
interrupts.watch(lambda reason: signal.pthread_kill(main, signal.SIGINT))
loaded = load_stack(sys.argv[1])
stack = LocalStack(loaded, seed_users=200)
print(stack.workdir, flush=True)
try:
    stack.up("1.4.0")
    print("up: not interrupted", flush=True)
except BaseException as exc:  # the watcher's KeyboardInterrupt, or a wait that saw the flag
    print("up: stopped by", type(exc).__name__, flush=True)
try:
    time.sleep(1)  # the watcher's interrupt, if a wait saw the flag first
except KeyboardInterrupt:
    pass
print("ports held:", ports.held(), flush=True)
try:
    LocalStack(loaded)
    print("second stack: started", flush=True)
except interrupts.Interrupted as exc:
    print("second stack:", exc, flush=True)
"""


def _dirs_of(pids: set[int]) -> list[Path]:
    """Folders under the harness's temp root that these processes own."""
    root = ownership.TEMP_ROOT
    found = []
    for path in root.iterdir() if root.is_dir() else []:
        owner = ownership.dir_owner(path)
        if owner is not None and owner.pid in pids:
            found.append(path)
    return found


def test_a_worker_tears_down_the_stack_it_is_starting_and_starts_no_other(
    stack_file: LoadedStack,
) -> None:
    controller = subprocess.Popen(["sleep", "120"])  # the session's controller, ours
    identity = ProcessIdentity.of(controller.pid)
    assert identity is not None
    flag = interrupts.FLAGS / f"{identity.pid}-{identity.start_ticks}"
    worker = subprocess.Popen(
        [sys.executable, "-c", _WORKER, str(stack_file.path), str(identity)],
        stdout=subprocess.PIPE, text=True, cwd=PROJECT_ROOT, preexec_fn=as_from_a_terminal,
    )  # fmt: skip
    try:
        assert worker.stdout is not None
        workdir = Path(worker.stdout.readline().strip())
        Wait("the stack part-way up", 60, 0.05).until(lambda: (workdir / "logs").is_dir())
        interrupts.FLAGS.mkdir(parents=True, exist_ok=True, mode=0o700)
        flag.write_text("signal SIGINT in the controller")  # what its interrupt handler writes
        out, _ = worker.communicate(timeout=60)
    finally:
        worker.kill()
        controller.kill()
        controller.wait()
        flag.unlink(missing_ok=True)
    assert "up: stopped by" in out
    assert "ports held: []" in out
    assert "second stack: stack safepsy: not started, the session was interrupted" in out
    assert not workdir.exists()
    assert not ownership.processes_of(worker.pid)


def test_a_gone_controllers_flag_is_forgotten_when_a_session_begins() -> None:
    """A controller SIGKILLed before it removed its flag: its pid and start time name no
    live process (here: this pid with another start time), so the flag goes."""
    interrupts.FLAGS.mkdir(parents=True, exist_ok=True, mode=0o700)
    stale = interrupts.FLAGS / f"{os.getpid()}-1"
    stale.write_text("signal SIGINT")
    try:
        interrupts.begin_session()
        try:
            assert not stale.exists()
            assert interrupts.interrupted() is None
        finally:
            interrupts.end_session()
    finally:
        stale.unlink(missing_ok=True)


def _labelled(pids: set[int]) -> tuple[list[str], list[str]]:
    """Containers and networks a harness process among `pids` labelled as its own."""
    from rollback_drill.stack.docker_infra import LABEL_OWNER

    client = docker.from_env()
    try:
        containers = [
            c["Names"][0]
            for c in client.api.containers(all=True, filters={"label": LABEL_OWNER})
            if int((c.get("Labels") or {}).get(LABEL_OWNER, "0")) in pids
        ]
        networks = [
            n.name
            for n in client.networks.list(filters={"label": LABEL_OWNER})
            if int((n.attrs.get("Labels") or {}).get(LABEL_OWNER, "0")) in pids
        ]
    finally:
        client.close()
    return containers, networks


@pytest.mark.slow  # two docker drills part-way up
@pytest.mark.skipif(not docker_available(), reason="no Docker daemon answers")
def test_ctrl_c_while_xdist_workers_start_docker_stacks_leaves_nothing(tmp_path: Path) -> None:
    run = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2",
         "--dist", "loadfile", "--stack-backend", "docker",
         "--drill-artifacts", str(tmp_path / "artifacts"),
         "--drill-records", str(tmp_path / "records"),
         "drills/test_configuration.py", "drills/test_service.py"],
        cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        preexec_fn=as_from_a_terminal,
    )  # fmt: skip
    pids = {run.pid}
    try:

        def a_stack_starting() -> bool:
            pids.update(p.pid for p in psutil.Process(run.pid).children(recursive=True))
            return bool(_labelled(pids)[0])

        Wait("a worker's first container", 180, 0.1).until(a_stack_starting)
        run.send_signal(signal.SIGINT)  # the controller only, as `kill -INT` would
        run.wait(timeout=90)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    time.sleep(3)  # "a few seconds after it exits": a worker still starting one would show
    containers, networks = _labelled(pids)
    assert containers == [] and networks == [], f"left behind: {containers} {networks}"
    assert _dirs_of(pids) == []
    assert not list(interrupts.FLAGS.glob(f"{run.pid}-*")), "the controller left its flag"
