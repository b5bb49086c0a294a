"""Commands against a live target (a target file, not a stack this tool started): `verify`
it after a rollback, take its integrity baseline (`fingerprint`) before a change, and `assess`
it with the runbook's Pre-Rollback Assessment and decision matrix.

Each handler imports its engine only when it runs, so parsing the command line stays cheap.
"""

from __future__ import annotations

import argparse


def cmd_verify(ns: argparse.Namespace) -> int:
    from rollback_drill.cli import verify as verify_command

    if ns.dry_run:
        argv = verify_command.pytest_argv(
            ns.target, ns.alluredir, ns.save_performance, ns.pytest_args
        )
        print("pytest " + " ".join(argv))
        return 0
    return verify_command.verify(
        ns.target, ns.alluredir, ns.save_performance, ns.pytest_args, ns.pytest
    )


def cmd_fingerprint(ns: argparse.Namespace) -> int:
    from rollback_drill.cli import verify as verify_command

    return verify_command.fingerprint(ns.target, ns.output, ns.collections)


def cmd_assess(ns: argparse.Namespace) -> int:
    """The runbook's Pre-Rollback Assessment against a live target: exit 1 when the matrix
    recommends a rollback (the row is printed), 3 when nothing failed but some checks could
    not look (not verified is not fine), 0 when every check passed."""
    from rollback_drill.monitoring import assess
    from rollback_drill.stack.target import target_from_file

    target = target_from_file(ns.target)
    from rollback_drill.files.spec import load_stack

    found = assess.live(target, load_stack(ns.stack), ns.backups)
    assessed = found.assessed
    print(f"Pre-Rollback Assessment of {target.name}")
    for o in assessed.checks:
        state = "NOT VERIFIED" if o.result is None else ("ok" if o.result.ok else "FAIL")
        reason = o.skipped if o.result is None else o.result.summary
        print(f"  {state:12} {o.check.name:36} {(reason or '')[:90]}")
    print(f"data integrity: {assessed.integrity_status()}")
    if assessed.data_loss is not None:
        print(f"data-loss risk: {assessed.data_loss.explain()}")
    unverified = [o.check.name for o in assessed.checks if o.result is None]
    if found.decision is None and unverified:
        print(
            f"recommendation: none - nothing failed, but {len(unverified)} check(s) could not "
            f"look: {', '.join(unverified)}"
        )
        return 3
    if found.decision is None:
        print("recommendation: no rollback indicated - every check passed")
        return 0
    decision = found.decision
    print(f"affected services: {', '.join(decision.affected_services) or 'unknown'}")
    print(
        f"recommendation: {decision.severity} ({decision.row.impact}) -> "
        f"{decision.row.rollback_type} rollback, within {decision.row.budget_s:.0f} s"
    )
    for finding in decision.deciding:
        print(f"  because {finding.explain()}")
    return 1
