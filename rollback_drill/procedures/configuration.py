"""Configuration Rollback > Environment Variables: put each service's `.env.backup` back and
restart the services (`docker-compose restart backend ai-chatbot`), then check each answers
as the release its restored configuration names."""

from __future__ import annotations

import shutil

from rollback_drill.procedures.base import DrillContext, Procedure, Step, StepResult
from rollback_drill.procedures.verify_steps import answers_as_good_release
from rollback_drill.scenarios import ENV_BACKUPS

ENV_SERVICES = ("backend", "ai-chatbot")


def restore_env(ctx: DrillContext) -> StepResult:
    restored = []
    for _service, backup in sorted(ctx.facts[ENV_BACKUPS].items()):
        live = backup.with_name(backup.name.removesuffix(".backup"))
        shutil.copy2(backup, live)
        restored.append(live.name)
    return StepResult({"restored": restored})


def restart_services(ctx: DrillContext) -> StepResult:
    for service in ENV_SERVICES:
        ctx.stack.restart(service)
    return StepResult({"restarted": list(ENV_SERVICES)})


def verify_services(ctx: DrillContext) -> StepResult:
    detail = {}
    for service in ENV_SERVICES:
        detail[service] = answers_as_good_release(ctx, service).detail
    return StepResult(detail)


ENVIRONMENT = Procedure(
    name="configuration: environment variables",
    runbook_section="Configuration Rollback > Environment Variables",
    rollback_type="configuration",
    steps=(
        Step(
            "Restore previous environment",
            "cp backend/.env.backup backend/.env; cp ai-chatbot/.env.backup ai-chatbot/.env",
            restore_env,
            needs=(ENV_BACKUPS,),
        ),
        Step("Restart services", "docker-compose restart backend ai-chatbot", restart_services),
        Step(
            "Verify",
            "curl -f http://localhost:3000/health; curl -f http://localhost:3001/health",
            verify_services,
        ),
    ),
)
