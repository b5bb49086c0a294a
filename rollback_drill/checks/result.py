"""A check's answer: ok or not, a one-line summary a person reads first, and the evidence;
and how a batch of checks runs - one after another, or all at once under one deadline.

Three fates, never two: passed, failed, or not verified (the check could not look, or the
target forbids what it needs). Not verified is never shown or counted as a pass.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from rollback_drill.process.errors import CheckSkipped
from rollback_drill.process.secrets import redact
from rollback_drill.stack.target import Target

State = Literal["passed", "failed", "not verified"]


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0
    # looked, but what it saw decides nothing (a measurement still straddling its limit after
    # every re-sample, as Argo Rollouts' "inconclusive"): "not verified", neither pass nor fail
    inconclusive: bool = False
    # A failure no wait can change: the target answered, and the answer itself is wrong (a
    # service healthy as another release, a contract it should not use). A drill's Verify
    # phase stops waiting for green on one. Never set for what a slow recovery also shows:
    # no answer, a 5xx, a slow answer, too few samples.
    decided: bool = False

    def explain(self) -> str:
        verdict = "NOT VERIFIED" if self.inconclusive else "PASS" if self.ok else "FAIL"
        return redact(f"{self.name}: {verdict} - {self.summary}")


CheckFn = Callable[[Target], CheckResult]


@dataclass(frozen=True)
class Check:
    name: str
    category: str
    run_fn: CheckFn
    writes: bool = False  # True: writes to the target (not verified when it is read_only)
    doc: str = ""
    # The runbook lines this check performs, quoted as written (`;` separates several), and
    # the section they are in: runbook coverage counts them as it counts procedure steps.
    runbook: str = ""
    runbook_section: str = "Rollback Verification"
    # Its failures can be decided (CheckResult.decided): a drill asks it while it still waits
    # for monitoring to turn green, so a rollback that left the wrong thing running is red at
    # once rather than when the wait runs out. Only cheap, read-only checks.
    decides: bool = False
    # It reads whole collections of the target's database (the fingerprint, a listing): on a
    # large database it waits for the checks that exercise the application (`_waves`).
    reads_whole_collections: bool = False

    def run(self, target: Target) -> CheckResult:
        """Run the check; an exception becomes a failed result, never an escape."""
        if self.writes and target.read_only:
            raise CheckSkipped(f"{self.name} writes to the target, which is read_only")
        start = time.monotonic()
        try:
            result = self.run_fn(target)
        except CheckSkipped:
            raise
        except Exception as exc:
            return CheckResult(
                self.name,
                False,
                redact(f"{type(exc).__name__}: {exc}"),
                {},
                time.monotonic() - start,
            )
        return CheckResult(
            result.name,
            result.ok,
            redact(result.summary),
            result.evidence,
            time.monotonic() - start,
            inconclusive=result.inconclusive,
            decided=result.decided and not result.ok,
        )


@dataclass(frozen=True)
class Outcome:
    """One check's fate in a batch: a result, or the reason it could not be verified."""

    check: Check
    result: CheckResult | None
    skipped: str | None = None

    @property
    def failed(self) -> bool:
        return self.result is not None and not self.result.ok and not self.result.inconclusive

    @property
    def state(self) -> State:
        if self.result is None or self.result.inconclusive:
            return "not verified"
        return "passed" if self.result.ok else "failed"

    @property
    def reason(self) -> str:
        return self.result.summary if self.result is not None else redact(self.skipped or "")


def _outcome(check: Check, target: Target) -> Outcome:
    try:
        return Outcome(check, check.run(target))
    except CheckSkipped as why:
        return Outcome(check, None, str(why))


def run_checks(checks: list[Check], target: Target) -> list[Outcome]:
    return [_outcome(check, target) for check in checks]


SWITCH_INTERVAL_S = 0.0005
# Past this many documents in the integrity baseline, whole-collection reads go second.
LARGE_STORE_DOCUMENTS = 20_000


def _waves(checks: list[Check], target: Target) -> list[list[Check]]:
    """All at once; but on a large database the checks that read whole collections start
    only when the others are done. SecantusDB serves one request at a time and builds a
    find's whole result before its first batch (0.85-1.0 s for 100 000 documents, holding
    every other query meanwhile): at 100 000 users verify's fingerprint and DID listing queued
    the application's own queries past its 1.5 s timeout, and the flows that verify sampled
    meanwhile failed on the 503s verify had caused (`benchmarks/bench_scale.py --users 100000
    --only database`). Below `LARGE_STORE_DOCUMENTS` (under 0.2 s of such a hold) the reads
    take 0.4-0.5 s in a drill's Verify, and going second would add that to every verify."""
    baseline = target.baseline
    documents = sum(c.count for c in baseline.collections.values()) if baseline else 0
    if documents <= LARGE_STORE_DOCUMENTS:
        return [checks]
    first = [c for c in checks if not c.reads_whole_collections]
    then = [c for c in checks if c.reads_whole_collections]
    return [wave for wave in (first, then) if wave]


def _run_all(
    checks: list[Check],
    target: Target,
    results: dict[str, Outcome],
    lock: threading.Lock,
    deadline: float,
) -> None:
    def work(check: Check) -> None:
        outcome = _outcome(check, target)
        with lock:
            results[check.name] = outcome

    threads = [
        threading.Thread(target=work, args=(c,), name=f"check {c.name}", daemon=True)
        for c in checks
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))


def run_checks_concurrently(
    checks: list[Check], target: Target, deadline_s: float | None = None
) -> list[Outcome]:
    """Every check at once (or in two waves, `_waves`), in daemon threads, under one overall
    deadline: a check still running when it passes fails as "no answer within the deadline"
    and is abandoned (its own timeouts end it later; a daemon thread never keeps the process
    alive)."""
    limit = target.deadline_s if deadline_s is None else deadline_s
    results: dict[str, Outcome] = {}
    lock = threading.Lock()
    started = time.monotonic()
    # Dozens of threads waiting on sockets: one that wakes should not wait 5 ms (the default
    # switch interval) for a busy thread to let go of the interpreter, once per request.
    switch = sys.getswitchinterval()
    sys.setswitchinterval(min(switch, SWITCH_INTERVAL_S))
    try:
        for wave in _waves(checks, target):
            _run_all(wave, target, results, lock, started + limit)
    finally:
        sys.setswitchinterval(switch)

    with lock:
        return [
            results.get(check.name)
            or Outcome(
                check,
                CheckResult(
                    check.name,
                    False,
                    f"no answer within the verify deadline ({limit:g} s)",
                    {"deadline_s": limit},
                    time.monotonic() - started,
                ),
            )
            for check in checks
        ]
