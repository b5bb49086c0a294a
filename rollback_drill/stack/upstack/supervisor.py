"""`rollback-drill up`, `serve` and `down`: a reference stack that outlives the command that
started it, owned by one supervisor process that `down` can prove is its own.

`up` starts the supervisor (`serve`) in a new session and returns once the stack is healthy
and its target file written. The supervisor writes `state.json` first thing - its pid, its
start time and a random token that is also on its command line - so `down` (and a later
`up`) can tell it from whatever process holds that pid later: a pid alone is never signalled.
The supervisor stops on SIGTERM or SIGINT at any moment, also halfway through starting
(a hanging seed, say), and tears everything down. Whatever a killed supervisor left behind -
servers, an nginx worker, the seed, the stack directory - `down` and the next run remove
through `ownership.sweep`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from rollback_drill.files.spec import PRODUCTION, load_stack
from rollback_drill.process import ownership, proc, procfs
from rollback_drill.process.errors import SpecError
from rollback_drill.process.procfs import ProcessIdentity
from rollback_drill.process.wait import Wait
from rollback_drill.stack.upstack.state import (
    CONTROL,
    HandlerFactory,
    Supervisor,
    UpState,
    listening,
    read_state,
    serve_requests,
    state_path,
    write_state,
)

STOP_GRACE_S = 60.0  # past proc.INTERRUPT_GRACE_S: a stuck supervisor ends itself first


@contextlib.contextmanager
def _exclusive(directory: Path) -> Iterator[None]:
    """One `up` or `down` at a time per directory."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SpecError(
                f"{directory}: another `rollback-drill up` or `down` is running here"
            ) from None
        yield


def _clean_after(state: UpState, directory: Path) -> ownership.SweepResult:
    """Remove what a supervisor that is no longer running left: its processes, its stack
    directory, state.json."""
    result = ownership.sweep(only=state.identity) if state.identity else ownership.SweepResult()
    workdir = Path(state.workdir) if state.workdir else directory / "stack"
    owner = ownership.dir_owner(workdir)
    if workdir.is_dir() and owner is not None and owner == state.identity:
        shutil.rmtree(workdir, ignore_errors=True)
        result.dirs.append(workdir)
    (directory / CONTROL).unlink(missing_ok=True)  # a killed supervisor's socket
    _remove_state(directory, state.token)
    return result


def _remove_state(directory: Path, token: str | None) -> None:
    """Remove state.json if it still describes this supervisor (not one started since)."""
    with contextlib.suppress(SpecError):
        now = read_state(directory)
        if now is None or now.token != token:
            return
    state_path(directory).unlink(missing_ok=True)


# -- up ------------------------------------------------------------------------------------------
def up(
    stack: Path,
    directory: Path,
    release: str | None,
    seed_users: int | None,
    timeout_s: float,
    environment: str = PRODUCTION,
) -> int:
    directory = directory.resolve()
    loaded = load_stack(stack)  # a broken stack file is one clear error here, not in a log
    loaded.in_environment(environment)
    if release:
        loaded.release(release)
    with _exclusive(directory):
        state = read_state(directory)
        if state is not None:
            found = Supervisor.inspect(state)
            if found.verdict == "running":
                print(
                    f"a stack is already up in {directory} (supervisor pid {state.pid}); "
                    "`rollback-drill down` first"
                )
                return 1
            if found.verdict in ("foreign", "unproven"):
                print(found.describe_foreign())
            cleaned = _clean_after(state, directory)
            state_path(directory).unlink(missing_ok=True)
            print(f"removed the stale state of a supervisor not running ({cleaned.describe()})")
        return _start(stack, directory, release, seed_users, timeout_s, environment)


