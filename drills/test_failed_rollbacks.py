"""Runbook: Rollback Testing > Test Scenarios - rollbacks that go wrong.

Each drill is a real drill (a release or an operator's change goes out under load, monitoring
detects it, the matrix decides) whose rollback meets a fault in one of its steps: a service
that does not come back, a restore that is interrupted, a health check that never turns green,
a step that hangs. Each must end within its budget in a clear failure that names the step, the
state it left each service in and what to do next - and once the fault is gone, running the
procedure again on the same stack must converge to green.

These drills are expected to fail, and their tests assert how. They are rehearsals of the
procedures' failure handling, so they run through `rehearsal_runner`: not entries of the drill
programme's record (a run of them would otherwise never count as a passing cadence); their
evidence is the test result, the Allure report and each drill's own `drill.json`.
"""

from __future__ import annotations

import pytest

from rollback_drill import (
    BackupAndDeploy,
    ChangeConfiguration,
    Drill,
    DrillOutcome,
    DrillRunner,
    EditNginxConfig,
    ReplaceCertificate,
    Stack,
    automation,
    configuration,
)
from rollback_drill.checks import BY_NAME
from rollback_drill.checks.result import run_checks
from rollback_drill.failures.operatoredits import EXPIRED, NGINX_BACKUP, WRONG_UPSTREAM
from rollback_drill.failures.stepfaults import CutCopyShort, Hang, HoldPort, PauseService
from rollback_drill.steps.failure import ProcedureFailure
from rollback_drill.steps.procedure import DrillContext
from rollback_drill.steps.timeline import DETECTED, Timeline

# `drill`: like every drill, never run against a live --target.
pytestmark = [pytest.mark.drill]


def failed_as_expected(
    outcome: DrillOutcome, stack: Stack, number: int, step: str
) -> ProcedureFailure:
    """The drill failed at this step of its procedure, within its budget, saying what it left
    and what to do; returns the failure for the drill's own assertions."""
    failure = outcome.procedure_failure
    assert failure is not None, f"expected a failed procedure, got: {outcome.failure}"
    assert (failure.number, failure.step) == (number, step), failure.message()
    assert outcome.failure is not None and f"step {number} of" in outcome.failure
    assert "services left:" in outcome.failure and "next:" in outcome.failure
    assert list(failure.services) == stack.all_services(), failure.services
    assert failure.next_action
    # Within its budget: detection to the end of the failed step, against the matrix's row.
    failed = [e for e in outcome.timeline.of_kind("step") if not e.ok]
    assert [e.name for e in failed] == [f"{number}. {step}"]
    ended = failed[0].at_s + failed[0].duration_s
    assert ended - outcome.timeline.at(DETECTED) < outcome.budget.budget_s
    return failure


def rerun_converges(outcome: DrillOutcome, stack: Stack, *checks: str) -> None:
    """With the fault gone, the same procedure on the same stack ends green."""
    assert outcome.facts is not None
    ctx = DrillContext(
        stack, Timeline(), outcome.artifacts / "rerun", outcome.bad_release,
        outcome.good_release, facts=outcome.facts,
    )  # fmt: skip
    outcome.drill.procedure.run(ctx)
    outcomes = run_checks([BY_NAME[c] for c in checks], stack.target())
    assert all(o.result is not None and o.result.ok for o in outcomes), [
        (o.check.name, o.state, o.reason) for o in outcomes
    ]


# -- service failure: a service that does not come back -------------------------------------------
NOT_BACK = Drill(
    name="automation: the backend does not come back",
    release="1.5.0",
    scenario=BackupAndDeploy(),
    procedure=automation.PROCEDURE,
    severity="critical",
    faults=(HoldPort("Start", "backend"),),
)


