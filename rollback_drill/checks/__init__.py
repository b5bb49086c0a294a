"""Verifications: pure questions about a target, each answering with evidence. The same
checks serve the drills and the live verify suite; `run_checks_concurrently` asks them all
at once under one deadline."""

from rollback_drill.checks import (
    app_stores,
    chain,
    connectivity,
    did_stores,
    functional,
    health,
    identity,
    integrity,
    logs,
    redis_writes,
    resources,
    rollback,
    tls,
    userflows,
)
from rollback_drill.checks.result import (
    Check,
    CheckResult,
    Outcome,
    run_checks,
    run_checks_concurrently,
)
from rollback_drill.process.errors import CheckSkipped

ALL_CHECKS: list[Check] = [
    *health.CHECKS,
    *rollback.CHECKS,
    *identity.CHECKS,
    *connectivity.CHECKS,
    *redis_writes.CHECKS,
    *chain.CHECKS,
    *integrity.CHECKS,
    *did_stores.CHECKS,
    *app_stores.CHECKS,
    *functional.CHECKS,
    *userflows.CHECKS,
    *logs.CHECKS,
    *resources.CHECKS,
    *tls.CHECKS,
]
BY_NAME = {check.name: check for check in ALL_CHECKS}

__all__ = [
    "ALL_CHECKS",
    "BY_NAME",
    "Check",
    "CheckResult",
    "CheckSkipped",
    "Outcome",
    "run_checks",
    "run_checks_concurrently",
]
