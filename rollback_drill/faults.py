"""The fault catalogue: named, reversible ways to break a running stack. A fault is what a
drill injects and what the checks' own tests use to prove each check can fail."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from rollback_drill import configbackup
from rollback_drill.procedures.base import DrillContext
from rollback_drill.stack.base import Stack


class Fault(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def description(self) -> str: ...

    def inject(self, ctx: DrillContext) -> dict[str, object]: ...


@dataclass(frozen=True)
class DeployBadRelease:
    """A release rollout, as a deploy pipeline does it: save the configuration, then roll the
    new release onto every app service. The fault is whatever that release breaks."""

    name: str = "deploy_bad_release"
    description: str = "deploy release N+1 over N (its defect then shows in production)"

    def inject(self, ctx: DrillContext) -> dict[str, object]:
        archive = configbackup.backup(ctx.stack.config_dir, ctx.artifacts / "config-backups")
        ctx.facts["config_backup"] = archive
        for service in ctx.stack.app_services():
            ctx.stack.deploy(service, ctx.bad_release)
        return {"release": ctx.bad_release, "config_backup": archive.name}


@dataclass(frozen=True)
class StopService:
    service: str
    name: str = "stop_service"
    description: str = "a service stops (crash or operator error)"

    def inject(self, ctx: DrillContext) -> dict[str, object]:
        ctx.stack.stop(self.service)
        return {"service": self.service}


@dataclass(frozen=True)
class PauseService:
    """Frozen, not dead: connections open but nothing answers (database connectivity loss)."""

    service: str
    name: str = "pause_service"
    description: str = "a service freezes (connectivity loss)"

    def inject(self, ctx: DrillContext) -> dict[str, object]:
        ctx.stack.pause(self.service)
        return {"service": self.service}


def stop_all(stack: Stack, services: list[str]) -> list[str]:
    stopped = []
    for service in reversed(services):
        if stack.is_running(service):
            stack.stop(service)
            stopped.append(service)
    return stopped
