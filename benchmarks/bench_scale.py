"""Benchmark: does the harness's own work eat the recovery budget as the data grows?

Runs the emergency drill (service_down) and the database drill (migration_damage) on the
local backend at several seed sizes (default 200, 10 000 and 100 000 users) and prints, per
drill and size: the seed time, the time-to-recover against the 30 s target (10 % of the
critical row's 300 s), its phases (detect, decide, execute, verify) and where the harness's
own data work went - every backup, fingerprint and restore the drill made, timed where it was
called and attributed to the phase it fell in - beside the procedure's steps and the verify
checks as the timeline recorded them.

The stores' three entry points (`stores.mongo.backup`, `fingerprint`, `restore`) are wrapped
for the run; nothing else changes. Prints figures; asserts nothing (a noisy shared machine).
Run: .venv/bin/python benchmarks/bench_scale.py [--users 200,10000,100000] [--only NAME]
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from bench_drills import main_job_drills

from rollback_drill import Drill, load_stack, run_drill
from rollback_drill.engine.outcome import DrillOutcome
from rollback_drill.stack.local import LocalStack
from rollback_drill.steps.timeline import DETECTED, ROLLBACK_FINISHED, ROLLBACK_STARTED, VERIFIED
from rollback_drill.stores import mongo

PROJECT_ROOT = Path(__file__).resolve().parents[1]  # this checkout

TARGET_S = 30.0
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Call:
    what: str
    started: float  # time.monotonic()
    seconds: float
    detail: str = ""


class HarnessWork:
    """Times every call of the stores' entry points while installed."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self._saved: dict[str, Any] = {}

    def _wrap(self, what: str, fn: F) -> F:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.monotonic()
            try:
                result = fn(*args, **kwargs)
            finally:
                seconds = time.monotonic() - start
            detail = ""
            if isinstance(result, mongo.RestoreReport):
                detail = ", ".join(f"{k} {v:.2f}" for k, v in result.seconds.items())
                detail += f"; {result.atomic}: " + ", ".join(
                    f"{c.name} {c.count_after} (-{c.deleted} +{c.inserted} ~{c.replaced})"
                    for c in result.collections
                )
            elif isinstance(result, mongo.Fingerprint):
                detail = f"{sum(c.count for c in result.collections.values())} docs"
            with self._lock:
                self.calls.append(Call(what, start, seconds, detail))
            return result

        return timed  # type: ignore[return-value]

    def __enter__(self) -> HarnessWork:
        for name in ("backup", "fingerprint", "restore"):
            self._saved[name] = getattr(mongo, name)
            setattr(mongo, name, self._wrap(name, self._saved[name]))
        return self

    def __exit__(self, *exc: object) -> None:
        for name, fn in self._saved.items():
            setattr(mongo, name, fn)


#: The drills the issue's target names, by their `Drill.name`.
DRILLS = {
    "emergency service_down": "emergency: service unavailable",
    "database migration_damage": "database: mongodb restore",
}


def _drills(only: str | None) -> list[tuple[str, Drill]]:
    declared = {d.name: d for d in main_job_drills()}
    return [(label, declared[name]) for label, name in DRILLS.items() if not only or only in label]


def _phase_of(outcome: DrillOutcome, at_s: float) -> str:
    tl = outcome.timeline
    bounds = [("decide", DETECTED, ROLLBACK_STARTED), ("execute", ROLLBACK_STARTED,
              ROLLBACK_FINISHED), ("verify", ROLLBACK_FINISHED, VERIFIED)]  # fmt: skip
    for name, start, end in bounds:
        if tl.has(start) and tl.has(end) and tl.at(start) <= at_s < tl.at(end):
            return name
    if tl.has(DETECTED) and at_s < tl.at(DETECTED):
        return "before detection"
    return "after"


def run_one(drill: Drill, users: int) -> tuple[DrillOutcome, dict[str, float], list[Call]]:
    loaded = load_stack(PROJECT_ROOT / "fixtures" / "safepsy" / "stack.yaml")
    good = drill.check(loaded)
    stack = LocalStack(drill.stack_file(loaded), seed_users=users)
    try:
        stack.up(good)
        with tempfile.TemporaryDirectory() as tmp, HarnessWork() as work:
            outcome = run_drill(stack, drill, artifacts=Path(tmp))
    finally:
        stack.down()
    return outcome, dict(stack.timings), work.calls


def report(label: str, users: int, outcome: DrillOutcome, timings: dict[str, float],
           calls: list[Call]) -> dict[str, float]:  # fmt: skip
    tl = outcome.timeline
    ttr = outcome.verdict.time_to_recover_s if outcome.verdict else float("nan")
    # the whole failure: its first line only says "verification failed after rollback:"
    verdict = "PASS" if outcome.passed else "FAIL " + (outcome.failure or "").replace("\n", "\n   ")
    seeded = timings.get("seeded_s", 0.0) - timings.get("contract_deployed_s", 0.0)
    print(f"\n== {label}, {users} users: TTR {ttr:.2f} s (target {TARGET_S:.0f} s, "
          f"{'met' if ttr <= TARGET_S else 'MISSED'}); {verdict}")  # fmt: skip
    print(f"   seed {seeded:.1f} s; phases: "
          + ", ".join(f"{k} {v:.2f}" for k, v in tl.phases().items()))  # fmt: skip
    harness: dict[str, float] = {}
    for call in calls:
        at_s = call.started - tl.t0_monotonic
        phase = _phase_of(outcome, at_s)
        print(f"   {call.what:12} {call.seconds:6.2f} s  in {phase:16} {call.detail}")
        if phase in ("decide", "execute", "verify"):
            harness[call.what] = harness.get(call.what, 0.0) + call.seconds
    for event in tl.events:
        in_ttr = tl.has(DETECTED) and event.at_s >= tl.at(DETECTED)
        if event.kind in ("step", "check") and in_ttr and event.duration_s >= 0.05:
            phase = _phase_of(outcome, event.at_s)
            print(f"   {event.kind:5} {event.duration_s:6.2f} s  in {phase:8} {event.name}")
    spent = sum(harness.values())
    print(
        f"   harness data work inside TTR: {spent:.2f} s of {ttr:.2f} s ("
        + ", ".join(f"{k} {v:.2f}" for k, v in sorted(harness.items()))
        + ")"
    )
    return {"ttr": ttr, "harness": spent, **{k: v for k, v in harness.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", default="200,10000,100000")
    parser.add_argument("--only", help="only drills whose label contains this")
    args = parser.parse_args()
    sizes = [int(n) for n in args.users.split(",")]
    rows: list[tuple[str, int, dict[str, float]]] = []
    for label, drill in _drills(args.only):
        for users in sizes:
            outcome, timings, calls = run_one(drill, users)
            rows.append((label, users, report(label, users, outcome, timings, calls)))
    print(f"\n{'drill':28} {'users':>7} {'TTR s':>7} {'harness s':>10} {'backup':>7} "
          f"{'fprint':>7} {'restore':>8}")  # fmt: skip
    for label, users, row in rows:
        print(f"{label:28} {users:7d} {row['ttr']:7.2f} {row['harness']:10.2f} "
              f"{row.get('backup', 0):7.2f} {row.get('fingerprint', 0):7.2f} "
              f"{row.get('restore', 0):8.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
