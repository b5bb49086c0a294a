"""Scenarios of the data drills: what happens to the stores before the runbook's Database
Rollback is needed, with the instruments that measure what the rollback then costs.

`DeployAfterBackup` is a release going out as the runbook wants it: users keep writing (an
`AckWriter` keeps every acknowledged write), the stores are backed up (`./docker-manage.sh
backup production`), users write on, then the release is deployed and its migration runs.

`DeployThenRollBackApplication` is a release that went out and was rolled back as an
application only - code and configuration, its cache left as it was - while users stayed
signed in (a `SessionHolder` keeps sessions from before and during the release).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rollback_drill.failures.scenarios import CONFIG_BACKUP, DeployRelease
from rollback_drill.failures.userwrites import AckWriter, SessionHolder
from rollback_drill.files import storebackup
from rollback_drill.process.wait import Wait
from rollback_drill.steps.facts import Fact
from rollback_drill.steps.procedure import DrillContext, StepResult
from rollback_drill.stores.archive import MANIFEST


@dataclass(frozen=True)
class StoreBackup:
    """A backup of the stores and when it was taken (epoch seconds)."""

    path: Path
    started: float  # every write acknowledged before this is in it
    finished: float


PRE_DEPLOY_BACKUP = Fact[StoreBackup](
    "pre-deploy backup", "<env>_backup_<UTC>: the stores, backed up before the deploy"
)
WRITER = Fact[AckWriter]("acknowledged writes", "users' writes during the drill, each kept")
HELD_SESSIONS = Fact[SessionHolder](
    "held sessions", "signed-in sessions kept across the release and its rollback"
)


def take_backup(ctx: DrillContext, environment: str) -> StoreBackup:
    """`./docker-manage.sh backup <environment>`: both stores, named as the runbook's files."""
    prefix = "safepsy" if environment == "production" else environment
    dest = ctx.stack.backup_stores(
        ctx.artifacts / f"{prefix}_backup_{time.strftime('%Y%m%d_%H%M%S')}"
    )
    manifest = storebackup.load_mongo(dest / "mongodb" / MANIFEST)
    assert manifest.finished is not None, "a backup written now says when it finished"
    return StoreBackup(dest, manifest.created, manifest.finished)


def answering_as(ctx: DrillContext, service: str, release: str) -> None:
    Wait(f"{service} answering as release {release}", ctx.stack.start_timeout(service)).until(
        lambda: ctx.stack.answers_as(service) == release
    )


@dataclass(frozen=True)
class DeployAfterBackup:
    """See the module docstring."""

    environment: str = "production"
    name: str = "deploy_after_backup"
    description: str = (
        "back up the stores as users write, then deploy release N+1 and run its migration"
    )
    provides: tuple[Fact[Any], ...] = (CONFIG_BACKUP, PRE_DEPLOY_BACKUP, WRITER)
    changes_release: bool = True

    def inject(self, ctx: DrillContext) -> StepResult:
        writer = ctx.cleanup.enter_context(AckWriter(ctx.stack.target()))
        ctx.facts[WRITER] = writer
        writer.wait_for(2)  # writes the backup must keep
        backup = take_backup(ctx, self.environment)
        ctx.facts[PRE_DEPLOY_BACKUP] = backup
        writer.wait_for(2, since=backup.finished)  # writes a restore of it will lose
        deployed = DeployRelease().inject(ctx)
        before = sum(1 for a in writer.snapshot() if a.at < backup.started)
        return StepResult(
            {
                "backup": backup.path.name,
                "writes_acknowledged_before_the_backup": before,
                **deployed.detail,
            },
            deployed.artifacts,
        )


@dataclass(frozen=True)
class DeployThenRollBackApplication:
    """See the module docstring."""

    sessions: int = 10  # held from before the release, and as many again during it
    used_for_s: float = 2.0  # how long signed-in users use release N+1
    name: str = "deploy_then_roll_back_application"
    description: str = (
        "release N+1 goes out and signed-in users use it; the application alone is rolled "
        "back to N, its cache left as it was"
    )
    provides: tuple[Fact[Any], ...] = (CONFIG_BACKUP, HELD_SESSIONS)
    changes_release: bool = True

    def inject(self, ctx: DrillContext) -> StepResult:
        holder = SessionHolder(ctx.stack.target())
        holder.sign_in(self.sessions)
        ctx.facts[HELD_SESSIONS] = holder
        deployed = DeployRelease().inject(ctx)
        answering_as(ctx, "backend", ctx.bad_release)
        holder.sign_in(self.sessions)
        time.sleep(self.used_for_s)
        under_new = holder.ask()
        if under_new.kept != under_new.held:
            raise RuntimeError(
                f"release {ctx.bad_release} itself turned signed-in users away: "
                f"{under_new.to_json()}"
            )
        for service in ctx.stack.app_services():
            ctx.stack.deploy(service, ctx.good_release)
        answering_as(ctx, "backend", ctx.good_release)
        return StepResult(
            {
                **deployed.detail,
                "sessions_held": len(holder),
                "application_rolled_back_to": ctx.good_release,
            },
            deployed.artifacts,
        )


__all__ = [
    "HELD_SESSIONS",
    "PRE_DEPLOY_BACKUP",
    "WRITER",
    "DeployAfterBackup",
    "DeployThenRollBackApplication",
    "StoreBackup",
    "take_backup",
]
