"""Service-Specific Rollback: one service back to the previous release, the others untouched
(the drill proves they were never restarted). Frontend: clear the build cache, reinstall,
rebuild, deploy. Backend: roll back code and dependencies, rebuild, deploy, verify /health
and /api/did/health. AI chatbot: roll back, reinstall, deploy, verify /health."""

from __future__ import annotations

from rollback_drill.procedures.verify_steps import answers_as_good_release, checks_pass
from rollback_drill.stack import releases
from rollback_drill.steps.procedure import DrillContext, Procedure, Step, StepResult


def clear_build_cache(service: str) -> Step:
    def action(ctx: DrillContext) -> StepResult:
        build = ctx.stack.build_dir(service, ctx.good_release)
        return StepResult({"removed": releases.clear(build), "build": build.name})

    return Step("Clear build cache", "rm -rf build/ node_modules/", action)


def rebuild(service: str, runbook: str) -> Step:
    def action(ctx: DrillContext) -> StepResult:
        built = ctx.stack.rebuild(service, ctx.good_release)
        return StepResult({"service": service, "release": ctx.good_release, "build": str(built)})

    return Step("Rollback code and rebuild", runbook, action)


def deploy(service: str) -> Step:
    def action(ctx: DrillContext) -> StepResult:
        ctx.stack.redeploy(service, ctx.good_release)
        return StepResult({"service": service, "release": ctx.good_release})

    return Step(f"Deploy {service}", f"docker-compose up -d {service}", action)


def verify(service: str, runbook: str, *checks: str) -> Step:
    def action(ctx: DrillContext) -> StepResult:
        answered = answers_as_good_release(ctx, service)
        passed = checks_pass(ctx, *checks) if checks else StepResult()
        return StepResult({**answered.detail, **passed.detail})

    return Step("Verify", runbook, action)


FRONTEND = Procedure(
    name="service: frontend",
    runbook_section="Service-Specific Rollback > Frontend Rollback",
    rollback_type="partial",
    steps=(
        clear_build_cache("frontend"),
        rebuild("frontend", "git checkout HEAD~1; npm install; npm run build"),
        deploy("frontend"),
        verify("frontend", "curl -f http://localhost:80", "health.frontend"),
    ),
)

BACKEND = Procedure(
    name="service: backend",
    runbook_section="Service-Specific Rollback > Backend Rollback",
    rollback_type="partial",
    steps=(
        rebuild("backend", "git checkout HEAD~1; npm install; npm run build"),
        deploy("backend"),
        verify(
            "backend",
            "curl -f http://localhost:3000/health; curl -f http://localhost:3000/api/did/health",
            "health.backend",
            "health.did",
        ),
    ),
)

AI_CHATBOT = Procedure(
    name="service: ai-chatbot",
    runbook_section="Service-Specific Rollback > AI Chatbot Rollback",
    rollback_type="partial",
    steps=(
        rebuild("ai-chatbot", "git checkout HEAD~1; npm install"),
        deploy("ai-chatbot"),
        verify("ai-chatbot", "curl -f http://localhost:3001/health", "health.ai-chatbot"),
    ),
)
