"""The drill record: one JSON file per run under `reports/records/`, for auditors and tools.

The Allure report is for people; the record is the evidence a drill happened and what it
measured, in a versioned format (`files.drillrecord`, pydantic; its JSON schema generated to
`rollback_drill/evidence/schemas/record-5.schema.json`, documented in `reports/README.md`)
that `rollback-drill history`, `certify` and `report --merge` read back as models.
Each record gets a `sha256sum`-compatible sidecar (`<record>.sha256`), so a certificate can
cite the exact bytes it was issued from and anyone can check them with `sha256sum -c`.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import uuid
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rollback_drill.evidence import environment
from rollback_drill.files import drillrecord, recordfile
from rollback_drill.files.drillrecord import DrillRecord, RunRecord
from rollback_drill.process import places
from rollback_drill.process.errors import RecordError
from rollback_drill.process.secrets import redact

if TYPE_CHECKING:  # the engine's types; the record module itself loads none of it
    from rollback_drill.engine.outcome import DrillOutcome
    from rollback_drill.files.spec import LoadedStack

SCHEMA_ID = drillrecord.FORMAT
#: generated from `RunRecord` by scripts/write-schemas.py; tests/test_schemas.py keeps it so
SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "record-5.schema.json"
#: Records this version reads: 1-4 migrated on read (`recordfile.migrate`), 5 as written.
READABLE = (*recordfile.OLD_FORMATS, SCHEMA_ID)


@dataclass(frozen=True)
class DrillEntry:
    """One drill of a run, with what the record needs beyond the outcome itself."""

    outcome: DrillOutcome
    stack: LoadedStack
    test_id: str


@dataclass(frozen=True)
class WrittenRecord:
    path: Path
    sha256: str
    sidecar: Path


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def utc_iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


def runbook_version(stack: LoadedStack) -> dict[str, str]:
    """The runbook a drill exercised, identified by content: its sha256 is the version."""
    path = stack.resolve(stack.spec.runbook)
    return {"path": places.shown(path), "sha256": file_sha256(path)}


def commit() -> str | None:
    """The commit the project's code is at (`git rev-parse HEAD`); None outside a git checkout.
    Shards are merged only when they ran the same commit."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True,
            timeout=10, stdin=subprocess.DEVNULL, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = done.stdout.strip()
    return found if done.returncode == 0 and found else None


def source(stack_file: Path) -> drillrecord.Source:
    """What the run ran: the code's commit and the stack file's bytes (path and sha256)."""
    digest = file_sha256(stack_file) if stack_file.is_file() else None
    shown = drillrecord.SourceFile(path=places.shown(stack_file), sha256=digest)
    return drillrecord.Source(commit=commit(), stack_file=shown)


def durations(directory: Path) -> dict[str, float]:
    """Each drill test's wall time in the newest record that has it (`test_seconds`, schema
    5): what `--shard` balances by. Records that cannot be read are skipped."""
    found: dict[str, float] = {}
    for _, data in load_all(directory)[0]:  # oldest first: newer runs overwrite
        for d in data.drills:
            if d.test_seconds:
                found[d.test] = d.test_seconds
    return found


def runbook_coverage(stack_file: Path) -> drillrecord.Coverage | None:
    """The runbook's coverage by the drills' steps when the run ended; None when it cannot be
    measured (the record says so rather than guessing, and is written regardless: it is the
    evidence the drills ran)."""
    from rollback_drill.evidence import coverage
    from rollback_drill.files.spec import load_stack

    try:
        loaded = load_stack(stack_file)
        found = coverage.of_runbook(loaded.resolve(loaded.spec.runbook)).to_json()
    except Exception as exc:
        warnings.warn(f"runbook coverage not measured: {type(exc).__name__}: {exc}", stacklevel=2)
        return None
    found["runbook"]["path"] = places.shown(Path(found["runbook"]["path"]))
    return drillrecord.Coverage.model_validate(found)


