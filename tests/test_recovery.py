"""The Verify phase's wait for green: it ends red as soon as a deciding check names a failure
no wait can change, and still gives a recovery that is merely slow its whole time.

The users' requests come from a stand-in for locust (`_Users`): what is tested is the wait's
arithmetic on samples, not load generation (drills run real locust)."""

from __future__ import annotations

import time
from typing import cast

from rollback_drill.engine.recovery import monitoring_green
from rollback_drill.files.drillspec import Classification, DrillSettings
from rollback_drill.files.specmodel import Thresholds
from rollback_drill.monitoring.alerts import AlertEngine, AlertRules
from rollback_drill.monitoring.load import LoadRun, LoadSample
from rollback_drill.steps.timeline import Timeline


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
