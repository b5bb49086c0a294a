"""The Verify phase's wait for green: it ends red as soon as a deciding check names a failure
no wait can change, and still gives a recovery that is merely slow its whole time.

The users' requests come from a stand-in for locust (`_Users`): what is tested is the wait's
arithmetic on samples, not load generation (drills run real locust)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import cast

import pytest

from rollback_drill import DeployRelease, Drill
from rollback_drill.checks.result import CheckResult
from rollback_drill.engine.outcome import DrillOutcome
from rollback_drill.engine.recovery import judge_gapless, monitoring_green
from rollback_drill.files.drillspec import Classification, DecisionRow, DrillSettings
from rollback_drill.files.specmodel import Thresholds
from rollback_drill.monitoring.alerts import AlertEngine, AlertRules
from rollback_drill.monitoring.load import LoadRun, LoadSample, LoadStats, by_journey
from rollback_drill.process.errors import DrillFailed
from rollback_drill.steps.procedure import Procedure
from rollback_drill.steps.timeline import Timeline
from tests.alongtheclock import AlongTheClock


class _Users:
    """Users' requests at 50 per second on the drill clock; they fail until `healthy_at_s`."""

    def __init__(self, timeline: Timeline, healthy_at_s: float) -> None:
        self.timeline, self.healthy_at_s = timeline, healthy_at_s

    def samples(self, start_s: float = 0.0, end_s: float = float("inf")) -> list[LoadSample]:
        end = min(end_s, self.timeline.now())
        count = int((end - start_s) * 50)
        rows = [start_s + i / 50 for i in range(max(count, 0))]
        return [LoadSample(at, "login", 0.005, at >= self.healthy_at_s, 200, None) for at in rows]


def _watch(healthy_at_s: float, decided: list[str], timeout_s: float) -> tuple[float, object]:
    timeline = Timeline()
    alerts = AlertEngine(timeline, Thresholds(), Classification(), rules=AlertRules())
    settings = DrillSettings(settle_s=0.5, verify_timeout_s=timeout_s)
    asked: list[float] = []

    def deciding() -> list[str]:
        asked.append(time.monotonic())
        return decided

    users = cast(LoadRun, _Users(timeline, healthy_at_s))
    started = time.monotonic()
    outcome = monitoring_green(timeline, alerts, users, None, settings, timeline.now(), deciding)
    assert asked, "the deciding checks were never asked while the wait was not green"
    return time.monotonic() - started, outcome


def test_a_decided_failure_ends_the_wait_red_at_once() -> None:
    wrong = "rollback.releases: FAIL - backend runs 1.6.0, expected 1.5.0"
    took, outcome = _watch(healthy_at_s=1e9, decided=[wrong], timeout_s=30.0)
    assert took < 3.0, f"waited {took:.1f} s for a failure no wait changes"
    result = outcome.result  # type: ignore[attr-defined]
    assert not result.ok and result.decided
    assert "cannot turn green" in result.summary and wrong in result.summary
    assert "user error rate" in result.summary  # what monitoring saw is kept beside it
    assert result.evidence["decided_by"] == [wrong]


def test_a_slow_recovery_with_nothing_decided_gets_its_time_and_passes() -> None:
    took, outcome = _watch(healthy_at_s=2.5, decided=[], timeout_s=30.0)
    result = outcome.result  # type: ignore[attr-defined]
    assert result.ok, result.summary
    assert 2.5 < took < 10.0


def test_nothing_decided_and_never_green_waits_out_the_timeout() -> None:
    took, outcome = _watch(healthy_at_s=1e9, decided=[], timeout_s=2.0)
    result = outcome.result  # type: ignore[attr-defined]
    assert not result.ok and not result.decided
    assert "not green within 2 s" in result.summary
    assert took >= 2.0


class _Recorded:
    """A load run's samples as the load reader hands them over."""

    def __init__(self, rows: list[LoadSample]) -> None:
        self.rows = rows

    def samples(self, start_s: float = 0.0, end_s: float = float("inf")) -> list[LoadSample]:
        return [s for s in self.rows if start_s <= s.at_s < end_s]


def test_a_gapless_step_that_lost_a_request_names_it(tmp_path: Path) -> None:
    """The drill's failure names each lost request (journey, when, what it met) so a red run
    in CI says whether nginx dropped a connection or the application answered 5xx; a 4xx is
    the change's own answer and is only counted."""
    timeline = Timeline()
    with timeline.step("3. Reload nginx", runbook="docker-compose restart nginx"):
        time.sleep(0.05)
    step = timeline.of_kind("step")[0]
    at = step.at_s + 0.01
    rows = [
        LoadSample(at, "page /", 0.004, True, 200, None),
        LoadSample(at, "login", 0.003, False, 404, "HTTP 404: no route"),
        LoadSample(at, "login", 0.012, False, None, "RemoteDisconnected('closed')"),
        LoadSample(at, "did health", 0.020, False, 502, "HTTP 502: Bad Gateway"),
    ]
    procedure = Procedure("nginx", "Configuration Rollback > Nginx", "emergency", ())
    drill = Drill("d", "1.4.0", DeployRelease(), procedure, "critical")
    drill = replace(drill, gapless_steps=("Reload nginx",))
    row = DecisionRow(severity="critical", impact="x", rollback_type="emergency", budget_s=300)
    outcome = DrillOutcome(drill, "local", "1.4.0", "1.4.0", row, timeline, tmp_path)
    with pytest.raises(DrillFailed) as failed:
        judge_gapless(outcome, cast(LoadRun, _Recorded(rows)))
    message = str(failed.value)
    assert "2 of 4 user requests got no answer or a 5xx" in message
    assert "1 answered 4xx" in message
    assert "login at +0.01 s, 12 ms: no answer (RemoteDisconnected('closed'))" in message
    assert "did health at +0.01 s, 20 ms: HTTP 502: Bad Gateway" in message

    healthy = [LoadSample(at, "page /", 0.004, True, 200, None)]
    judge_gapless(outcome, cast(LoadRun, _Recorded(healthy)))


