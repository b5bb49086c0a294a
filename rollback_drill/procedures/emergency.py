"""Emergency Rollback (Critical Issues): stop, preserve, back up, revert, restore, start, check.

One deliberate reading of "Stop all services": the application tier stops first, the
emergency backup is taken while the stores are still up but nothing writes to them (a
logical backup needs a running server, and a quiet one gives a consistent copy), then the
stores stop too. The chain is external infrastructure and is never stopped.
"""

from __future__ import annotations

import time
from typing import Any

from rollback_drill import configbackup, report
from rollback_drill.checks import health
from rollback_drill.checks.result import run_checks
from rollback_drill.faults import stop_all
from rollback_drill.procedures.base import DrillContext, Procedure, Step
from rollback_drill.stack.base import DATA_SERVICES


def stop_application(ctx: DrillContext) -> dict[str, Any]:
    return {"stopped": stop_all(ctx.stack, ctx.stack.app_services())}


def preserve_logs(ctx: DrillContext) -> dict[str, Any]:
    path = ctx.artifacts / f"rollback-logs-{time.strftime('%Y%m%d_%H%M%S')}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as out:
        for service in ctx.stack.all_services():
            out.write(f"===== {service} =====\n{ctx.stack.logs(service)}\n")
    ctx.facts["preserved_logs"] = path
    report.attach_file("rollback logs (preserved)", path)
    return {"file": path.name, "bytes": path.stat().st_size}


def emergency_backup(ctx: DrillContext) -> dict[str, Any]:
    dest = ctx.stack.backup_stores(
        ctx.artifacts / f"emergency-backup-{time.strftime('%Y%m%d_%H%M%S')}"
    )
    ctx.facts["emergency_backup"] = dest
    report.attach_file("emergency backup manifest", dest / "mongodb" / "manifest.json")
    return {"dir": dest.name}


def stop_data(ctx: DrillContext) -> dict[str, Any]:
    return {"stopped": stop_all(ctx.stack, list(DATA_SERVICES))}


def revert_release(ctx: DrillContext) -> dict[str, Any]:
    for service in ctx.stack.app_services():
        ctx.stack.set_release(service, ctx.good_release)
    return {"release": ctx.good_release}


def restore_configuration(ctx: DrillContext) -> dict[str, Any]:
    archive = ctx.facts.get("config_backup")
    if archive is None:
        raise RuntimeError(
            "no configuration backup was taken before the deploy: nothing to restore"
        )
    restored = configbackup.restore(archive, ctx.stack.config_dir)
    return {"archive": archive.name, "files": sorted(restored)}


def start_previous(ctx: DrillContext) -> dict[str, Any]:
    for service in ctx.stack.all_services():
        ctx.stack.start(service)
    return {"started": ctx.stack.all_services()}


def verify_health(ctx: DrillContext) -> dict[str, Any]:
    outcomes = run_checks(health.CHECKS, ctx.stack.target())
    failed = [o.result.explain() for o in outcomes if o.result is not None and not o.result.ok]
    if failed:
        raise RuntimeError("health after rollback: " + "; ".join(failed))
    return {"healthy": [o.check.name for o in outcomes if o.result is not None]}


PROCEDURE = Procedure(
    name="emergency",
    runbook_section="Rollback Procedures > Emergency Rollback (Critical Issues)",
    severity="critical",
    steps=(
        Step("Stop application services", "./docker-manage.sh stop production", stop_application),
        Step(
            "Preserve current state for analysis",
            "docker-compose logs > rollback-logs-$(date).log",
            preserve_logs,
        ),
        Step("Create emergency backup", "./docker-manage.sh backup production", emergency_backup),
        Step("Stop data services", "./docker-manage.sh stop production", stop_data),
        Step("Revert to the previous release", "git checkout HEAD~1", revert_release),
        Step(
            "Restore previous configuration",
            "tar -xzf config-backup-*.tar.gz",
            restore_configuration,
        ),
        Step(
            "Rebuild and start the previous version",
            "./docker-manage.sh build/start production",
            start_previous,
        ),
        Step("Verify rollback success", "./docker-manage.sh health production", verify_health),
    ),
)
