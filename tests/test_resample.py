"""A latency rise that alone decides the assessment is judged again in fresh windows before it
counts (monitoring/resample.py): a rise that holds stays critical, a spike that passes is
dropped with what the fresh window measured, and a decision other findings already make is
not delayed. On requests recorded along the engine's own clock, so each fresh window holds
the requests of its own seconds."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from rollback_drill.files.drillspec import Classification
from rollback_drill.files.specmodel import Thresholds
from rollback_drill.monitoring.alerts import AlertEngine, AlertRules
from rollback_drill.monitoring.decision import Finding
from rollback_drill.monitoring.load import LoadSample, by_journey
from rollback_drill.monitoring.resample import MAX_WINDOWS, deciding_latency, resample
from rollback_drill.steps.timeline import Timeline
from tests.alongtheclock import AlongTheClock

WINDOW_S = 0.4  # the rule's latency window, short for a test; the stack file's is 5 s


def _engine(
    latency: Callable[[float], float], journeys: tuple[str, ...] = ("login",)
) -> AlertEngine:
    """An engine judging `journeys`, all at `latency(at_s)`, against a 30 ms steady state."""
    timeline = Timeline()
    engine = AlertEngine(
        timeline,
        Thresholds(),
        Classification(),
        load=AlongTheClock(timeline, lambda _, at: latency(at), journeys),
        rules=AlertRules(pending_s=0.0, latency_pending_s=0.0, latency_window_s=WINDOW_S),
    )
    engine.steady = by_journey([LoadSample(0, j, 0.030, True, 200, None) for j in journeys] * 40)
    return engine


def _latency_finding(engine: AlertEngine) -> Finding:
    """The finding the assessment makes of the latency alert firing now (once enough answers
    have arrived to judge)."""
    deadline = time.monotonic() + 2.0
    while "response_time_increase:login" not in engine.active and time.monotonic() < deadline:
        engine.evaluate()
        time.sleep(0.01)
    alert = engine.active["response_time_increase:login"]
    return Finding("alert", alert.key, alert.severity, alert.measured, alert.limit, "r")


def test_a_rise_that_holds_in_every_fresh_window_stays_critical() -> None:
    engine = _engine(lambda at: 0.300)  # every login ten times its steady median, throughout
    finding = _latency_finding(engine)
    result = resample(engine, [finding])
    (kept,) = result.findings
    assert kept.severity == "critical" and kept.name == "response_time_increase:login"
    assert "held in 2 fresh 0.4 s windows" in kept.measured and "p50 300.0 ms" in kept.measured
    assert [n.split(":")[2].strip()[:4] for n in result.notes] == ["held", "held"]


def test_a_spike_that_passes_is_not_counted_and_the_fresh_window_is_shown() -> None:
    spike_until = 0.3
    engine = _engine(lambda at: 0.300 if at < spike_until else 0.032)
    while engine.timeline.now() < spike_until - 0.05:  # the spike is what the alert saw
        time.sleep(0.01)
    finding = _latency_finding(engine)
    while engine.timeline.now() < spike_until:
        time.sleep(0.01)
    result = resample(engine, [finding])
    assert result.findings == []
    (note,) = result.notes
    assert "did not hold in fresh window 1 (0.4 s)" in note
    assert "p50 32.0 ms" in note and "vs 30.0 ms in the steady state" in note


def test_a_decision_other_findings_already_make_is_not_delayed() -> None:
    engine = _engine(lambda at: 0.300)
    latency = _latency_finding(engine)
    down = Finding("check", "health.backend", "critical", "refused", "200", "r")
    started = time.monotonic()
    result = resample(engine, [down, latency])
    assert time.monotonic() - started < WINDOW_S
    assert result.findings == [down, latency] and result.notes == []


def test_latency_decides_only_above_every_other_finding() -> None:
    latency = Finding("alert", "response_time_increase:login", "critical", "x", "y", "r")
    slow = Finding("alert", "response_time:login", "low", "x", "y", "r")
    medium = Finding("check", "rollback.contract", "medium", "x", "y", "r")
    errors = Finding("alert", "error_rate:users", "critical", "x", "y", "r")
    assert deciding_latency([latency, slow, medium]) == [latency]
    assert deciding_latency([latency, errors]) == []
    assert deciding_latency([medium]) == []
    assert deciding_latency([slow]) == [slow]


JOURNEYS = ("login", "page /", "DID resolve")  # a whole stack, slower or not


def test_a_rise_with_the_whole_stack_slower_is_judged_longer_and_dropped_once_it_passes() -> None:
    """Every journey 2.5 times its steady median for two windows, then back: the login rise
    holds in both windows, but so do the others', so the judgement goes on and drops it."""
    until = [math.inf]
    engine = _engine(lambda at: 0.075 if at < until[0] else 0.031, JOURNEYS)
    finding = _latency_finding(engine)
    until[0] = engine.timeline.now() + 2 * WINDOW_S
    result = resample(engine, [finding])
    assert result.findings == [], result.notes
    assert any("the whole stack was slower in fresh window 2" in n for n in result.notes)
    assert "did not hold in fresh window 3" in result.notes[-1], result.notes


def test_a_whole_stack_slower_throughout_still_counts_after_the_longest_judgement() -> None:
    engine = _engine(lambda at: 0.075, JOURNEYS)  # a release slower everywhere
    finding = _latency_finding(engine)
    result = resample(engine, [finding])
    (kept,) = result.findings
    assert f"held in {MAX_WINDOWS} fresh 0.4 s windows" in kept.measured
    assert sum("held in fresh window" in n for n in result.notes) == MAX_WINDOWS
