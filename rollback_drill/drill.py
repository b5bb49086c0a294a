"""One drill, start to verdict: baseline -> fault -> detect -> decide -> the procedure ->
verify -> judge against the decision matrix. The pytest scenarios, the CLI and the
benchmarks all run drills through here, so they time and judge the same way."""

from __future__ import annotations

import dataclasses
import itertools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rollback_drill import report
from rollback_drill.checks import ALL_CHECKS, health
from rollback_drill.checks.result import Outcome, run_checks
from rollback_drill.decision import classify
from rollback_drill.faults import Fault
from rollback_drill.monitor import Monitor, Sample
from rollback_drill.procedures.base import DrillContext, Procedure
from rollback_drill.secrets import redact
from rollback_drill.spec import DecisionRow
from rollback_drill.stack.base import Stack
from rollback_drill.stores import mongo
from rollback_drill.timeline import (
    DECIDED,
    DETECTED,
    FAULT_INJECTED,
    ROLLBACK_FINISHED,
    ROLLBACK_STARTED,
    VERIFIED,
    Timeline,
    Verdict,
)

DETECT_TIMEOUT_S = 30.0
DETECT_INTERVAL_S = 0.1


class DrillFailed(AssertionError):
    """The drill did not recover, or recovered over budget; the message says which and why."""


@dataclass
class DrillOutcome:
    procedure: Procedure
    backend: str
    bad_release: str
    good_release: str
    budget: DecisionRow
    timeline: Timeline
    artifacts: Path
    detected_by: list[str] = field(default_factory=list)
    severity_detected: str | None = None
    verification: list[Outcome] = field(default_factory=list)
    integrity: dict[str, Any] | None = None
    verdict: Verdict | None = None
    failure: str | None = None
    samples: list[Sample] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.failure is None and self.verdict is not None and self.verdict.within_budget

    def availability(self) -> dict[str, float | None]:
        """Share of monitor probes answered 200: overall and in each phase of the timeline."""

        def share(start: float, end: float) -> float | None:
            window = [s.ok for s in self.samples if start <= s.at_s < end]
            return round(sum(window) / len(window), 4) if window else None

        result = {"overall": share(0.0, float("inf"))}
        marks = [e for e in self.timeline.events if e.kind == "marker"]
        for first, second in itertools.pairwise(marks):
            result[f"{first.name}->{second.name}"] = share(first.at_s, second.at_s)
        return result

    def to_json(self) -> dict[str, Any]:
        return {
            "procedure": self.procedure.name,
            "runbook_section": self.procedure.runbook_section,
            "severity": self.procedure.severity,
            "backend": self.backend,
            "bad_release": self.bad_release,
            "good_release": self.good_release,
            "budget_s": self.budget.budget_s,
            "rollback_type": self.budget.rollback_type,
            "passed": self.passed,
            "failure": self.failure,
            "detected_by": self.detected_by,
            "severity_detected": self.severity_detected,
            "time_to_recover_s": round(self.verdict.time_to_recover_s, 4) if self.verdict else None,
            "timeline": self.timeline.to_json(),
            "checks": [
                {
                    "name": o.check.name,
                    "category": o.check.category,
                    "skipped": o.skipped,
                    **(
                        {
                            "ok": o.result.ok,
                            "summary": o.result.summary,
                            "seconds": round(o.result.duration_s, 4),
                        }
                        if o.result
                        else {}
                    ),
                }
                for o in self.verification
            ],
            "integrity": self.integrity,
            "availability": self.availability(),
        }


def _detect(ctx: DrillContext, timeout_s: float) -> list[Outcome]:
    """Poll the health checks, as monitoring would, until one fails."""
    deadline = time.monotonic() + timeout_s
    while True:
        outcomes = run_checks(health.CHECKS, ctx.stack.target())
        failing = [o for o in outcomes if o.failed]
        if failing:
            return failing
        if time.monotonic() > deadline:
            raise DrillFailed(
                f"fault not detected: every health check stayed green for {timeout_s:.0f} s"
            )
        time.sleep(DETECT_INTERVAL_S)


