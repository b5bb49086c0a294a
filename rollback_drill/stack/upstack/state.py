"""What the `up` supervisor shares with the commands that talk to it, so that neither side
imports the other: state.json (`UpState`, read and written whole, and `Supervisor.inspect`,
the proof that the pid in it is still our supervisor) and the control socket in the same
directory - where it is, who may connect (the owner only), and its messages: one JSON request
line from the command, JSON answer lines back (`Stream`), the last one carrying `exit`.

The supervisor (`supervisor.serve`) is handed what answers the requests (a `Handler`, made by
`rollback-drill serve`: the autorollback controller that runs the automation procedure); the
commands `rollback` and `backup` (cli/autorollback.py) find the supervisor through
state.json and ask it over the socket.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NoReturn, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rollback_drill.files.userfiles import read_json
from rollback_drill.process import procfs
from rollback_drill.process.errors import SpecError
from rollback_drill.process.procfs import ProcessIdentity

if TYPE_CHECKING:
    from rollback_drill.files.spec import LoadedStack
    from rollback_drill.stack.base import Stack

STATE_FORMAT = "rollback-drill/up-state/1"
CONTROL = "control.sock"  # where the supervisor answers `rollback` and `backup` (autorollback)


class UpState(BaseModel):
    """state.json. Read back by `down` and `up`, so validated: a damaged file is one clear
    error, and a state without start time or token proves nothing about its pid."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    format: str = STATE_FORMAT
    pid: int = Field(ge=1)
    start_ticks: int | None = Field(default=None, ge=0)
    token: str | None = None
    phase: Literal["starting", "ready"] = "ready"
    workdir: str | None = None
    target: str | None = None
    ready_s: float | None = None
    release: str | None = None
    environment: str = "production"  # what `rollback --environment` must name
    step: str | None = None  # what a starting stack is doing (a hung start names it)

    @property
    def identity(self) -> ProcessIdentity | None:
        if self.start_ticks is None:
            return None
        return ProcessIdentity(self.pid, self.start_ticks)


def state_path(directory: Path) -> Path:
    return directory / "state.json"


def read_state(directory: Path) -> UpState | None:
    path = state_path(directory)
    if not path.exists():
        return None
    data = read_json(path, "the state `rollback-drill up` writes")
    if not isinstance(data, dict):
        raise SpecError(
            f"{path}: expected a JSON object (the state `rollback-drill up` writes), "
            f"got {type(data).__name__}"
        )
    try:
        return UpState.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "(top level)"
        raise SpecError(
            f"{path}: {field}: {err['msg']} (the state `rollback-drill up` writes; "
            "delete the file if no stack is up)"
        ) from None


def write_state(directory: Path, state: UpState) -> None:
    path = state_path(directory)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(state.model_dump_json(indent=2))
    tmp.replace(path)  # a reader sees the old state or the new one, never half of one


@dataclass(frozen=True)
class Supervisor:
    """What state.json's pid is now: ours and running, gone, or someone else's process."""

    state: UpState
    verdict: Literal["running", "gone", "foreign", "unproven"]
    info: procfs.ProcessInfo | None

    @classmethod
    def inspect(cls, state: UpState) -> Supervisor:
        info = procfs.read_process(state.pid)
        if info is None or not info.running:
            return cls(state, "gone", None)
        if state.identity is None or state.token is None:
            return cls(state, "unproven", info)
        argv = procfs.cmdline(state.pid)
        ours = info.identity == state.identity and "serve" in argv and state.token in argv
        return cls(state, "running" if ours else "foreign", info)

    def describe_foreign(self) -> str:
        command = " ".join(procfs.cmdline(self.state.pid))[:120] or "?"
        why = (
            "state.json carries no start time or token to prove it"
            if self.verdict == "unproven"
            else "its start time or command line does not match"
        )
        return (
            f"pid {self.state.pid} in state.json is not this stack's supervisor ({why}; it "
            f"runs `{command}`): it was not signalled"
        )


# -- the control socket ---------------------------------------------------------------------------
class Stream:
    """The supervisor's answer to one request: JSON lines `{"text": ...}` as the work goes on,
    the last one with `exit` (the command's exit status). A command that went away no longer
    gets them (the work goes on)."""

    def __init__(self, conn: socket.socket) -> None:
        self._conn: socket.socket | None = conn

    def send(self, text: str, **extra: Any) -> None:
        print(text, flush=True)  # supervisor.log keeps the story either way
        if self._conn is None:
            return
        try:
            self._conn.sendall(json.dumps({"text": text, **extra}).encode() + b"\n")
        except OSError:
            self._conn = None


class Handler(Protocol):
    """What answers the requests on the control socket: (exit status, last text)."""

    def handle(self, request: dict[str, Any], out: Stream) -> tuple[int, str]: ...


HandlerFactory = Callable[["Stack", "LoadedStack", Path, str, Callable[[str], None]], Handler]
"""Makes the handler for the stack the supervisor runs: (stack, its loaded file, the `up`
directory, the release it runs, told when a rollback changed that release)."""


def _peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[1])


@contextlib.contextmanager
def listening(directory: Path) -> Iterator[socket.socket]:
    """The control socket, owner-only; removed when the block ends."""
    path = directory / CONTROL
    path.unlink(missing_ok=True)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        server.bind(str(path))
    finally:
        os.umask(old)
    server.listen(4)
    try:
        yield server
    finally:
        server.close()
        path.unlink(missing_ok=True)


def serve_requests(server: socket.socket, controller: Handler) -> NoReturn:
    """Answer requests one at a time, in this (the main) thread, until a signal ends it."""
    while True:
        conn, _ = server.accept()
        with conn:
            if _peer_uid(conn) != os.getuid():
                continue
            out = Stream(conn)
            try:
                line = conn.makefile("r", encoding="utf-8").readline()
                request = json.loads(line)
                code, text = controller.handle(request, out)
            except Exception as exc:  # a bad request must not end the supervisor
                code, text = 1, f"the supervisor could not do it: {type(exc).__name__}: {exc}"
            out.send(text, exit=code)


__all__ = [
    "CONTROL",
    "STATE_FORMAT",
    "Handler",
    "HandlerFactory",
    "Stream",
    "Supervisor",
    "UpState",
    "listening",
    "read_state",
    "serve_requests",
    "state_path",
    "write_state",
]
