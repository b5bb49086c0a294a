"""The verification a procedure step performs itself (the runbook's `curl -f` lines between
steps): a service answers healthy as the release it was rolled back to, and stays so for a
moment - the runbook's "sleep 30" is waiting to see that it holds, not just that it started."""

from __future__ import annotations

from rollback_drill.checks import BY_NAME
from rollback_drill.checks.result import run_checks_concurrently
from rollback_drill.process.wait import Wait
from rollback_drill.steps.procedure import DrillContext, StepResult

STAYS_HEALTHY_S = 1.0


def answers_as_good_release(ctx: DrillContext, service: str) -> StepResult:
    """Wait until `service` answers as the good release, then watch it for a moment."""
    stack, release = ctx.stack, ctx.good_release
    took = Wait(f"{service} answering as release {release}", stack.start_timeout(service)).until(
        lambda: stack.answers_as(service) == release
    )
    seen: list[str | None] = [release]

    def same() -> bool:
        seen[0] = stack.answers_as(service)
        return seen[0] == release

    if not Wait(f"{service} staying up", STAYS_HEALTHY_S, 0.1).holds(same):
        raise RuntimeError(
            f"{service} answered as release {release}, then as {seen[0] or 'nothing'} "
            f"within {STAYS_HEALTHY_S:.0f} s: it does not stay up"
        )
    return StepResult({"service": service, "release": release, "healthy_after_s": round(took, 3)})


def checks_pass(ctx: DrillContext, *names: str) -> StepResult:
    """The named runbook checks pass against the stack now."""
    outcomes = run_checks_concurrently([BY_NAME[n] for n in names], ctx.stack.target())
    failed = [o.result.explain() for o in outcomes if o.failed and o.result]
    if failed:
        raise RuntimeError("; ".join(failed))
    return StepResult({"passed": [o.check.name for o in outcomes if o.result is not None]})