def _watch_turns(slow: Callable[[str, float], bool], timeout_s: float) -> CheckResult:
    # login and DID each answer every 20 ms, five times the steady 30 ms where `slow` says
    def latency(journey: str, at_s: float) -> float:
        return 0.150 if slow(journey, at_s) else 0.030

    return _watch_paces(latency, {"login": 0.02, "did": 0.02}, timeout_s)


def _watch_paces(
    latency: Callable[[str, float], float], pace: dict[str, float], timeout_s: float
) -> CheckResult:
    """The wait for green over journeys answering at their own pace (`pace`: journey ->
    seconds between answers), each at a steady 30 ms before the rollback."""
    timeline = Timeline()
    users = AlongTheClock(timeline, latency, tuple(pace), every_s=pace)
    rules = AlertRules(pending_s=0.0, latency_pending_s=0.0, latency_window_s=0.4)
    alerts = AlertEngine(timeline, Thresholds(), Classification(), load=users, rules=rules)
    steady = [LoadSample(0, j, 0.030, True, 200, None) for j in pace] * 40
    alerts.steady = by_journey(steady)
    settings = DrillSettings(settle_s=0.5, verify_timeout_s=timeout_s)
    outcome = monitoring_green(
        timeline, alerts, cast(LoadRun, users), LoadStats.of(steady), settings, 0.0
    )
    assert outcome.result is not None
    return outcome.result


def _in_turns(journey: str, at_s: float) -> bool:
    """Login slow for the first 0.6 s of every second, DID for the last 0.6 s: at every
    moment the last 12 answers of one of them have a median five times the steady state."""
    phase = at_s % 1.0
    return phase < 0.6 if journey == "login" else phase >= 0.4


def test_journeys_slow_in_turns_are_each_back_at_the_steady_pace_and_green() -> None:
    """A busy machine slows one journey, then another (measured: 2-6 times, in turns). Each
    journey that has once been served at the steady pace since the rollback counts as
    recovered, so the wait ends green instead of waiting for every journey at once."""
    result = _watch_turns(_in_turns, timeout_s=10.0)
    assert result.ok, result.summary
    assert set(result.evidence["paced_at_s"]) == {"login", "did"}
    assert "each journey back at the steady pace since the rollback" in result.summary


def test_a_journey_slow_throughout_keeps_monitoring_red_and_is_named() -> None:
    """The release's own slowdown: DID five times slower the whole time never gets paced,
    and the wait ends red naming it with its median against the steady state."""

    def did_slow(journey: str, at_s: float) -> bool:
        return journey == "did" or _in_turns(journey, at_s)

    result = _watch_turns(did_slow, timeout_s=3.0)
    assert not result.ok
    assert "not green within 3 s" in result.summary
    assert "did: median of its last 12 answers 150.0 ms vs 30.0 ms" in result.summary
    assert list(result.evidence["paced_at_s"]) == ["login"]


# three journeys answering every 20 ms, and "typed" (login with the e-mail as typed) every 100 ms
_SPARSE = {"login": 0.02, "did": 0.02, "page": 0.02, "typed": 0.1}


def _busy(at_s: float) -> bool:
    """A machine busy for the first 0.6 s of every second: the dense journeys are back at the
    steady pace between busy spells, but any 12 answers of "typed" (1.1 s) hold 6 or more slow
    ones."""
    return at_s % 1.0 < 0.6


def test_a_sparse_journey_as_slow_as_the_paced_ones_is_the_machine_and_green() -> None:
    """The main job's red: "typed", answering ten times less often than login, never had 12
    answers in a row at the steady pace on a busy machine. Only as slow as the journeys already
    back at that pace (x3.5 beside x3), it is the machine's, and the wait ends green saying so."""

    def latency(journey: str, at_s: float) -> float:
        return (0.105 if journey == "typed" else 0.090) if _busy(at_s) else 0.030

    result = _watch_paces(latency, _SPARSE, timeout_s=10.0)
    assert result.ok, result.summary
    assert set(result.evidence["paced_at_s"]) == set(_SPARSE)
    assert list(result.evidence["paced_beside"]) == ["typed"]
    assert "typed at +" in result.summary and "as slow as the journeys back at it" in result.summary


@pytest.mark.parametrize(
    ("others_busy", "typed_s", "seen"),
    [(False, 0.105, "105.0 ms"), (True, 0.240, "240.0 ms")],
    ids=["others-at-the-steady-pace", "much-slower-than-the-busy-others"],
)
def test_a_sparse_journey_slower_than_the_paced_ones_stays_red(
    others_busy: bool, typed_s: float, seen: str
) -> None:
    """The release's own slowdown on the sparse journey: x3.5 while the others answer at the
    steady pace, or x8 while they are x3 on a busy machine (beyond its +50 %), is never
    explained away; the wait ends red naming it."""

    def latency(journey: str, at_s: float) -> float:
        if journey == "typed":
            return typed_s
        return 0.090 if others_busy and _busy(at_s) else 0.030

    result = _watch_paces(latency, _SPARSE, timeout_s=3.0)
    assert not result.ok
    assert f"typed: median of its last 12 answers {seen} vs 30.0 ms" in result.summary
    assert set(result.evidence["paced_at_s"]) == {"login", "did", "page"}
    assert result.evidence["paced_beside"] == {}