@pytest.mark.automation
@pytest.mark.parametrize("drill", [NOT_BACK], ids=["service_not_back"])
def test_a_service_that_does_not_come_back(
    drill: Drill, rehearsal_runner: DrillRunner, drill_stack: Stack
) -> None:
    outcome = rehearsal_runner(drill)
    failure = failed_as_expected(outcome, drill_stack, 5, "Start")
    assert "did not come back: backend" in failure.cause and "in use" in failure.cause
    assert failure.services["backend"] == "stopped"
    for service in ("mongodb", "redis", "ai-chatbot"):
        assert failure.services[service].startswith("running"), failure.services
    # In containers nginx will not start while a name in its upstreams does not resolve: the
    # front stays down with the backend there, and the failure names it as well.
    if failure.services["frontend"] == "stopped":
        assert drill_stack.backend_name == "docker"
        assert "frontend (" in failure.cause and "host not found" in failure.cause
    else:
        assert failure.services["frontend"].startswith("running"), failure.services
    assert "port" in failure.next_action
    rerun_converges(outcome, drill_stack, "health.backend", "health.did", "rollback.releases")


# -- configuration rollback: a restore that is interrupted ----------------------------------------
INTERRUPTED = Drill(
    name="configuration: nginx restore interrupted",
    release="1.4.0",
    scenario=EditNginxConfig(WRONG_UPSTREAM),
    procedure=configuration.NGINX,
    severity="critical",
    faults=(CutCopyShort("Restore previous nginx config", NGINX_BACKUP),),
)


@pytest.mark.configuration
@pytest.mark.parametrize("drill", [INTERRUPTED], ids=["restore_interrupted"])
def test_a_restore_that_is_interrupted(
    drill: Drill, rehearsal_runner: DrillRunner, drill_stack: Stack
) -> None:
    outcome = rehearsal_runner(drill)
    failure = failed_as_expected(outcome, drill_stack, 1, "Restore previous nginx config")
    assert "RestoreInterrupted" in failure.cause and "bytes" in failure.cause
    # The half-written nginx.conf was never loaded: the same nginx still serves.
    assert outcome.restarted["frontend"] is False
    assert failure.services["frontend"].startswith("running"), failure.services
    assert "nginx -t" in failure.next_action
    rerun_converges(outcome, drill_stack, "functional.frontend_chat_box", "flow.login")


# -- configuration rollback: a health check that never turns green --------------------------------
NEVER_GREEN = Drill(
    name="configuration: environment rollback, redis freezes",
    release="1.4.1",
    scenario=ChangeConfiguration(),
    procedure=configuration.ENVIRONMENT,
    severity="low",
    faults=(PauseService("Verify", "redis"),),
)


@pytest.mark.configuration
@pytest.mark.parametrize("drill", [NEVER_GREEN], ids=["never_green"])
def test_a_health_check_that_never_turns_green(
    drill: Drill, rehearsal_runner: DrillRunner, drill_stack: Stack
) -> None:
    outcome = rehearsal_runner(drill)
    failure = failed_as_expected(outcome, drill_stack, 3, "Verify")
    assert "not reached within" in failure.cause
    assert "no answer" in failure.services["redis"], failure.services
    assert "503" in failure.services["backend"], failure.services
    rerun_converges(outcome, drill_stack, "health.backend", "health.ai-chatbot")


# -- configuration rollback: a step that hangs ----------------------------------------------------
HANGS = Drill(
    name="configuration: SSL restore hangs",
    release="1.4.0",
    scenario=ReplaceCertificate(EXPIRED),
    procedure=configuration.SSL,
    severity="critical",
    faults=(Hang("Restore previous certificates"),),
)


@pytest.mark.configuration
@pytest.mark.parametrize("drill", [HANGS], ids=["step_hangs"])
def test_a_step_that_hangs(drill: Drill, rehearsal_runner: DrillRunner, drill_stack: Stack) -> None:
    outcome = rehearsal_runner(drill)
    failure = failed_as_expected(outcome, drill_stack, 1, "Restore previous certificates")
    step = configuration.SSL.steps[0]
    assert failure.cut_off and failure.limit_s == step.timeout_s
    assert failure.elapsed_s >= failure.limit_s
    assert f"cut off at its {step.timeout_s:g} s limit" in (outcome.failure or "")
    assert failure.services["frontend"].startswith("running"), failure.services
    rerun_converges(outcome, drill_stack, "tls.certificate", "health.frontend-tls")
