"""The local backend: real processes that start, answer, stop, and leave nothing behind."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from rollback_drill.files.spec import LoadedStack, load_stack
from rollback_drill.process import proc
from rollback_drill.process.errors import SpecError
from rollback_drill.process.procfs import ProcessIdentity
from rollback_drill.process.wait import Wait
from rollback_drill.stack.base import Stack
from rollback_drill.stack.local import LocalStack
from rollback_drill.stores import mongo
from tests.helpers import as_from_a_terminal, run_verify_suite
from tests.paths import PROJECT_ROOT


def _owned_processes(owner: int) -> list[int]:
    """Processes started by harness `owner`, found by owner mark or by the group record (nginx
    workers lose the mark: nginx rewrites its workers' environment)."""
    return proc.processes_of(owner)


def test_a_command_missing_on_this_machine_is_named_before_anything_starts(
    tmp_path: Path,
) -> None:
    dest = tmp_path / "safepsy"
    shutil.copytree(
        PROJECT_ROOT / "fixtures" / "safepsy",
        dest,
        ignore=shutil.ignore_patterns("__pycache__", "node_modules"),
    )
    stack = dest / "stack.yaml"
    stack.write_text(stack.read_text().replace("[python, -m, safepsy_app.chatbot]", "[chatbotd]"))
    with pytest.raises(SpecError, match=r"services\.ai-chatbot\.command: 'chatbotd' is not an"):
        LocalStack(load_stack(stack))


def test_local_stack_implements_the_protocol(local_stack: LocalStack) -> None:
    assert isinstance(local_stack, Stack)


def test_every_service_answers_on_127_0_0_1(local_stack: LocalStack) -> None:
    target = local_stack.target()
    for url in target.service_urls().values():
        assert url.startswith(("http://127.0.0.1:", "https://localhost:"))
    assert httpx.get(target.backend_url + "/health").json()["release"] == "1.4.0"
    page = httpx.get(target.frontend_url + "/").text
    assert "1.4.0" in page


def test_mongosh_counts_what_the_fingerprint_counts(local_stack: LocalStack) -> None:
    """The runbook's own tool agrees with the harness: db.users.countDocuments()."""
    code, out = local_stack.exec(
        "mongosh", ["mongosh", "--eval", "db.getSiblingDB('safepsy').users.countDocuments()"]
    )
    assert code == 0, out
    printed = mongo.fingerprint(local_stack.mongodb_uri, "safepsy", ["users"])
    assert int(out.strip().splitlines()[-1]) == printed.collections["users"].count


def test_exec_runs_the_runbooks_tools(local_stack: LocalStack) -> None:
    code, out = local_stack.exec("frontend", ["nginx", "-t"])
    assert code == 0 and "syntax is ok" in out
    code, out = local_stack.exec("redis", ["redis-cli", "ping"])
    assert code == 0 and "PONG" in out


def test_stats_reports_cpu_and_memory_per_service(local_stack: LocalStack) -> None:
    stats = local_stack.stats()
    assert set(local_stack.all_services()) <= set(stats)
    assert all(usage.memory_bytes > 1_000_000 for usage in stats.values())
    assert all(0 < usage.memory_fraction < 1 for usage in stats.values())


def test_kill_pause_and_restart(local_stack: LocalStack) -> None:
    url = local_stack.target().chatbot_url + "/health"
    local_stack.kill("ai-chatbot")
    assert not local_stack.is_running("ai-chatbot")
    with pytest.raises(httpx.ConnectError):
        httpx.get(url, timeout=1)
    local_stack.start("ai-chatbot")
    local_stack.pause("ai-chatbot")
    with pytest.raises(httpx.TimeoutException):
        httpx.get(url, timeout=0.5)
    local_stack.unpause("ai-chatbot")
    assert httpx.get(url, timeout=2).status_code == 200
    port = local_stack.port("ai-chatbot")
    local_stack.restart("ai-chatbot")
    assert local_stack.port("ai-chatbot") == port
    assert httpx.get(url, timeout=2).status_code == 200


def test_logs_are_kept_per_service(local_stack: LocalStack) -> None:
    httpx.get(local_stack.target().backend_url + "/health")
    assert "/health" in local_stack.logs("backend")
    assert local_stack.logs("frontend")


def test_bad_release_is_unhealthy_and_says_why(local_stack: LocalStack) -> None:
    local_stack.deploy("backend", "1.5.0")
    try:
        resp = httpx.get(local_stack.target().backend_url + "/health", timeout=3)
        assert resp.status_code == 503
        assert "migration" in resp.text
    finally:
        local_stack.deploy("backend", "1.4.0")
        local_stack.start("backend")
    assert httpx.get(local_stack.target().backend_url + "/health", timeout=3).status_code == 200


def test_down_leaves_no_process_port_or_temp_dir(stack_file: LoadedStack) -> None:
    already = set(_owned_processes(os.getpid()))  # the module's shared stack
    stack = LocalStack(stack_file, seed_users=10)
    stack.up("1.4.0")
    ports = [stack.port(name) for name in [*stack.all_services(), "chain"]]
    workdir = stack.workdir
    assert all(proc.port_open(port) for port in ports)
    stack.down()
    assert not any(proc.port_open(port) for port in ports)
    assert not workdir.exists()
    assert set(_owned_processes(os.getpid())) == already


def test_failed_start_cleans_up_and_names_the_service(
    stack_file: LoadedStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROLLBACK_DRILL_REDIS_SERVER", "/bin/false")
    from rollback_drill.process.tools import find_tool

    find_tool.cache_clear()
    already = set(_owned_processes(os.getpid()))
    try:
        stack = LocalStack(stack_file, seed_users=10)
        with pytest.raises(Exception, match="redis exited with code 1"):
            stack.up("1.4.0")
        assert set(_owned_processes(os.getpid())) == already
        assert not stack.workdir.exists()
    finally:
        find_tool.cache_clear()


_HOLD_STACK = """
import faulthandler, signal, sys, time
faulthandler.register(signal.SIGUSR1)  # where it is stuck, should teardown ever hang
from rollback_drill.files.spec import load_stack
from rollback_drill.stack.local import LocalStack
stack = LocalStack(load_stack(sys.argv[1]), seed_users=10)
stack.up("1.4.0")
print(stack.workdir, flush=True)
time.sleep(120)
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_interrupted_harness_leaves_nothing(
    stack_file: LoadedStack, sig: signal.Signals, tmp_path: Path
) -> None:
    """Ctrl-C and SIGTERM tear down at once; after SIGKILL the kernel (PDEATHSIG) and the next
    run's sweep remove what is left. A teardown that hangs fails with where it hung."""
    errors = tmp_path / "stderr.txt"
    with errors.open("w") as err:
        child = subprocess.Popen(
            [sys.executable, "-c", _HOLD_STACK, str(stack_file.path)],
            stdout=subprocess.PIPE,
            stderr=err,
            cwd=PROJECT_ROOT,
            text=True,
            preexec_fn=as_from_a_terminal,
        )
    assert child.stdout is not None
    workdir = Path(child.stdout.readline().strip())
    assert workdir.exists()
    assert _owned_processes(child.pid)
    child.send_signal(sig)
    try:
        child.wait(timeout=30)
    except subprocess.TimeoutExpired:
        child.send_signal(signal.SIGUSR1)  # faulthandler: every thread's stack
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=2)
        child.kill()
        child.wait()
        proc.sweep_orphans()
        pytest.fail(f"no exit 30 s after {sig.name}:\n{errors.read_text()[-4000:]}")
    if sig == signal.SIGKILL:
        proc.sweep_orphans()
    Wait("no process left", 10).until(lambda: not _owned_processes(child.pid))
    assert not workdir.exists()


def test_cli_up_verify_down(tmp_path: Path) -> None:
    """A new user's path: up, verify (green), break things (red, naming the check), down."""
    cli = [sys.executable, "-m", "rollback_drill.cli"]
    up = subprocess.run(
        [*cli, "up", "--dir", str(tmp_path), "--seed-users", "20"],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=120,
    )
    assert up.returncode == 0, up.stderr
    state = json.loads((tmp_path / "state.json").read_text())
    target = state["target"]
    try:
        green = run_verify_suite(target)
        assert green.returncode == 0, green.stdout[-3000:]
        assert "passed" in green.stdout
        baseline = tmp_path / "again.json"
        fingerprint = subprocess.run(
            [*cli, "fingerprint", "--target", target, "-o", str(baseline)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert fingerprint.returncode == 0, fingerprint.stderr
        again, first = (mongo.Fingerprint.load(p) for p in (baseline, tmp_path / "baseline.json"))
        # what the stack file's integrity_collections name; the verify run itself added sessions
        unchanged = sorted(set(first.collections) - {"sessions", "chat_messages"})
        assert "users" in unchanged
        for name in unchanged:
            assert again.collections[name] == first.collections[name], name
        doctor = subprocess.run([*cli, "doctor"], capture_output=True, text=True, timeout=60)
        assert doctor.returncode == 0, doctor.stdout
    finally:
        down = subprocess.run(
            [*cli, "down", "--dir", str(tmp_path)], capture_output=True, text=True, timeout=60
        )
    assert down.returncode == 0, down.stderr
    assert ProcessIdentity.of(int(state["pid"])) is None  # gone (a zombie until init reaps it)
    assert _owned_processes(int(state["pid"])) == []


def test_down_stops_a_process_spawned_before_an_interrupt_it_never_remembered(
    stack_file: LoadedStack,
) -> None:
    """An interrupt between `proc.spawn` and the line that puts the process in the stack's
    table: the process ran on, writing into the workdir, so the workdir outlived the stack
    (CI: tests/test_interrupted_session.py). `down` stops every process started in the
    workdir, and the workdir goes."""
    stack = LocalStack(stack_file)
    workdir = stack.workdir
    writer = proc.spawn(
        "mongodb",  # as the stack's first service would be, but never in its table
        ["sh", "-c", "while :; do mkdir -p data/$RANDOM; sleep 0.01; done"],
        workdir / "logs" / "mongodb.log",
        cwd=workdir,
    )
    Wait("the writer writing", 10, 0.02).until(lambda: (workdir / "data").is_dir())
    stack.down()
    assert not writer.alive()
    assert not workdir.exists()
