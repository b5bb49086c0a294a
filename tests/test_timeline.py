"""Phases and time-to-recover come from one set of events; the matrix judges them."""

from __future__ import annotations

import time

import pytest

from rollback_drill.spec import DecisionRow
from rollback_drill.timeline import (
    DECIDED,
    DETECTED,
    FAULT_INJECTED,
    ROLLBACK_FINISHED,
    ROLLBACK_STARTED,
    VERIFIED,
    Timeline,
    TimelineError,
)


def _run(gaps: list[float]) -> Timeline:
    timeline = Timeline()
    for marker, gap in zip(
        (FAULT_INJECTED, DETECTED, DECIDED, ROLLBACK_STARTED, ROLLBACK_FINISHED, VERIFIED),
        gaps,
        strict=True,
    ):
        time.sleep(gap)
        timeline.mark(marker)
    return timeline


def test_phases_and_ttr_are_derived_from_markers() -> None:
    timeline = _run([0, 0.02, 0.01, 0.01, 0.05, 0.03])
    phases = timeline.phases()
    assert set(phases) == {"detect", "decide", "execute", "verify"}
    assert phases["execute"] >= 0.05
    ttr = timeline.time_to_recover()
    assert ttr == pytest.approx(timeline.at(VERIFIED) - timeline.at(DETECTED))
    assert ttr == pytest.approx(phases["decide"] + phases["execute"] + phases["verify"], abs=1e-3)
    assert timeline.outage() >= ttr


def test_judge_against_budget() -> None:
    timeline = _run([0, 0, 0, 0, 0.02, 0])
    assert timeline.judge(
        DecisionRow(severity="critical", impact="x", rollback_type="emergency", budget_s=300)
    ).within_budget
    over = timeline.judge(
        DecisionRow(severity="critical", impact="x", rollback_type="emergency", budget_s=0.01)
    )
    assert not over.within_budget
    assert "OVER" in over.summary()


def test_marker_twice_and_missing_marker_are_errors() -> None:
    timeline = Timeline()
    timeline.mark(FAULT_INJECTED)
    with pytest.raises(TimelineError):
        timeline.mark(FAULT_INJECTED)
    with pytest.raises(TimelineError, match="verified"):
        timeline.time_to_recover()


def test_failed_step_is_recorded_as_failed() -> None:
    timeline = Timeline()
    with pytest.raises(RuntimeError), timeline.step("breaks"):
        raise RuntimeError("boom")
    assert timeline.events[-1].name == "breaks"
    assert timeline.events[-1].ok is False
