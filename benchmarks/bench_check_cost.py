"""Benchmark: what each named check adds to verify's check phase - the wall time of every check
run at once (as `rollback-drill verify` runs them), with and without the named checks, runs
interleaved against one reference stack so both see the same machine load. Prints the
medians, the difference each check makes, and each check's own duration. Asserts nothing.

Run: .venv/bin/python benchmarks/bench_check_cost.py [--runs N] [CHECK ...]
(default: the checks of issue 19 - rollback.routes, stores.did_documents, stores.app_database,
stores.redis_writes).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from rollback_drill.checks import ALL_CHECKS, Check, run_checks_concurrently
from rollback_drill.files.spec import load_stack
from rollback_drill.stack.local import LocalStack
from rollback_drill.stack.target import Target

PROJECT_ROOT = Path(__file__).resolve().parents[1]  # this checkout

DEFAULT = ["rollback.routes", "stores.did_documents", "stores.app_database", "stores.redis_writes"]


def _phase(checks: list[Check], target: Target) -> tuple[float, dict[str, float]]:
    started = time.monotonic()
    outcomes = run_checks_concurrently(checks, target)
    own = {o.check.name: o.result.duration_s for o in outcomes if o.result is not None}
    return time.monotonic() - started, own


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("checks", nargs="*", default=DEFAULT)
    args = parser.parse_args()
    loaded = load_stack(PROJECT_ROOT / "fixtures" / "safepsy" / "stack.yaml")
    variants: dict[str, list[Check]] = {
        "all checks": list(ALL_CHECKS),
        "without all named": [c for c in ALL_CHECKS if c.name not in args.checks],
    }
    for name in args.checks:
        variants[f"without {name}"] = [c for c in ALL_CHECKS if c.name != name]
    walls: dict[str, list[float]] = {v: [] for v in variants}
    own: dict[str, list[float]] = {n: [] for n in args.checks}
    with LocalStack(loaded, seed_users=200).running("1.4.0") as stack:
        target = stack.target()
        _phase(list(ALL_CHECKS), target)  # warm: first imports, first connections
        for run in range(args.runs):
            for variant, checks in variants.items():
                wall, durations = _phase(checks, target)
                walls[variant].append(wall)
                if variant == "all checks":
                    for name in args.checks:
                        own[name].append(durations.get(name, float("nan")))
            print(f"run {run + 1}: " + ", ".join(f"{v} {w[-1]:.3f} s" for v, w in walls.items()))
    full = statistics.median(walls["all checks"])
    print(f"\nmedian of {args.runs} runs, check phase wall time:")
    for variant, values in walls.items():
        median = statistics.median(values)
        print(f"  {variant:<32} {median:.3f} s  (all checks add {full - median:+.3f} s)")
    print("each named check's own duration in the full run (median):")
    for name, values in own.items():
        print(f"  {name:<32} {statistics.median(values) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
