"""The drill record: one JSON file per run under `reports/records/`, as pydantic models.

`evidence.record` writes it at the end of a run; `history`, `certify`, `cadence` and the
incident documents read it back as these models (attributes, not string keys), so a field
renamed or retyped is a type error in every reader, not a `KeyError` in an auditor's hands.

Format 5. The JSON schema (`rollback_drill/evidence/schemas/record-5.schema.json`) is
generated from `RunRecord` (`scripts/write-schemas.py`; a test checks the committed file
equals the generated one). Reading a record file of any format - older ones migrated,
anything else refused - is `recordfile`.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

FORMAT: Final = "rollback-drill/record/5"
UTC_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$"

Utc = Annotated[str, Field(pattern=UTC_PATTERN, description="UTC, microseconds, e.g. ...Z")]
Seconds = Annotated[float | None, Field(ge=0, description="seconds; null: not measured")]
Count = Annotated[int, Field(ge=0)]
Severity = Literal["critical", "high", "medium", "low"]
Outcome = Literal["passed", "failed", "over_budget"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileVersion(_Model):
    """A file identified by content: its sha256 is the version."""

    path: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class LoadStats(_Model):
    """What users saw over a span (`monitoring.load.LoadStats.to_json`)."""

    requests: Count
    errors: Count
    error_rate: float | None
    availability: float | None
    p50_s: Seconds
    p95_s: Seconds
    p99_s: Seconds


class Step(_Model):
    step: str
    runbook: str = Field(description="the runbook command the step performs")
    seconds: float = Field(ge=0)
    ok: bool
    users: LoadStats


class Checks(_Model):
    total: Count
    passed: Count
    failed: Count
    skipped: Count


class Finding(_Model):
    """An alert or failed check as the decision matrix weighed it."""

    source: Literal["alert", "check"]
    name: str
    severity: Severity
    measured: str
    limit: str
    rule: str = Field(description="which stack-file entry classified it")
    services: list[str]


class Decision(_Model):
    """The decision-matrix row the drill's findings picked."""

    severity: Severity
    impact: str
    rollback_type: str
    budget_s: float
    affected_services: list[str]
    findings: list[Finding]
    explanation: str


class Alert(_Model):
    rule: str
    subject: str = Field(description="the service, journey or check it is about")
    severity: Severity
    at_s: float
    measured: str
    limit: str
    message: str


class DataVolume(_Model):
    seed_users: Count
    documents: dict[str, Count]


class Message(_Model):
    """One delivery of the drill's communication plan."""

    channel: str
    type: Literal["slack", "pagerduty", "email", "statuspage"]
    audience: Literal["stakeholders", "status_page", "support"]
    kind: Literal["announce", "resolve"]
    step: str
    at_s: float = Field(ge=0, description="seconds since the drill started")
    at_wall: float
    seconds: float = Field(ge=0)
    ok: bool
    required: bool
    subject: str
    answer: str
    error: str | None


class Communication(_Model):
    enabled: bool
    dedup_key: str
    channels: list[str]
    messages: list[Message]
    failed: list[str]
    failed_required: list[str]


class Uncovered(_Model):
    section: str
    command: str
    line: int = Field(ge=1)


class Drifted(_Model):
    step: str
    command: str
    reason: str


class Coverage(_Model):
    """The runbook's coverage by the drills' steps when the run ended."""

    runbook: FileVersion
    total: Count
    covered: Count
    percent: float = Field(ge=0, le=100)
    procedures: list[str]
    uncovered: list[Uncovered]
    drifted: list[Drifted]
    problems: list[str]


