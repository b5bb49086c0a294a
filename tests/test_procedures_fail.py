"""Every procedure is shown to fail: each test makes one procedure wrong the way an operator
could - a step skipped, the wrong service rolled back, a restart without the restore - runs
the drill on a real stack under load, and watches it turn red with the reason."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rollback_drill import (
    BackupAndDeploy,
    ChangeConfiguration,
    DeployAfterBackup,
    DeployRelease,
    DeployThenRollBackApplication,
    Drill,
    run_drill,
)
from rollback_drill.engine.outcome import DrillOutcome
from rollback_drill.failures.datascenarios import PRE_DEPLOY_BACKUP
from rollback_drill.files.spec import LoadedStack, load_stack
from rollback_drill.procedures import (
    automation,
    configuration,
    database,
    emergency,
    planned,
    redis,
    service,
    staging,
)
from rollback_drill.process.errors import ProcedureMiswired
from rollback_drill.stack.local import LocalStack
from rollback_drill.steps.procedure import DrillContext, Procedure, Step, StepResult
from rollback_drill.stores import mongo
from tests.helpers import copy_stack_file

pytestmark = pytest.mark.slow  # whole drills, each with a procedure made wrong: not fast


def _without(procedure: Procedure, *names: str) -> Procedure:
    steps = tuple(s for s in procedure.steps if s.name not in names)
    assert len(steps) == len(procedure.steps) - len(names), "every named step existed"
    return dataclasses.replace(procedure, steps=steps)


SERVICE_START_S = 10.0
"""The backend's `start_timeout_s` in tests whose procedure brings it back broken: the
reference backend answers healthy within 1-2 s of a start, so waiting the default 30 s for
it to answer proves nothing more, and cost these tests 20 s each."""


def _starting_within(directory: Path, seconds: float) -> LoadedStack:
    def edit(spec: dict[str, Any]) -> None:
        spec["services"]["backend"]["start_timeout_s"] = seconds

    return load_stack(copy_stack_file(directory, "stack.yaml", edit))


@pytest.fixture
def run(stack_file: LoadedStack, tmp_path: Path) -> Iterator[object]:
    def go(drill: Drill, backend_start_s: float | None = None) -> DrillOutcome:
        stacked = (
            stack_file if backend_start_s is None else _starting_within(tmp_path, backend_start_s)
        )
        good = drill.check(stacked)
        loaded = stacked.in_environment(drill.environment or "production")
        with LocalStack(loaded, seed_users=50).running(good) as stack:
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
    failure = outcome.failure or ""
    # 1.6.0 still runs: rollback.releases names it at once (a decided failure ends the
    # Verify phase's wait), or the login stays slow - a response-time check, monitoring that
    # never turns green on it, or the synthetic login flow over its 2 s warning threshold
    slow = (
        "runs 1.6.0, expected 1.4.0",
        "response time",
        "login: median",
        "flow.login failed: p95",
    )
    assert any(reason in failure for reason in slow), failure


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
    outcome = run(drill, backend_start_s=SERVICE_START_S)
    assert not outcome.passed
    failure = outcome.procedure_failure
    assert failure is not None and failure.step == "Start", outcome.failure
    assert "did not come back: backend" in failure.cause
    assert f"backend not ready within {SERVICE_START_S:.1f} s" in failure.cause  # its own bound
    assert "503" in failure.services["backend"] and "1.5.0" in failure.services["backend"]


def test_database_rollback_that_restarts_without_restoring_turns_red(run) -> None:  # type: ignore[no-untyped-def]
    """The services come back on the damaged data: the integrity check sees it."""
    skipped = dataclasses.replace(
        _without(database.PROCEDURE, "Restore database from backup", "Verify data integrity"),
        name="database (no restore)",
    )
    outcome = run(Drill("restart only", "1.10.0", DeployAfterBackup(), skipped, "critical"))
    assert not outcome.passed
    assert "integrity.mongodb" in (outcome.failure or ""), outcome.failure


def test_database_rollback_from_an_older_backup_loses_acknowledged_writes_and_turns_red(  # type: ignore[no-untyped-def]
    run,
) -> None:
    """A restore of a backup older than the one the runbook took before the deploy: writes
    users had acknowledged before that backup are gone - the recovery point fails it."""

    def older_backup(ctx: DrillContext) -> StepResult:
        backup = ctx.facts[PRE_DEPLOY_BACKUP]
        oldest = min(ctx.stack.backups)[1]  # the one taken before the writer started
        ctx.facts[PRE_DEPLOY_BACKUP] = dataclasses.replace(backup, path=oldest)
        return StepResult({"backup": oldest.name})

    def early_backup(ctx: DrillContext) -> StepResult:
        ctx.stack.backup_stores(ctx.artifacts / "aaa_an_older_backup")
        return StepResult()

    wrong = dataclasses.replace(
        database.PROCEDURE,
        steps=(Step("Pick an older backup", "-", older_backup, needs=(PRE_DEPLOY_BACKUP,)),
               *database.PROCEDURE.steps),
    )  # fmt: skip

    class OlderFirst(DeployAfterBackup):
        def inject(self, ctx: DrillContext) -> StepResult:
            early_backup(ctx)
            return super().inject(ctx)

    outcome = run(Drill("older backup", "1.10.0", OlderFirst(), wrong, "critical"))
    assert not outcome.passed
    assert "BEFORE the backup began were lost" in (outcome.failure or ""), outcome.failure


def test_redis_rollback_without_the_flush_turns_red(run) -> None:  # type: ignore[no-untyped-def]
    """Only the ping: the cache keeps the entries 1.4.0 cannot read, users keep getting 500."""
    only_ping = dataclasses.replace(
        redis.PROCEDURE,
        steps=(Step("Print MongoDB", "-", _print_only, provides=(redis.BEFORE_FLUSH,)),
               redis.PROCEDURE.steps[-1]),
    )  # fmt: skip
    outcome = run(Drill("ping only", "1.11.0", DeployThenRollBackApplication(), only_ping,
                        "critical"))  # fmt: skip
    assert not outcome.passed
    assert "still refused" in (outcome.failure or ""), outcome.failure


def _print_only(ctx: DrillContext) -> StepResult:
    ctx.facts[redis.BEFORE_FLUSH] = redis.mongo_now(ctx)
    return StepResult()


def test_redis_rollback_that_also_empties_mongodb_sessions_turns_red(run) -> None:  # type: ignore[no-untyped-def]
    """An operator who "clears the cache" in the database of record too: the flush then signs
    users out and MongoDB lost documents - both shown."""

    def clear_everything(ctx: DrillContext) -> StepResult:
        done = redis.clear_cache(ctx)
        target = ctx.stack.target()
        with mongo.client(target.mongodb_uri.reveal()) as conn:
            conn[target.mongodb_database]["sessions"].delete_many({})
        return done

    wrong = dataclasses.replace(
        redis.PROCEDURE,
        steps=(dataclasses.replace(redis.PROCEDURE.steps[0], action=clear_everything),
               *redis.PROCEDURE.steps[1:]),
    )  # fmt: skip
    outcome = run(Drill("flush mongo too", "1.11.0", DeployThenRollBackApplication(), wrong,
                        "critical"))  # fmt: skip
    assert not outcome.passed
    failure = outcome.failure or ""
    assert "sessions out" in failure and "sessions:" in failure and "lost" in failure, failure


def test_complete_staging_rollback_without_reverting_the_code_turns_red(run) -> None:  # type: ignore[no-untyped-def]
    drill = Drill(
        "staging restart only",
        "1.5.0",
        DeployRelease(),
        _without(staging.COMPLETE, "Rollback staging code"),
        "critical",
        environment="staging",
    )
    outcome = run(drill, backend_start_s=SERVICE_START_S)
    assert not outcome.passed
    assert "health" in (outcome.failure or ""), outcome.failure
