"""The incident document from a record, its drill.json and preserved logs written here (no
stack): the timeline, first error and error count per service, and the Post-Rollback Tasks
with only what the drill proved ticked."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rollback_drill.evidence import incident
from rollback_drill.evidence.record import file_sha256
from rollback_drill.files.drillrecord import DrillRecord, RunRecord
from rollback_drill.stack import servicelogs
from tests import records
from tests.paths import PROJECT_ROOT

RUNBOOK = PROJECT_ROOT / "fixtures" / "safepsy" / "ROLLBACK_RUNBOOK.md"
LOGS = """===== mongodb =====
started
===== backend =====
listening on 3000
GET /health 200
ERROR users schema v1 found, v2 required
RuntimeError: schema mismatch
--- error.log
===== frontend =====
--- access.log
GET / 200
--- error.log
2027/02/20 12:00:01 [error] 12#0: connect() failed (111: Connection refused)
"""


def _events() -> list[dict[str, Any]]:
    def event(name: str, kind: str, at: float, **more: Any) -> dict[str, Any]:
        return {
            "name": name,
            "kind": kind,
            "at_s": at,
            "duration_s": 0.0,
            "ok": True,
            "detail": {},
            "error": None,
            **more,
        }

    return [
        event("fault_injected", "marker", 4.0),
        event(
            "service_down",
            "alert",
            4.3,
            ok=False,
            detail={"alert": {"message": "backend down: 2 probes missed"}},
        ),
        event("detected", "marker", 4.35),
        event("notified", "marker", 5.6),
        event(
            "1. Stop application services",
            "step",
            6.0,
            duration_s=0.5,
            detail={"runbook": "./docker-manage.sh stop production"},
        ),
        event("health.backend", "check", 9.0, ok=False, detail={"summary": "503"}),
        event("verified", "marker", 12.0),
    ]


def _drill(artifacts: Path, **overrides: Any) -> DrillRecord:
    base: dict[str, Any] = {
        "time_to_recover_s": 7.65,
        "outage_s": 8.0,
        "detected_by": ["backend down: 2 probes missed"],
        "decision": {
            "severity": "critical",
            "impact": "Service Down",
            "rollback_type": "emergency",
            "budget_s": 300.0,
            "affected_services": ["backend"],
            "findings": [],
            "explanation": "critical (Service Down): emergency rollback",
        },
        "passed_checks": [
            "health.backend",
            "health.frontend",
            "integrity.mongodb",
            "functional.login",
            "monitoring.green",
        ],
        "failed_checks": [],
        "runbook": {"path": str(RUNBOOK), "sha256": file_sha256(RUNBOOK)},
        "artifacts": str(artifacts),
        "data_volume": {"seed_users": 200, "documents": {"users": 201, "sessions": 40}},
        "communication": records.communication(
            records.message(at_s=5.6),
            records.message(
                channel="statuspage",
                type="statuspage",
                audience="status_page",
                kind="resolve",
                ok=False,
                at_s=12.5,
                step="Update status page",
                answer="not delivered",
                error="HTTP 500: broken",
            ),
            records.message(kind="resolve", at_s=12.4, step="Notify stakeholders of resolution"),
        ),
    }
    return records.drill_model(**(base | overrides))


def _run(*drills: DrillRecord, **overrides: Any) -> RunRecord:
    return records.run_model(*(d.model_dump() for d in drills), **overrides)


def _artifacts(tmp_path: Path) -> Path:
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    started = datetime(2027, 2, 20, 12, tzinfo=UTC).timestamp()
    timeline = {"started_wall": started, "events": _events()}
    (artifacts / "drill.json").write_text(json.dumps({"timeline": timeline}))
    (artifacts / "rollback-logs-20270220_120006.log").write_text(LOGS)
    return artifacts


def test_errors_per_service_as_the_runbooks_grep(tmp_path: Path) -> None:
    path = tmp_path / "logs.log"
    path.write_text(LOGS)
    assert list(servicelogs.read(path)) == ["mongodb", "backend", "frontend"]
    found = {s.service: s for s in incident.errors_per_service(path)}
    assert found["mongodb"].count == 0 and found["mongodb"].first is None
    assert found["backend"].count == 2, "`--- error.log` is the log's own header, not an error"
    assert found["backend"].first == "ERROR users schema v1 found, v2 required"
    assert found["backend"].first_line == 3
    assert found["frontend"].count == 1 and "[error]" in str(found["frontend"].first)


def test_incident_document(tmp_path: Path) -> None:
    artifacts = _artifacts(tmp_path)
    run = _run(_drill(artifacts), run_id="abc123abc123", cadence="monthly")
    record_path = tmp_path / "records" / "20270220T120000Z-abc123abc123.json"
    (made,) = incident.write_all(run, record_path, tmp_path / "incidents")
    assert made == (
        tmp_path / "incidents" / record_path.stem / "01-emergency-service-unavailable-local.md"
    )
    text = made.read_text()
    assert text.startswith("# Incident (DRILL): emergency: service unavailable\n")
    assert "| Outcome | **PASSED** |" in text
    assert "| Data volume | 200 seeded users; documents users 201, sessions 40 |" in text
    assert "cadence monthly" in text
    # The timeline, in time order, with the drill clock and UTC; messages among the events.
    rows = [line for line in text.splitlines() if re.match(r"\| +\d+\.\d\d \|", line)]
    assert rows[0].startswith("|     4.00 | 2027-02-20 12:00:04.000 | **fault injected**")
    assert any("alert service_down FIRED | backend down" in r for r in rows)
    assert any("message to slack (Notify stakeholders) | HTTP 200" in r for r in rows)
    assert any("NOT DELIVERED: HTTP 500: broken" in r for r in rows)
    assert any(
        "step 1. Stop application services (`./docker-manage.sh stop production`)" in r
        for r in rows
    )
    assert any("check health.backend FAILED | 503" in r for r in rows)
    times = [float(r.split("|")[1]) for r in rows]
    assert times == sorted(times)
    # Errors per service, from the logs the procedure preserved.
    assert "From `rollback-logs-20270220_120006.log`" in text
    assert "| backend | 2 | line 3: `ERROR users schema v1 found, v2 required` |" in text
    # The checklist: what the drill proved is ticked, with the evidence; the rest stays open.
    ticked = re.findall(r"^- \[x\] (.+?) - proved: (.+)$", text, re.M)
    assert [t[0] for t in ticked] == [
        "Verify all services operational",
        "Confirm data integrity",
        "Test critical user flows",
        "Monitor error rates",
        "Notify stakeholders of resolution",
        "Document incident timeline",
    ]
    assert "health.backend, health.frontend passed" in ticked[0][1]
    open_items = re.findall(r"^- \[ \] (.+)$", text, re.M)
    assert "Update status page" in open_items, "its resolution was not delivered"
    assert {"Schedule post-mortem meeting", "Identify failure points"} <= set(open_items)
    assert len(ticked) + len(open_items) == 18


def test_nothing_is_ticked_without_its_evidence(tmp_path: Path) -> None:
    artifacts = _artifacts(tmp_path)
    failed = _drill(
        artifacts,
        outcome="failed",
        failure="DrillFailed: verification failed after rollback:\n  integrity.mongodb: FAIL",
        passed_checks=["health.backend", "functional.login"],
        failed_checks=["integrity.mongodb", "health.frontend"],
        communication=None,
        data_volume=None,
    )
    text = incident.render(failed, _run(failed))
    assert "| Outcome | **FAILED**: DrillFailed: verification failed after rollback: |" in text
    ticked = re.findall(r"^- \[x\] (.+?) - proved", text, re.M)
    assert ticked == ["Test critical user flows", "Document incident timeline"]
    # No drill.json and no logs: the document says so instead of inventing them.
    (artifacts / "drill.json").unlink()
    for log in artifacts.glob("*.log"):
        log.unlink()
    bare = incident.render(failed, _run(failed))
    assert "timeline not available" in bare and "No preserved logs" in bare
    (artifacts / servicelogs.END_OF_DRILL).write_text(LOGS)
    assert f"From `{servicelogs.END_OF_DRILL}`" in incident.render(failed, _run())
