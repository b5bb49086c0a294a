"""The runbook's "Verify data integrity" (countDocuments of users and sessions), made exact:
every document of the baseline still there and unchanged, indexes and collection options as
they were - for the collections the target names, under live traffic.

Collections users write to (declared in the target, plus where the verify run's own login
and chat probe write) are compared in append mode: documents added since the baseline are
counted, not failed, so a second verify run stays green. A baseline with an empty or missing
collection is refused: it would prove nothing about that collection.
"""

from __future__ import annotations

from rollback_drill.checks.result import Check, CheckResult
from rollback_drill.process import lazy
from rollback_drill.process.errors import CheckSkipped
from rollback_drill.stack.target import Target
from rollback_drill.stores.fingerprint import Fingerprint, compare


def judge(target: Target, baseline: Fingerprint, current: Fingerprint) -> CheckResult:
    collections = list(target.integrity_collections)
    diffs = compare(baseline, current, collections, target.append_collections())
    problems = [p for d in diffs for p in d.problems]
    rows = [d.row() for d in diffs]
    if problems:
        summary = "; ".join(problems)
    else:
        summary = "baseline intact: " + ", ".join(
            f"{d.name} {d.after.count if d.after else 0}"
            + (f" (+{d.added} new, {d.mode})" if d.added else "")
            for d in diffs
        )
    return CheckResult(
        "integrity.mongodb",
        not problems,
        summary,
        {"database": baseline.database, "collections": rows},
    )


def _integrity(target: Target) -> CheckResult:
    with lazy.imports():
        from rollback_drill.stores import mongo

    if target.baseline is None:
        raise CheckSkipped(
            "no integrity baseline: take one with `rollback-drill fingerprint` before the change"
        )
    if target.baseline.database != target.mongodb_database:
        return CheckResult(
            "integrity.mongodb",
            False,
            f"the baseline is of database {target.baseline.database}, the target's is "
            f"{target.mongodb_database}",
        )
    current = mongo.fingerprint(
        target.mongodb_uri.reveal(),
        target.mongodb_database,
        list(target.integrity_collections),
        timeout_s=target.thresholds.request_timeout_s,
        cutoffs=target.baseline.cutoffs,
    )
    return judge(target, target.baseline, current)


CHECKS = [
    Check(
        "integrity.mongodb",
        "integrity",
        _integrity,
        doc="db.users.countDocuments(); db.sessions.countDocuments() - and every document",
        reads_whole_collections=True,
    )
]
