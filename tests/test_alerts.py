"""The runbook's alert thresholds as rules, on recorded samples (no stack): each rule fires on
what it guards, with the measured value beside its limit, and stays quiet on noise."""

from __future__ import annotations

import dataclasses
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from rollback_drill.checks.sampling import lower_bound
from rollback_drill.files.drillspec import Classification
from rollback_drill.files.spec import LoadedStack
from rollback_drill.files.specmodel import Thresholds
from rollback_drill.monitoring.alerts import AlertEngine, AlertRules
from rollback_drill.monitoring.contention import MachineLoad, Reading
from rollback_drill.monitoring.decision import Finding, decide
from rollback_drill.monitoring.load import LoadSample, LoadStats, by_journey
from rollback_drill.monitoring.monitor import Sample
from rollback_drill.process.errors import NothingToDecide
from rollback_drill.process.wait import Wait
from rollback_drill.stack.base import ResourceUsage
from rollback_drill.steps.timeline import Timeline


class Recorded:
    """Samples recorded up front, served as a live source would."""

    def __init__(self, samples: list[LoadSample]) -> None:
        self.rows = samples

    def samples(self, start_s: float = -math.inf, end_s: float = math.inf) -> list[LoadSample]:
        return [s for s in self.rows if start_s <= s.at_s < end_s]


class Probes:
    def __init__(self, rows: list[Sample]) -> None:
        self.rows = rows

    def recent(self, n: int) -> dict[str, list[Sample]]:
        out: dict[str, list[Sample]] = {}
        for row in self.rows:
            out.setdefault(row.endpoint, []).append(row)
        return {k: v[-n:] for k, v in out.items()}


def _engine(**kwargs: object) -> AlertEngine:
    timeline = Timeline()
    engine = AlertEngine(
        timeline,
        Thresholds(),
        Classification(),
        rules=AlertRules(pending_s=0.0, latency_pending_s=0.0),
        **kwargs,  # type: ignore[arg-type]
    )
    return engine


def _requests(n: int, failing: int, latency: float = 0.005) -> list[LoadSample]:
    """`n` login requests in the first 100 ms of the drill, the first `failing` of them failed."""
    return [
        LoadSample(0.1 * i / n, "login", latency, i >= failing, 200 if i >= failing else 502, None)
        for i in range(n)
    ]


def test_the_lower_bound_separates_noise_from_outage() -> None:
    assert lower_bound(0, 2, 0.95) == 0.0
    assert lower_bound(1, 20, 0.95) < 0.05  # one failure in twenty proves nothing
    assert lower_bound(3, 60, 0.95) < 0.05  # 5 % of a small window: not proven above 5 %
    assert lower_bound(10, 12, 0.95) > 0.5  # an outage proves itself in a dozen requests
    assert lower_bound(0, 0, 0.95) == 0.0


def test_error_rate_alert_fires_with_the_measured_rate_and_limit() -> None:
    engine = _engine(load=Recorded(_requests(40, failing=20)))
    (alert,) = [a for a in engine.evaluate() if a.rule == "error_rate"]
    assert alert.severity == "critical"
    assert "20/40 requests failed (50.0%" in alert.measured and alert.limit == "5%"


def test_a_few_failures_in_a_small_window_do_not_page() -> None:
    engine = _engine(load=Recorded(_requests(30, failing=2)))
    assert not [a for a in engine.evaluate() if a.rule == "error_rate"]


def test_database_errors_are_critical() -> None:
    rows = _requests(30, failing=0)
    rows.append(
        LoadSample(rows[0].at_s, "login", 0.01, False, 503, "HTTP 503: mongodb unavailable")
    )
    engine = _engine(load=Recorded(rows))
    assert [a.severity for a in engine.evaluate() if a.rule == "database_errors"] == ["critical"]


def test_latency_rise_needs_both_the_ratio_and_the_floor() -> None:
    steady = by_journey(_requests(30, 0, latency=0.004))
    small = _engine(load=Recorded(_requests(30, 0, latency=0.008)))  # +100 % but +4 ms
    small.steady = steady
    assert not small.evaluate()
    big = _engine(load=Recorded(_requests(30, 0, latency=0.060)))  # +1400 %, +56 ms
    big.steady = steady
    (alert,) = big.evaluate()
    assert alert.rule == "response_time_increase" and alert.severity == "critical"
    assert "+1400%" in alert.measured


def test_a_firing_latency_alert_holds_when_too_few_requests_finish() -> None:
    source = Recorded(_requests(30, 0, latency=0.060))
    engine = _engine(load=source)
    engine.steady = by_journey(_requests(30, 0, latency=0.004))
    assert engine.evaluate()
    source.rows = source.rows[:3]  # the service is so slow that almost nothing finishes
    engine.evaluate()
    assert "response_time_increase:login" in engine.active