def _start(
    stack: Path,
    directory: Path,
    release: str | None,
    seed_users: int | None,
    timeout_s: float,
    environment: str,
) -> int:
    token = secrets.token_hex(16)
    argv = [sys.executable, "-m", "rollback_drill.cli", "serve", "--stack", str(stack),
            "--dir", str(directory), "--token", token, "--environment", environment]  # fmt: skip
    if release:
        argv += ["--release", release]
    if seed_users:
        argv += ["--seed-users", str(seed_users)]
    log = directory / "supervisor.log"
    with log.open("ab") as out:
        child = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
    identity = ProcessIdentity.of(child.pid)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if child.poll() is not None:
                left = ownership.sweep(only=identity) if identity else None
                tail = log.read_text(errors="replace")[-3000:]
                extra = f"\n(removed {left.describe()})" if left else ""
                print(f"the stack failed to start; see {log}:\n{tail}{extra}", file=sys.stderr)
                _remove_state(directory, token)
                return 1
            with contextlib.suppress(SpecError):
                state = read_state(directory)
                if state is not None and state.token == token and state.phase == "ready":
                    ready = state.ready_s or 0.0
                    print(f"stack up ({ready:.2f} s): target file {state.target}")
                    print(f"verify it:  pytest -m verify --target {state.target}")
                    print(f"stop it:    rollback-drill down --dir {directory}")
                    return 0
            time.sleep(0.1)
    except (KeyboardInterrupt, SystemExit):  # Ctrl-C, or SIGTERM (proc turns it into exit)
        _stop_child(child, identity, directory, token)
        print("interrupted: the stack was stopped", file=sys.stderr)
        return 130
    step = _last_step(directory, token)
    how = _stop_child(child, identity, directory, token)
    print(
        f"the stack was not up within {timeout_s:g} s{step}; {how}. See {log}",
        file=sys.stderr,
    )
    return 1


def _last_step(directory: Path, token: str) -> str:
    """`, stuck at step: ...` - what the supervisor said it was doing - or nothing."""
    with contextlib.suppress(SpecError):
        state = read_state(directory)
        if state is not None and state.token == token and state.step:
            return f", stuck at step: {state.step}"
    return ""


def _stop_child(
    child: subprocess.Popen[bytes], identity: ProcessIdentity | None, directory: Path, token: str
) -> str:
    """Stop the supervisor this `up` started (our child: until we reap it, its pid and group
    id are ours) and sweep whatever it left; say what it took."""
    started = time.monotonic()
    child.send_signal(signal.SIGTERM)
    try:
        child.wait(timeout=STOP_GRACE_S)
        how = f"supervisor pid {child.pid} stopped it in {time.monotonic() - started:.1f} s"
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)  # not reaped yet: the group id is still ours
        child.wait()
        how = f"supervisor pid {child.pid} did not stop within {STOP_GRACE_S:g} s: killed"
    left = ownership.sweep(only=identity) if identity else ownership.SweepResult()
    workdir = directory / "stack"
    if identity is not None and ownership.dir_owner(workdir) == identity:
        shutil.rmtree(workdir, ignore_errors=True)
    _remove_state(directory, token)
    return how + (f"; removed {left.describe()}" if left else "")


# -- serve ---------------------------------------------------------------------------------------
class _Stop(BaseException):
    """SIGTERM or SIGINT reached the supervisor: unwind from wherever it is."""


def _on_signal(signum: int, frame: FrameType | None) -> None:
    if proc.interrupt_is_unsafe(signum):
        return  # sent again in a moment
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)  # one stop is enough; teardown must not be cut
    proc.exit_if_stuck(0)  # ... unless it deadlocks
    raise _Stop(signum)


def _prepare_workdir(workdir: Path) -> None:
    """The stack directory is ours to create, or a leftover of ours to clear; never a folder
    someone else put there."""
    if workdir.exists():
        owner = ownership.dir_owner(workdir)
        if owner is not None and owner.alive():
            raise SpecError(f"{workdir}: in use by a running supervisor (pid {owner.pid})")
        if owner is None and any(workdir.iterdir()):
            raise SpecError(f"{workdir}: exists and was not made by rollback-drill; move it away")
        shutil.rmtree(workdir)
    ownership.record_dir(workdir)


