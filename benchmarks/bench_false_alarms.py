"""Benchmark: false alarms of verify's performance judgement on a busy machine, and real
regressions it must still catch - the new judge (`checks.perfjudge`) and the old one (one p95
per flow against the baseline's p95, +50 % and 50 ms) on the very same samples, one run.

1. A reference stack at 1.4.0; its target file as `rollback-drill up` writes it (log access
   included, so nginx's upstream times are read).
2. The performance baseline, taken by a green verify run while the machine is quiet.
3. `--runs` whole verify runs (every check, as `rollback-drill verify` runs them) while
   `--burners` processes (default: one per core) spin beside them: a false alarm is a run
   whose flows fail on performance ("not recovered"); a run where a flow's performance decided
   nothing ("not verified") is counted apart; any other failure is printed too.
4. The test account's logins made 60 % slower (its password hash re-made with more PBKDF2
   rounds: a real cost in the backend) on the quiet machine, then twice as slow under the
   same load: `--regressed-runs` runs each, every one must fail flow.login.
Prints each run, then the counts side by side. Asserts nothing.
Run: .venv/bin/python benchmarks/bench_false_alarms.py [--runs 20] [--burners N]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from rollback_drill.checks import ALL_CHECKS, Outcome, run_checks_concurrently, sampling
from rollback_drill.files import perfbaseline
from rollback_drill.files.spec import load_stack
from rollback_drill.plugin.verification import save_performance_baseline
from rollback_drill.stack.local import LocalStack
from rollback_drill.stack.target import target_from_file
from rollback_drill.stack.targetfile import write_target_file

PROJECT_ROOT = Path(__file__).resolve().parents[1]  # this checkout

sys.path[:0] = [str(PROJECT_ROOT), str(PROJECT_ROOT / "fixtures" / "safepsy" / "app")]
from tests.helpers import slower_logins  # noqa: E402 - the tests' real regression

FLOWS = ("login", "did", "chat", "landing")
OLD_INCREASE, OLD_FLOOR_S = 0.5, 0.05


def _spin(stop: Any, until: float) -> None:
    x = 0
    while not stop.is_set() and time.monotonic() < until:
        for i in range(50_000):
            x += i


@contextmanager
def cpu_load(burners: int, limit_s: float = 900) -> Iterator[None]:
    """`burners` processes spinning on the CPU; bounded in time, stopped on exit."""
    stop = multiprocessing.Event()
    until = time.monotonic() + limit_s
    procs = [multiprocessing.Process(target=_spin, args=(stop, until)) for _ in range(burners)]
    for proc in procs:
        proc.start()
    time.sleep(1.0)
    try:
        yield
    finally:
        stop.set()
        for proc in procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()


def _old_judge(baseline: perfbaseline.PerformanceBaseline, outcome: Outcome) -> bool:
    """True when the old rule (p95 against the baseline's p95) calls the flow regressed."""
    flow = outcome.check.name.removeprefix("flow.")
    if outcome.result is None or flow not in baseline.flows:
        return False
    before = [v for vs in baseline.flows[flow].client_s.values() for v in vs]
    now = [v for vs in outcome.result.evidence.get("client_s", {}).values() for v in vs]
    if not now:
        return False
    base, p95 = sampling.percentile(before, 95), sampling.percentile(now, 95)
    return p95 > base * (1 + OLD_INCREASE) and p95 - base > OLD_FLOOR_S


def verify_once(target_file: Path) -> list[Outcome]:
    return run_checks_concurrently(ALL_CHECKS, target_from_file(target_file))


def _ratio(outcome: Outcome) -> str:
    if outcome.result is None:
        return "-"
    perf = outcome.result.evidence.get("performance") or {}
    judged = perf.get("judged")
    if not judged:
        return "-"
    return f"x{judged['ratio']:.2f} [{judged['ratio_low']:.2f}-{judged['ratio_high']:.2f}]"


def run_series(
    label: str, target_file: Path, baseline: perfbaseline.PerformanceBaseline, runs: int
) -> dict[str, Any]:
    new_alarms = new_undecided = old_alarms = other = login_red = 0
    for i in range(runs):
        started = time.monotonic()
        outcomes = verify_once(target_file)
        flows = {o.check.name: o for o in outcomes if o.check.name.startswith("flow.")}
        perf_failed = [
            name
            for name, o in flows.items()
            if o.state == "failed"
            and o.result is not None
            and (o.result.evidence.get("performance") or {}).get("state")
            in ("regressed", "borderline")
        ]
        old = [name for name, o in flows.items() if _old_judge(baseline, o)]
        failed_other = [
            o.check.name
            for o in outcomes
            if o.state == "failed" and o.check.name not in perf_failed
        ]
        undecided = [n for n, o in flows.items() if o.state == "not verified"]
        new_undecided += bool(undecided)
        new_alarms += bool(perf_failed)
        old_alarms += bool(old)
        other += bool(failed_other)
        login_red += flows["flow.login"].state == "failed"
        shares = {
            n.removeprefix("flow."): o.result.evidence.get("foreign_share")
            for n, o in flows.items()
            if o.result is not None
        }
        print(
            f"{label:<28} run {i + 1:>2}: {time.monotonic() - started:5.2f} s  "
            f"login {_ratio(flows['flow.login'])} did {_ratio(flows['flow.did'])}  "
            f"foreign {shares.get('login')}  new-judge red: {perf_failed or '-'}  "
            f"undecided: {undecided or '-'}  old-judge red: {old or '-'}  "
            f"other failures: {failed_other or '-'}",
            flush=True,
        )
        for name in perf_failed:
            result = flows[name].result
            print(f"    {name}: {result.summary if result else ''}", flush=True)
    return {
        "runs": runs,
        "new": new_alarms,
        "undecided": new_undecided,
        "old": old_alarms,
        "other": other,
        "login": login_red,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--regressed-runs", type=int, default=5)
    parser.add_argument("--burners", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args(argv)
    loaded = load_stack(PROJECT_ROOT / "fixtures" / "safepsy" / "stack.yaml")
    with (
        LocalStack(loaded, seed_users=50).running("1.4.0") as stack,
        tempfile.TemporaryDirectory(prefix="bench-false-alarms-") as tmp,
    ):
        target_file = write_target_file(stack.target(), Path(tmp), stack.password_file)
        saved = Path(tmp) / "performance.json"
        outcomes = verify_once(target_file)
        bad = [o.check.name for o in outcomes if o.state != "passed"]
        if bad:
            sys.exit(f"the quiet baseline run was not green: {bad}")
        save_performance_baseline(saved, outcomes, str(target_file))
        doc = yaml.safe_load(target_file.read_text())
        doc["performance_baseline"] = saved.name
        target_file.write_text(yaml.safe_dump(doc, sort_keys=False))
        baseline = perfbaseline.load(saved)
        login_median = statistics.median(
            v for vs in baseline.flows["login"].client_s.values() for v in vs
        )
        print(
            f"baseline: {len(outcomes)} checks green; login median {login_median * 1000:.1f} ms; "
            f"foreign share {baseline.flows['login'].foreign_share}; {args.burners} burner(s)"
        )
        target = target_from_file(target_file)
        credentials = (stack.mongodb_uri, target.test_email, target.test_password.reveal())
        with cpu_load(args.burners):
            busy = run_series("healthy, busy machine", target_file, baseline, args.runs)
        with slower_logins(*credentials, 0.6 * login_median):
            slow = run_series("login +60 %, quiet", target_file, baseline, args.regressed_runs)
        with slower_logins(*credentials, 1.0 * login_median), cpu_load(args.burners):
            slow_busy = run_series(
                "login x2, busy machine", target_file, baseline, args.regressed_runs
            )
    print()
    print(
        f"{'series':<28} {'runs':>5} {'new judge red':>14} {'not verified':>13} "
        f"{'old judge red':>14}"
    )
    for label, row in (
        ("healthy, busy (false alarms)", busy),
        ("login +60 %, quiet", slow),
        ("login x2, busy", slow_busy),
    ):
        print(
            f"{label:<28} {row['runs']:>5} {row['new']:>14} {row['undecided']:>13} {row['old']:>14}"
        )
    print(
        f"flow.login red: +60 % quiet {slow['login']}/{slow['runs']}, "
        f"x2 busy {slow_busy['login']}/{slow_busy['runs']}; "
        f"runs with other failures while busy: {busy['other']}/{busy['runs']}"
    )


if __name__ == "__main__":
    main()
