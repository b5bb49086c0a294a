"""The runbook's decision matrix, applied: which severity a set of failed checks means, and
so which rollback type and time budget apply."""

from __future__ import annotations

from collections.abc import Iterable

from rollback_drill.checks.result import CheckResult
from rollback_drill.spec import DecisionRow, LoadedStack, Severity

# A failed check's category -> the matrix's impact column.
_SEVERITY_BY_CATEGORY: dict[str, Severity] = {
    "health": "critical",  # service down
    "connectivity": "critical",  # database connectivity issues
    "tls": "critical",  # SSL certificate failures
    "integrity": "critical",  # data corruption
    "functional": "high",  # major bugs
    "performance": "low",
}
_ORDER: tuple[Severity, ...] = ("critical", "high", "medium", "low")


def classify(failed: Iterable[tuple[str, CheckResult]]) -> Severity:
    """The most severe severity among (category, result) pairs of failed checks."""
    found = {
        _SEVERITY_BY_CATEGORY.get(category, "medium")
        for category, result in failed
        if not result.ok
    }
    for severity in _ORDER:
        if severity in found:
            return severity
    raise ValueError("no failed check to classify")


def row_for(loaded: LoadedStack, severity: Severity) -> DecisionRow:
    return loaded.budget(severity)