def test_sustained_rules_wait_for_pending_s_and_count_as_trouble_meanwhile() -> None:
    engine = _engine(load=Recorded(_requests(40, failing=20)))
    engine.rules = AlertRules(pending_s=60.0, latency_pending_s=60.0)
    assert engine.evaluate() == []
    assert [a.rule for a in engine.troubles()] == ["error_rate"]


def test_settle_waits_for_a_pending_error_rate_to_fire() -> None:
    """The assessment settles first: an error rate seen but still holding fires in time to be
    assessed, instead of being missed for a less severe finding that fired first."""
    engine = _engine(load=Recorded(_requests(40, failing=20)))
    engine.rules = AlertRules(pending_s=0.3, latency_pending_s=60.0)
    assert engine.evaluate() == [] and "error_rate:users" in engine.pending
    assert engine.settle() == []
    assert "error_rate:users" in engine.active and not engine.pending


def test_settle_gives_up_after_the_hold_and_says_what_is_still_pending() -> None:
    engine = _engine(load=Recorded(_requests(40, failing=20)))
    engine.rules = AlertRules(pending_s=0.2, latency_pending_s=60.0)
    engine.evaluate()
    key = "error_rate:users"
    engine.pending[key] = (math.inf, engine.pending[key][1])  # a hold that never completes
    engine.not_before_s = -math.inf
    assert engine.settle() == [key]


def test_service_down_after_two_missed_probes() -> None:
    down = [Sample(0.1 * i, "backend", False, 0.001, None) for i in range(2)]
    engine = _engine(monitor=Probes(down))
    (alert,) = engine.evaluate()
    assert alert.rule == "service_down" and alert.subject == "backend"
    once = _engine(monitor=Probes([Sample(0.0, "backend", True, 0.001, 200), down[0]]))
    assert not once.evaluate()


def test_memory_against_the_declared_limit_is_a_low_warning() -> None:
    engine = _engine(memory_limits={"ai-chatbot": 100 * 2**20})
    engine._usage = {"ai-chatbot": ResourceUsage(1.0, 95 * 2**20, 24 * 2**30)}
    (alert,) = engine.evaluate()
    assert alert.rule == "memory" and alert.severity == "low"
    assert "(95%)" in alert.measured and alert.limit == "90%"


def test_alerts_from_before_the_window_resolve_and_fire_again_as_news() -> None:
    engine = _engine(monitor=Probes([Sample(0.0, "backend", False, 0.0, None)] * 2))
    assert engine.evaluate()
    engine.not_before_s = 1.0  # e.g. the rollout finished: its restart blip is history
    assert not engine.evaluate()


def test_decision_takes_the_most_severe_finding(stack_file: LoadedStack) -> None:
    findings = [
        Finding(
            "check", "functional.chat_conversation", "medium", "x", "pass", "r", ("ai-chatbot",)
        ),
        Finding("alert", "error_rate:users", "critical", "50 %", "5 %", "r"),
    ]
    decision = decide(stack_file, findings)
    assert decision.severity == "critical" and decision.row.rollback_type == "emergency"
    assert decision.affected_services == ["ai-chatbot"]
    assert "error_rate:users" in decision.explain()
    with pytest.raises(NothingToDecide):
        decide(stack_file, [])


def test_classification_globs_and_categories(stack_file: LoadedStack) -> None:
    c = stack_file.spec.classification
    assert c.of_check("flow.chat", "functional") == "medium"  # the stack file's entry
    assert c.of_check("functional.frontend_chat_box", "functional") == "medium"  # its glob
    assert c.of_check("flow.login", "functional") == "high"  # the category's default
    assert c.of_check("rollback.contract", "rollback") == "medium"
    assert c.of_check("health.backend", "health") == "critical"
    assert c.alerts["response_time_increase"] == "critical"  # the stack file's resolution


def test_load_stats_of_nothing_is_unknown_not_zero() -> None:
    stats = LoadStats.of([])
    assert stats.error_rate is None and stats.p50_s is None and stats.availability is None


def _machine(steady_share: float, now_share: float) -> MachineLoad:
    """Readings of a 2-core machine: the steady state (0-4 s) and the latency window (5-9 s)
    with other work taking the given shares of it."""
    cores = os.cpu_count() or 1
    machine = MachineLoad()
    busy = 0.0
    for start, share in ((0.0, steady_share), (5.0, now_share)):
        machine.readings.append(Reading(start, busy, {}))
        busy += 4.0 * cores * share
        machine.readings.append(Reading(start + 4.0, busy, {}))
    return machine


