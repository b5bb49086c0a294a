"""Emergency Rollback (Critical Issues): stop, preserve, back up, revert, restore, start, check.

One deliberate reading of "Stop all services": the application tier stops first, the
emergency backup is taken while the stores are still up but nothing writes to them (a
logical backup needs a running server, and a quiet one gives a consistent copy), then the
stores stop too. The chain is external infrastructure and is never stopped.
"""

from __future__ import annotations

import time
from pathlib import Path

from rollback_drill.checks import health
from rollback_drill.checks.result import run_checks
from rollback_drill.failures.scenarios import CONFIG_BACKUP
from rollback_drill.files import configbackup
from rollback_drill.stack import servicelogs
from rollback_drill.stack.base import DATA_SERVICES, Stack
from rollback_drill.steps.facts import Fact
from rollback_drill.steps.procedure import DrillContext, Procedure, Step, StepResult
from rollback_drill.steps.timeline import Artifact

PRESERVED_LOGS = Fact[Path]("preserved logs", "rollback-logs-*.log: every service's log")
EMERGENCY_BACKUP = Fact[Path]("emergency backup", "the stores' backup taken before reverting")


def stop_all(stack: Stack, services: list[str]) -> list[str]:
    """Stop these services in reverse start order; return the ones that were running."""
    stopped = []
    for service in reversed(services):
        if stack.is_running(service):
            stack.stop(service)
            stopped.append(service)
    return stopped


def stop_application(ctx: DrillContext) -> StepResult:
    return StepResult({"stopped": stop_all(ctx.stack, ctx.stack.app_services())})


def preserve_logs(ctx: DrillContext) -> StepResult:
    path = servicelogs.write(
        ctx.stack, ctx.artifacts / f"rollback-logs-{time.strftime('%Y%m%d_%H%M%S')}.log"
    )
    ctx.facts[PRESERVED_LOGS] = path
    return StepResult(
        {"file": path.name, "bytes": path.stat().st_size},
        (Artifact("rollback logs (preserved)", path=path),),
    )


def emergency_backup(ctx: DrillContext) -> StepResult:
    dest = ctx.stack.backup_stores(
        ctx.artifacts / f"emergency-backup-{time.strftime('%Y%m%d_%H%M%S')}"
    )
    ctx.facts[EMERGENCY_BACKUP] = dest
    manifest = dest / "mongodb" / "manifest.json"
    return StepResult(
        {"dir": dest.name}, (Artifact("emergency backup manifest", "json", path=manifest),)
    )


def stop_data(ctx: DrillContext) -> StepResult:
    return StepResult({"stopped": stop_all(ctx.stack, list(DATA_SERVICES))})


def revert_release(ctx: DrillContext) -> StepResult:
    for service in ctx.stack.app_services():
        ctx.stack.set_release(service, ctx.good_release)
    return StepResult({"release": ctx.good_release})


def restore_configuration(ctx: DrillContext) -> StepResult:
    archive = ctx.facts[CONFIG_BACKUP]
    restored = configbackup.restore(archive, ctx.stack.config_dir)
    return StepResult({"archive": archive.name, "files": sorted(restored)})


def start_previous(ctx: DrillContext) -> StepResult:
    for service in ctx.stack.app_services():
        ctx.stack.rebuild(service, ctx.good_release)
    for service in ctx.stack.all_services():
        ctx.stack.start(service)
    return StepResult({"rebuilt": ctx.stack.app_services(), "started": ctx.stack.all_services()})


def verify_health(ctx: DrillContext) -> StepResult:
    outcomes = run_checks(health.CHECKS, ctx.stack.target())
    failed = [o.result.explain() for o in outcomes if o.result is not None and not o.result.ok]
    if failed:
        raise RuntimeError("health after rollback: " + "; ".join(failed))
    return StepResult({"healthy": [o.check.name for o in outcomes if o.result is not None]})


PROCEDURE = Procedure(
    name="emergency",
    runbook_section="Rollback Procedures > Emergency Rollback (Critical Issues)",
    rollback_type="emergency",
    steps=(
        Step("Stop application services", "./docker-manage.sh stop production", stop_application),
        Step(
            "Preserve current state for analysis",
            "docker-compose logs > rollback-logs-$(date +%Y%m%d_%H%M%S).log",
            preserve_logs,
            provides=(PRESERVED_LOGS,),
        ),
        Step(
            "Create emergency backup",
            "./docker-manage.sh backup production",
            emergency_backup,
            provides=(EMERGENCY_BACKUP,),
        ),
        Step("Stop data services", "./docker-manage.sh stop production", stop_data),
        Step("Rollback to previous version", "git checkout HEAD~1", revert_release),
        Step(
            "Restore previous configuration",
            "cp config-backup-*.tar.gz .; tar -xzf config-backup-*.tar.gz",
            restore_configuration,
            needs=(CONFIG_BACKUP,),
        ),
        Step(
            "Rebuild and deploy previous version",
            "./docker-manage.sh build production --no-cache; ./docker-manage.sh start production",
            start_previous,
        ),
        Step(
            "Verify rollback success",
            "./docker-manage.sh health production; curl -f http://localhost:3000/health; "
            "curl -f http://localhost:80",
            verify_health,
        ),
    ),
)
