"""Runbook: Rollback Procedures > Emergency Rollback (Critical Issues).

Release N+1 goes out, its defect takes the backend down, monitoring notices, the decision
matrix says critical, and the emergency procedure must bring release N back - healthy, with
its data intact - within the matrix's five minutes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rollback_drill.drill import DrillOutcome, run_drill
from rollback_drill.faults import DeployBadRelease
from rollback_drill.procedures import emergency
from rollback_drill.stack.base import Stack

pytestmark = [pytest.mark.drill, pytest.mark.emergency]


def test_emergency_rollback_after_bad_release(
    drill_stack: Stack,
    release_pair: tuple[str, str],
    drill_artifacts: Path,
    record_drill: list[DrillOutcome],
) -> None:
    bad, good = release_pair
    outcome = run_drill(
        drill_stack,
        emergency.PROCEDURE,
        DeployBadRelease(),
        bad_release=bad,
        good_release=good,
        artifacts=drill_artifacts,
    )
    record_drill.append(outcome)
    assert outcome.passed, outcome.failure
    assert outcome.verdict is not None
    print(f"\n{outcome.procedure.name}: {outcome.verdict.summary()}")
    for service in drill_stack.app_services():
        assert drill_stack.release_of(service) == good
    assert outcome.integrity is not None
    assert all(row["equal"] for row in outcome.integrity["collections"])