def test_a_busier_machine_is_taken_out_of_a_latency_rise_and_shown_beside_it() -> None:
    """CI: a medium release read as login "+188 %" while the other worker's drills ran, and the
    drill was classified critical. Other work's share rising from 10 % to 70 % explains x1.73
    (damped); a rise beyond that still fires, and says what was taken out."""
    engine = _engine(machine=_machine(0.1, 0.7))
    engine.steady = by_journey(_requests(30, 0, latency=0.010))
    engine.steady_share = engine.machine.share(0.0, 4.0) if engine.machine else None
    assert engine.steady_share == pytest.approx(0.1)
    busy_only = [
        dataclasses.replace(s, at_s=5.5, latency_s=0.025) for s in _requests(30, 0)
    ]  # +150 %: within x1.5 once x1.73 is taken out
    assert engine._latency(busy_only, busy_only, 9.0, 5.0) == []
    slower = [dataclasses.replace(s, latency_s=0.040) for s in busy_only]  # x4: a slower release
    (alert,) = engine._latency(slower, slower, 9.0, 5.0)
    assert alert.rule == "response_time_increase"
    assert "other work took 70% of the machine (steady state 10%): x1.73 taken out" in (
        alert.measured
    )
    quiet = _engine(machine=_machine(0.1, 0.1))  # the same rise on an unchanged machine
    quiet.steady, quiet.steady_share = engine.steady, 0.1
    assert [a.rule for a in quiet._latency(busy_only, busy_only, 9.0, 5.0)] == [
        "response_time_increase"
    ]


def test_a_journey_too_slow_for_a_median_fires_on_a_sign_test() -> None:
    """CI: release 1.6.0 (a login 20 times the work) on a busy machine answered three logins
    in the five-second latency window, under the dozen a median needs, and the critical alert
    never fired: the drill was classified high. Its answers over the longer window each past
    the limit rule a median under it out; fewer, or mixed, do not."""
    engine = _engine()
    engine.steady = by_journey(_requests(30, 0, latency=0.020))

    def logins(latencies: list[float]) -> list[LoadSample]:
        return [LoadSample(1.0 + i, "login", s, True, 200, None) for i, s in enumerate(latencies)]

    few = logins([1.2, 0.9, 1.5])  # the latency window: too few to judge
    slow = logins([1.2, 0.9, 1.5, 2.1, 1.1])  # the longer window: 5 of 5 past +50 % and +25 ms
    (alert,) = engine._latency(few, slow, 6.0, 1.0)
    assert alert.rule == "response_time_increase" and alert.subject == "login"
    assert "5 of 5 answers each over the limit" in alert.measured
    assert "ruled out at 95%" in alert.measured
    assert engine._latency(few, slow[:4], 6.0, 1.0) == []  # 4 of 4: p = 0.06, not ruled out
    mixed = logins([1.2, 0.9, 0.021, 2.1, 1.1, 0.019])  # 4 of 6 rose: a median may be under
    assert engine._latency(few, mixed, 6.0, 1.0) == []
    (seven_of_eight,) = engine._latency(few, logins([1.2, 0.9, 0.02, 2.1, 1.1, 1.0, 1.3, 1.4]),
                                        9.0, 1.0)  # fmt: skip
    assert "7 of 8 answers" in seven_of_eight.measured


def test_machine_load_counts_the_drills_own_processes_apart_from_other_work(
    tmp_path: Path,
) -> None:
    """A busy loop this process started is the drill's own work; one it does not own (started
    detached, so not a descendant) is other work."""
    spin = [
        sys.executable,
        "-c",
        "import time\nend = time.time() + 30\nwhile time.time() < end: pass",
    ]
    own = subprocess.Popen(spin)
    try:
        machine = MachineLoad()
        machine.sample(0.0)
        time.sleep(1.5)
        machine.sample(1.5)
        first, last = machine.readings[0], machine.readings[-1]
        mine = f"pid {own.pid}"
        assert last.own_s[mine] - first.own_s[mine] > 0.3  # counted as its own
    finally:
        own.kill()
        own.wait()
    pidfile = tmp_path / "pid"
    subprocess.run(  # the shell exits at once; the loop is reparented, no longer ours
        ["sh", "-c", f'"$0" "$@" >/dev/null 2>&1 & echo $! > {pidfile}', *spin], check=True
    )
    foreign = psutil.Process(int(pidfile.read_text()))
    # the loop the shell started, nothing else; its fork execs the loop a moment after `$!`
    Wait("the detached loop to exec", 5.0).until(lambda: foreign.cmdline() == spin)
    try:
        assert foreign.pid not in {p.pid for p in psutil.Process().children(recursive=True)}
        machine = MachineLoad()
        machine.sample(10.0)
        time.sleep(1.5)
        machine.sample(11.5)
        share = machine.share(10.0, 11.5)
        assert share is not None and share > 0.5 / (os.cpu_count() or 1)
    finally:
        foreign.kill()  # started above by this test: its pid came from the shell's $!
        foreign.wait(5)