class DrillRecord(_Model):
    """One drill of a run."""

    test: str = Field(description="the pytest node id")
    test_outcome: Literal["passed", "failed", "skipped"] | None
    test_seconds: Seconds = Field(
        description="the drill test's wall time, set-up (stack up) to teardown, from pytest's "
        "reports (format 5): what `--shard` balances by; null when pytest reported none"
    )
    drill: str = Field(description="the drill's own name (a procedure has several drills)")
    procedure: str
    runbook_section: str
    severity: Severity
    severity_detected: Severity | None
    rollback_type: str
    backend: str
    environment: str = Field(description="production, or a profile such as staging")
    bad_release: str
    good_release: str
    outcome: Outcome
    failure: str | None
    started_utc: Utc
    time_to_recover_s: Seconds
    outage_s: Seconds
    budget_s: float = Field(gt=0)
    within_budget: bool | None
    phases: dict[str, Annotated[float, Field(ge=0)]]
    availability: dict[str, Annotated[float | None, Field(ge=0, le=1)]] = Field(
        description="overall, and per journey"
    )
    detected_by: list[str]
    checks: Checks
    failed_checks: list[str]
    passed_checks: list[str]
    decision: Decision | None
    alerts: list[Alert]
    users_saw: dict[str, LoadStats]
    steps: list[Step]
    assessment: dict[str, Any]
    runbook: FileVersion
    stack_file: FileVersion
    artifacts: str = Field(description="the drill's artifact folder, relative to the project")
    data_volume: DataVolume | None
    communication: Communication | None
    evidence: dict[str, Any] = Field(
        description="what the procedure proved: restore, recovery_point, redis_flush_cost"
    )

    @field_validator("availability")
    @classmethod
    def _has_overall(cls, value: dict[str, float | None]) -> dict[str, float | None]:
        if "overall" not in value:
            raise ValueError("expected an 'overall' availability")
        return value

    @property
    def name(self) -> str:
        return self.drill or self.procedure


class Invocation(_Model):
    command: str
    args: list[str]


class Machine(BaseModel):
    """`evidence.environment.machine()`; more keys may follow."""

    model_config = ConfigDict(extra="allow", frozen=True)
    hostname: str
    cpu_count: int | None
    memory_bytes: int | None
    memory_gib: float | None = None
    kernel: str
    os: str | None = None
    arch: str | None = None


class Environment(_Model):
    machine: Machine
    tools: dict[str, str | None] = Field(description="tool -> version; null: missing")


class Summary(_Model):
    drills: Count
    passed: Count
    failed: Count
    over_budget: Count
    verdict: Literal["pass", "fail"]


class SourceFile(_Model):
    """The stack file a run ran, by content (sha256 null: the file was not there)."""

    path: str
    sha256: str | None = Field(pattern=r"^[0-9a-f]{64}$")


class Source(_Model):
    """What a run ran (format 5): `report --merge` refuses shards that differ in either."""

    commit: str | None = Field(description="the project's git commit; null outside a checkout")
    stack_file: SourceFile | None


class ShardPart(_Model):
    """One shard of a run (`--shard K/N`, format 5; `plugin.shard.of_run`)."""

    index: int = Field(ge=1)
    count: int = Field(ge=1)
    plan_sha256: str = Field(description="every shard of one run computes the same")
    balanced_by: str = Field(description="what the plan balanced by")
    planned_s: float = Field(description="the seconds planned for this shard")
    collected: list[str] = Field(description="every test collected before sharding")
    tests: list[str] = Field(description="the tests this shard ran")


class MergedShard(_Model):
    """A shard record a merged record was made from (`report --merge`, format 5)."""

    run_id: str
    record: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    shard: int = Field(ge=1)
    hostname: str
    pytest_exit_status: int


class RunRecord(_Model):
    """One run of drills, as `reports/records/<started>-<run id>.json` holds it."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        populate_by_name=True,
        json_schema_extra={"$id": "https://rollback-drill.invalid/schemas/record-5.schema.json"},
        title="rollback-drill drill record, format 5",
    )
    format: Literal["rollback-drill/record/5"] = Field(default=FORMAT, alias="schema")
    run_id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    started_utc: Utc
    finished_utc: Utc
    invocation: Invocation
    pytest_exit_status: int
    cadence: str | None
    runbook_coverage: Coverage | None
    environment: Environment
    summary: Summary
    source: Source
    shard: ShardPart | None = Field(description="null when the run was not sharded")
    merged_from: list[MergedShard] | None = Field(
        description="for a record merged from shards; null for a record one run wrote"
    )
    drills: list[DrillRecord]

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = self.model_dump(mode="json", by_alias=True)
        return data

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2) + "\n"


def schema() -> dict[str, Any]:
    """The JSON schema of format 5, generated from the model."""
    return RunRecord.model_json_schema(by_alias=True)


__all__ = [
    "FORMAT",
    "DrillRecord",
    "MergedShard",
    "RunRecord",
    "ShardPart",
    "Source",
    "schema",
]
