"""Staging Environment Rollback: the runbook's two staging procedures, each step doing what
its production twin does (the Emergency Rollback's stop, revert, rebuild and start; the
MongoDB Rollback's restore), with staging's own commands, so coverage counts them here.

Drills run them on a stack with the stack file's `staging` profile (its own seed size and
data, its own ports, its release). `./docker-manage.sh restore ... staging` stops the
services that use the database before it restores - why the runbook starts staging after -
and the start is followed by the recovery point, as in production.
"""

from __future__ import annotations

from rollback_drill.failures.datascenarios import PRE_DEPLOY_BACKUP, WRITER
from rollback_drill.procedures import database, emergency
from rollback_drill.steps.procedure import DrillContext, Procedure, Step, StepResult

ENVIRONMENT = "staging"


def stop_staging(ctx: DrillContext) -> StepResult:
    """`./docker-manage.sh stop staging`: the whole environment, apps first."""
    return StepResult({"stopped": emergency.stop_all(ctx.stack, ctx.stack.all_services())})


def rebuild_and_start(ctx: DrillContext) -> StepResult:
    return emergency.start_previous(ctx)


def restore_staging_database(ctx: DrillContext) -> StepResult:
    stopped = database.stop_database_users(ctx)
    restored = database.restore_database(ctx)
    return StepResult({**stopped.detail, **restored.detail}, restored.artifacts)


def start_staging(ctx: DrillContext) -> StepResult:
    for service in ctx.stack.all_services():
        ctx.stack.start(service)
    point = database.measure_recovery_point(ctx)
    return StepResult({"started": ctx.stack.all_services(), "recovery_point": point.explain()})


COMPLETE = Procedure(
    name="staging: complete",
    runbook_section="Staging Environment Rollback > Complete Staging Rollback",
    rollback_type="emergency",
    steps=(
        Step("Stop staging services", "./docker-manage.sh stop staging", stop_staging),
        Step("Rollback staging code", "git checkout HEAD~1", emergency.revert_release),
        Step(
            "Rebuild and deploy",
            "./docker-manage.sh build staging --no-cache; ./docker-manage.sh start staging",
            rebuild_and_start,
        ),
        Step("Verify", "./docker-manage.sh health staging", emergency.verify_health),
    ),
)

DATABASE = Procedure(
    name="staging: database",
    runbook_section="Staging Environment Rollback > Staging Database Rollback",
    rollback_type="emergency",
    reverts_release=False,  # restores data under the release that runs
    steps=(
        Step(
            "Restore staging database",
            "./docker-manage.sh restore staging_backup_YYYYMMDD_HHMMSS.tar.gz staging",
            restore_staging_database,
            needs=(PRE_DEPLOY_BACKUP,),
            provides=(database.RESTORED,),
        ),
        Step(
            "Restart staging services",
            "./docker-manage.sh start staging",
            start_staging,
            needs=(database.RESTORED, WRITER),
            provides=(database.RECOVERY,),
        ),
    ),
)
