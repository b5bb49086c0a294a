"""A drill as data, and what running it found. Every reader of a drill - the pytest plugin, the
record, the chart, the Allure summary, the certificate - imports these types from here, and
this module imports no reader."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rollback_drill.checks import Check
from rollback_drill.checks.result import Outcome
from rollback_drill.engine.notify import Communication
from rollback_drill.failures.scenarios import Scenario
from rollback_drill.files.drillspec import DecisionRow
from rollback_drill.files.spec import LoadedStack
from rollback_drill.files.specmodel import Severity
from rollback_drill.monitoring.alerts import Alert
from rollback_drill.monitoring.decision import Decision
from rollback_drill.monitoring.load import LoadSample, LoadStats
from rollback_drill.monitoring.monitor import Sample
from rollback_drill.process.errors import SpecError
from rollback_drill.steps.facts import Fact, Facts
from rollback_drill.steps.failure import ProcedureFailure
from rollback_drill.steps.procedure import FIGURES, Procedure, StepFault
from rollback_drill.steps.timeline import Timeline, Verdict
from rollback_drill.stores.mongo import Fingerprint

BASELINE = Fact[Fingerprint]("baseline", "the data's fingerprint before the fault")


@dataclass(frozen=True)
class Drill:
    """One runbook procedure exercised against one kind of failure. Adding a drill is
    declaring one of these in a module under drills/; the engine does the rest."""

    name: str
    release: str  # the release (or configuration) the scenario puts out
    scenario: Scenario
    procedure: Procedure
    severity: Severity  # the decision-matrix row the assessment must reach
    verify: tuple[Check, ...] = ()  # verification beyond the runbook's standard checks
    judge_steps: bool = False  # each step's user error rate must stay under the threshold
    only_services: tuple[str, ...] | None = None  # the rollback may restart only these
    # What goes wrong during the rollback itself, each in the step it names: a drill of a
    # rollback that goes wrong (it is expected to fail, at that step, within its budget).
    faults: tuple[StepFault, ...] = ()
    # Steps during which - from the first's start to the last's end - no user request may go
    # unanswered or get a 5xx (a reload that must cost users nothing); errors the fault
    # itself still causes until the change takes (4xx) are not charged to them.
    gapless_steps: tuple[str, ...] = ()
    chain_id: int | None = None  # the network the stack's chain stands in for (None: the file's)
    environment: str | None = None  # a profile it always runs on (staging); None: the run's

    def __repr__(self) -> str:
        """Stable across processes (reports key a drill's history on it): no addresses."""
        return f"Drill({self.name!r}, release {self.release}, {self.severity})"

    @property
    def runbook_section(self) -> str:
        return self.procedure.runbook_section

    def stack_file(self, loaded: LoadedStack) -> LoadedStack:
        """The stack file as this drill runs it: its chain standing in for `chain_id`'s
        network when the drill names one."""
        return loaded.on_chain(self.chain_id) if self.chain_id else loaded

    def check(self, loaded: LoadedStack, good_release: str | None = None) -> str:
        """Prove the declaration is consistent with the stack file before anything starts;
        return the release to roll back to."""
        if self.environment is not None:
            loaded.in_environment(self.environment)  # the stack file must have it
        release = loaded.release(self.release)
        # An operator's edit leaves the release as it is: the rollback restores its config.
        kept = not self.scenario.changes_release
        good = good_release or (self.release if kept else release.previous)
        if good is None:
            raise SpecError(f"{loaded.path}: release {self.release} names no previous release")
        loaded.release(good)
        defect = release.defect
        if defect is not None and defect.severity != self.severity:
            raise SpecError(
                f"drill {self.name}: release {self.release}'s defect is classed "
                f"{defect.severity} in its manifest, but the drill expects {self.severity}"
            )
        row = loaded.budget(self.severity)
        if not self.procedure.serves(row.rollback_type):
            raise SpecError(
                f"drill {self.name}: the matrix answers {self.severity} with a "
                f"{row.rollback_type} rollback, but procedure {self.procedure.name} is a "
                f"{self.procedure.rollback_type} rollback"
            )
        for named in [f.step for f in self.faults] + list(self.gapless_steps):
            if self.procedure.step_named(named) is None:
                raise SpecError(
                    f"drill {self.name}: procedure {self.procedure.name} has no step {named!r} "
                    f"(its steps: {[s.name for s in self.procedure.steps]})"
                )
        self.procedure.check_wiring([BASELINE, *self.scenario.provides])
        return good


@dataclass(frozen=True)
class CollectionIntegrity:
    name: str
    equal: bool
    count_before: int | None
    count_after: int | None


@dataclass(frozen=True)
class Integrity:
    """The integrity comparison after the rollback, per collection."""

    collections: tuple[CollectionIntegrity, ...]

    @property
    def equal(self) -> bool:
        return bool(self.collections) and all(c.equal for c in self.collections)

    @classmethod
    def from_evidence(cls, evidence: dict[str, Any]) -> Integrity:
        return cls(
            tuple(
                CollectionIntegrity(
                    str(row.get("collection")),
                    bool(row.get("equal")),
                    row.get("count_before"),
                    row.get("count_after"),
                )
                for row in evidence.get("collections", [])
            )
        )


@dataclass(frozen=True)
class DataVolume:
    """The data a drill ran with: the users seeded and the documents per collection at the
    baseline. Trends compare like with like: a drill on 50 000 users is not a regression of
    the same drill on 200."""

    seed_users: int
    documents: dict[str, int]

    @classmethod
    def of(cls, seed_users: int, baseline: Fingerprint) -> DataVolume:
        return cls(seed_users, {name: c.count for name, c in baseline.collections.items()})

    def to_json(self) -> dict[str, Any]:
        return {"seed_users": self.seed_users, "documents": dict(self.documents)}


def lost_requests(samples: list[LoadSample]) -> list[LoadSample]:
    """User requests that got no answer or a 5xx: what a rollback step cost users (a 4xx is
    the application's answer - the defect's, while it is still live)."""
    return [s for s in samples if not s.ok and (s.status is None or s.status >= 500)]


@dataclass(frozen=True)
class StepLoad:
    """What users saw while one procedure step ran."""

    step: str
    start_s: float
    end_s: float
    stats: LoadStats
    lost: tuple[LoadSample, ...] = ()  # requests that got no answer or a 5xx (`lost_requests`)

    @property
    def unavailable(self) -> int:
        """How many requests the step cost users."""
        return len(self.lost)

    @classmethod
    def of(cls, step: str, start_s: float, end_s: float, rows: list[LoadSample]) -> StepLoad:
        return cls(step, start_s, end_s, LoadStats.of(rows), tuple(lost_requests(rows)))


@dataclass
class DrillOutcome:
    drill: Drill
    backend: str
    bad_release: str
    good_release: str
    budget: DecisionRow
    timeline: Timeline
    artifacts: Path
    decision: Decision | None = None
    detected_by: list[str] = field(default_factory=list)
    verification: list[Outcome] = field(default_factory=list)
    integrity: Integrity | None = None
    integrity_evidence: dict[str, Any] = field(default_factory=dict)
    verdict: Verdict | None = None
    failure: str | None = None
    samples: list[Sample] = field(default_factory=list)
    load: list[LoadSample] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    steady: LoadStats | None = None
    assessment: dict[str, Any] = field(default_factory=dict)
    restarted: dict[str, bool] = field(default_factory=dict)  # during the rollback
    data_volume: DataVolume | None = None  # None: the drill stopped before its baseline
    communication: Communication | None = None
    procedure_failure: ProcedureFailure | None = None  # the step the rollback stopped at
    environment: str = "production"  # the stack file's environment the drill ran in
    facts: Facts = field(default_factory=Facts)  # what the drill's parts handed each other
    evidence: dict[str, Any] = field(default_factory=dict)  # what steps measured, for readers

    @property
    def procedure(self) -> Procedure:
        return self.drill.procedure

    @property
    def severity(self) -> Severity:
        return self.drill.severity

    @property
    def severity_detected(self) -> str | None:
        return self.decision.severity if self.decision else None

    @property
    def passed(self) -> bool:
        return self.failure is None and self.verdict is not None and self.verdict.within_budget

    def availability(self) -> dict[str, float | None]:
        """Share of health probes answered 200: overall and between consecutive markers."""

        def share(start: float, end: float) -> float | None:
            window = [s.ok for s in self.samples if start <= s.at_s < end]
            return round(sum(window) / len(window), 4) if window else None

        result = {"overall": share(0.0, float("inf"))}
        marks = self.timeline.of_kind("marker")
        for first, second in itertools.pairwise(marks):
            result[f"{first.name}->{second.name}"] = share(first.at_s, second.at_s)
        return result

    def users_saw(self) -> dict[str, LoadStats]:
        """Per phase (steady state, fault, rollback, verified): what user requests met."""
        return {
            phase: LoadStats.of(s for s in self.load if start <= s.at_s < end)
            for phase, (start, end) in self.timeline.user_phases().items()
        }

    def figures(self) -> dict[str, Any]:
        """The headline figures the procedure's steps measured, in step order (a later
        step's figure of the same name wins), read from the timeline."""
        found: dict[str, Any] = {}
        for event in self.timeline.of_kind("step"):
            found.update(event.detail.get(FIGURES) or {})
        return found

    def step_load(self) -> list[StepLoad]:
        """Per procedure step: what users saw while it ran (the planned rollback's gate)."""
        steps = [e for e in self.timeline.of_kind("step") if e.detail.get("runbook")]
        loads = []
        for e in steps:
            rows = [s for s in self.load if e.at_s <= s.at_s < e.at_s + e.duration_s]
            end = e.at_s + e.duration_s
            loads.append(StepLoad.of(e.name, e.at_s, end, rows))
        return loads

    def load_of_steps(self, names: tuple[str, ...]) -> StepLoad | None:
        """What users saw from the start of the first of these procedure steps (as the
        procedure names them) to the end of the last; None when none of them ran."""
        ran = [s for s in self.step_load() if s.step.split(". ", 1)[-1] in names]
        if not ran:
            return None
        start, end = min(s.start_s for s in ran), max(s.end_s for s in ran)
        rows = [s for s in self.load if start <= s.at_s < end]
        label = " .. ".join(dict.fromkeys([ran[0].step, ran[-1].step]))
        return StepLoad.of(label, start, end, rows)

    def to_json(self) -> dict[str, Any]:
        return {
            "drill": self.drill.name,
            "procedure": self.procedure.name,
            "runbook_section": self.procedure.runbook_section,
            "severity": self.severity,
            "backend": self.backend,
            "environment": self.environment,
            "bad_release": self.bad_release,
            "good_release": self.good_release,
            "budget_s": self.budget.budget_s,
            "rollback_type": self.budget.rollback_type,
            "passed": self.passed,
            "failure": self.failure,
            "detected_by": self.detected_by,
            "decision": self.decision.to_json() if self.decision else None,
            "assessment": self.assessment,
            "time_to_recover_s": round(self.verdict.time_to_recover_s, 4) if self.verdict else None,
            "timeline": self.timeline.to_json(),
            "alerts": [a.to_json() for a in self.alerts],
            "users_saw": {k: v.to_json() for k, v in self.users_saw().items()},
            "steps_load": [
                {"step": s.step, "seconds": round(s.end_s - s.start_s, 4), **s.stats.to_json()}
                for s in self.step_load()
            ],
            "restarted_during_rollback": self.restarted,
            "figures": self.figures(),
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
            "integrity": None
            if self.integrity is None
            else [c.__dict__ for c in self.integrity.collections],
            "availability": self.availability(),
            "data_volume": self.data_volume.to_json() if self.data_volume else None,
            "communication": self.communication.to_json() if self.communication else None,
            "procedure_failure": (
                self.procedure_failure.to_json() if self.procedure_failure else None
            ),
            "evidence": self.evidence,
        }


DrillRunner = Callable[[Drill], DrillOutcome]
"""What a drill module calls (the plugin's `drill_runner` fixture): run this drill, here."""
