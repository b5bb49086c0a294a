"""`rollback-drill rollback --backup FILE --environment ENV` (the runbook's
`auto-rollback.sh <backup_file> [environment]`) and `rollback-drill backup` (its
`./docker-manage.sh backup production`), against the reference stack: the one
`rollback-drill up` runs, found through its `state.json`.

That stack's servers belong to its supervisor process (only it can start and stop them), so
the command asks the supervisor over a Unix socket in the `up` directory (owner-only, and
the peer's uid is checked) to run the automation procedure - the same steps, time limits and
failure report a drill uses - and prints each step as it happens. The supervisor finishes a
rollback it has started even if the terminal that asked goes away: a rollback stopped
half-way by a closed laptop is worse than one that completes unseen (its outcome is in
`supervisor.log`).

Exit status: 0 rolled back and healthy (or backed up); 1 the rollback failed (the step, the
services' states and what to do next are printed); 2 nothing was done - no backup file given
(the runbook's usage line), a backup file that is not one, no stack up, another environment.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from rollback_drill.failures.scenarios import STORES_BACKUP
from rollback_drill.files.spec import LoadedStack
from rollback_drill.procedures import automation
from rollback_drill.process.errors import BackupFileError, NotDone
from rollback_drill.stack import backupfile
from rollback_drill.stack.base import Stack
from rollback_drill.stack.upstack.state import CONTROL, Stream, Supervisor, read_state
from rollback_drill.steps.failure import ProcedureFailed
from rollback_drill.steps.procedure import DrillContext
from rollback_drill.steps.timeline import Event, Timeline

CONNECT_TIMEOUT_S = 5.0


# -- the command's side ---------------------------------------------------------------------------
def _ask(directory: Path, environment: str, request: dict[str, Any]) -> int:
    directory = directory.resolve()
    state = read_state(directory)
    if state is None:
        raise NotDone(f"no stack is up in {directory} (start one with `rollback-drill up`)")
    found = Supervisor.inspect(state)
    if found.verdict != "running" or state.phase != "ready":
        raise NotDone(f"the stack in {directory} is not running ({found.verdict}, {state.phase})")
    if environment != state.environment:
        raise NotDone(
            f"the stack up in {directory} is the {state.environment} environment, not {environment}"
        )
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(CONNECT_TIMEOUT_S)
    try:
        conn.connect(str(directory / CONTROL))
    except OSError as exc:
        conn.close()
        raise NotDone(
            f"cannot reach the stack's supervisor at {directory / CONTROL}: {exc}"
        ) from None
    with conn:
        conn.settimeout(None)  # the procedure bounds itself: each step has its time limit
        conn.sendall(json.dumps(request).encode() + b"\n")
        for line in conn.makefile("r", encoding="utf-8"):
            message = json.loads(line)
            if "exit" in message:
                print(message["text"], file=sys.stdout if message["exit"] == 0 else sys.stderr)
                return int(message["exit"])
            print(message["text"], flush=True)
    print(
        f"the supervisor closed the connection before it answered; see {directory}/supervisor.log",
        file=sys.stderr,
    )
    return 1


def rollback(directory: Path, backup: Path | None, environment: str) -> int:
    """The `rollback` command."""
    if backup is None:
        print(automation.USAGE, file=sys.stderr)
        return 2
    try:
        with backupfile.opened(backup):  # refuse a file that is not a backup before anything
            pass
        return _ask(
            directory,
            environment,
            {"command": "rollback", "backup": str(backup.resolve()), "environment": environment},
        )
    except (NotDone, BackupFileError) as exc:
        print(f"rollback-drill rollback: {exc}; nothing was done", file=sys.stderr)
        return 2


def backup(directory: Path, environment: str, output: Path | None) -> int:
    """The `backup` command."""
    dest = (output or directory / "backups").resolve()
    try:
        return _ask(directory, environment, {"command": "backup", "dest": str(dest)})
    except NotDone as exc:
        print(f"rollback-drill backup: {exc}", file=sys.stderr)
        return 2


# -- the supervisor's side ------------------------------------------------------------------------
class _Steps:
    """Sends each procedure step to the asking command as it starts and ends."""

    def __init__(self, out: Stream) -> None:
        self.out = out

    def started(self, span: Event) -> None:
        if span.kind == "step":
            self.out.send(f"  {span.name} ...")

    def emitted(self, event: Event) -> None:
        if event.kind == "step":
            state = "ok" if event.ok else "FAILED"
            self.out.send(f"  {event.name}: {state} ({event.duration_s:.2f} s)")


class Controller:
    """What the supervisor does for `rollback` and `backup` requests on its stack."""

    def __init__(
        self,
        stack: Stack,
        loaded: LoadedStack,
        directory: Path,
        release: str,
        on_release: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.stack = stack
        self.loaded = loaded
        self.directory = directory
        self.release = release  # what the stack runs now
        self.on_release = on_release  # told when a rollback changed it

    def handle(self, request: dict[str, Any], out: Stream) -> tuple[int, str]:
        command = request.get("command")
        if command == "backup":
            path = backupfile.take(self.stack, Path(str(request["dest"])))
            return 0, f"backup: {path}"
        if command == "rollback":
            return self._rollback(Path(str(request["backup"])), out)
        return 2, f"unknown request {command!r}"

    def _rollback(self, backup: Path, out: Stream) -> tuple[int, str]:
        good = self.loaded.release(self.release).previous
        if good is None:
            return 2, (
                f"the stack runs release {self.release}, which names no previous release: "
                "nothing to roll back to; nothing was done"
            )
        try:
            with backupfile.opened(backup):
                pass
        except BackupFileError as exc:
            return 2, f"{exc}; nothing was done"
        row = next(
            r for r in self.loaded.spec.decision_matrix
            if r.rollback_type == automation.PROCEDURE.rollback_type
        )  # fmt: skip
        out.send(
            f"Starting automated rollback: {self.release} -> {good}\nBackup: {backup}\n"
            f"Environment: {self.loaded.spec.name}, budget {row.budget_s:.0f} s ({row.severity})"
        )
        stamp = time.strftime("%Y%m%d_%H%M%S")
        timeline = Timeline([_Steps(out)])
        ctx = DrillContext(
            self.stack, timeline, self.directory / "rollbacks" / stamp, self.release, good
        )
        ctx.facts[STORES_BACKUP] = backup
        started = time.monotonic()
        try:
            automation.PROCEDURE.run(ctx, deadline_s=row.budget_s)
        except ProcedureFailed as failed:
            return 1, f"Rollback FAILED\n  {failed}"
        took = time.monotonic() - started
        self.release = good
        self._expect_release(good)
        self.on_release(good)
        state = "within" if took < row.budget_s else "OVER"
        return 0, (
            f"Rollback completed successfully: release {good} in {took:.1f} s, {state} the "
            f"matrix's {row.severity} budget of {row.budget_s:.0f} s"
        )

    def _expect_release(self, release: str) -> None:
        """target.yaml now expects what the stack runs (the integrity baseline stays: it is
        the data before any change, which the restore must have kept)."""
        path = self.directory / "target.yaml"
        if not path.exists():
            return
        doc = yaml.safe_load(path.read_text())
        target = self.stack.target()
        expected = doc.setdefault("expected", {})
        expected["releases"] = dict(target.expected_releases or {})
        if target.expected_contract_version:
            expected["contract_version"] = target.expected_contract_version
        path.write_text(yaml.safe_dump(doc, sort_keys=False))


__all__ = ["Controller", "backup", "rollback"]
