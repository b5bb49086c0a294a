"""A procedure is a runbook section as data: ordered steps, each naming the runbook command it
performs, the facts it needs and the facts it provides. Running one makes every step a span
on the drill's timeline - the only place it is recorded; reports read the timeline."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rollback_drill.facts import Fact, Facts
from rollback_drill.stack.base import Stack
from rollback_drill.timeline import Artifact, Timeline


@dataclass
class DrillContext:
    """What steps share: the stack, the clock, where artifacts go, the releases involved, and
    the typed facts earlier parts produced."""

    stack: Stack
    timeline: Timeline
    artifacts: Path
    bad_release: str
    good_release: str
    facts: Facts = field(default_factory=Facts)

    def attach(self, artifact: Artifact) -> None:
        """Hand a reader something this step produced (a file, a table)."""
        self.timeline.attach(artifact)


@dataclass(frozen=True)
class StepResult:
    """What a step reports: details for the timeline, artifacts for readers, and the headline
    figures it measured (a pause's time, gas spent, DIDs carried) that the report and the
    drill's record show up front (`DrillOutcome.figures` collects them from the timeline)."""

    detail: dict[str, Any] = field(default_factory=dict)
    artifacts: tuple[Artifact, ...] = ()
    figures: dict[str, Any] = field(default_factory=dict)


FIGURES = "figures"
"""The key a step's headline figures have in its timeline event's detail."""

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
                    if produced.figures:
                        span.update({FIGURES: produced.figures})
                    for artifact in produced.artifacts:
                        span.attach(artifact)
                elif produced:
                    span.update(produced)
