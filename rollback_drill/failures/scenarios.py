"""What goes wrong in a drill: a release goes out, or a configuration changes, as a deploy
pipeline does it. The defect is then real behaviour of what was deployed.

A scenario declares the facts it leaves behind (the configuration archive a deploy takes, the
`.env.backup`s a configuration change keeps), so a procedure that needs them is wired before
any stack starts. An operator's edit of the live configuration is a scenario too; those live
in operatoredits.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from rollback_drill.failures.operatorfiles import env_file, keep_backup
from rollback_drill.files import configbackup
from rollback_drill.stack import backupfile
from rollback_drill.stack.base import Stack
from rollback_drill.steps.facts import Fact
from rollback_drill.steps.procedure import DrillContext, StepResult
from rollback_drill.steps.timeline import Artifact

CONFIG_BACKUP = Fact[Path](
    "configuration backup", "config-backup-*.tar.gz the deploy took of .env, nginx.conf, certs"
)
ENV_BACKUPS = Fact[dict[str, Path]](
    ".env backups", "service -> the .env.backup an operator made before editing .env"
)
STORES_BACKUP = Fact[Path](
    "stores backup", "safepsy_backup_*.tar.gz: MongoDB and Redis as they were before the deploy"
)


class Scenario(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def description(self) -> str: ...

    @property
    def provides(self) -> tuple[Fact[Any], ...]: ...

    @property
    def changes_release(self) -> bool:
        """True when it puts the drill's release out over the previous one; False when it
        is an operator's edit of the running release's configuration (the stack starts at
        the drill's release, and the rollback restores what the edit changed)."""

    def inject(self, ctx: DrillContext) -> StepResult: ...


@dataclass(frozen=True)
class DeployRelease:
    """A release rollout: save the configuration, then roll release N+1 onto every app service
    (apps first, the nginx front last), as the pipeline does."""

    name: str = "deploy_release"
    description: str = "deploy release N+1 over N (its defect then shows in production)"
    provides: tuple[Fact[Any], ...] = (CONFIG_BACKUP,)
    changes_release: bool = True

    def inject(self, ctx: DrillContext) -> StepResult:
        # Beside the stack, not in the report's folder: it holds the TLS key and the .env.
        archive = configbackup.backup(ctx.stack.config_dir, ctx.stack.workdir / "config-backups")
        ctx.facts[CONFIG_BACKUP] = archive
        for service in ctx.stack.app_services():
            ctx.stack.deploy(service, ctx.bad_release)
        migrated = run_migration(ctx.stack, ctx.bad_release)
        return StepResult(
            {"release": ctx.bad_release, "config_backup": archive.name, **migrated},
            (Artifact("configuration backup", path=archive, sensitive=True),),
        )


def run_migration(stack: Stack, release: str, timeout_s: float = 600.0) -> dict[str, Any]:
    """The release's data migration, as its deploy runs it: once, in its service's
    environment, after the code is out. {} for a release without one."""
    migration = stack.loaded.release(release).migration
    if migration is None:
        return {}
    stack.start(migration.service, wait_healthy=False)  # `docker exec` needs it running
    code, output = stack.exec(migration.service, list(migration.command), timeout_s=timeout_s)
    command = " ".join(migration.command)
    if code != 0:
        raise RuntimeError(
            f"release {release}'s migration `{command}` in {migration.service} exited "
            f"{code}: {output.strip()[-1500:]}"
        )
    return {"migration": command, "migration_output": output.strip()[-400:]}


@dataclass(frozen=True)
class BackupAndDeploy:
    """A pipeline that backs the stores up first (`./docker-manage.sh backup production`, the
    file `auto-rollback.sh` restores from), then rolls release N+1 out as `DeployRelease`."""

    name: str = "backup_and_deploy"
    description: str = "back the stores up, then deploy release N+1 over N"
    provides: tuple[Fact[Any], ...] = (STORES_BACKUP, CONFIG_BACKUP)
    changes_release: bool = True

    def inject(self, ctx: DrillContext) -> StepResult:
        backup = backupfile.take(ctx.stack, ctx.stack.workdir / "backups")
        ctx.facts[STORES_BACKUP] = backup
        deployed = DeployRelease().inject(ctx)
        return StepResult(
            {**deployed.detail, "stores_backup": backup.name},
            (*deployed.artifacts, Artifact("stores backup", path=backup, sensitive=True)),
        )


@dataclass(frozen=True)
class ChangeConfiguration:
    """A configuration change: an operator copies each `.env` to `.env.backup`, edits it to
    the new release's settings and restarts the service (`docker-compose restart`)."""

    name: str = "change_configuration"
    description: str = "change the services' .env (a configuration release) and restart them"
    provides: tuple[Fact[Any], ...] = field(default=(ENV_BACKUPS,))
    changes_release: bool = True

    def inject(self, ctx: DrillContext) -> StepResult:
        changed = changed_configuration(ctx)
        backups: dict[str, Path] = {}
        for service in changed:
            backups[service] = keep_backup(env_file(ctx.stack, service))
        ctx.facts[ENV_BACKUPS] = backups
        for service in changed:
            ctx.stack.deploy(service, ctx.bad_release)  # renders the new .env, restarts
        return StepResult(
            {
                "release": ctx.bad_release,
                "changed": changed,
                "env_backups": sorted(p.name for p in backups.values()),
            }
        )


def changed_configuration(ctx: DrillContext) -> list[str]:
    """App services whose settings differ between the good and the bad release."""
    loaded = ctx.stack.loaded
    bad, good = loaded.release(ctx.bad_release), loaded.release(ctx.good_release)
    changed = []
    for service in ctx.stack.app_services():
        if loaded.spec.services[service].kind != "app":
            continue
        before = good.services.get(service)
        after = bad.services.get(service)
        if (before.env if before else {}) != (after.env if after else {}):
            changed.append(service)
    if not changed:
        raise ValueError(
            f"release {ctx.bad_release} changes no service's settings against "
            f"{ctx.good_release}: not a configuration change"
        )
    return changed
