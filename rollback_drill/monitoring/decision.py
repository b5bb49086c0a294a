"""The runbook's Rollback Decision Matrix, applied to what monitoring and the checks say.

Each finding (an alert, or a check that failed) has a severity from the stack file's
`classification`; the most severe finding picks the matrix row: its rollback type and its
time budget. The decision keeps every finding with its measured value and the rule that
classified it, so a reader sees which way a regression went and why.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from rollback_drill.files.drillspec import DecisionRow
from rollback_drill.files.spec import LoadedStack
from rollback_drill.files.specmodel import Severity
from rollback_drill.process.errors import NothingToDecide

ORDER: tuple[Severity, ...] = ("critical", "high", "medium", "low")

# Which service a finding is about, from the words in its subject.
_SERVICE_WORDS = {
    "backend": ("backend", "login", "auth", "did", "chain", "registry"),
    "ai-chatbot": ("ai-chatbot", "chatbot", "chat"),
    "frontend": ("frontend", "page", "nginx", "tls"),
    "mongodb": ("mongodb", "integrity"),
    "redis": ("redis",),
}


def services_named(subject: str) -> list[str]:
    """The services a check or journey name points at (`functional.chat` -> ai-chatbot)."""
    words = subject.lower()
    # A flow "through nginx" or "from the page" implicates the front as well as its upstream.
    found = [s for s, keys in _SERVICE_WORDS.items() if any(k in words for k in keys)]
    return found


@dataclass(frozen=True)
class Finding:
    source: Literal["alert", "check"]
    name: str
    severity: Severity
    measured: str
    limit: str
    rule: str  # which stack-file entry classified it
    services: tuple[str, ...] = ()

    def explain(self) -> str:
        return f"{self.name}: {self.measured} (limit {self.limit}) -> {self.severity} [{self.rule}]"

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "name": self.name,
            "severity": self.severity,
            "measured": self.measured,
            "limit": self.limit,
            "rule": self.rule,
            "services": list(self.services),
        }


@dataclass(frozen=True)
class Decision:
    severity: Severity
    row: DecisionRow
    findings: list[Finding]
    affected_services: list[str] = field(default_factory=list)

    @property
    def deciding(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == self.severity]

    def explain(self) -> str:
        why = "; ".join(f.explain() for f in self.deciding)
        return (
            f"{self.severity} ({self.row.impact}): {self.row.rollback_type} rollback within "
            f"{self.row.budget_s:.0f} s, because {why}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "impact": self.row.impact,
            "rollback_type": self.row.rollback_type,
            "budget_s": self.row.budget_s,
            "affected_services": self.affected_services,
            "findings": [f.to_json() for f in self.findings],
            "explanation": self.explain(),
        }


def decide(loaded: LoadedStack, findings: Iterable[Finding]) -> Decision:
    """The most severe finding picks the row."""
    found = list(findings)
    if not found:
        raise NothingToDecide("no alert fired and no check failed: nothing to decide")
    severity = min((f.severity for f in found), key=ORDER.index)
    affected = sorted({s for f in found for s in f.services})
    return Decision(severity, loaded.budget(severity), found, affected)
