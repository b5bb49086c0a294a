"""The runbook's Pre-Rollback Assessment, as a drill phase and as `rollback-drill assess`:

    Impact Analysis: identify affected services, assess user impact, determine data
    integrity status, evaluate business continuity, check for data loss risk
    Rollback Strategy Selection: the decision matrix's row for what was found

Findings come from two places: the alerts monitoring has active (in a drill) and every check
of the verify suite run now. Each is classified by the stack file; the decision matrix then
gives the rollback type and the time budget.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rollback_drill.checks import ALL_CHECKS, Check
from rollback_drill.checks.result import Outcome, run_checks
from rollback_drill.files.drillspec import Classification
from rollback_drill.files.spec import LoadedStack
from rollback_drill.monitoring.alerts import AlertEngine
from rollback_drill.monitoring.decision import Decision, Finding, decide, services_named
from rollback_drill.monitoring.load import LoadRun, LoadStats
from rollback_drill.monitoring.resample import resample
from rollback_drill.stack.backupfile import PREFIX as BACKUP_PREFIX
from rollback_drill.stack.base import Stack
from rollback_drill.stack.target import Target
from rollback_drill.stores import dump, mongo


def assessed_checks() -> list[Check]:
    """The checks the assessment runs inside a drill: all but the log error count, which
    right after a rollout counts the rollout (nginx retrying a replaced upstream logs an
    error even when the user got an answer); monitoring's error-rate alert measures that."""
    return [c for c in ALL_CHECKS if c.category != "errors"]


@dataclass(frozen=True)
class DataLossRisk:
    """What a database restore would lose now: writes newer than the newest backup."""

    newest_write: datetime | None
    newest_backup: datetime | None

    @property
    def exposed_s(self) -> float | None:
        if self.newest_write is None:
            return None
        if self.newest_backup is None:
            return float("inf")
        return max(0.0, (self.newest_write - self.newest_backup).total_seconds())

    def explain(self) -> str:
        if self.newest_write is None:
            return "no timestamped writes found: no data-loss risk measured"
        if self.newest_backup is None:
            return (
                f"no backup taken; a database restore would lose every write up to "
                f"{self.newest_write:%Y-%m-%d %H:%M:%S} UTC"
            )
        exposed = self.exposed_s or 0.0
        if exposed == 0:
            return "the newest backup is newer than the newest write: a restore loses nothing"
        return f"a restore from the newest backup would lose {exposed:.1f} s of writes"

    def to_json(self) -> dict[str, Any]:
        exposed = self.exposed_s
        return {
            "newest_write": self.newest_write.isoformat() if self.newest_write else None,
            "newest_backup": self.newest_backup.isoformat() if self.newest_backup else None,
            "seconds_exposed": None if exposed is None or exposed == float("inf") else exposed,
            "explanation": self.explain(),
        }


def newest_write(target: Target, time_fields: dict[str, str]) -> datetime | None:
    """The latest creation time across the collections users write to."""
    latest: datetime | None = None
    with mongo.client(target.mongodb_uri.reveal(), target.thresholds.request_timeout_s) as conn:
        db = conn[target.mongodb_database]
        for name, time_field in time_fields.items():
            doc = db[name].find_one({time_field: {"$exists": True}}, sort=[(time_field, -1)])
            if doc is None:
                continue
            value = doc[time_field]
            if isinstance(value, datetime):
                value = value if value.tzinfo else value.replace(tzinfo=UTC)
                latest = value if latest is None or value > latest else latest
    return latest


@dataclass
class Assessed:
    """What the assessment found, before the matrix turns it into a decision."""

    findings: list[Finding]
    checks: list[Outcome]
    user_impact: dict[str, Any] = field(default_factory=dict)
    data_loss: DataLossRisk | None = None
    latency_resampled: list[str] = field(default_factory=list)  # resample.py, in a drill

    def integrity_status(self) -> str:
        for o in self.checks:
            if o.check.category == "integrity":
                if o.result is None:
                    return f"not checked: {o.skipped}"
                return ("intact: " if o.result.ok else "DIFFERS: ") + o.result.summary
        return "not checked"

    def to_json(self, decision: Decision) -> dict[str, Any]:
        return {
            "affected_services": decision.affected_services,
            "user_impact": self.user_impact,
            "data_integrity": self.integrity_status(),
            "data_loss_risk": self.data_loss.to_json() if self.data_loss else None,
            "business_continuity": (
                "users cannot be served"
                if decision.severity == "critical"
                else "degraded: users are served with a known problem"
            ),
            "recommendation": {
                "severity": decision.severity,
                "rollback_type": decision.row.rollback_type,
                "budget_s": decision.row.budget_s,
                "why": decision.explain(),
            },
            "findings": [f.to_json() for f in decision.findings],
            "checks_failed": [o.result.explain() for o in self.checks if o.failed and o.result],
            "latency_resampled": self.latency_resampled,
        }


