"""A procedure is a runbook section as data: ordered steps, each naming the runbook command it
performs, the facts it needs and the facts it provides. Running one makes every step a span
on the drill's timeline - the only place it is recorded; reports read the timeline."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rollback_drill.facts import Fact, Facts
from rollback_drill.stack.base import Stack
from rollback_drill.timeline import Artifact, Timeline


@dataclass
class DrillContext:
    """What steps share: the stack, the clock, where artifacts go, the releases involved, the
    typed facts earlier parts produced, what the drill must close when it ends whatever
    happens (a writer a scenario started), and evidence for the record: what a step measured
    that readers need beyond its timeline (a restore's comparison, the recovery point)."""

    stack: Stack
    timeline: Timeline
    artifacts: Path
    bad_release: str
    good_release: str
    facts: Facts = field(default_factory=Facts)
    cleanup: ExitStack = field(default_factory=ExitStack)
    evidence: dict[str, Any] = field(default_factory=dict)

    def attach(self, artifact: Artifact) -> None:
        """Hand a reader something this step produced (a file, a table)."""
        self.timeline.attach(artifact)


@dataclass(frozen=True)
class StepResult:
    """What a step reports: details for the timeline and artifacts for readers."""

    detail: dict[str, Any] = field(default_factory=dict)
    artifacts: tuple[Artifact, ...] = ()


StepAction = Callable[[DrillContext], StepResult | dict[str, Any] | None]


@dataclass(frozen=True)
class Step:
    name: str
    runbook: str  # the runbook's command(s) this step performs
    action: StepAction
    needs: tuple[Fact[Any], ...] = ()
    provides: tuple[Fact[Any], ...] = ()


class ProcedureMiswired(ValueError):
    """A step needs a fact that nothing before it provides."""


@dataclass(frozen=True)
class Procedure:
    name: str
    runbook_section: str
    rollback_type: str  # the decision matrix's rollback type this procedure carries out
    steps: tuple[Step, ...]

    def check_wiring(self, available: Iterable[Fact[Any]]) -> None:
        """Prove, before any stack starts, that every step's needs are met in order."""
        have = set(available)
        for number, step in enumerate(self.steps, 1):
            missing = [f.name for f in step.needs if f not in have]
            if missing:
                raise ProcedureMiswired(
                    f"{self.name} step {number} ({step.name}) needs {missing}, which nothing "
                    f"before it provides"
                )
            have.update(step.provides)

    def run(self, ctx: DrillContext) -> None:
        for number, step in enumerate(self.steps, 1):
            with ctx.timeline.step(f"{number}. {step.name}", runbook=step.runbook) as span:
                produced = step.action(ctx)
                if isinstance(produced, StepResult):
                    span.update(produced.detail)
                    for artifact in produced.artifacts:
                        span.attach(artifact)
                elif produced:
                    span.update(produced)
