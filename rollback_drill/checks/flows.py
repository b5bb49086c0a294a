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

import dataclasses
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from rollback_drill.checks import machine, perfjudge, sampling, servertime
from rollback_drill.checks.http import Client, Response, client
from rollback_drill.checks.perfjudge import PerformanceJudgement
from rollback_drill.checks.result import CheckResult
from rollback_drill.process.errors import HttpFailure
from rollback_drill.stack.target import Target

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
    tag: str = ""  # the request's User-Agent, which finds its line in nginx's log
    server_s: float | None = None  # the service's own time, from that line


def routes(target: Target, service_url: str) -> list[tuple[str, str]]:
    """(route label, base URL): the service itself, then nginx over HTTP and HTTPS."""
    return [("direct", service_url), *target.frontend_routes()]


def sample_count(target: Target, operations: int) -> int:
    if target.probe_once:
        return operations
    needed = sampling.samples_needed(
        target.thresholds.error_rate_critical, target.sampling_confidence
    )
    return max(needed, operations) if operations else 0


def _send(http: Client, op: Operation, tag: str) -> tuple[Sample, str | None]:
    """The sample, and the failure kind when no HTTP answer came back."""
    try:
        resp = http.request(op.method, op.url, op.json, user_agent=tag)
    except HttpFailure as exc:
        return Sample(op, False, math.inf, exc.detail, tag), exc.kind
    problem = op.accept(resp)
    ok = problem is None
    return Sample(op, ok, resp.seconds if ok else math.inf, problem, tag), None


def run_samples(
    target: Target, operations: list[Operation], n: int, run_tag: str = "", first: int = 0
) -> list[Sample]:
    """n requests over the operations, from a few keep-alive workers; see module docstring.
    Request i is tagged `run_tag`-(first + i) in its User-Agent."""
    run_tag = run_tag or servertime.new_run_tag()
    jobs: Iterator[tuple[int, Operation]] = iter(
        [(first + i, operations[i % len(operations)]) for i in range(n)]
    )
    dead: dict[str, str] = {}  # route -> why it stopped being sampled
    samples: list[Sample] = []
    lock = threading.Lock()
    deadline = time.monotonic() + target.deadline_s

    def take(index: int, op: Operation, http: Client) -> Sample:
        tag = servertime.user_agent(run_tag, index)
        with lock:
            stopped = dead.get(op.route)
        if stopped is None and time.monotonic() > deadline:
            stopped = "the verify deadline passed"
        if stopped is not None:
            return Sample(op, False, math.inf, f"not sent: {stopped}", tag)
        try:
            sample, kind = _send(http, op, tag)
        except Exception as exc:  # a sample that could not be judged is an error, not a gap
            return Sample(op, False, math.inf, f"{type(exc).__name__}: {exc}", tag)
        if kind in ("refused", "timeout"):
            with lock:
                dead.setdefault(op.route, f"{op.route} failed ({sample.problem})")
        return sample

    def work() -> None:
        with client(target) as http:
            while True:
                with lock:
                    job = next(jobs, None)
                if job is None:
                    return
                sample = take(*job, http)
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


def strata(samples: list[Sample], server: bool = False) -> dict[str, list[float]]:
    """Response times of correct answers by operation and route: the client's, or the
    service's own where nginx logged it."""
    found: dict[str, list[float]] = {}
    for s in samples:
        value = s.server_s if server else s.seconds
        if s.ok and value is not None and math.isfinite(value):
            found.setdefault(s.operation.label, []).append(round(value, 6))
    return found


