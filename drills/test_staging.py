"""Runbook: Staging Environment Rollback (Complete Staging Rollback, Staging Database Rollback).

Both run on a stack made from the stack file's `staging` profile - its own seed size and data,
its own ports - as a team rehearses a rollback on staging before production. The complete
rollback answers a release that takes the backend down (stop, revert, rebuild, start,
health); the database rollback answers a migration that damages data (restore the staging
backup taken before the deploy, start staging), with its recovery point measured as in
production.
"""

from __future__ import annotations

import pytest

from rollback_drill import DeployAfterBackup, DeployRelease, Drill, DrillRunner, staging

pytestmark = [pytest.mark.drill, pytest.mark.staging]

COMPLETE = Drill(
    name="staging: complete rollback",
    release="1.5.0",  # the backend requires users schema v2 and ships no migration
    scenario=DeployRelease(),
    procedure=staging.COMPLETE,
    severity="critical",
    environment=staging.ENVIRONMENT,
)
DATABASE = Drill(
    name="staging: database rollback",
    release="1.10.0",  # its migration rewrites e-mail addresses and deletes "duplicates"
    scenario=DeployAfterBackup(environment=staging.ENVIRONMENT),
    procedure=staging.DATABASE,
    severity="critical",
    environment=staging.ENVIRONMENT,
)


@pytest.mark.parametrize("drill", [COMPLETE, DATABASE], ids=["complete", "database"])
def test_staging_rollback(drill: Drill, drill_runner: DrillRunner) -> None:
    outcome = drill_runner(drill)
    assert outcome.passed, outcome.failure
    assert outcome.environment == "staging"
    assert outcome.data_volume is not None and outcome.data_volume.seed_users == 120
    if drill is DATABASE:
        assert outcome.evidence["restore"]["equal_to_backup"]
        assert outcome.evidence["recovery_point"]["ok"]
