"""A procedure is a runbook section as data: ordered steps, each naming the runbook command it
performs, the facts it needs and the facts it provides. Running one makes every step a span
on the drill's timeline - the only place it is recorded; reports read the timeline.

Every step runs under a time limit (its own, or the procedure's default, and never past the
drill's remaining budget): a step that hangs is cut off. A step that fails or is cut off ends
the procedure with a `ProcedureFailed` that names the step, the state each service was left
in and what to do next. A drill of a rollback that goes wrong injects a `StepFault` into one
step; everything else about the procedure stays as the runbook has it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from rollback_drill.process.cutoff import CutOff, time_limit
from rollback_drill.process.errors import ProcedureMiswired
from rollback_drill.process.secrets import redact
from rollback_drill.stack.base import Stack
from rollback_drill.steps.facts import Fact, Facts
from rollback_drill.steps.failure import RERUN, ProcedureFailed, ProcedureFailure, service_states
from rollback_drill.steps.timeline import Artifact, Timeline

DEFAULT_STEP_TIMEOUT_S = 120.0


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
    timeout_s: float | None = None  # cut off after this long (None: the procedure's default)
    recovery: str = ""  # what an operator does when this step fails (the default: rerun)


class StepFault(Protocol):
    """Something that goes wrong during one step of the rollback itself (a port held, a
    server frozen, a copy cut short, a command that never returns). `perform` runs the step
    with the fault in it; `release` makes the fault go away again (at the drill's end)."""

    @property
    def step(self) -> str:
        """The name of the step it strikes, as the procedure names it."""

    @property
    def description(self) -> str: ...

    def perform(self, ctx: DrillContext, action: StepAction) -> StepResult | dict[str, Any] | None:
        """Run `action` (the step's own) with the fault in it."""

    def release(self) -> None: ...


@dataclass(frozen=True)
class Procedure:
    name: str
    runbook_section: str
    rollback_type: str  # the decision matrix's rollback type this procedure carries out
    steps: tuple[Step, ...]
    # Other matrix rows it may answer: a configuration rollback is the whole revert of a
    # change that was only configuration, also when its damage is critical (the runbook's
    # critical issues include "SSL certificate failures").
    also_serves: tuple[str, ...] = ()
    step_timeout_s: float = DEFAULT_STEP_TIMEOUT_S
    # It brings the services it may change back to the good release (a code or
    # configuration rollback). False for the data rollbacks (MongoDB, Redis, staging
    # database): they restore data under whatever release runs.
    reverts_release: bool = True

    def serves(self, rollback_type: str) -> bool:
        return rollback_type in (self.rollback_type, *self.also_serves)

    def step_named(self, name: str) -> Step | None:
        return next((s for s in self.steps if s.name == name), None)

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

    def run(
        self,
        ctx: DrillContext,
        faults: Sequence[StepFault] = (),
        deadline_s: float | None = None,
    ) -> None:
        """Every step in order, each under its time limit and never past `deadline_s` (on the
        timeline's clock: the drill's budget). Raises `ProcedureFailed` at the first step
        that fails or is cut off."""
        for number, step in enumerate(self.steps, 1):
            own = step.timeout_s or self.step_timeout_s
            left = own if deadline_s is None else deadline_s - ctx.timeline.now()
            limit = min(own, left)
            fault = next((f for f in faults if f.step == step.name), None)
            started = time.monotonic()
            try:
                with ctx.timeline.step(f"{number}. {step.name}", runbook=step.runbook) as span:
                    if fault is not None:
                        span.update({"fault injected": fault.description})
                    with time_limit(limit, f"step {number} ({step.name})"):
                        produced = fault.perform(ctx, step.action) if fault else step.action(ctx)
                    if isinstance(produced, StepResult):
                        span.update(produced.detail)
                        if produced.figures:
                            span.update({FIGURES: produced.figures})
                        for artifact in produced.artifacts:
                            span.attach(artifact)
                    elif produced:
                        span.update(produced)
            except (Exception, CutOff) as exc:
                cut = isinstance(exc, CutOff)
                raise ProcedureFailed(
                    ProcedureFailure(
                        procedure=self.name,
                        number=number,
                        of=len(self.steps),
                        step=step.name,
                        runbook=step.runbook,
                        cause=redact(str(exc) if cut else f"{type(exc).__name__}: {exc}"),
                        elapsed_s=round(time.monotonic() - started, 3),
                        cut_off=cut,
                        limit_s=round(limit, 3),
                        budget_spent=cut and left < own,
                        services=service_states(ctx.stack),
                        next_action=step.recovery or f"fix what the cause names, {RERUN}",
                        fault=fault.description if fault else None,
                    )
                ) from exc