@dataclass(frozen=True)
class FlowVerdict:
    name: str
    samples: list[Sample]
    threshold: float
    confidence: float
    limit_s: float
    performance: PerformanceJudgement | None = None
    notes: list[str] = field(default_factory=list)
    probe: bool = False  # one request per route: any error fails, no rate is claimed
    foreign_share: float | None = None
    baseline_missing: str | None = None

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
        if self.baseline_missing:
            found.append(self.baseline_missing)
        regression = self.performance.problem() if self.performance else None
        if regression is not None:
            found.append(regression)
        return found

    def undecided(self) -> str | None:
        """Why performance decided nothing, when nothing else is wrong: "not verified"."""
        if self.problems() or self.performance is None:
            return None
        return self.performance.undecided()

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
        undecided = self.undecided()
        if undecided:
            return undecided
        n = len(self.samples)
        routes = len({s.operation.route for s in self.samples})
        compared = f"; {self.performance.shown()}" if self.performance else ""
        return (
            f"{n} requests, {routes} routes, 0 errors: rate < {self.bound:.2%} at "
            f"{self.confidence:.0%} (limit {self.threshold:.0%}); p95 {self.p95 * 1000:.0f} ms "
            f"(limit {self.limit_s:g} s){compared}"
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
            "performance": self.performance.evidence() if self.performance else None,
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
            # every time, for a performance baseline (`verify --save-performance`)
            "client_s": strata(self.samples),
            "server_s": strata(self.samples, server=True),
            "foreign_share": self.foreign_share,
            "writes": self.writes(),
            "notes": self.notes,
        }


def _finite(value: float) -> float | None:
    return None if math.isinf(value) else round(value, 4)


def _with_server_times(samples: list[Sample], times: dict[str, float]) -> list[Sample]:
    return [dataclasses.replace(s, server_s=times.get(s.tag)) for s in samples]


def judge(
    name: str, target: Target, operations: list[Operation], notes: list[str] | None = None
) -> CheckResult:
    """Sample the operations and judge the flow: error-rate bound, p95, and - against a
    performance baseline - the response-time ratio (`perfjudge`), sampling again while that
    is borderline."""
    started = time.monotonic()
    baseline = target.performance_baseline.flows.get(name) if target.performance_baseline else None
    urls = [
        *target.service_urls().values(),
        target.mongodb_uri.reveal(),
        target.redis_url.reveal(),
        target.rpc_url or "",
    ]
    shared = machine.shares_machine([u for u in urls if u])
    # a probe (one request per route, twice a second in a drill's synthetic monitoring) never
    # judges performance: it pays neither the search for the target's processes nor the reads
    # of /proc and the frontend's log
    measured = not target.probe_once
    processes = machine.serving_processes(urls if shared else []) if measured else ()
    n = sample_count(target, len(operations))
    run_tag = servertime.new_run_tag()
    performance: PerformanceJudgement | None = None
    missing = None
    with servertime.ServerTimes(target.logs if measured else None) as server:
        before = machine.read(processes) if measured else None
        samples = run_samples(target, operations, n, run_tag)
        rounds = 1
        while True:
            share = machine.foreign_share(before, machine.read(processes)) if before else None
            samples = _with_server_times(samples, server.read())
            time_left = time.monotonic() - started < target.deadline_s / 2
            final = rounds >= perfjudge.MAX_ROUNDS or not time_left or target.probe_once
            if baseline is None:
                break
            performance = perfjudge.judge(
                baseline,
                strata(samples),
                strata(samples, server=True),
                perfjudge.Machine(baseline.foreign_share, share, shared),
                target.sampling_confidence,
                target.thresholds.response_time_increase_critical,
                target.thresholds.response_time_increase_floor_s,
                rounds,
            )
            if performance is None:
                missing = "the performance baseline has no samples of these operations and routes"
                break
            if final or performance.state not in ("borderline", "regressed"):
                break  # re-sampled before failing: a burst of noise is diluted, a regression stays
            samples += run_samples(target, operations, n, run_tag, len(samples))
            rounds += 1
    verdict = FlowVerdict(
        name,
        samples,
        threshold=target.thresholds.error_rate_critical,
        confidence=target.sampling_confidence,
        limit_s=target.thresholds.response_time_warning_s,
        performance=performance,
        notes=(notes or [])
        + ([f"server times: {server.problem}"] if server.problem and baseline else []),
        probe=target.probe_once,
        foreign_share=share,
        baseline_missing=missing,
    )
    undecided = verdict.undecided() is not None
    return CheckResult(
        f"flow.{name}",
        not verdict.problems() and not undecided,
        verdict.summary(),
        verdict.evidence(),
        inconclusive=undecided,
    )