def check_findings(outcomes: Sequence[Outcome], classification: Classification) -> list[Finding]:
    return [
        Finding(
            "check",
            o.check.name,
            classification.of_check(o.check.name, o.check.category),
            o.result.summary,
            "pass",
            f"classification.checks[{o.check.name!r} or {o.check.category!r}]",
            tuple(services_named(o.check.name)),
        )
        for o in outcomes
        if o.failed and o.result is not None
    ]


def during_drill(
    stack: Stack,
    baseline: mongo.Fingerprint,
    alerts: AlertEngine,
    extra_checks: Sequence[Check],
    steady: LoadStats | None,
    load: LoadRun | None,
    fault_at: float,
) -> Assessed:
    """The assessment inside a drill: active alerts plus every check, now."""
    loaded = stack.loaded
    classification = loaded.spec.classification
    # One probe per flow route: monitoring has already measured rates and latency; the
    # assessment needs to know what is broken, fast (its time counts toward recovery).
    target = dataclasses.replace(
        stack.target(), baseline=baseline, read_only=False, probe_once=True
    )
    outcomes = run_checks([*assessed_checks(), *extra_checks], target)
    findings = check_findings(outcomes, classification)
    named = {f.name for f in findings}
    for alert in alerts.active.values():
        if alert.rule == "check_failed" and alert.subject in named:
            continue  # the same check, seen by synthetic monitoring
        findings.append(
            Finding(
                "alert",
                alert.key,
                alert.severity,
                alert.measured,
                alert.limit,
                f"classification.alerts[{alert.rule!r}]",
                tuple(services_named(alert.subject)),
            )
        )
    # a latency rise that alone decides is measured again before it counts (resample.py)
    resampled = resample(alerts, findings)
    impact: dict[str, Any] = {}
    if load is not None:
        impact = {
            "steady_state": steady.to_json() if steady else None,
            "since_the_fault": load.stats(fault_at).to_json(),
        }
    time_fields = {
        name: time_field for name, time_field in loaded.spec.stores.mongodb.user_written.items()
    }
    risk = DataLossRisk(newest_write(target, time_fields), stack_newest_backup(stack))
    return Assessed(resampled.findings, outcomes, impact, risk, resampled.notes)


def stack_newest_backup(stack: Stack) -> datetime | None:
    backups = getattr(stack, "backups", [])
    return max((when for when, _ in backups), default=None)


def newest_backup_in(directory: Path) -> datetime | None:
    """The newest store backup under `directory`: the tool's own (its manifest's `created`),
    a mongodump folder or archive (see stores.dump.newest_time), or a backup file named as
    the runbook's script names them (`safepsy_backup_YYYYMMDD_HHMMSS.tar.gz`, local time)."""
    if not directory.is_dir():
        return None
    times = [t for t in (dump.newest_time(directory),) if t is not None]
    for path in directory.rglob(f"{BACKUP_PREFIX}_*.tar.gz"):
        try:
            stamp = path.name[len(BACKUP_PREFIX) + 1 :][:15]
            times.append(time.mktime(time.strptime(stamp, "%Y%m%d_%H%M%S")))
        except ValueError:
            continue
    return datetime.fromtimestamp(max(times), UTC) if times else None


@dataclass(frozen=True)
class LiveAssessment:
    assessed: Assessed
    decision: Decision | None  # None: nothing wrong, no rollback indicated


def live(target: Target, loaded: LoadedStack, backups: Path | None) -> LiveAssessment:
    """`rollback-drill assess`: every check against a live target (read-only as the target
    says), classified by the stack file, and the matrix's recommendation."""
    outcomes = run_checks(ALL_CHECKS, target)
    findings = check_findings(outcomes, loaded.spec.classification)
    time_fields = dict(loaded.spec.stores.mongodb.user_written)
    try:
        written = newest_write(target, time_fields)
    except Exception:  # the data-loss figure cannot be had; the checks already say why
        written = None
    risk = DataLossRisk(written, newest_backup_in(backups) if backups else None)
    failed_user_flows = [o.check.name for o in outcomes if o.failed and o.check.category in
                         ("functional", "health")]  # fmt: skip
    impact = {"failing user-facing checks": failed_user_flows}
    assessed = Assessed(findings, outcomes, impact, risk)
    decision = decide(loaded, findings) if findings else None
    return LiveAssessment(assessed, decision)
