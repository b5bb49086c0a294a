"""Phases and time-to-recover come from one set of events; the matrix judges them."""

from __future__ import annotations

import threading
import time

import pytest

from rollback_drill.files.drillspec import DecisionRow
from rollback_drill.process.errors import TimelineError
from rollback_drill.steps.timeline import (
    CHANGE_STARTED,
    DECIDED,
    DETECTED,
    FAULT_INJECTED,
    ROLLBACK_FINISHED,
    ROLLBACK_STARTED,
    STEADY_STATE,
    VERIFIED,
    Artifact,
    Event,
    Timeline,
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


class Recorder:
    """A listener that keeps what it was told, in order."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []

    def started(self, span: Event) -> None:
        self.seen.append(("started", span.kind, span.name))

    def emitted(self, event: Event) -> None:
        self.seen.append(("emitted", event.kind, event.name))


def test_listeners_get_every_event_once_in_order_and_spans_nest() -> None:
    recorder = Recorder()
    timeline = Timeline([recorder])
    with timeline.phase("Rollback") as phase:
        with timeline.step("1. Stop", runbook="./docker-manage.sh stop") as step:
            step.attach(Artifact("logs", data="x"))
        timeline.check("health.backend", True, 0.01, summary="200", evidence={})
        phase.update({"done": True})
    timeline.mark(VERIFIED)
    assert recorder.seen == [
        ("started", "phase", "Rollback"),
        ("started", "step", "1. Stop"),
        ("emitted", "artifact", "logs"),
        ("emitted", "step", "1. Stop"),
        ("emitted", "check", "health.backend"),
        ("emitted", "phase", "Rollback"),
        ("emitted", "marker", VERIFIED),
    ]
    phase_event = timeline.of_kind("phase")[0]
    step_event = timeline.of_kind("step")[0]
    assert step_event.parent == phase_event.span and phase_event.parent == 0
    assert step_event.detail == {"runbook": "./docker-manage.sh stop"}
    assert phase_event.detail == {"done": True}
    assert timeline.of_kind("artifact")[0].parent == step_event.span


def test_a_broken_listener_does_not_break_the_drill() -> None:
    class Broken(Recorder):
        def emitted(self, event: Event) -> None:
            raise RuntimeError("reader down")

    good = Recorder()
    timeline = Timeline([Broken(), good])
    timeline.mark(FAULT_INJECTED)
    assert good.seen == [("emitted", "marker", FAULT_INJECTED)]


def test_alerts_from_other_threads_are_kept_at_the_top_level() -> None:
    timeline = Timeline()
    with timeline.phase("Detect"):
        worker = threading.Thread(target=lambda: timeline.alert("error_rate:users", 1.0, False))
        worker.start()
        worker.join()
    (alert,) = timeline.of_kind("alert")
    assert alert.parent == 0 and alert.ok is False and alert.at_s == 1.0


def test_user_phases_start_with_the_change() -> None:
    timeline = Timeline()
    for marker in (STEADY_STATE, CHANGE_STARTED, FAULT_INJECTED, DETECTED, ROLLBACK_STARTED,
                   ROLLBACK_FINISHED, VERIFIED):  # fmt: skip
        timeline.mark(marker)
    phases = timeline.user_phases()
    assert list(phases) == ["steady", "fault", "rollback", "verified"]
    assert phases["fault"][0] == timeline.at(CHANGE_STARTED)
