"""Runbook: Rollback Procedures > Database Rollback > MongoDB Rollback.

The stores are backed up before the deploy, as the runbook asks, while users keep writing.
Release 1.10.0's migration then damages the data: it rewrites plus-addressed users' e-mail
and deletes the accounts it takes for duplicates. The change stream sees `users` written,
the assessment finds data corruption (critical), and the MongoDB Rollback must bring back
the backup - every collection's count, content hash and indexes equal to it - and keep every
write users had acknowledged before the backup began. What it loses after that is measured
and reported: the recovery point.
"""

from __future__ import annotations

import pytest

from rollback_drill import DeployAfterBackup, Drill, DrillRunner, database

pytestmark = [pytest.mark.drill, pytest.mark.database]

MIGRATION = Drill(
    name="database: mongodb restore",
    release="1.10.0",  # its migration rewrites e-mail addresses and deletes "duplicates"
    scenario=DeployAfterBackup(),
    procedure=database.PROCEDURE,
    severity="critical",
)


@pytest.mark.parametrize("drill", [MIGRATION], ids=["migration_damage"])
def test_mongodb_rollback(drill: Drill, drill_runner: DrillRunner) -> None:
    outcome = drill_runner(drill)
    assert outcome.passed, outcome.failure
    assert any("integrity" in a.key for a in outcome.alerts), "the damage was what was seen"
    restored = outcome.facts[database.RESTORED]
    assert restored.equal and restored.atomic == "database"
    assert {c.name for c in restored.collections if c.how != "unchanged"} >= {"users"}
    point = outcome.facts[database.RECOVERY]
    assert point.ok and point.kept_last is not None
    assert point.lost, "writes acknowledged after the backup cannot survive its restore"
    assert outcome.integrity is not None and outcome.integrity.equal
