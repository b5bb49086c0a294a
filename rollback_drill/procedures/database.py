"""Database Rollback > MongoDB Rollback: stop the services that use the database, restore the
backup taken before the deploy, start them again, verify the data.

The restore (stores.restore) cannot half-finish, writes only what differs from the backup,
and is verified against it: every collection's count, content hash, indexes and options. The
runbook's `mongosh` line is run as written and its output kept: as written it prints only
"switched to db safepsy;" (in `--eval`, mongosh's `use` takes the rest of the script as the
database name), so the counts it means to show are the restore's verification. Last, the
recovery point: every write users had acknowledged, looked for where it landed.

The Staging Database Rollback reuses these steps' actions with its own runbook commands
(procedures/staging.py). The matrix answers data corruption - a
critical issue - with its critical row: five minutes, whatever the runbook calls the rollback.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from rollback_drill.failures.datascenarios import PRE_DEPLOY_BACKUP, WRITER
from rollback_drill.failures.userwrites import RecoveryPoint, recovery_point
from rollback_drill.steps.facts import Fact
from rollback_drill.steps.procedure import DrillContext, Procedure, Step, StepResult
from rollback_drill.steps.timeline import FAULT_INJECTED, Artifact
from rollback_drill.stores import mongo

DATABASE_USERS = ("backend", "ai-chatbot")
"""The services the runbook stops before it restores: those that use MongoDB."""
RUNBOOK_EVAL = """
  use safepsy;
  db.users.countDocuments();
  db.sessions.countDocuments();
"""
RESTORED = Fact[mongo.RestoreReport]("database restore", "what the restore did, and its check")
RECOVERY = Fact[RecoveryPoint]("recovery point", "the acknowledged writes the restore kept")


def stop_database_users(ctx: DrillContext) -> StepResult:
    """The services using the database stop; so do users' writes (the writer is one)."""
    writer = ctx.facts.get(WRITER)
    if writer is not None:
        writer.stop()
    stopped = []
    for service in reversed(DATABASE_USERS):
        if ctx.stack.is_running(service):
            ctx.stack.stop(service)
            stopped.append(service)
    acked = len(writer.snapshot()) if writer else None
    return StepResult({"stopped": stopped, "writes_acknowledged": acked})


def restore_database(ctx: DrillContext) -> StepResult:
    backup = ctx.facts[PRE_DEPLOY_BACKUP]
    target = ctx.stack.target()
    report = mongo.restore(
        target.mongodb_uri.reveal(), target.mongodb_database, backup.path / "mongodb"
    )
    ctx.facts[RESTORED] = report
    ctx.evidence["restore"] = report.to_json()
    if not report.equal:
        different = [p for d in report.verified for p in d.problems] + list(report.surplus)
        raise RuntimeError("the database does not equal the backup: " + "; ".join(different))
    changed = {c.name: c.how for c in report.collections if c.how != "unchanged"}
    return StepResult(
        {"backup": backup.path.name, "atomic": report.atomic, "changed": changed,
         "seconds": report.to_json()["seconds"]},
        (Artifact("restore: every collection against the backup", "json", data=report.to_json()),),
    )  # fmt: skip


def start_database_users(ctx: DrillContext) -> StepResult:
    for service in DATABASE_USERS:
        ctx.stack.start(service)
    return StepResult({"started": list(DATABASE_USERS)})


def measure_recovery_point(ctx: DrillContext) -> RecoveryPoint:
    """Every write users had acknowledged, looked for; raises when one acknowledged before
    the backup began is gone (the backup held it, so the restore lost it)."""
    writer, backup = ctx.facts[WRITER], ctx.facts[PRE_DEPLOY_BACKUP]
    writer.stop()  # a procedure that never stopped it: what it wrote since is not judged here
    fault_at = ctx.timeline.started_wall + ctx.timeline.at(FAULT_INJECTED)
    point = recovery_point(
        writer.snapshot(), ctx.stack.target(), backup.started, backup.finished, fault_at
    )
    ctx.facts[RECOVERY] = point
    ctx.evidence["recovery_point"] = point.to_json()
    if not point.ok:
        raise RuntimeError(f"recovery point: {point.explain()}")
    return point


def verify_data(ctx: DrillContext) -> StepResult:
    """The runbook's mongosh line as written, the restore's verification, and the recovery
    point; a write acknowledged before the backup began and not kept fails the step."""
    with ThreadPoolExecutor(max_workers=1) as pool:  # mongosh starts in about a second
        runbook = pool.submit(ctx.stack.exec, "mongodb", ["mongosh", "--eval", RUNBOOK_EVAL])
        point = measure_recovery_point(ctx)
        code, output = runbook.result()
    report = ctx.facts[RESTORED]
    counts = {d.name: d.after.count if d.after else None for d in report.verified}
    shown = output.strip()
    return StepResult(
        {
            "runbook_command_exit": code,
            "runbook_command_output": shown[-300:],
            "runbook_command_shows_counts": any(str(n) in shown for n in counts.values() if n),
            "counts_after_restore": counts,
            "recovery_point": point.explain(),
        }
    )


PROCEDURE = Procedure(
    name="database: mongodb",
    runbook_section="Rollback Procedures > Database Rollback > MongoDB Rollback",
    rollback_type="emergency",
    reverts_release=False,  # restores data under the release that runs
    steps=(
        Step(
            "Stop services using database",
            "docker-compose stop backend ai-chatbot",
            stop_database_users,
        ),
        Step(
            "Restore database from backup",
            "./docker-manage.sh restore safepsy_backup_YYYYMMDD_HHMMSS.tar.gz production",
            restore_database,
            needs=(PRE_DEPLOY_BACKUP,),
            provides=(RESTORED,),
        ),
        Step("Restart services", "docker-compose start backend ai-chatbot", start_database_users),
        Step(
            "Verify data integrity",
            f'docker exec safepsy-mongodb mongosh --eval "{RUNBOOK_EVAL}"',
            verify_data,
            needs=(RESTORED, WRITER),
            provides=(RECOVERY,),
        ),
    ),
)
