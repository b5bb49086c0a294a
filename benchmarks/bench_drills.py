"""Benchmark: every drill of the main job on the local backend, one after another, as
`rollback-drill run` runs them - each drill's time-to-recover and wall time (stack up,
drill, stack down), the stack's cold start, and the whole job's wall time.

Prints figures; asserts nothing. Target on a 2-core machine: the whole main job (every
drill, local backend) under 3 minutes. Run: .venv/bin/python benchmarks/bench_drills.py
[--only NAME] [--seed-users N]
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from pathlib import Path

from rollback_drill import Drill, load_stack, run_drill
from rollback_drill.stack.local import LocalStack

PROJECT_ROOT = Path(__file__).resolve().parents[1]  # this checkout


def main_job_drills() -> list[Drill]:
    """Every Drill declared in drills/*.py, in file order (what the main job runs)."""
    found: list[Drill] = []
    for path in sorted((PROJECT_ROOT / "drills").glob("test_*.py")):
        spec = importlib.util.spec_from_file_location(f"bench_{path.stem}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        found += [v for v in vars(module).values() if isinstance(v, Drill)]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", help="only drills whose name contains this")
    parser.add_argument("--seed-users", type=int, default=None)
    args = parser.parse_args()
    loaded = load_stack(PROJECT_ROOT / "fixtures" / "safepsy" / "stack.yaml")
    drills = [d for d in main_job_drills() if not args.only or args.only in d.name]
    job_start = time.monotonic()
    print(f"{'drill':44} {'TTR s':>7} {'budget s':>9} {'up s':>6} {'drill s':>8} "
          f"{'down s':>7} {'wall s':>7}  verdict")  # fmt: skip
    for drill in drills:
        good = drill.check(loaded)
        stack = LocalStack(drill.stack_file(loaded), seed_users=args.seed_users)
        t0 = time.monotonic()
        stack.up(good)
        t1 = time.monotonic()
        try:
            with tempfile.TemporaryDirectory() as tmp:
                outcome = run_drill(stack, drill, artifacts=Path(tmp))
        finally:
            t2 = time.monotonic()
            stack.down()
            t3 = time.monotonic()
        ttr = f"{outcome.verdict.time_to_recover_s:7.2f}" if outcome.verdict else "    n/a"
        verdict = "PASS" if outcome.passed else f"FAIL {(outcome.failure or '').splitlines()[0]}"
        print(
            f"{drill.name:44} {ttr} {outcome.budget.budget_s:9.0f} {t1 - t0:6.2f} "
            f"{t2 - t1:8.2f} {t3 - t2:7.2f} {t3 - t0:7.2f}  {verdict}"
        )
        phases = ", ".join(f"{k} {v:.2f}" for k, v in outcome.timeline.phases().items())
        print(f"{'':44} phases: {phases}")
    total = time.monotonic() - job_start
    print(f"all {len(drills)} drills, local backend: {total:.1f} s wall (target < 180 s)")


if __name__ == "__main__":
    main()
