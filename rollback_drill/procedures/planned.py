"""Planned Rollback (Non-Critical Issues): make a rollback point, then roll the services back
one at a time - backend, wait and verify, frontend, ai-chatbot - while users keep using the
service. Each service is replaced without a gap (`Stack.redeploy`), and the drill judges the
error rate users saw during every step against the critical threshold."""

from __future__ import annotations

import time
from pathlib import Path

from rollback_drill.files import configbackup
from rollback_drill.files.drillartifacts import RollbackPoint
from rollback_drill.procedures.verify_steps import answers_as_good_release, checks_pass
from rollback_drill.steps.facts import Fact
from rollback_drill.steps.procedure import DrillContext, Procedure, Step, StepResult
from rollback_drill.steps.timeline import Artifact

ROLLBACK_POINT = Fact[Path]("rollback point", "rollback-<UTC>: what each service ran before")
STATE_BACKUP = Fact[Path]("state backup", "the stores' backup taken as the rollback point")
ROLLBACK_STATE = Fact[Path](
    "rollback state archive", "rollback-state-*.tar.gz of the .env files and nginx.conf"
)
ORDER = ("backend", "frontend", "ai-chatbot")
VERIFIED = {
    service: Fact[str](f"{service} verified", f"{service} answers as the release rolled back to")
    for service in ORDER
}


def create_rollback_point(ctx: DrillContext) -> StepResult:
    stamp = time.strftime("%Y%m%d_%H%M%S")
    point = ctx.artifacts / f"rollback-{stamp}.json"
    releases = {s: ctx.stack.release_of(s) for s in ctx.stack.app_services()}
    made = RollbackPoint(tag=f"rollback-{stamp}", releases=releases)
    made.save(point)
    ctx.facts[ROLLBACK_POINT] = point
    return StepResult(made.model_dump())


def backup_state(ctx: DrillContext) -> StepResult:
    dest = ctx.stack.backup_stores(ctx.artifacts / f"state-backup-{time.strftime('%Y%m%d_%H%M%S')}")
    ctx.facts[STATE_BACKUP] = dest
    archive = configbackup.backup(ctx.stack.config_dir, ctx.artifacts, label="rollback-state")
    ctx.facts[ROLLBACK_STATE] = archive
    return StepResult(
        {"backup": dest.name, "archive": archive.name},
        (Artifact("rollback state archive", path=archive, sensitive=True),),
    )


def roll_back(service: str, after: str | None) -> Step:
    """`git checkout HEAD~1 -- SERVICE/ && build && docker-compose up -d SERVICE`, only once
    the service before it in the gradual order has been verified."""

    def action(ctx: DrillContext) -> StepResult:
        ctx.stack.rebuild(service, ctx.good_release)
        ctx.stack.redeploy(service, ctx.good_release)
        return StepResult({"service": service, "release": ctx.good_release})

    build = "npm install" if service == "ai-chatbot" else "npm run build"
    return Step(
        f"Rollback {service}",
        f"git checkout HEAD~1 -- {service}/; cd {service} && {build}; "
        f"docker-compose up -d {service}",
        action,
        needs=(VERIFIED[after],) if after else (ROLLBACK_POINT, STATE_BACKUP),
    )


def wait_and_verify(service: str, runbook: str) -> Step:
    def action(ctx: DrillContext) -> StepResult:
        result = answers_as_good_release(ctx, service)
        ctx.facts[VERIFIED[service]] = ctx.good_release
        return result

    return Step(f"Wait and verify {service}", runbook, action, provides=(VERIFIED[service],))


PROCEDURE = Procedure(
    name="planned",
    runbook_section="Rollback Procedures > Planned Rollback (Non-Critical Issues)",
    rollback_type="planned",
    steps=(
        Step(
            "Create rollback point",
            "git tag rollback-$(date +%Y%m%d_%H%M%S)",
            create_rollback_point,
            provides=(ROLLBACK_POINT,),
        ),
        Step(
            "Backup current state",
            "./docker-manage.sh backup production; tar -czf "
            "rollback-state-$(date +%Y%m%d_%H%M%S).tar.gz backend/.env ai-chatbot/.env "
            "nginx/nginx.conf",
            backup_state,
            provides=(STATE_BACKUP, ROLLBACK_STATE),
        ),
        roll_back("backend", after=None),
        wait_and_verify("backend", "sleep 30; curl -f http://localhost:3000/health"),
        roll_back("frontend", after="backend"),
        wait_and_verify("frontend", "curl -f http://localhost:80"),
        roll_back("ai-chatbot", after="frontend"),
        wait_and_verify("ai-chatbot", "curl -f http://localhost:3001/health"),
        Step(
            "Verify the user flows",
            "curl -X POST http://localhost:3000/api/auth/login -H "
            '"Content-Type: application/json" '
            '-d \'{"email":"test@safepsy.com","password":"testpass"}\'; '
            "curl -X GET http://localhost:3000/api/did/health; "
            "curl -X POST http://localhost:3001/api/chat -H "
            '"Content-Type: application/json" '
            '-d \'{"message":"Hello"}\'',
            lambda ctx: checks_pass(ctx, "flow.login", "flow.did", "flow.chat"),
            needs=tuple(VERIFIED.values()),
        ),
    ),
)