def drill_result(outcome: DrillOutcome) -> str:
    """passed | over_budget | failed: over budget is its own verdict, not just a failure."""
    if outcome.passed:
        return "passed"
    if outcome.verdict is not None and not outcome.verdict.within_budget:
        return "over_budget"
    spent = outcome.procedure_failure
    if spent is not None and spent.budget_spent:
        return "over_budget"  # cut off when the budget ran out: not recovered within it
    return "failed"


def drill_json(entry: DrillEntry, test_outcome: str | None) -> DrillRecord:
    """The record's entry for one drill; the outcome's parts are checked against the model
    here, where the drill ran, so a malformed part fails at its source."""
    o = entry.outcome
    results = [x for x in o.verification if x.result is not None]
    timeline = o.timeline.to_json()
    steps = {e.name: e for e in o.timeline.of_kind("step") if e.detail.get("runbook")}
    data: dict[str, Any] = {
        "test": entry.test_id,
        "test_outcome": test_outcome,
        "test_seconds": None,  # set by `build` from pytest's reports: set-up to teardown
        "drill": o.drill.name,
        "procedure": o.procedure.name,
        "runbook_section": o.procedure.runbook_section,
        "severity": o.severity,
        "severity_detected": o.severity_detected,
        "rollback_type": o.budget.rollback_type,
        "backend": o.backend,
        "environment": o.environment,
        "bad_release": o.bad_release,
        "good_release": o.good_release,
        "outcome": drill_result(o),
        "failure": o.failure,
        "started_utc": utc_iso(o.timeline.started_wall),
        "time_to_recover_s": round(o.verdict.time_to_recover_s, 4) if o.verdict else None,
        "outage_s": timeline.get("outage_s"),
        "budget_s": o.budget.budget_s,
        "within_budget": o.verdict.within_budget if o.verdict else None,
        "phases": o.timeline.phases(),
        "availability": o.availability(),
        "detected_by": o.detected_by,
        "checks": {
            "total": len(o.verification),
            "passed": sum(1 for x in results if x.result and x.result.ok),
            "failed": sum(1 for x in results if x.result and not x.result.ok),
            "skipped": sum(1 for x in o.verification if x.skipped),
        },
        "failed_checks": [x.check.name for x in o.verification if x.failed],
        "passed_checks": [x.check.name for x in results if x.result and x.result.ok],
        "decision": o.decision.to_json() if o.decision else None,
        "alerts": [a.to_json() for a in o.alerts],
        "users_saw": {k: v.to_json() for k, v in o.users_saw().items()},
        "steps": [
            {
                "step": s.step,
                "runbook": str(steps[s.step].detail.get("runbook", "")),
                "seconds": round(s.end_s - s.start_s, 4),
                "ok": steps[s.step].ok,
                "users": s.stats.to_json(),
            }
            for s in o.step_load()
        ],
        "assessment": o.assessment,
        "runbook": runbook_version(entry.stack),
        "stack_file": {
            "path": places.shown(entry.stack.path),
            "sha256": file_sha256(entry.stack.path),
        },
        "artifacts": places.shown(o.artifacts),
        "data_volume": o.data_volume.to_json() if o.data_volume else None,
        "communication": o.communication.to_json() if o.communication else None,
        "evidence": o.evidence,
    }
    return DrillRecord.model_validate(data)


