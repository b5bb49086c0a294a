"""Runbook: Rollback Procedures > Emergency Rollback (Critical Issues).

Release N+1 goes out under live user load; its defect is critical - the backend down, or
every user flow much slower - monitoring alerts, the assessment lands on the matrix's
critical row, and the emergency procedure must bring release N back, healthy, with its
data intact and users served well again, within the matrix's five minutes.
"""

from __future__ import annotations

import pytest

from rollback_drill import DeployRelease, Drill, DrillRunner, emergency

pytestmark = [pytest.mark.drill, pytest.mark.emergency]

SERVICE_DOWN = Drill(
    name="emergency: service unavailable",
    release="1.5.0",  # backend requires users schema v2 and ships no migration
    scenario=DeployRelease(),
    procedure=emergency.PROCEDURE,
    severity="critical",
)
SLOW = Drill(
    name="emergency: performance degradation",
    release="1.6.0",  # every login derives a legacy 300 000-iteration hash first
    scenario=DeployRelease(),
    procedure=emergency.PROCEDURE,
    severity="critical",
)


@pytest.mark.parametrize("drill", [SERVICE_DOWN, SLOW], ids=["service_down", "slow"])
def test_emergency_rollback(drill: Drill, drill_runner: DrillRunner) -> None:
    outcome = drill_runner(drill)
    assert outcome.passed, outcome.failure
    for service in outcome.restarted:
        if service in ("backend", "ai-chatbot", "frontend"):
            assert outcome.restarted[service]
    assert outcome.integrity is not None and outcome.integrity.equal
