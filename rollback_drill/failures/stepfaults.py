"""What goes wrong during a rollback itself, as faults a drill injects into one step of a
procedure (`Drill.faults`): the runbook's steps stay as they are, and the drill shows how the
procedure ends when the world does not cooperate - within its budget, naming the step, the
state it left each service in and what to do next.

- `HoldPort`: a stale process holds a service's port, so the service does not come back.
- `CutCopyShort`: a restore's copy is killed half-way (the operator's session dropped).
- `PauseService`: a dependency freezes, so a health check never turns green.
- `Hang`: the step's command never returns (storage that stopped answering), so only the
  step's time limit ends it.

Each is released at the drill's end (the port freed, the service thawed), so running the
procedure again on the same stack shows whether it converges.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rollback_drill.process.errors import RestoreInterrupted
from rollback_drill.stack.base import Stack
from rollback_drill.steps.facts import Fact
from rollback_drill.steps.procedure import DrillContext, StepAction, StepResult

Produced = StepResult | dict[str, Any] | None


def service_port(stack: Stack, service: str) -> int:
    """The host port users and checks reach `service` on."""
    target = stack.target()
    urls = {"backend": target.backend_url, "ai-chatbot": target.chatbot_url}
    url = urls.get(service, target.frontend_url)
    port = urlsplit(url).port
    if port is None:
        raise ValueError(f"{service}: no port in {url}")
    return port


@dataclass(eq=False)  # identity: a Drill holding it stays hashable
class HoldPort:
    """Before the step, a socket binds the service's host port (without SO_REUSEPORT), as a
    process left over from before would: the service cannot bind it and does not come back."""

    step: str
    service: str
    _held: list[socket.socket] = field(default_factory=list, repr=False)

    @property
    def description(self) -> str:
        return f"a stale process holds {self.service}'s port, so {self.service} cannot bind it"

    def perform(self, ctx: DrillContext, action: StepAction) -> Produced:
        port = service_port(ctx.stack, self.service)
        squatter = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do
        try:
            squatter.bind(("127.0.0.1", port))
            squatter.listen(1)
        except OSError as exc:
            squatter.close()
            raise RuntimeError(f"fault not injected: cannot hold port {port}: {exc}") from None
        self._held.append(squatter)
        return action(ctx)

    def release(self) -> None:
        while self._held:
            self._held.pop().close()


@dataclass(eq=False)  # identity: a Drill holding it stays hashable
class CutCopyShort:
    """Instead of the step's copy, only `fraction` of the backup reaches the live file, in
    place, and the copy dies: what a dropped session does to `cp` mid-file."""

    step: str
    backup: Fact[Path]
    fraction: float = 0.5

    @property
    def description(self) -> str:
        return f"the copy restoring {self.backup.name} is killed part-way ({self.fraction:.0%})"

    def perform(self, ctx: DrillContext, action: StepAction) -> Produced:
        source = ctx.facts[self.backup]
        live = source.with_name(source.name.removesuffix(".backup"))
        data = source.read_bytes()
        written = int(len(data) * self.fraction)
        with live.open("r+b") as out:  # in place, as cp writes over an existing file
            out.truncate(0)
            out.write(data[:written])
        raise RestoreInterrupted(
            f"cp {source.name} {live.name}: killed after {written} of {len(data)} bytes"
        )

    def release(self) -> None:
        """Nothing lingers: the half-written file is the state the drill reports."""


@dataclass(eq=False)  # identity: a Drill holding it stays hashable
class PauseService:
    """Before the step, `service` is frozen (SIGSTOP, `docker pause`): it holds connections and
    answers nothing, so what depends on it cannot turn healthy."""

    step: str
    service: str
    _paused: list[Stack] = field(default_factory=list, repr=False)

    @property
    def description(self) -> str:
        return f"{self.service} freezes (answers nothing) as this step begins"

    def perform(self, ctx: DrillContext, action: StepAction) -> Produced:
        ctx.stack.pause(self.service)
        self._paused.append(ctx.stack)
        return action(ctx)

    def release(self) -> None:
        while self._paused:
            self._paused.pop().unpause(self.service)


@dataclass(eq=False)  # identity: a Drill holding it stays hashable
class Hang:
    """The step's command never returns: it waits on something that does not answer, until the
    step's time limit cuts it off (or the fault is released)."""

    step: str
    _gone: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def description(self) -> str:
        return "the step's command never returns (the storage it reads stopped answering)"

    def perform(self, ctx: DrillContext, action: StepAction) -> Produced:
        self._gone.clear()
        while not self._gone.wait(0.5):
            pass
        return action(ctx)

    def release(self) -> None:
        self._gone.set()


__all__ = ["CutCopyShort", "Hang", "HoldPort", "PauseService", "RestoreInterrupted"]
