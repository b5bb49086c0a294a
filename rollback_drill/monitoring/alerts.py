"""The alert engine of the runbook's "Monitoring During Rollback": it evaluates the rules
(`monitoring.alertrules`) live on what the drill measures - every 0.2 s in a thread, with
resource usage sampled in another - and keeps each alert's life: a statistical condition
(error rate, latency, memory) pending until it has held `pending_s` (Prometheus's `for:`),
then active and fired, resolved when it no longer holds; service down and failed checks fire
at once. Each alert is a timeline event when it fires and when it resolves; detection is the
first alert after the fault. `settle` waits out what is pending before an assessment.

`Alert`, `AlertRules` and `rose` are the rules' module's, named here too: they are what
callers of the engine hand it and read from it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from rollback_drill.files.drillspec import Classification
from rollback_drill.files.specmodel import Thresholds
from rollback_drill.monitoring.alertrules import (
    Alert,
    AlertConditions,
    AlertRules,
    ProbeSource,
    SampleSource,
    rose,
)
from rollback_drill.monitoring.contention import MachineLoad
from rollback_drill.monitoring.load import LoadStats
from rollback_drill.process.errors import AlertEngineBroken, WaitTimeout
from rollback_drill.process.wait import Wait
from rollback_drill.stack.base import ResourceUsage
from rollback_drill.steps.timeline import Timeline

_SUSTAINED = frozenset({"error_rate", "response_time", "response_time_increase", "memory"})


@dataclass
class AlertEngine(AlertConditions):
    """Evaluates every rule on demand (`evaluate`) or every 0.2 s in a thread (`running`)."""

    timeline: Timeline
    thresholds: Thresholds
    classification: Classification
    load: SampleSource | None = None
    monitor: ProbeSource | None = None
    stats: Callable[[], dict[str, ResourceUsage]] | None = None
    memory_limits: dict[str, int] = field(default_factory=dict)  # service -> bytes
    rules: AlertRules = field(default_factory=AlertRules)
    steady: dict[str, LoadStats] | None = None
    # other work's share of the machine in the steady-state window, and the readings that
    # measure it now (monitoring.contention); None: a rise is judged as measured
    machine: MachineLoad | None = None
    steady_share: float | None = None
    not_before_s: float = 0.0  # samples before this (e.g. a rollout's own restart) are ignored
    active: dict[str, Alert] = field(default_factory=dict)
    # conditions seen but not yet held for `pending_s`: key -> (first seen, the alert)
    pending: dict[str, tuple[float, Alert]] = field(default_factory=dict)
    broken: str | None = None
    fired: list[Alert] = field(default_factory=list)
    _check_failures: dict[str, tuple[str, str, float]] = field(default_factory=dict)
    _usage: dict[str, ResourceUsage] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    # -- inputs that are pushed, not pulled -----------------------------------------------------
    def report_check(self, name: str, category: str, ok: bool, summary: str, at_s: float) -> None:
        """Synthetic monitoring: a runbook check that started at `at_s` passed or failed; a
        failure is an alert until the check passes again."""
        with self._lock:
            if ok:
                self._check_failures.pop(name, None)
            else:
                self._check_failures[name] = (category, summary, at_s)

    # -- evaluation -----------------------------------------------------------------------------
    def evaluate(self) -> list[Alert]:
        """Fire what is true now (and, for statistical rules, has held `pending_s`), resolve
        what no longer is; returns the newly fired."""
        now = self.timeline.now()
        if self.machine is not None:
            self.machine.sample(now)
        current = {a.key: a for a in self._current(now)}
        new: list[Alert] = []
        with self._lock:
            for key in [k for k in self.pending if k not in current]:
                del self.pending[key]
            # Anything active from before the window moved on (e.g. a rollout's restart blip)
            # resolves; if it still holds, it fires again as news.
            for key in [k for k, a in self.active.items() if a.at_s < self.not_before_s]:
                gone = self.active.pop(key)
                self.timeline.alert(gone.key, now, True, resolved=True, rule=gone.rule)
            for key, alert in current.items():
                if alert.rule in _SUSTAINED and key not in self.active:
                    first = self.pending[key][0] if key in self.pending else None
                    if first is None or first < self.not_before_s:
                        first = now
                    self.pending[key] = (first, alert)
                    hold = (
                        self.rules.latency_pending_s
                        if alert.rule.startswith("response_time")
                        else self.rules.pending_s
                    )
                    if now - first < hold:
                        continue
                if key not in self.active:
                    self.pending.pop(key, None)
                    self.active[key] = alert
                    self.fired.append(alert)
                    new.append(alert)
                    self.timeline.alert(alert.key, alert.at_s, False, alert=alert.to_json())
            for key in [k for k in self.active if k not in current]:
                gone = self.active.pop(key)
                self.timeline.alert(gone.key, now, True, resolved=True, rule=gone.rule)
        return new

    def latency_in(self, start_s: float, end_s: float) -> dict[str, Alert]:
        """The latency conditions one window of user requests shows, judged as the live rule
        judges them (limit, floor, contention, the sign test when few answer, an alert already
        firing kept while too few answer); by key. Nothing fires: `resample` asks."""
        if self.load is None:
            return {}
        if self.machine is not None:
            self.machine.sample(end_s)
        window = self.load.samples(start_s, end_s + 1)
        return {a.key: a for a in self._latency(window, window, end_s, start_s)}

    # -- live -----------------------------------------------------------------------------------
    def start(self) -> AlertEngine:
        self._threads = [threading.Thread(target=self._evaluate_loop, daemon=True)]
        if self.stats is not None:
            self._threads.append(threading.Thread(target=self._stats_loop, daemon=True))
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=3)

    def _evaluate_loop(self) -> None:
        while not self._stop.wait(0.2):
            try:
                self.evaluate()
            except Exception as exc:  # monitoring that cannot look must not look green
                self.broken = f"alert evaluation failed: {type(exc).__name__}: {exc}"
                return

    def settle(self) -> list[str]:
        """Wait until each condition already seen but not yet held long enough to fire - an
        error rate or memory use, which must hold `pending_s` - has fired or cleared, at most
        that long: an assessment taken meanwhile would miss a symptom that is already there.
        Latency (the noisiest signal) is not waited for. Returns what is still pending."""
        waiting: list[str] = []

        def settled() -> bool:
            self.evaluate()
            with self._lock:
                waiting[:] = [k for k, (_, a) in self.pending.items()
                              if not a.rule.startswith("response_time")]  # fmt: skip
            return not waiting

        wait = Wait("pending alerts to settle", self.rules.pending_s + 0.5, fatal=(Exception,))
        with contextlib.suppress(WaitTimeout):
            wait.until(settled)
        return waiting

    def troubles(self) -> list[Alert]:
        """Everything monitoring sees wrong now: fired alerts and conditions still pending."""
        with self._lock:
            return [*self.active.values(), *(a for _, a in self.pending.values())]

    def fired_since(self, at_s: float) -> list[Alert]:
        """Alerts fired at or after `at_s`; raises when monitoring itself broke."""
        if self.broken:
            raise AlertEngineBroken(self.broken)
        with self._lock:
            return [a for a in self.fired if a.at_s >= at_s]

    def _stats_loop(self) -> None:
        assert self.stats is not None
        while not self._stop.is_set():
            try:
                usage = self.stats()
            except Exception:  # a stats hiccup is not an alert; the next sample decides
                usage = {}
            with self._lock:
                self._usage = usage
            self._stop.wait(0.5)


__all__ = ["Alert", "AlertEngine", "AlertRules", "rose"]