def run_drill(
    stack: Stack,
    procedure: Procedure,
    fault: Fault,
    *,
    bad_release: str,
    good_release: str,
    artifacts: Path,
    detect_timeout_s: float = DETECT_TIMEOUT_S,
) -> DrillOutcome:
    """Run one drill on a stack that is up at `good_release`; never raises for a failed drill:
    the outcome carries the failure so the report is written either way."""
    artifacts.mkdir(parents=True, exist_ok=True)
    timeline = Timeline()
    budget = stack.loaded.budget(procedure.severity)
    outcome = DrillOutcome(
        procedure, stack.backend_name, bad_release, good_release, budget, timeline, artifacts
    )
    ctx = DrillContext(stack, timeline, artifacts, bad_release, good_release)
    report.label_drill(
        section=procedure.runbook_section,
        severity=procedure.severity,
        budget_s=budget.budget_s,
        procedure=procedure.name,
        backend=stack.backend_name,
    )
    try:
        with Monitor(stack.target(), timeline) as monitor:
            try:
                _run_phases(ctx, procedure, fault, outcome, detect_timeout_s)
            finally:
                outcome.samples = monitor.samples
    except Exception as exc:
        outcome.failure = redact(f"{type(exc).__name__}: {exc}")
    _write_record(outcome)
    report.finish_drill(outcome, stack.loaded)
    return outcome


def _run_phases(
    ctx: DrillContext,
    procedure: Procedure,
    fault: Fault,
    outcome: DrillOutcome,
    detect_timeout_s: float,
) -> None:
    stack, timeline = ctx.stack, ctx.timeline
    target = stack.target()
    with (
        report.step("Baseline: the stack is healthy and its data fingerprinted"),
        timeline.step("baseline"),
    ):
        unhealthy = [
            o.result.explain() for o in run_checks(health.CHECKS, target) if o.failed and o.result
        ]
        if unhealthy:
            raise DrillFailed("stack unhealthy before the fault: " + "; ".join(unhealthy))
        baseline = mongo.fingerprint(
            target.mongodb_uri.reveal(), target.mongodb_database, list(target.integrity_collections)
        )
        ctx.facts["baseline"] = baseline
        report.attach_json("baseline fingerprint", baseline.to_json())

    with (
        report.step(f"Inject fault: {fault.description}"),
        timeline.step(f"inject {fault.name}") as detail,
    ):
        detail.update(fault.inject(ctx))
    timeline.mark(FAULT_INJECTED, fault=fault.name)

    with report.step("Detect: health checks until one fails"), timeline.step("detect"):
        failing = _detect(ctx, detect_timeout_s)
    outcome.detected_by = [o.result.explain() for o in failing if o.result]
    timeline.mark(DETECTED, failing=outcome.detected_by)

    with report.step("Decide: apply the decision matrix"), timeline.step("decide"):
        severity = classify((o.check.category, o.result) for o in failing if o.result)
        outcome.severity_detected = severity
        row = stack.loaded.budget(severity)
        timeline.mark(
            DECIDED, severity=severity, rollback_type=row.rollback_type, budget_s=row.budget_s
        )
        if severity != procedure.severity:
            raise DrillFailed(
                f"the fault classifies as {severity} ({row.rollback_type} rollback), "
                f"but this drill exercises the {procedure.severity} procedure"
            )

    timeline.mark(ROLLBACK_STARTED, procedure=procedure.name)
    with report.step(f"Rollback: {procedure.runbook_section}"):
        procedure.run(ctx)
    timeline.mark(ROLLBACK_FINISHED)

    verify_target = dataclasses.replace(stack.target(), baseline=baseline, read_only=False)
    with report.step("Verify: health, connectivity, integrity, functional flows, performance, TLS"):
        for check in ALL_CHECKS:
            (o,) = run_checks([check], verify_target)
            outcome.verification.append(o)
            if o.result is not None:
                timeline.record_check(
                    o.check.name, o.result.ok, o.result.duration_s, summary=o.result.summary
                )
                with report.step(o.result.explain()):
                    report.attach_json("evidence", o.result.evidence)
    integrity = next(
        (
            o.result
            for o in outcome.verification
            if o.check.name == "integrity.mongodb" and o.result
        ),
        None,
    )
    if integrity is not None:
        outcome.integrity = integrity.evidence
        report.attach_json("integrity comparison", integrity.evidence)
    failed = [o.result.explain() for o in outcome.verification if o.failed and o.result]
    if failed:
        raise DrillFailed("verification failed after rollback:\n  " + "\n  ".join(failed))
    timeline.mark(VERIFIED)
    outcome.verdict = timeline.judge(stack.loaded.budget(procedure.severity))
    if not outcome.verdict.within_budget:
        raise DrillFailed(outcome.verdict.summary())


def _write_record(outcome: DrillOutcome) -> None:
    data = outcome.to_json()
    path = outcome.artifacts / "drill.json"
    path.write_text(redact(json.dumps(data, indent=2, default=str)))
    samples = outcome.artifacts / "samples.json"
    samples.write_text(json.dumps([dataclasses.asdict(s) for s in outcome.samples]))
    report.attach_json("timeline", data["timeline"])


__all__ = ["DrillFailed", "DrillOutcome", "run_drill"]
