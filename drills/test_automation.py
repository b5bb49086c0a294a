"""Runbook: Rollback Automation (`auto-rollback.sh <backup_file> [environment]`).

The deploy pipeline backs the stores up (`./docker-manage.sh backup production`), then puts
release 1.5.0 out; its backend needs a users schema it ships no migration for, and goes down.
The automated rollback - stop, restore the database from that backup file, revert the code,
rebuild, start, health - must bring 1.4.0 back with the data intact, within the critical
row's five minutes: the same steps `rollback-drill rollback --backup FILE` runs.
"""

from __future__ import annotations

import pytest

from rollback_drill import BackupAndDeploy, Drill, DrillRunner, automation

pytestmark = [pytest.mark.drill, pytest.mark.automation]

SERVICE_DOWN = Drill(
    name="automation: auto-rollback",
    release="1.5.0",
    scenario=BackupAndDeploy(),
    procedure=automation.PROCEDURE,
    severity="critical",
)


@pytest.mark.parametrize("drill", [SERVICE_DOWN], ids=["auto_rollback"])
def test_automated_rollback(drill: Drill, drill_runner: DrillRunner) -> None:
    outcome = drill_runner(drill)
    assert outcome.passed, outcome.failure
    assert outcome.verdict is not None and outcome.verdict.within_budget
    assert outcome.integrity is not None and outcome.integrity.equal
    restored = next(e for e in outcome.timeline.of_kind("step") if e.name == "2. Restore database")
    assert restored.detail["restored"]["users"] > 0
