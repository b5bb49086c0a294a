"""Runbook: Rollback Procedures > Database Rollback > Redis Rollback.

Release 1.11.0 caches sessions in a packed form; it works, and signed-in users use it. The
application alone is then rolled back to 1.4.0, which cannot read those cache entries:
every request of a signed-in user fails with 500, the error rate alerts. The Redis Rollback
- FLUSHALL, restart, ping - must bring them back, and the drill measures what the flush cost:
sessions that must sign in again (none: MongoDB holds every session) and whether anything in
MongoDB was lost.
"""

from __future__ import annotations

import pytest

from rollback_drill import DeployThenRollBackApplication, Drill, DrillRunner, redis

pytestmark = [pytest.mark.drill, pytest.mark.redis_rollback]

CACHE_FORMAT = Drill(
    name="database: redis flush",
    release="1.11.0",  # session cache entries 1.4.0 cannot read
    scenario=DeployThenRollBackApplication(),
    procedure=redis.PROCEDURE,
    severity="critical",
)


@pytest.mark.parametrize("drill", [CACHE_FORMAT], ids=["session_cache_format"])
def test_redis_rollback(drill: Drill, drill_runner: DrillRunner) -> None:
    outcome = drill_runner(drill)
    assert outcome.passed, outcome.failure
    cost = outcome.evidence["redis_flush_cost"]
    assert cost["sessions"]["sessions_held"] > 0
    assert cost["sessions"]["must_sign_in_again"] == 0
    assert cost["mongodb_intact"]
