"""Benchmark: the local stack's cold start and the emergency drill's wall time, with phases.

Prints figures; asserts nothing (targets on a 2-core machine: ready <= 3 s, drill <= 20 s).
Run: .venv/bin/python benchmarks/bench_stack.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from rollback_drill.drill import run_drill
from rollback_drill.faults import DeployBadRelease
from rollback_drill.procedures import emergency
from rollback_drill.spec import load_stack
from rollback_drill.stack.local import LocalStack
from rollback_drill.tools import PROJECT_ROOT


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed-users", type=int, default=None)
    args = parser.parse_args()
    t0 = time.monotonic()
    import web3  # noqa: F401 - measured separately: a one-off per process

    print(f"import web3 (once per process): {time.monotonic() - t0:.2f} s")
    loaded = load_stack(PROJECT_ROOT / "fixtures" / "safepsy" / "stack.yaml")
    ready, drills, totals = [], [], []
    for run in range(1, args.runs + 1):
        stack = LocalStack(loaded, seed_users=args.seed_users)
        start = total_start = time.monotonic()
        stack.up("1.4.0")
        ready.append(time.monotonic() - start)
        detail = ", ".join(
            f"{k.removesuffix('_s')} {v:.2f}"
            for k, v in stack.timings.items()
            if not k.endswith("ready_s") or k == "ready_s"
        )
        print(f"run {run}: stack ready in {ready[-1]:.2f} s ({detail})")
        try:
            with tempfile.TemporaryDirectory() as tmp:
                start = time.monotonic()
                outcome = run_drill(
                    stack,
                    emergency.PROCEDURE,
                    DeployBadRelease(),
                    bad_release="1.5.0",
                    good_release="1.4.0",
                    artifacts=Path(tmp),
                )
                drills.append(time.monotonic() - start)
        finally:
            stack.down()
            totals.append(time.monotonic() - total_start)
        phases = ", ".join(f"{k} {v:.2f} s" for k, v in outcome.timeline.phases().items())
        steps = ", ".join(
            f"{e.name} {e.duration_s:.2f}" for e in outcome.timeline.events if e.kind == "step"
        )
        ttr = f"{outcome.verdict.time_to_recover_s:.2f} s" if outcome.verdict else "n/a"
        print(
            f"run {run}: emergency drill {drills[-1]:.2f} s, passed={outcome.passed}, "
            f"time-to-recover {ttr}"
        )
        print(f"        phases: {phases}")
        print(f"        steps:  {steps}")
        if outcome.failure:
            print(f"        failure: {outcome.failure}")
    print(
        f"stack ready: median {statistics.median(ready):.2f} s, max {max(ready):.2f} s "
        "(target <= 3 s)"
    )
    print(
        f"emergency drill: median {statistics.median(drills):.2f} s, max {max(drills):.2f} s "
        "(target <= 20 s)"
    )


if __name__ == "__main__":
    main()
