"""Verifications: pure questions about a target, each answering with evidence. The same
checks serve the drills and the live verify suite."""

from rollback_drill.checks import (
    connectivity,
    functional,
    health,
    integrity,
    performance,
    tls,
    userflows,
)
from rollback_drill.checks.result import Check, CheckResult, CheckSkipped, Outcome, run_checks

ALL_CHECKS: list[Check] = [
    *health.CHECKS,
    *connectivity.CHECKS,
    *integrity.CHECKS,
    *functional.CHECKS,
    *userflows.CHECKS,
    *performance.CHECKS,
    *tls.CHECKS,
]
BY_NAME = {check.name: check for check in ALL_CHECKS}

__all__ = ["ALL_CHECKS", "BY_NAME", "Check", "CheckResult", "CheckSkipped", "Outcome", "run_checks"]