def build(
    entries: Sequence[DrillRecord],
    *,
    run_id: str,
    started: float,
    finished: float,
    invocation: str,
    args: Sequence[str],
    exit_status: int,
    test_outcomes: dict[str, str] | None = None,
    cadence: str | None = None,
    runbook_coverage: drillrecord.Coverage | None = None,
    test_seconds: dict[str, float] | None = None,
    ran: drillrecord.Source | None = None,
    shard: drillrecord.ShardPart | None = None,
) -> RunRecord:
    """The run's record from its drills (`drill_json`, made where each drill ran: with
    pytest-xdist that is a worker process) and pytest's verdict and wall time on each drill
    test; the cadence it ran as and the runbook's coverage when
    it ended; what it ran (`source`) and, for one shard of a run, its part (`shard.of_run`)."""
    outcomes, seconds = test_outcomes or {}, test_seconds or {}
    drills = [
        d.model_copy(
            update={
                "test_outcome": outcomes.get(d.test, d.test_outcome),
                "test_seconds": round(seconds[d.test], 3) if d.test in seconds else None,
            }
        )
        for d in entries
    ]
    data: dict[str, Any] = {
        "run_id": run_id,
        "started_utc": utc_iso(started),
        "finished_utc": utc_iso(finished),
        "invocation": {"command": invocation, "args": [redact(a) for a in args]},
        "pytest_exit_status": exit_status,
        "cadence": cadence,
        "runbook_coverage": runbook_coverage,
        "environment": {"machine": environment.machine(), "tools": environment.tool_versions()},
        "summary": summary(drills, exit_status),
        "source": ran or drillrecord.Source(commit=None, stack_file=None),
        "shard": shard,
        "merged_from": None,
        "drills": drills,
    }
    return RunRecord.model_validate(data)


def summary(drills: Sequence[DrillRecord], exit_status: int) -> drillrecord.Summary:
    """The record's counts and verdict: `pass` only if every drill passed within budget, its
    test passed, and pytest exited 0."""
    failed = [d for d in drills if d.outcome != "passed" or d.test_outcome == "failed"]
    return drillrecord.Summary(
        drills=len(drills),
        passed=len(drills) - len(failed),
        failed=sum(1 for d in failed if d.outcome != "over_budget"),
        over_budget=sum(1 for d in drills if d.outcome == "over_budget"),
        verdict="pass" if drills and not failed and exit_status == 0 else "fail",
    )


def record_name(record: RunRecord) -> str:
    stamp = datetime.strptime(record.started_utc, "%Y-%m-%dT%H:%M:%S.%fZ")
    return f"{stamp:%Y%m%dT%H%M%SZ}-{record.run_id}.json"


def write(record: RunRecord, directory: Path) -> WrittenRecord:
    """Write the record (redacted) and its sha256 sidecar; never overwrites a record."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / record_name(record)
    data = redact(record.dumps())
    with path.open("x", encoding="utf-8") as handle:
        handle.write(data)
    digest = file_sha256(path)
    sidecar = path.with_name(path.name + ".sha256")
    sidecar.write_text(f"{digest}  {path.name}\n")
    return WrittenRecord(path, digest, sidecar)


def read(path: Path) -> RunRecord:
    """The record at `path` (an older format migrated); RecordError naming the file else."""
    return recordfile.load(path)


def verify_sidecar(path: Path) -> bool:
    """True when the record's bytes still match the hash written beside it."""
    sidecar = path.with_name(path.name + ".sha256")
    try:
        expected = sidecar.read_text().split()[0]
    except (OSError, IndexError):
        return False
    return expected == file_sha256(path)


def load_all(directory: Path) -> tuple[list[tuple[Path, RunRecord]], list[str]]:
    """Every readable record, oldest first, and a message per file that was skipped."""
    records: list[tuple[Path, RunRecord]] = []
    problems: list[str] = []
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        try:
            records.append((path, read(path)))
        except RecordError as exc:
            problems.append(str(exc))
    records.sort(key=lambda item: item[1].started_utc)
    return records, problems


def find(directory: Path, run_id: str) -> Path | None:
    matches = sorted(directory.glob(f"*-{run_id}.json"))
    return matches[-1] if matches else None


def invocation_args(args: Iterable[str] | None = None) -> list[str]:
    return [redact(a) for a in (sys.argv if args is None else args)]


__all__ = [
    "SCHEMA_ID",
    "DrillEntry",
    "DrillRecord",
    "RecordError",
    "RunRecord",
    "WrittenRecord",
    "build",
    "commit",
    "drill_result",
    "durations",
    "find",
    "load_all",
    "new_run_id",
    "read",
    "runbook_version",
    "source",
    "summary",
    "verify_sidecar",
    "write",
]
