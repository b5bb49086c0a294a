"""Drill records written by tests (no stack): a complete format-5 drill and run as JSON values,
with only what a test is about overridden, and the same as models."""

from __future__ import annotations

from typing import Any

from rollback_drill.files.drillrecord import DrillRecord, RunRecord

SHA = "0" * 64
STATS = {
    "requests": 10,
    "errors": 0,
    "error_rate": 0.0,
    "availability": 1.0,
    "p50_s": 0.01,
    "p95_s": 0.02,
    "p99_s": 0.03,
}

STEP = {"step": "1. Stop", "runbook": "./x.sh stop", "seconds": 0.5, "ok": True, "users": STATS}


def message(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "channel": "slack",
        "type": "slack",
        "audience": "stakeholders",
        "kind": "announce",
        "step": "Notify stakeholders",
        "at_s": 1.0,
        "at_wall": 1.0,
        "seconds": 0.01,
        "ok": True,
        "required": False,
        "subject": "DRILL",
        "answer": "HTTP 200",
        "error": None,
    }
    return base | overrides


def communication(*messages: dict[str, Any]) -> dict[str, Any]:
    return {
        "enabled": True,
        "dedup_key": "DRILL-x",
        "channels": sorted({m["channel"] for m in messages}),
        "messages": list(messages),
        "failed": [m["channel"] for m in messages if not m["ok"]],
        "failed_required": [m["channel"] for m in messages if m["required"] and not m["ok"]],
    }


def drill(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "test": "drills/test_emergency.py::test_emergency_rollback[local-service_down]",
        "test_outcome": "passed",
        "test_seconds": 12.5,
        "drill": "emergency: service unavailable",
        "procedure": "emergency",
        "runbook_section": "Rollback Procedures > Emergency Rollback (Critical Issues)",
        "severity": "critical",
        "severity_detected": "critical",
        "rollback_type": "emergency",
        "backend": "local",
        "environment": "production",
        "bad_release": "1.5.0",
        "good_release": "1.4.0",
        "outcome": "passed",
        "failure": None,
        "started_utc": "2027-02-20T12:00:00.000000Z",
        "time_to_recover_s": 6.0,
        "outage_s": 5.0,
        "budget_s": 300.0,
        "within_budget": True,
        "phases": {"detect": 1.0},
        "availability": {"overall": 0.99},
        "detected_by": [],
        "checks": {"total": 1, "passed": 1, "failed": 0, "skipped": 0},
        "failed_checks": [],
        "passed_checks": ["health.backend"],
        "decision": None,
        "alerts": [],
        "users_saw": {"browse": STATS},
        "steps": [STEP],
        "assessment": {},
        "runbook": {"path": "fixtures/safepsy/ROLLBACK_RUNBOOK.md", "sha256": SHA},
        "stack_file": {"path": "fixtures/safepsy/stack.yaml", "sha256": SHA},
        "artifacts": "reports/artifacts/x",
        "data_volume": {"seed_users": 200, "documents": {"users": 201, "sessions": 40}},
        "communication": None,
        "evidence": {},
    }
    return base | overrides


def run(*drills: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """A run of these drills, its summary as they make it."""
    found = list(drills)
    failed = [d for d in found if d["outcome"] != "passed"]
    when = found[0]["started_utc"] if found else "2027-02-20T12:00:00.000000Z"
    base: dict[str, Any] = {
        "schema": "rollback-drill/record/5",
        "run_id": "aaaaaaaaaaaa",
        "started_utc": when,
        "finished_utc": when,
        "invocation": {"command": "run", "args": []},
        "pytest_exit_status": 1 if failed else 0,
        "cadence": None,
        "runbook_coverage": None,
        "environment": {
            "machine": {"hostname": "h", "cpu_count": 2, "memory_bytes": 2**30, "kernel": "6"},
            "tools": {"python": "3.11"},
        },
        "summary": {
            "drills": len(found),
            "passed": len(found) - len(failed),
            "failed": sum(1 for d in failed if d["outcome"] == "failed"),
            "over_budget": sum(1 for d in failed if d["outcome"] == "over_budget"),
            "verdict": "pass" if found and not failed else "fail",
        },
        "source": {
            "commit": None,
            "stack_file": {"path": "fixtures/safepsy/stack.yaml", "sha256": SHA},
        },
        "shard": None,
        "merged_from": None,
        "drills": found,
    }
    return base | overrides


def drill_model(**overrides: Any) -> DrillRecord:
    return DrillRecord.model_validate(drill(**overrides))


def run_model(*drills: dict[str, Any], **overrides: Any) -> RunRecord:
    return RunRecord.model_validate(run(*drills, **overrides))
