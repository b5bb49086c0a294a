"""The runbook's "Verify data integrity" (countDocuments of users and sessions), made exact:
counts and content hashes against a fingerprint taken before the change."""

from __future__ import annotations

from rollback_drill.checks.result import Check, CheckResult, CheckSkipped
from rollback_drill.stores import mongo
from rollback_drill.target import Target


def compare(baseline: mongo.Fingerprint, current: mongo.Fingerprint) -> CheckResult:
    rows = []
    differences = []
    for name, before in baseline.collections.items():
        after = current.collections.get(name)
        same = after == before
        rows.append(
            {
                "collection": name,
                "count_before": before.count,
                "count_after": after.count if after else None,
                "sha256_before": before.sha256,
                "sha256_after": after.sha256 if after else None,
                "equal": same,
            }
        )
        if not same:
            if after is None:
                differences.append(f"{name}: not measured")
            elif after.count != before.count:
                differences.append(f"{name}: {before.count} -> {after.count} documents")
            else:
                differences.append(f"{name}: same count {after.count}, content changed")
    summary = "; ".join(differences) or "all collections equal to the baseline: " + ", ".join(
        f"{r['collection']}={r['count_after']}" for r in rows
    )
    return CheckResult(
        "integrity.mongodb",
        not differences,
        summary,
        {"database": baseline.database, "collections": rows},
    )


def _integrity(target: Target) -> CheckResult:
    if target.baseline is None:
        raise CheckSkipped(
            "no integrity baseline: take one with `rollback-drill fingerprint` before the change"
        )
    current = mongo.fingerprint(
        target.mongodb_uri.reveal(),
        target.mongodb_database,
        list(target.baseline.collections),
        timeout_s=target.thresholds.request_timeout_s,
        cutoffs=target.baseline.cutoffs,
    )
    return compare(target.baseline, current)


CHECKS = [
    Check(
        "integrity.mongodb",
        "integrity",
        _integrity,
        doc="db.users.countDocuments(); db.sessions.countDocuments()",
    )
]
