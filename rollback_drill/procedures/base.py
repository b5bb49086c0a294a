"""A procedure is a runbook section as data: ordered steps, each naming the runbook command
it stands for. Running one makes every step an Allure step and a timeline event, once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rollback_drill import report
from rollback_drill.spec import Severity
from rollback_drill.stack.base import Stack
from rollback_drill.timeline import Timeline


@dataclass
class DrillContext:
    """What steps share: the stack, the clock, where artifacts go, and the releases involved."""

    stack: Stack
    timeline: Timeline
    artifacts: Path
    bad_release: str
    good_release: str
    facts: dict[str, Any] = field(default_factory=dict)  # what earlier steps produced


StepAction = Callable[[DrillContext], dict[str, Any] | None]


@dataclass(frozen=True)
class Step:
    name: str
    runbook: str  # the runbook's command(s) this step performs
    action: StepAction


@dataclass(frozen=True)
class Procedure:
    name: str
    runbook_section: str
    severity: Severity
    steps: tuple[Step, ...]

    def run(self, ctx: DrillContext) -> None:
        for number, step in enumerate(self.steps, 1):
            title = f"{number}. {step.name}"
            with report.step(title), ctx.timeline.step(step.name, runbook=step.runbook) as detail:
                produced = step.action(ctx)
                if produced:
                    detail.update(produced)
