"""Sampling a user flow over every route to it: directly at the service and through every
route nginx proxies, over HTTP and HTTPS.

A flow is a list of operations (one request each, with what a correct answer looks like).
Its samples go round-robin over the operations, enough of them to bound the error rate below
the runbook's critical threshold at the target's confidence; the same samples give p95.
A wrong answer and a request that got no answer are both errors - and a failed request is
never a fast sample. After a route refuses or times out, its remaining samples are counted
as errors without being sent, so a dead or hanging route costs one timeout, not sixty.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from rollback_drill.checks import sampling
from rollback_drill.checks.http import Client, HttpFailure, Response, client
from rollback_drill.checks.result import CheckResult
from rollback_drill.stack.target import Target

MIN_REGRESSION_S = 0.05
"""Increases over the performance baseline smaller than this are noise, not regressions."""

Accept = Callable[[Response], str | None]  # None: a correct answer; else what was wrong


@dataclass(frozen=True)
class Operation:
    route: str  # "direct", "nginx http", "nginx https"
    method: str
    url: str
    accept: Accept
    json: dict[str, Any] | None = None
    writes: str | None = None  # the collection one correct answer adds a document to

    @property
    def label(self) -> str:
        path = "/" + self.url.split("://", 1)[-1].split("/", 1)[-1]
        return f"{self.method} {path} ({self.route})"


@dataclass(frozen=True)
class Sample:
    operation: Operation
    ok: bool
    seconds: float  # inf when no correct answer came back
    problem: str | None = None


def routes(target: Target, service_url: str) -> list[tuple[str, str]]:
    """(route label, base URL): the service itself, then nginx over HTTP and HTTPS."""
    found = [("direct", service_url), ("nginx http", target.frontend_url)]
    if target.frontend_tls_url:
        found.append(("nginx https", target.frontend_tls_url))
    return found


def sample_count(target: Target, operations: int) -> int:
    if target.probe_once:
        return operations
    needed = sampling.samples_needed(
        target.thresholds.error_rate_critical, target.sampling_confidence
    )
    return max(needed, operations) if operations else 0


def _send(http: Client, op: Operation) -> tuple[Sample, str | None]:
    """The sample, and the failure kind when no HTTP answer came back."""
    try:
        resp = http.request(op.method, op.url, op.json)
    except HttpFailure as exc:
        return Sample(op, False, math.inf, exc.detail), exc.kind
    problem = op.accept(resp)
    ok = problem is None
    return Sample(op, ok, resp.seconds if ok else math.inf, problem), None


def run_samples(target: Target, operations: list[Operation], n: int) -> list[Sample]:
    """n requests over the operations, from a few keep-alive workers; see module docstring."""
    jobs: Iterator[Operation] = iter([operations[i % len(operations)] for i in range(n)])
    dead: dict[str, str] = {}  # route -> why it stopped being sampled
    samples: list[Sample] = []
    lock = threading.Lock()
    deadline = time.monotonic() + target.deadline_s

    def take(op: Operation, http: Client) -> Sample:
        with lock:
            stopped = dead.get(op.route)
        if stopped is None and time.monotonic() > deadline:
            stopped = "the verify deadline passed"
        if stopped is not None:
            return Sample(op, False, math.inf, f"not sent: {stopped}")
        try:
            sample, kind = _send(http, op)
        except Exception as exc:  # a sample that could not be judged is an error, not a gap
            return Sample(op, False, math.inf, f"{type(exc).__name__}: {exc}")
        if kind in ("refused", "timeout"):
            with lock:
                dead.setdefault(op.route, f"{op.route} failed ({sample.problem})")
        return sample

    def work() -> None:
        with client(target) as http:
            while True:
                with lock:
                    op = next(jobs, None)
                if op is None:
                    return
                sample = take(op, http)
                with lock:
                    samples.append(sample)

    workers = [
        threading.Thread(target=work, daemon=True, name="flow sampler")
        for _ in range(min(target.sampling_workers, n))
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return samples


@dataclass(frozen=True)
class FlowVerdict:
    name: str
    samples: list[Sample]
    threshold: float
    confidence: float
    limit_s: float
    baseline_p95_s: float | None = None
    increase_limit: float = 0.5
    notes: list[str] = field(default_factory=list)
    probe: bool = False  # one request per route: any error fails, no rate is claimed

    @property
    def errors(self) -> int:
        return sum(not s.ok for s in self.samples)

    @property
    def bound(self) -> float:
        return sampling.upper_bound(self.errors, len(self.samples), self.confidence)

    @property
    def p95(self) -> float:
        return sampling.percentile([s.seconds for s in self.samples], 95)

    def problems(self) -> list[str]:
        n = len(self.samples)
        found = []
        if n == 0:
            return ["no samples taken"]
        if self.probe and self.errors:
            found.append(
                f"{self.errors} of {n} probe request(s) failed: " + "; ".join(self._first_errors())
            )
        elif not self.probe and self.bound > self.threshold:
            found.append(
                f"{self.errors} error(s) in {n} requests: the error rate cannot be shown below "
                f"{self.threshold:.0%} (upper bound {self.bound:.1%} at {self.confidence:.0%}); "
                + "; ".join(self._first_errors())
            )
        if self.p95 > self.limit_s:
            shown = "a failed request" if math.isinf(self.p95) else f"{self.p95:.2f} s"
            found.append(f"p95 {shown} over the {self.limit_s:g} s warning threshold")
        regression = self.regression()
        if regression is not None:
            found.append(regression)
        return found

    def regression(self) -> str | None:
        base = self.baseline_p95_s
        if base is None or math.isinf(self.p95):
            return None
        if self.p95 > base * (1 + self.increase_limit) and self.p95 - base > MIN_REGRESSION_S:
            return (
                f"p95 {self.p95 * 1000:.0f} ms is {self.p95 / base - 1:+.0%} over the baseline "
                f"{base * 1000:.0f} ms (limit +{self.increase_limit:.0%})"
            )
        return None

    def _first_errors(self) -> list[str]:
        seen: dict[str, str] = {}
        for s in self.samples:
            if not s.ok and s.operation.label not in seen:
                seen[s.operation.label] = f"{s.operation.label}: {s.problem}"
        return list(seen.values())[:3]

    def summary(self) -> str:
        problems = self.problems()
        if problems:
            return "; ".join(problems)
        n = len(self.samples)
        routes = len({s.operation.route for s in self.samples})
        baseline = (
            f", baseline p95 {self.baseline_p95_s * 1000:.0f} ms"
            if self.baseline_p95_s is not None
            else ""
        )
        return (
            f"{n} requests, {routes} routes, 0 errors: rate < {self.bound:.2%} at "
            f"{self.confidence:.0%} (limit {self.threshold:.0%}); p95 {self.p95 * 1000:.0f} ms "
            f"(limit {self.limit_s:g} s{baseline})"
        )

    def writes(self) -> list[dict[str, Any]]:
        counts: dict[str, int] = {}
        for s in self.samples:
            if s.ok and s.operation.writes:
                counts[s.operation.writes] = counts.get(s.operation.writes, 0) + 1
        return [{"collection": c, "documents": k} for c, k in sorted(counts.items())]

    def evidence(self) -> dict[str, Any]:
        per_op: dict[str, list[Sample]] = {}
        for s in self.samples:
            per_op.setdefault(s.operation.label, []).append(s)
        return {
            "samples": len(self.samples),
            "errors": self.errors,
            "confidence": self.confidence,
            "error_rate_upper_bound": round(self.bound, 5),
            "error_rate_limit": self.threshold,
            "p95_s": None if math.isinf(self.p95) else round(self.p95, 4),
            "p95_limit_s": self.limit_s,
            "baseline_p95_s": self.baseline_p95_s,
            "operations": [
                {
                    "operation": label,
                    "samples": len(group),
                    "errors": sum(not s.ok for s in group),
                    "p95_s": _finite(sampling.percentile([s.seconds for s in group], 95)),
                    "first_error": next((s.problem for s in group if not s.ok), None),
                }
                for label, group in per_op.items()
            ],
            "writes": self.writes(),
            "notes": self.notes,
        }


def _finite(value: float) -> float | None:
    return None if math.isinf(value) else round(value, 4)


def judge(
    name: str, target: Target, operations: list[Operation], notes: list[str] | None = None
) -> CheckResult:
    """Sample the operations and judge the flow: error-rate bound, p95, baseline regression."""
    samples = run_samples(target, operations, sample_count(target, len(operations)))
    baseline = (target.performance_baseline or {}).get(name)
    verdict = FlowVerdict(
        name,
        samples,
        threshold=target.thresholds.error_rate_critical,
        confidence=target.sampling_confidence,
        limit_s=target.thresholds.response_time_warning_s,
        baseline_p95_s=baseline,
        increase_limit=target.thresholds.response_time_increase_critical,
        notes=notes or [],
        probe=target.probe_once,
    )
    return CheckResult(
        f"flow.{name}", not verdict.problems(), verdict.summary(), verdict.evidence()
    )
