"""Runbook: Rollback Procedures > Planned Rollback (Non-Critical Issues).

Release 1.7.0 (backend, frontend and ai-chatbot) has a major bug with a workaround: login
rejects an e-mail typed with a capital. The assessment lands on the matrix's high row, and
the planned procedure makes a rollback point, then rolls back the backend, waits and
verifies, then the frontend and the ai-chatbot, while users keep using the service: the
error rate they see during every step must stay under the critical threshold.
"""

from __future__ import annotations

import pytest

from rollback_drill import DeployRelease, Drill, DrillRunner, planned

pytestmark = [pytest.mark.drill, pytest.mark.planned]

MAJOR_BUG = Drill(
    name="planned: major bug with a workaround",
    release="1.7.0",
    scenario=DeployRelease(),
    procedure=planned.PROCEDURE,
    severity="high",
    judge_steps=True,
)


@pytest.mark.parametrize("drill", [MAJOR_BUG], ids=["major_bug"])
def test_planned_rollback(drill: Drill, drill_runner: DrillRunner) -> None:
    outcome = drill_runner(drill)
    assert outcome.passed, outcome.failure
    steps = outcome.step_load()
    assert steps and all(s.stats.requests > 0 for s in steps if s.end_s - s.start_s > 0.5)