def serve(
    stack_path: Path,
    directory: Path,
    release: str | None,
    seed_users: int | None,
    token: str,
    environment: str = PRODUCTION,
    *,
    controller: HandlerFactory,
) -> int:
    """The supervisor: owns the stack until SIGTERM/SIGINT, then tears it all down; meanwhile
    it answers `rollback-drill rollback` and `backup` on its control socket with what
    `controller` makes for its stack (`rollback-drill serve` hands it autorollback's)."""
    from rollback_drill.stack.local import LocalStack
    from rollback_drill.stack.targetfile import refuse_missing_collections, write_target_file

    directory = directory.resolve()
    me = procfs.current()
    workdir = directory / "stack"
    state = UpState(
        pid=me.pid, start_ticks=me.start_ticks, token=token, phase="starting",
        workdir=str(workdir), release=release,
    )  # fmt: skip
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    write_state(directory, state)
    stack = None
    try:
        loaded = load_stack(stack_path).in_environment(environment)
        chosen = release or loaded.environment_release()
        _prepare_workdir(workdir)
        stack = LocalStack(loaded, workdir=workdir, seed_users=seed_users)

        def stepped(what: str) -> None:
            nonlocal state
            state = state.model_copy(update={"step": what})
            write_state(directory, state)
            print(f"step: {what}", flush=True)

        stack.on_step = stepped
        stack.up(chosen)
        if not stack.password_file.exists():  # the password came from the environment
            stack.password_file.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(stack.password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(stack.target().test_password.reveal())
        running = stack.target()
        refuse_missing_collections(loaded, running.mongodb_uri.reveal(), running.mongodb_database)
        target = write_target_file(running, directory, stack.password_file)
        ready_s = stack.timings.get("ready_s", 0.0)
        state = state.model_copy(
            update={
                "phase": "ready",
                "target": str(target),
                "ready_s": ready_s,
                "release": chosen,
                "step": None,
            }
        )

        def released(release: str) -> None:  # `rollback-drill rollback` changed it
            write_state(directory, state.model_copy(update={"release": release}))

        handler = controller(stack, loaded, directory, chosen, released)
        with listening(directory) as control:  # before "ready": it answers then
            write_state(directory, state)
            print(
                f"stack up ({environment}) at {chosen} in {ready_s:.2f} s; target {target}",
                flush=True,
            )
            serve_requests(control, handler)  # until SIGTERM/SIGINT
    except _Stop as stop:
        during = f" during step: {stack.step}" if stack is not None and stack.step else ""
        print(f"signal {signal.Signals(stop.args[0]).name}{during}: tearing down", flush=True)
        return 0
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)
        if stack is not None:
            stack.down()
        shutil.rmtree(workdir, ignore_errors=True)
        _remove_state(directory, token)


# -- down ----------------------------------------------------------------------------------------
def down(directory: Path) -> int:
    directory = directory.resolve()
    with _exclusive(directory):
        state = read_state(directory)
        if state is None:
            print(f"no stack is up in {directory}")
            return 0
        found = Supervisor.inspect(state)
        if found.verdict == "running" and found.info is not None:
            return _stop_running(found.info, state, directory)
        if found.verdict == "gone":
            cleaned = _clean_after(state, directory)
            print(
                f"the supervisor (pid {state.pid}) was no longer running (killed?); "
                f"removed {cleaned.describe()}"
            )
            return 0
        print(found.describe_foreign())
        cleaned = _clean_after(state, directory)
        state_path(directory).unlink(missing_ok=True)
        print(f"removed the stale state.json ({cleaned.describe()})")
        return 0


def _stop_running(info: procfs.ProcessInfo, state: UpState, directory: Path) -> int:
    started = time.monotonic()
    procfs.signal_proven(info, signal.SIGTERM)
    try:
        Wait("supervisor exit", STOP_GRACE_S).until(lambda: not info.identity.alive())
        how = "stopped"
    except TimeoutError:
        # still the proven supervisor, a session leader: its group id is its own pid
        members = ownership.group_members(info.pid, info.start_ticks, None)
        procfs.kill_proven(members, signal.SIGKILL)
        how = f"did not stop within {STOP_GRACE_S:g} s: killed"
    cleaned = _clean_after(state, directory)
    extra = f"; removed {cleaned.describe()}" if cleaned else ""
    print(
        f"stack down: supervisor pid {info.pid} {how} in {time.monotonic() - started:.1f} s{extra}"
    )
    return 0


__all__ = ["UpState", "down", "read_state", "serve", "up"]
