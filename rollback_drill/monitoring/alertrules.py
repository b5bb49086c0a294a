"""The alert rules of the runbook's "Monitoring During Rollback", each evaluated on its window
of what the drill measures:

    Service down: Immediate alert        <- health probes (monitor.py), two misses in a row
    Response time > 2s: Warning          <- user requests (load.py), p95 per journey
    Error rate > 5%: Critical            <- user requests, all journeys together
    Database errors: Critical            <- user requests whose failure names the database
    Memory usage > 90%: Warning          <- resource usage of each service (stack.stats())
    Performance degradation (>50% response time increase): Critical (the runbook's critical
    issues list)                         <- p50 per journey against the steady-state window,
                                            the machine's other work then and now taken out
                                            (contention.py)
    and synthetic monitoring             <- a runbook check failing (checks/), e.g. a flow

An alert carries the measured value beside its limit, and the severity the stack file's
`classification` gives it (the decision matrix's input).

Statistics, not point estimates: the error-rate alert fires when the rate is above the
threshold at 95 % one-sided confidence (the exact Clopper-Pearson lower bound,
checks/sampling.py), so 3 failures in 60 requests of a
healthy-but-noisy window do not page anyone while a real outage fires within a handful of
requests.

Separate from `monitoring.alerts` (the engine: pending, active and fired alerts, the threads
that evaluate them live, settling before an assessment) because a rule is a question about
one window - probes, requests, resource usage, failed checks - answered the same whether the
engine asks every 0.2 s or a test asks once; `AlertConditions` holds the rules, and the
engine, which inherits them, holds the state they read.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from rollback_drill.checks.sampling import lower_bound
from rollback_drill.files.drillspec import AlertRuleName, Classification
from rollback_drill.files.specmodel import Severity, Thresholds
from rollback_drill.monitoring.contention import MachineLoad
from rollback_drill.monitoring.load import LoadSample, LoadStats, by_journey
from rollback_drill.monitoring.monitor import Sample
from rollback_drill.stack.base import ResourceUsage

AlertRule = AlertRuleName  # the rules a stack file can classify are the rules there are
CONFIDENCE = 0.95  # one-sided, for every error-rate alert and the latency sign test
SIGN_TEST_MIN = 5  # the fewest answers that can rule out a median at 95 % (0.5^5 = 0.031)
_DATABASE = re.compile(r"mongo|redis|database", re.I)


def rose(before_s: float, now_s: float, thresholds: Thresholds) -> bool:
    """The stack file's rule for a response-time rise that counts: past
    `response_time_increase_critical` of the steady state AND by more than `_floor_s`."""
    allowed = before_s * (1 + thresholds.response_time_increase_critical)
    return now_s > allowed and now_s - before_s > thresholds.response_time_increase_floor_s


class SampleSource(Protocol):
    """Where user requests come from: a live locust run (load.LoadRun) or recorded samples."""

    def samples(self, start_s: float = ..., end_s: float = ...) -> list[LoadSample]: ...


class ProbeSource(Protocol):
    """Where health probes come from (monitor.Monitor)."""

    def recent(self, n: int) -> dict[str, list[Sample]]: ...


@dataclass(frozen=True)
class Alert:
    rule: AlertRule
    subject: str  # the service, journey or check it is about
    severity: Severity
    at_s: float
    measured: str
    limit: str
    message: str

    @property
    def key(self) -> str:
        return f"{self.rule}:{self.subject}"

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "subject": self.subject,
            "severity": self.severity,
            "at_s": round(self.at_s, 4),
            "measured": self.measured,
            "limit": self.limit,
            "message": self.message,
        }


@dataclass
class AlertRules:
    """Windows, sample floors and how long a condition must hold; thresholds themselves come
    from the stack file."""

    window_s: float = 10.0  # error rate: a rate needs many requests
    latency_window_s: float = 5.0  # latency: recent requests, so a cold start passes through
    min_latency_samples: int = 12
    probe_misses: int = 2
    # Prometheus's `for:` - a statistical condition (error rate, latency, memory) must hold
    # this long before it fires, so a freshly restarted service warming up pages no one.
    # Service down and failed checks fire at once ("Service down: Immediate alert").
    pending_s: float = 1.0
    latency_pending_s: float = 2.0  # latency on a shared machine is the noisiest signal


class AlertConditions:
    """The rules, each evaluated on its window (`_current` asks them all); what they read is
    the engine's state (`alerts.AlertEngine` declares it as dataclass fields)."""

    thresholds: Thresholds
    classification: Classification
    load: SampleSource | None
    monitor: ProbeSource | None
    memory_limits: dict[str, int]
    rules: AlertRules
    steady: dict[str, LoadStats] | None
    machine: MachineLoad | None
    steady_share: float | None
    not_before_s: float
    active: dict[str, Alert]  # a latency alert already firing stays while too few answer
    _check_failures: dict[str, tuple[str, str, float]]
    _usage: dict[str, ResourceUsage]
    _lock: threading.RLock

    def _current(self, now: float) -> list[Alert]:
        start = max(now - self.rules.window_s, self.not_before_s)
        alerts: list[Alert] = []
        alerts += self._service_down(now)
        if self.load is not None:
            alerts += self._error_rate(self.load.samples(start, now + 1), now)
            recent = max(now - self.rules.latency_window_s, self.not_before_s)
            alerts += self._latency(
                self.load.samples(recent, now + 1), self.load.samples(start, now + 1), now, recent
            )
        alerts += self._memory(now)
        alerts += self._checks(now)
        return alerts

    def _make(self, rule: AlertRule, subject: str, at: float, measured: str, limit: str,
              message: str, severity: Severity | None = None) -> Alert:  # fmt: skip
        return Alert(
            rule,
            subject,
            severity or self.classification.alerts[rule],
            at,
            measured,
            limit,
            message,
        )

    def _service_down(self, now: float) -> list[Alert]:
        if self.monitor is None:
            return []
        alerts = []
        for endpoint, recent in self.monitor.recent(self.rules.probe_misses).items():
            recent = [s for s in recent if s.at_s >= self.not_before_s]
            if len(recent) >= self.rules.probe_misses and not any(s.ok for s in recent):
                status = recent[-1].status
                alerts.append(
                    self._make(
                        "service_down",
                        endpoint,
                        recent[0].at_s,
                        f"{len(recent)} probes failed (last: {status or 'no answer'})",
                        "any probe answered 200",
                        f"{endpoint} is down: health probe {status or 'no answer'}",
                    )
                )
        return alerts

    def _error_rate(self, window: Sequence[LoadSample], now: float) -> list[Alert]:
        total = len(window)
        errors = [s for s in window if not s.ok]
        limit = self.thresholds.error_rate_critical
        alerts = []
        bound = lower_bound(len(errors), total, CONFIDENCE)
        if total and bound > limit:
            alerts.append(
                self._make(
                    "error_rate",
                    "users",
                    now,
                    f"{len(errors)}/{total} requests failed ({len(errors) / total:.1%}, "
                    f"95 % lower bound {bound:.1%})",
                    f"{limit:.0%}",
                    f"error rate {len(errors) / total:.1%} over {self.rules.window_s:.0f} s",
                )
            )
        database = [s for s in errors if s.error and _DATABASE.search(s.error)]
        if database:
            alerts.append(
                self._make(
                    "database_errors",
                    "users",
                    database[0].at_s,
                    f"{len(database)} request(s) failed on the database: {database[0].error}",
                    "none",
                    "database errors in user requests",
                )
            )
        return alerts

    def contention(self, start_s: float, end_s: float) -> tuple[float, str]:
        """The stretch other work on the machine explains between the steady state and this
        window (1 where unmeasured), and how it is shown beside a rise."""
        if self.machine is None:
            return 1.0, ""
        share = self.machine.share(start_s, end_s)
        factor = self.machine.factor(self.steady_share, share)
        if factor == 1.0:
            return 1.0, ""
        return factor, (
            f"; other work took {share:.0%} of the machine (steady state "
            f"{self.steady_share:.0%}): x{factor:.2f} taken out"
        )

    def _latency(
        self, window: Sequence[LoadSample], longer: Sequence[LoadSample], now: float, start: float
    ) -> list[Alert]:
        alerts = []
        factor, contention = self.contention(start, now)
        limit = self.thresholds.response_time_warning_s
        increase = self.thresholds.response_time_increase_critical
        floor = self.thresholds.response_time_increase_floor_s
        seen = by_journey(window)
        for journey in sorted(set(seen) | set(self.steady or {})):
            stats = seen.get(journey, LoadStats(0, 0, None, None, None))
            ok_count = stats.requests - stats.errors
            if ok_count < self.rules.min_latency_samples:
                slow = self._few_but_slow(journey, longer, now)
                if slow is not None:
                    alerts.append(slow)
                    continue
                # Too few answers to judge: a latency alert already firing stays (a service so
                # slow that few requests finish is not a recovered one).
                for rule in ("response_time", "response_time_increase"):
                    held = self.active.get(f"{rule}:{journey}")
                    if held is not None:
                        alerts.append(held)
                continue
            if stats.p95_s is not None and stats.p95_s > limit:
                alerts.append(
                    self._make(
                        "response_time",
                        journey,
                        now,
                        f"p95 {stats.p95_s:.3f} s over {ok_count} requests",
                        f"{limit} s",
                        f"{journey}: response time p95 {stats.p95_s:.2f} s > {limit} s",
                    )
                )
            before = (self.steady or {}).get(journey)
            if before is None or before.p50_s is None or stats.p50_s is None:
                continue
            if rose(before.p50_s * factor, stats.p50_s, self.thresholds):
                rise = stats.p50_s / before.p50_s - 1
                alerts.append(
                    self._make(
                        "response_time_increase",
                        journey,
                        now,
                        f"p50 {stats.p50_s * 1000:.1f} ms vs {before.p50_s * 1000:.1f} ms in the "
                        f"steady state (+{rise:.0%}){contention}",
                        f"+{increase:.0%} and +{floor * 1000:.0f} ms "
                        "(thresholds.response_time_increase_critical, _floor_s)",
                        f"{journey}: response time up {rise:.0%} over the steady state",
                    )
                )
        return alerts

    def _few_but_slow(self, journey: str, longer: Sequence[LoadSample], now: float) -> Alert | None:
        """A journey so slow that too few answers for a median arrive in the latency window
        (a login 20 times slower on a busy machine: three in five seconds) is judged over the
        error-rate window by a sign test: the rise counts when so many of its answers each rose
        past the limit that a median under it is ruled out at `CONFIDENCE` (5 of 5, 7 of 8,
        9 of 11). Without it the slowest releases were the ones the rule could not see."""
        before = (self.steady or {}).get(journey)
        if before is None or before.p50_s is None:
            return None
        answers = [s for s in longer if s.journey == journey and s.ok]
        if len(answers) < SIGN_TEST_MIN:
            return None
        start = min(s.at_s for s in answers)
        factor, contention = self.contention(start, now)
        risen = [s for s in answers if rose(before.p50_s * factor, s.latency_s, self.thresholds)]
        if lower_bound(len(risen), len(answers), CONFIDENCE) <= 0.5:
            return None
        median = sorted(s.latency_s for s in answers)[len(answers) // 2]
        return self._make(
            "response_time_increase",
            journey,
            now,
            f"{len(risen)} of {len(answers)} answers each over the limit (median "
            f"{median * 1000:.1f} ms vs {before.p50_s * 1000:.1f} ms in the steady state; "
            f"a median under the limit ruled out at {CONFIDENCE:.0%}){contention}",
            f"+{self.thresholds.response_time_increase_critical:.0%} and "
            f"+{self.thresholds.response_time_increase_floor_s * 1000:.0f} ms "
            "(thresholds.response_time_increase_critical, _floor_s)",
            f"{journey}: response time up {median / before.p50_s - 1:.0%} over the steady state",
        )

    def _memory(self, now: float) -> list[Alert]:
        with self._lock:
            usage = dict(self._usage)
        alerts = []
        limit = self.thresholds.memory_warning
        for service, sample in usage.items():
            declared = self.memory_limits.get(service)
            fraction = sample.memory_bytes / declared if declared else sample.memory_fraction
            if fraction > limit:
                of = declared or sample.memory_limit_bytes
                alerts.append(
                    self._make(
                        "memory",
                        service,
                        now,
                        f"{sample.memory_bytes / 2**20:.0f} MiB of {of / 2**20:.0f} MiB "
                        f"({fraction:.0%})",
                        f"{limit:.0%}",
                        f"{service}: memory usage {fraction:.0%}",
                    )
                )
        return alerts

    def _checks(self, now: float) -> list[Alert]:
        with self._lock:
            failures = dict(self._check_failures)
        return [
            self._make(
                "check_failed",
                name,
                at,
                summary,
                "pass",
                f"synthetic check {name} failed: {summary}",
                severity=self.classification.of_check(name, category),
            )
            for name, (category, summary, at) in failures.items()
            if at >= self.not_before_s
        ]


__all__ = [
    "CONFIDENCE",
    "Alert",
    "AlertConditions",
    "AlertRule",
    "AlertRules",
    "ProbeSource",
    "SampleSource",
    "rose",
]
