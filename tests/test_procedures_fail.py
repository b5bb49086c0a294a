"""Every procedure is shown to fail: each test makes one procedure wrong the way an operator
could - a step skipped, the wrong service rolled back, a restart without the restore - runs
the drill on a real stack under load, and watches it turn red with the reason."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from rollback_drill import BackupAndDeploy, ChangeConfiguration, DeployRelease, Drill, run_drill
from rollback_drill.outcome import DrillOutcome
from rollback_drill.procedures import automation, configuration, emergency, planned, service
from rollback_drill.procedures.base import Procedure, ProcedureMiswired, Step, StepResult
from rollback_drill.spec import LoadedStack
from rollback_drill.stack.local import LocalStack


def _without(procedure: Procedure, *names: str) -> Procedure:
    steps = tuple(s for s in procedure.steps if s.name not in names)
    assert len(steps) == len(procedure.steps) - len(names), "every named step existed"
    return dataclasses.replace(procedure, steps=steps)


@pytest.fixture
def run(stack_file: LoadedStack, tmp_path: Path) -> Iterator[object]:
    def go(drill: Drill) -> DrillOutcome:
        good = drill.check(stack_file)
        with LocalStack(stack_file, seed_users=50).running(good) as stack:
            return run_drill(stack, drill, artifacts=tmp_path / "artifacts")

    yield go


def test_planned_without_wait_and_verify_is_refused_before_any_stack(
    stack_file: LoadedStack,
) -> None:
    skipped = _without(planned.PROCEDURE, "Wait and verify backend")
    drill = dataclasses.replace(_planned(), procedure=skipped)
    with pytest.raises(ProcedureMiswired, match=r"Rollback frontend.*needs \['backend verified'\]"):
        drill.check(stack_file)


def _planned() -> Drill:
    return Drill("planned", "1.7.0", DeployRelease(), planned.PROCEDURE, "high", judge_steps=True)


def test_planned_that_leaves_the_backend_turns_red(run) -> None:  # type: ignore[no-untyped-def]
    no_backend = dataclasses.replace(
        _without(
            planned.PROCEDURE, "Rollback backend", "Wait and verify backend", "Rollback frontend"
        ),
        name="planned (backend left out)",
    )
    steps = list(no_backend.steps)
    steps.insert(2, planned.roll_back("frontend", after=None))
    wrong = dataclasses.replace(
        no_backend,
        steps=tuple(s for s in steps if not s.needs or s.name != "Verify the user flows"),
    )
    outcome = run(dataclasses.replace(_planned(), procedure=wrong))
    assert not outcome.passed
    assert "functional.login_as_typed" in (outcome.failure or ""), outcome.failure


def test_service_rollback_of_the_wrong_service_turns_red(run) -> None:  # type: ignore[no-untyped-def]
    drill = Drill(
        "backend defect, frontend rolled back",
        "1.8.0",
        DeployRelease(),
        service.FRONTEND,
        "medium",
        only_services=("frontend",),
    )
    outcome = run(drill)
    assert not outcome.passed
    assert "rollback.contract" in (outcome.failure or ""), outcome.failure


def test_service_rollback_that_restarts_another_service_turns_red(run) -> None:  # type: ignore[no-untyped-def]
    def restart_chatbot(ctx: object) -> StepResult:
        ctx.stack.restart("ai-chatbot")  # type: ignore[attr-defined]
        return StepResult()

    noisy = dataclasses.replace(
        service.BACKEND,
        steps=(*service.BACKEND.steps, Step("Restart the chatbot too", "-", restart_chatbot)),
    )
    drill = Drill(
        "backend rollback that touches the chatbot",
        "1.8.0",
        DeployRelease(),
        noisy,
        "medium",
        only_services=("backend",),
    )
    outcome = run(drill)
    assert not outcome.passed
    assert "restarted ['ai-chatbot']" in (outcome.failure or ""), outcome.failure


def test_configuration_rollback_that_only_restarts_turns_red(run) -> None:  # type: ignore[no-untyped-def]
    drill = Drill(
        "restart without restoring .env",
        "1.4.1",
        ChangeConfiguration(),
        _without(configuration.ENVIRONMENT, "Restore previous environment", "Verify"),
        "low",
    )
    outcome = run(drill)
    assert not outcome.passed
    assert "memory" in (outcome.failure or ""), outcome.failure


def test_emergency_without_reverting_the_code_turns_red(run) -> None:  # type: ignore[no-untyped-def]
    """1.6.0's defect is in its code: restoring the configuration alone leaves it running."""
    drill = Drill(
        "emergency that never reverts the code",
        "1.6.0",
        DeployRelease(),
        _without(emergency.PROCEDURE, "Rollback to previous version"),
        "critical",
    )
    outcome = run(drill)
    assert not outcome.passed
    assert "response time" in (outcome.failure or ""), outcome.failure


def test_automation_without_reverting_the_code_turns_red(run) -> None:  # type: ignore[no-untyped-def]
    """1.5.0's backend is down for its code: stopping, restoring and starting it as it is
    brings it back unhealthy; the start says so, naming what each service was left in."""
    drill = Drill(
        "auto-rollback that never reverts the code",
        "1.5.0",
        BackupAndDeploy(),
        _without(automation.PROCEDURE, "Rollback code"),
        "critical",
    )
    outcome = run(drill)
    assert not outcome.passed
    failure = outcome.procedure_failure
    assert failure is not None and failure.step == "Start", outcome.failure
    assert "did not come back: backend" in failure.cause
    assert "503" in failure.services["backend"] and "1.5.0" in failure.services["backend"]
