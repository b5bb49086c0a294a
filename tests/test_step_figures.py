"""A procedure's headline figures (pause time, gas, DIDs carried and lost...) travel on the
timeline: each step's go into its event, the outcome collects them in step order for the
record and the report, and a step that returns none adds nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from rollback_drill import DeployRelease, Drill
from rollback_drill.engine.outcome import DrillOutcome
from rollback_drill.evidence.report import _figures_html
from rollback_drill.files.drillspec import DecisionRow
from rollback_drill.stack.base import Stack
from rollback_drill.steps.procedure import DrillContext, Procedure, Step, StepResult
from rollback_drill.steps.timeline import Timeline


def _returning(result: StepResult) -> Callable[[DrillContext], StepResult]:
    return lambda _ctx: result


def _steps(*results: StepResult) -> Procedure:
    steps = tuple(
        Step(f"step {n}", "npm run pause:contracts", _returning(r))
        for n, r in enumerate(results, 1)
    )
    return Procedure("figures", "Smart Contract Rollback > Production Mainnet", "emergency", steps)


def test_figures_are_collected_from_the_timeline_in_step_order(tmp_path: Path) -> None:
    procedure = _steps(
        StepResult({"x": 1}, figures={"pause_s": 0.03, "dids_lost": 5}),
        StepResult({"y": 2}),
        StepResult(figures={"dids_lost": 0, "bytecode": "runtime code equal"}),
    )
    timeline = Timeline()
    ctx = DrillContext(cast(Stack, None), timeline, tmp_path, "1.9.0", "1.4.0")
    procedure.run(ctx)
    events = timeline.of_kind("step")
    assert events[0].detail == {
        "runbook": "npm run pause:contracts",
        "x": 1,
        "figures": {"pause_s": 0.03, "dids_lost": 5},
    }
    assert "figures" not in events[1].detail
    drill = Drill("d", "1.9.0", DeployRelease(), procedure, "critical")
    row = DecisionRow(severity="critical", impact="x", rollback_type="emergency", budget_s=300)
    outcome = DrillOutcome(drill, "local", "1.9.0", "1.4.0", row, timeline, tmp_path)
    figures: dict[str, Any] = outcome.figures()
    assert figures == {"pause_s": 0.03, "dids_lost": 0, "bytecode": "runtime code equal"}
    assert list(figures) == ["pause_s", "dids_lost", "bytecode"]
    assert outcome.to_json()["figures"] == figures
    shown = _figures_html(figures)
    assert "dids lost</td><td>0<" in shown and "runtime code equal" in shown
    assert _figures_html({}) == "none measured by this procedure"
