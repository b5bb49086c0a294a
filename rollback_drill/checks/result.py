"""A check's answer: ok or not, a one-line summary a person reads first, and the evidence."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rollback_drill.secrets import redact
from rollback_drill.target import Target


class CheckSkipped(Exception):
    """The target cannot answer this question (e.g. no baseline given); not a failure."""


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0

    def explain(self) -> str:
        return redact(f"{self.name}: {'PASS' if self.ok else 'FAIL'} - {self.summary}")


CheckFn = Callable[[Target], CheckResult]


@dataclass(frozen=True)
class Check:
    name: str
    category: str
    run_fn: CheckFn
    writes: bool = False  # True: needs a writable target (skipped when read_only)
    doc: str = ""

    def run(self, target: Target) -> CheckResult:
        """Run the check; an exception becomes a failed result, never an escape."""
        if self.writes and target.read_only:
            raise CheckSkipped(f"{self.name} writes to the target, which is read_only")
        start = time.monotonic()
        try:
            result = self.run_fn(target)
        except CheckSkipped:
            raise
        except Exception as exc:
            return CheckResult(
                self.name,
                False,
                redact(f"{type(exc).__name__}: {exc}"),
                {},
                time.monotonic() - start,
            )
        return CheckResult(
            result.name,
            result.ok,
            redact(result.summary),
            result.evidence,
            time.monotonic() - start,
        )


@dataclass(frozen=True)
class Outcome:
    """One check's fate in a batch: a result, or the reason it was skipped."""

    check: Check
    result: CheckResult | None
    skipped: str | None = None

    @property
    def failed(self) -> bool:
        return self.result is not None and not self.result.ok


def run_checks(checks: list[Check], target: Target) -> list[Outcome]:
    outcomes = []
    for check in checks:
        try:
            outcomes.append(Outcome(check, check.run(target)))
        except CheckSkipped as why:
            outcomes.append(Outcome(check, None, str(why)))
    return outcomes
