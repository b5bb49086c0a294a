"""The stack file's parts that say how drills observe and judge: the `drills` settings (the
steady-state, alert and assessment windows, the user load), the `classification` of each
alert and failed check in the decision matrix's terms, with the runbook's defaults, and the
`decision_matrix` rows that give each severity its rollback type and time budget.

Separate from `files.spec` (the stack file as a whole) because these sections are read by
monitoring, the engine and the evidence, not by the backends that start the stack.
"""

from __future__ import annotations

from fnmatch import fnmatch
from typing import Literal

from pydantic import Field, field_validator

from rollback_drill.files.specmodel import FileModel, Severity

AlertRuleName = Literal[
    "service_down",
    "error_rate",
    "database_errors",
    "response_time",
    "response_time_increase",
    "memory",
    "check_failed",
]


def _default_alert_severities() -> dict[AlertRuleName, Severity]:
    return {
        "service_down": "critical",  # "Service down: Immediate alert"; "Service unavailability"
        "error_rate": "critical",  # "Error rate > 5%: Critical"
        "database_errors": "critical",  # "Database errors: Critical"
        # The runbook's critical issues list has "Performance degradation (>50% response time
        # increase)", while its matrix has "Low | Performance": a rise past
        # thresholds.response_time_increase_critical is critical here; slowness under it
        # that still trips a warning is low.
        "response_time_increase": "critical",
        "response_time": "low",  # "Response time > 2s: Warning"
        "memory": "low",  # "Memory usage > 90%: Warning"
        "check_failed": "high",  # a failing check's own entry in `checks` decides
    }


def _default_check_severities() -> dict[str, Severity]:
    return {
        "health": "critical",  # service unavailability
        "connectivity": "critical",  # database connectivity issues
        "tls": "critical",  # SSL certificate failures
        "integrity": "critical",  # data corruption
        "errors": "critical",  # "Error rate > 5%: Critical", from the logs
        "chain": "critical",  # the registry's code, owner or pause state is not as released
        "functional": "high",  # major bugs
        # A service or contract other than the one that should be deployed: what it breaks
        # is judged by the health and flow checks, which classify on their own.
        "rollback": "medium",
        "resources": "low",  # "Memory usage > 90%: Warning"
        "performance": "low",
    }


class Classification(FileModel):
    """What each alert and each failed check means in the decision matrix's terms. Entries
    given in the stack file extend and override the defaults. `checks` keys are a check's
    full name, a glob over names (`functional.chat*`) or a category; the most specific wins:
    the name, then the longest matching glob, then the category."""

    alerts: dict[AlertRuleName, Severity] = Field(default_factory=_default_alert_severities)
    checks: dict[str, Severity] = Field(default_factory=_default_check_severities)

    @field_validator("alerts", mode="after")
    @classmethod
    def _alert_defaults(cls, given: dict[AlertRuleName, Severity]) -> dict[AlertRuleName, Severity]:
        return {**_default_alert_severities(), **given}

    @field_validator("checks", mode="after")
    @classmethod
    def _check_defaults(cls, given: dict[str, Severity]) -> dict[str, Severity]:
        return {**_default_check_severities(), **given}

    def of_check(self, name: str, category: str) -> Severity:
        if name in self.checks:
            return self.checks[name]
        globs = [k for k in self.checks if any(c in k for c in "*?[") and fnmatch(name, k)]
        if globs:
            return self.checks[max(globs, key=len)]
        return self.checks.get(category, "high")


class DrillSettings(FileModel):
    """How drills observe: the steady-state window before the fault, the alert window, and
    the user load (locust users; 0 turns load off)."""

    steady_state_s: float = Field(default=3.0, gt=0)
    alert_window_s: float = Field(default=10.0, gt=0)
    assess_window_s: float = Field(default=1.0, ge=0)
    settle_s: float = Field(default=1.0, ge=0)
    verify_timeout_s: float = Field(default=30.0, gt=0)
    load_users: int = Field(default=6, ge=0)
    detect_timeout_s: float = Field(default=30.0, gt=0)


class DecisionRow(FileModel):
    severity: Severity
    impact: str
    rollback_type: str
    budget_s: float = Field(gt=0)


__all__ = ["AlertRuleName", "Classification", "DecisionRow", "DrillSettings"]
