"""Rollback Automation: the runbook's `auto-rollback.sh <backup_file> [environment]` as a
procedure - stop, restore the database, revert the code, rebuild, start, health.

The same steps run in a drill (drills/test_automation.py, timed against the matrix) and from
`rollback-drill rollback --backup FILE --environment ENV` against the stack `rollback-drill up`
runs (rollback_drill/cli/autorollback.py). One reading of "Stop services": the application tier
stops; the stores stay up, because the restore needs a running server to restore into (as
`docker-manage.sh restore` starts the database container to run mongorestore in it), and a
store that is down is started before the restore.

"Start" starts every service it can and then names each that did not come back - as
`docker-compose up -d` does - rather than stopping at the first, so the failure says the
state of all of them. Every step is safe to repeat: the restore replaces the collections, the
revert and rebuild produce the same build, a start of a running service does nothing.
"""

from __future__ import annotations

import re

from rollback_drill.checks import health
from rollback_drill.checks.result import run_checks
from rollback_drill.failures.scenarios import STORES_BACKUP
from rollback_drill.procedures.emergency import stop_all
from rollback_drill.process.errors import StackError, WaitTimeout
from rollback_drill.process.wait import Wait
from rollback_drill.stack import backupfile
from rollback_drill.stack.base import DATA_SERVICES
from rollback_drill.steps.failure import RERUN
from rollback_drill.steps.procedure import DrillContext, Procedure, Step, StepResult

_WHY = re.compile(r"error|emerg|fatal|in use|not found", re.IGNORECASE)  # a log line saying why
USAGE = "Usage: rollback-drill rollback --backup <backup_file> [--environment <environment>]"
HEALTH_TIMEOUT_S = 20.0


def stop_services(ctx: DrillContext) -> StepResult:
    return StepResult({"stopped": stop_all(ctx.stack, ctx.stack.app_services())})


def restore_database(ctx: DrillContext) -> StepResult:
    backup = ctx.facts[STORES_BACKUP]
    started = []
    for service in DATA_SERVICES:
        if not ctx.stack.is_running(service):
            ctx.stack.start(service)
            started.append(service)
    with backupfile.opened(backup) as folder:
        restored = ctx.stack.restore_stores(folder)
    return StepResult({"backup": backup.name, "restored": restored, "started first": started})


def revert_code(ctx: DrillContext) -> StepResult:
    for service in ctx.stack.app_services():
        ctx.stack.set_release(service, ctx.good_release)
    return StepResult({"release": ctx.good_release, "services": ctx.stack.app_services()})


def rebuild(ctx: DrillContext) -> StepResult:
    for service in ctx.stack.app_services():
        ctx.stack.rebuild(service, ctx.good_release)
    return StepResult({"rebuilt": ctx.stack.app_services(), "release": ctx.good_release})


def start_all(ctx: DrillContext) -> StepResult:
    started, failed = [], {}
    for service in ctx.stack.all_services():
        if ctx.stack.is_running(service):
            continue
        try:
            ctx.stack.start(service)
            started.append(service)
        except StackError as exc:
            lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
            error = next((ln for ln in reversed(lines[1:]) if _WHY.search(ln)), None)
            failed[service] = "; ".join(x for x in (*lines[:1], error or "") if x)[:600]
    if failed:
        raise StackError(
            "did not come back: "
            + "; ".join(f"{s} ({why})" for s, why in failed.items())
            + (f"; started: {', '.join(started)}" if started else "")
        )
    return StepResult({"started": started})


def health_check(ctx: DrillContext) -> StepResult:
    last: list[str] = []

    def healthy() -> bool:
        outcomes = run_checks(health.CHECKS, ctx.stack.target())
        last[:] = [
            o.result.explain() if o.result else f"{o.check.name}: not verified ({o.skipped})"
            for o in outcomes
            if o.result is None or not o.result.ok
        ]
        return not last

    try:
        took = Wait("every health check passing", HEALTH_TIMEOUT_S, 0.2).until(healthy)
    except WaitTimeout as exc:
        raise RuntimeError(f"{exc}; still failing: {'; '.join(last)}") from None
    return StepResult({"healthy_after_s": round(took, 3), "checks": len(health.CHECKS)})


PROCEDURE = Procedure(
    name="automation: auto-rollback",
    runbook_section="Rollback Automation > Automated Rollback Script",
    rollback_type="emergency",  # the scripted answer to the matrix's critical row
    steps=(
        Step(
            "Stop services",
            "./docker-manage.sh stop $ENVIRONMENT",
            stop_services,
            timeout_s=60,
            recovery=f"stop what is still running by hand (`docker-compose stop`), {RERUN}",
        ),
        Step(
            "Restore database",
            "./docker-manage.sh restore $BACKUP_FILE $ENVIRONMENT",
            restore_database,
            needs=(STORES_BACKUP,),
            timeout_s=120,
            recovery="the database may hold part of the backup: the application is still "
            f"stopped, so nothing reads it; make the store answer again, {RERUN} (the restore "
            "replaces every collection)",
        ),
        Step("Rollback code", "git checkout HEAD~1", revert_code, timeout_s=30),
        Step(
            "Rebuild",
            "./docker-manage.sh build $ENVIRONMENT --no-cache",
            rebuild,
            timeout_s=120,
        ),
        Step(
            "Start",
            "./docker-manage.sh start $ENVIRONMENT",
            start_all,
            timeout_s=120,
            recovery="a service did not come back (the cause names each one and why, the "
            "states say what runs): free what it needs - a port another process holds, a "
            f"store - {RERUN}",
        ),
        Step(
            "Verify",
            "./docker-manage.sh health $ENVIRONMENT",
            health_check,
            timeout_s=40,
            recovery="everything runs but a health check stays red: the services' states name "
            f"the one and what its /health says; bring back what it depends on, {RERUN}",
        ),
    ),
)

__all__ = ["PROCEDURE", "USAGE"]
