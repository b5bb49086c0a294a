"""Stack and target files: the two files users write, validated once, with errors that name
the file, the field and what was expected (an operator fixing a file at 3 a.m. needs all three).
"""

from __future__ import annotations

import copy
from fnmatch import fnmatch
from pathlib import Path
from typing import Annotated, Literal, TypeVar, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from rollback_drill.fields import (
    CollectionName,
    ContractArtifact,
    DatabaseName,
    Email,
    EnvVarName,
    ExistingDir,
    HealthPath,
    HttpsUrl,
    HttpUrl,
    MongoUri,
    NonEmptyStr,
    Port,
    RedisUrl,
    unique_severities,
)
from rollback_drill.userfiles import SpecError as SpecError  # re-exported: its home for callers
from rollback_drill.userfiles import read_yaml


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


Severity = Literal["critical", "high", "medium", "low"]


class ServiceSpec(_Model):
    kind: Literal["app", "nginx"]
    port: Port
    health_path: HealthPath = "/health"
    tls_port: Port | None = None
    command: list[NonEmptyStr] = Field(default_factory=list)
    pythonpath: ExistingDir | None = None
    uses: list[Literal["mongodb", "redis", "chain"]] = Field(default_factory=list)
    static_root: str | None = None
    config_template: str | None = None
    server_name: NonEmptyStr = "localhost"
    upstreams: dict[str, str] = Field(default_factory=dict)
    images: dict[str, str] = Field(
        default_factory=dict, description="release version -> image reference (docker backend)"
    )
    memory_limit_mb: int | None = Field(
        default=None, ge=16, description="the service's memory limit (docker enforces it)"
    )

    @model_validator(mode="after")
    def _kind_needs(self) -> ServiceSpec:
        if self.kind == "app" and not self.command:
            raise ValueError("an app service needs `command` (the argv that starts it)")
        if self.kind == "nginx" and not (self.config_template and self.static_root):
            raise ValueError("an nginx service needs `config_template` and `static_root`")
        return self

    @model_validator(mode="after")
    def _front_needs_upstreams(self) -> ServiceSpec:
        missing = [r for r in ("backend", "chatbot") if r not in self.upstreams]
        if self.kind == "nginx" and missing:
            raise ValueError(
                f"an nginx service needs `upstreams` {missing} (the services it proxies to)"
            )
        return self


def _user_written() -> dict[str, str]:
    return {"sessions": "createdAt", "chat_messages": "createdAt", "did_documents": "anchoredAt"}


class MongoSpec(_Model):
    database: DatabaseName = "safepsy"
    integrity_collections: list[CollectionName] = Field(
        default_factory=lambda: ["users", "sessions"], min_length=1
    )
    user_written: dict[CollectionName, str] = Field(
        default_factory=_user_written,
        description="collections users keep writing to -> their creation-time field: "
        "integrity covers the documents that existed at the baseline",
    )
    image: str | None = None


class RedisSpec(_Model):
    image: str | None = None


class StoresSpec(_Model):
    mongodb: MongoSpec = Field(default_factory=MongoSpec)
    redis: RedisSpec = Field(default_factory=RedisSpec)


class ChainSpec(_Model):
    chain_id: int = Field(ge=1)
    contract_artifact: ContractArtifact
    contracts: dict[NonEmptyStr, ContractArtifact] = Field(
        default_factory=dict,
        description="contract version (a release's contract_version) -> its compiled artifact; "
        "when given, every release's contract version must be listed",
    )
    image: str | None = None


class SeedSpec(_Model):
    command: list[NonEmptyStr] = Field(min_length=1)
    pythonpath: ExistingDir | None = None
    users: int = Field(default=200, ge=1)
    seed: int = 42
    chain_dids: int = Field(
        default=0, ge=0, description="synthetic users whose DIDs are anchored on chain as well"
    )


class TestAccountSpec(_Model):
    email: Email
    password_env: EnvVarName


class TargetAccountSpec(_Model):
    """The verify suite's test account; its password from an env variable or a file (0600)."""

    email: Email
    password_env: EnvVarName | None = None
    password_file: NonEmptyStr | None = None

    @model_validator(mode="after")
    def _one_source(self) -> TargetAccountSpec:
        if not (self.password_env or self.password_file):
            raise ValueError(
                "give `password_env` (an environment variable name) or `password_file`"
            )
        return self


class Thresholds(_Model):
    """The runbook's alert thresholds ("Monitoring During Rollback")."""

    response_time_warning_s: float = Field(default=2.0, gt=0)
    error_rate_critical: float = Field(default=0.05, ge=0, le=1)
    response_time_increase_critical: float = Field(default=0.5, gt=0)
    # A rise must also be this large to count: +50 % of a 3 ms median is jitter users
    # never notice, and on a busy machine it is noise.
    response_time_increase_floor_s: float = Field(default=0.01, ge=0)
    memory_warning: float = Field(default=0.9, gt=0, le=1)
    request_timeout_s: float = Field(default=5.0, gt=0)


AlertRuleName = Literal[
    "service_down",
    "error_rate",
    "database_errors",
    "response_time",
    "response_time_increase",
    "memory",
    "check_failed",
]


def _default_alert_severities() -> dict[AlertRuleName, Severity]:
    return {
        "service_down": "critical",  # "Service down: Immediate alert"; "Service unavailability"
        "error_rate": "critical",  # "Error rate > 5%: Critical"
        "database_errors": "critical",  # "Database errors: Critical"
        # The runbook's critical issues list has "Performance degradation (>50% response time
        # increase)", while its matrix has "Low | Performance": a rise past
        # thresholds.response_time_increase_critical is critical here; slowness under it
        # that still trips a warning is low.
        "response_time_increase": "critical",
        "response_time": "low",  # "Response time > 2s: Warning"
        "memory": "low",  # "Memory usage > 90%: Warning"
        "check_failed": "high",  # a failing check's own entry in `checks` decides
    }


def _default_check_severities() -> dict[str, Severity]:
    return {
        "health": "critical",  # service unavailability
        "connectivity": "critical",  # database connectivity issues
        "tls": "critical",  # SSL certificate failures
        "integrity": "critical",  # data corruption
        "errors": "critical",  # "Error rate > 5%: Critical", from the logs
        "chain": "critical",  # the registry's code, owner or pause state is not as released
        "functional": "high",  # major bugs
        # A service or contract other than the one that should be deployed: what it breaks
        # is judged by the health and flow checks, which classify on their own.
        "rollback": "medium",
        "resources": "low",  # "Memory usage > 90%: Warning"
        "performance": "low",
    }


class Classification(_Model):
    """What each alert and each failed check means in the decision matrix's terms. Entries
    given in the stack file extend and override the defaults. `checks` keys are a check's
    full name, a glob over names (`functional.chat*`) or a category; the most specific wins:
    the name, then the longest matching glob, then the category."""

    alerts: dict[AlertRuleName, Severity] = Field(default_factory=_default_alert_severities)
    checks: dict[str, Severity] = Field(default_factory=_default_check_severities)

    @field_validator("alerts", mode="after")
    @classmethod
    def _alert_defaults(cls, given: dict[AlertRuleName, Severity]) -> dict[AlertRuleName, Severity]:
        return {**_default_alert_severities(), **given}

    @field_validator("checks", mode="after")
    @classmethod
    def _check_defaults(cls, given: dict[str, Severity]) -> dict[str, Severity]:
        return {**_default_check_severities(), **given}

    def of_check(self, name: str, category: str) -> Severity:
        if name in self.checks:
            return self.checks[name]
        globs = [k for k in self.checks if any(c in k for c in "*?[") and fnmatch(name, k)]
        if globs:
            return self.checks[max(globs, key=len)]
        return self.checks.get(category, "high")


class DrillSettings(_Model):
    """How drills observe: the steady-state window before the fault, the alert window, and
    the user load (locust users; 0 turns load off)."""

    steady_state_s: float = Field(default=3.0, gt=0)
    alert_window_s: float = Field(default=10.0, gt=0)
    assess_window_s: float = Field(default=1.0, ge=0)
    settle_s: float = Field(default=1.0, ge=0)
    verify_timeout_s: float = Field(default=30.0, gt=0)
    load_users: int = Field(default=6, ge=0)
    detect_timeout_s: float = Field(default=30.0, gt=0)


class DecisionRow(_Model):
    severity: Severity
    impact: str
    rollback_type: str
    budget_s: float = Field(gt=0)


class ServiceRelease(_Model):
    env: dict[str, str] = Field(default_factory=dict)
    patches: list[str] = Field(
        default_factory=list,
        description="unified diffs (files relative to this release file; paths inside them "
        "relative to the stack file, for `patch -p1`) that turn the stack's base sources into "
        "this release's code",
    )


RunbookIssue = Literal[
    "service unavailability",
    "data corruption",
    "security breach",
    "performance degradation",
    "database connectivity",
    "ssl certificate failure",
    "minor bug with workaround",
    "major bug",
    "performance optimization",
    "feature rollback",
    "configuration change",
]


class DefectSpec(_Model):
    """What is wrong with a release, in the runbook's words, and the matrix row it must reach."""

    summary: str
    issue: RunbookIssue
    services: list[str] = Field(min_length=1)
    severity: Severity
    rollback: Literal["full", "partial", "database", "configuration", "contract"] = "full"


class MigrationSpec(_Model):
    """A data migration the deploy runs once, after the release's code is out (`npm run
    migrate`): the command, run in the named service's environment (`docker exec`)."""

    service: NonEmptyStr
    command: list[NonEmptyStr] = Field(min_length=1)


class ReleaseSpec(_Model):
    version: NonEmptyStr
    previous: NonEmptyStr | None = None
    contract_version: NonEmptyStr
    notes: str = ""
    defect: DefectSpec | None = None
    services: dict[str, ServiceRelease]
    migration: MigrationSpec | None = None


# -- the drill programme: the runbook's Regular Rollback Drills and Communication Plan ----------

EnvName = Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]*$")]
Audience = Literal["stakeholders", "status_page", "support"]
CadenceName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]*$")]


class CadenceSpec(_Model):
    """One line of the runbook's Regular Rollback Drills: which drills (a pytest marker
    expression over the drills' markers) and how often a passing run is due."""

    select: str = Field(min_length=1, description="pytest -m expression choosing the drills")
    period_days: int = Field(gt=0, description="a passing run older than this is overdue")
    description: str = ""


def _default_cadences() -> dict[str, CadenceSpec]:
    return {
        "monthly": CadenceSpec(
            select="emergency or planned or service or configuration",
            period_days=31,
            description="Monthly rollback exercises: the application rollbacks",
        ),
        "quarterly": CadenceSpec(
            select="emergency or database or redis_rollback or contract or staging or automation",
            period_days=92,
            description="Quarterly disaster recovery tests: data, contract, staging, automation",
        ),
        "annual": CadenceSpec(
            select="drill",
            period_days=366,
            description="Annual business continuity drills: every drill",
        ),
    }


class _Channel(_Model):
    """What every channel has: a name for reports, whether the drill fails when it does not
    deliver, which drills it hears about, and how long one delivery may take."""

    name: str | None = None
    required: bool = False
    severities: list[Severity] = Field(
        default_factory=lambda: list(get_args(Severity)),
        description="drills of these matrix rows use the channel (the runbook pages on critical)",
    )
    timeout_s: float = Field(default=5.0, gt=0)


class WebhookChannel(_Channel):
    """A Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat): JSON {"text"}."""

    type: Literal["slack"]
    url_env: EnvName = Field(description="environment variable holding the webhook URL")
    audience: Audience = "stakeholders"


class PagerDutyChannel(_Channel):
    """PagerDuty Events API v2: trigger after the decision, resolve at the end (one dedup key
    per drill)."""

    type: Literal["pagerduty"]
    routing_key_env: EnvName = Field(description="environment variable holding the routing key")
    url: str = "https://events.pagerduty.com/v2/enqueue"
    source: str = "rollback-drill"
    audience: Audience = "support"


class EmailChannel(_Channel):
    """E-mail over SMTP; the password (when the server wants a login) from the environment."""

    type: Literal["email"]
    host: str
    port: Port = 587
    sender: str
    to: list[str] = Field(min_length=1)
    username: str | None = None
    password_env: EnvName | None = None
    tls: Literal["starttls", "ssl", "none"] = "starttls"
    ca_file: str | None = Field(
        default=None, description="CA bundle for a server certificate of a private CA"
    )
    audience: Audience = "stakeholders"

    @model_validator(mode="after")
    def _login_needs_password(self) -> EmailChannel:
        if self.username and not self.password_env:
            raise ValueError("`username` needs `password_env` (the variable holding the password)")
        return self


class StatusPageChannel(_Channel):
    """A status page's HTTP endpoint: JSON {status, title, message, drill: true} by POST."""

    type: Literal["statuspage"]
    url: str | None = None
    url_env: EnvName | None = None
    token_env: EnvName | None = Field(
        default=None, description="environment variable holding a bearer token"
    )
    audience: Audience = "status_page"

    @model_validator(mode="after")
    def _one_url(self) -> StatusPageChannel:
        if bool(self.url) == bool(self.url_env):
            raise ValueError("give exactly one of `url` and `url_env`")
        return self


Channel = Annotated[
    WebhookChannel | PagerDutyChannel | EmailChannel | StatusPageChannel,
    Field(discriminator="type"),
]


class CommunicationSpec(_Model):
    """The runbook's Communication Plan and Emergency Contacts as channels. Off unless
    `enabled`: a plain run has no receivers, and a drill must never page anyone by surprise."""

    enabled: bool = False
    channels: list[Channel] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> CommunicationSpec:
        names = [c.name or c.type for c in self.channels]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"channel names must be unique (give `name`): {twice} repeat")
        return self


ProfileName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]*$")]
PRODUCTION = "production"
"""The environment a stack file describes without a profile."""


class PortRange(_Model):
    """Where an environment's stacks take their host ports: a range of its own, so staging
    and production on one host never meet (ports inside it are still chosen free, at random:
    drills run in parallel)."""

    first: Port
    last: Port

    @model_validator(mode="after")
    def _wide_enough(self) -> PortRange:
        if self.last - self.first + 1 < 32:
            raise ValueError(
                f"expected a range of at least 32 ports (a stack takes about ten, drills run "
                f"in parallel), got {self.first}-{self.last}"
            )
        return self


class ProfileSpec(_Model):
    """Another environment of the stack (the runbook's staging): what differs from the stack
    file's production values. `rollback-drill up --environment NAME` brings it up; drills
    given `--environment NAME` (and the staging drills always) run on stacks made from it."""

    description: str = ""
    release: NonEmptyStr | None = Field(
        default=None, description="the release it runs; its drills roll back to it"
    )
    seed_users: int | None = Field(default=None, ge=1, description="its data volume")
    seed: int | None = Field(default=None, description="its own data: another seed")
    ports: PortRange | None = None


class StackSpec(_Model):
    name: str
    runbook: str
    services: dict[str, ServiceSpec]
    stores: StoresSpec = Field(default_factory=StoresSpec)
    chain: ChainSpec
    seed: SeedSpec
    test_account: TestAccountSpec
    releases: list[str] = Field(min_length=1)
    thresholds: Thresholds = Field(default_factory=Thresholds)
    classification: Classification = Field(default_factory=Classification)
    drills: DrillSettings = Field(default_factory=DrillSettings)
    decision_matrix: list[DecisionRow] = Field(min_length=1)
    cadences: dict[CadenceName, CadenceSpec] = Field(default_factory=_default_cadences)
    communication: CommunicationSpec = Field(default_factory=CommunicationSpec)
    profiles: dict[ProfileName, ProfileSpec] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _production_is_the_file(self) -> StackSpec:
        if PRODUCTION in self.profiles:
            raise ValueError(
                f"profiles.{PRODUCTION}: the stack file itself is production; name the profile "
                "after the environment it describes (e.g. staging)"
            )
        return self

    @model_validator(mode="after")
    def _references_resolve(self) -> StackSpec:
        for name, svc in self.services.items():
            for role, target in svc.upstreams.items():
                if target not in self.services:
                    raise ValueError(
                        f"services.{name}.upstreams.{role} names unknown service {target!r}"
                    )
        return self

    @model_validator(mode="after")
    def _services_the_harness_reaches(self) -> StackSpec:
        apps = [n for n, s in self.services.items() if s.kind == "app"]
        missing = [n for n in ("backend", "ai-chatbot") if n not in apps]
        if missing or not any(s.kind == "nginx" for s in self.services.values()):
            raise ValueError(
                f"services: expected app services `backend` and `ai-chatbot` and one nginx "
                f"front (the harness reaches them by these names); missing {missing or 'nginx'}"
            )
        return self

    @model_validator(mode="after")
    def _every_severity_decided(self) -> StackSpec:
        unique_severities(self.decision_matrix, get_args(Severity))
        return self


Address = Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{40}$")]
SERVICE_NAMES = ("backend", "ai-chatbot", "frontend")


class TargetServices(_Model):
    backend: HttpUrl
    ai_chatbot: HttpUrl = Field(alias="ai-chatbot")
    frontend: HttpUrl
    frontend_tls: HttpsUrl | None = None


class TargetTLS(_Model):
    ca_file: str | None = None
    server_name: str | None = None


class IntegritySpec(_Model):
    """Which collections a baseline protects, and which of them users write to."""

    baseline: NonEmptyStr
    collections: list[CollectionName] = Field(default_factory=lambda: ["users"], min_length=1)
    written_by_users: list[CollectionName] = Field(
        default_factory=list,
        description="collections live traffic (and the verify run's own login and chat probe) "
        "adds documents to: baseline documents must survive unchanged, new ones are counted",
    )


class ExpectedSpec(_Model):
    """What the rollback must have produced ("Verify rollback success")."""

    releases: dict[Literal["backend", "ai-chatbot", "frontend"], str] = Field(default_factory=dict)
    contract_version: str | None = None
    registry_owner: Address | None = None

    @model_validator(mode="after")
    def _every_service(self) -> ExpectedSpec:
        missing = [name for name in SERVICE_NAMES if name not in self.releases]
        if self.releases and missing:
            raise ValueError(f"releases: give a release for every service, missing {missing}")
        return self


class LogAccessSpec(_Model):
    """Where verify may read service logs: files on this machine, or docker containers."""

    files: dict[str, list[str]] = Field(default_factory=dict)
    docker: dict[str, str] = Field(default_factory=dict)


class StatsAccessSpec(_Model):
    """Where verify may read resource usage: docker containers, or (same machine) the
    processes listening on the target's own ports."""

    docker: dict[str, str] = Field(default_factory=dict)
    local: bool = False


class AccessSpec(_Model):
    logs: LogAccessSpec | None = None
    stats: StatsAccessSpec | None = None


class SamplingSpec(_Model):
    """How hard each flow is sampled: enough requests to bound its error rate below the
    runbook's threshold at this confidence when none fails."""

    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    workers: int = Field(default=3, ge=1, le=32)


class TargetSpec(_Model):
    """A live environment to verify: where it is, how to reach it, what it must be running."""

    name: str = "target"
    services: TargetServices
    mongodb_uri_env: EnvVarName | None = None
    mongodb_uri: MongoUri | None = None
    mongodb_database: DatabaseName = "safepsy"
    redis_url_env: EnvVarName | None = None
    redis_url: RedisUrl | None = None
    rpc_url: HttpUrl | None = None
    registry_address: Address | None = None
    chain_id: int | None = Field(default=None, ge=1)
    contract_artifact: ContractArtifact | None = None
    test_account: TargetAccountSpec
    test_did: str | None = None
    tls: TargetTLS = Field(default_factory=TargetTLS)
    integrity: IntegritySpec | None = None
    expected: ExpectedSpec = Field(default_factory=ExpectedSpec)
    access: AccessSpec = Field(default_factory=AccessSpec)
    performance_baseline: str | None = None
    sampling: SamplingSpec = Field(default_factory=SamplingSpec)
    thresholds: Thresholds = Field(default_factory=Thresholds)
    deadline_s: float = Field(default=20.0, gt=0, description="the whole verify run's bound")
    read_only: bool = Field(
        default=False,
        description="true forbids the chat probe's write: the chat flow is then not verified",
    )

    @model_validator(mode="after")
    def _one_source_each(self) -> TargetSpec:
        if not (self.mongodb_uri or self.mongodb_uri_env):
            raise ValueError(
                "mongodb_uri_env: give `mongodb_uri_env` (preferred: URIs carry passwords) "
                "or `mongodb_uri`"
            )
        if not (self.redis_url or self.redis_url_env):
            raise ValueError("redis_url_env: give `redis_url_env` (preferred) or `redis_url`")
        if self.integrity:
            stray = sorted(set(self.integrity.written_by_users) - set(self.integrity.collections))
            if stray:
                raise ValueError(
                    f"integrity.written_by_users: {stray} are not in integrity.collections"
                )
        return self


M = TypeVar("M", bound=BaseModel)


def _describe(errors: ValidationError, path: Path) -> str:
    lines = [f"{path}: {errors.error_count()} problem(s)"]
    for err in errors.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(top level)"
        got = err.get("input")
        text = repr(got) if len(repr(got)) <= 80 else repr(got)[:77] + "..."
        shown = "" if isinstance(got, dict | list) or got is None else f", got {text}"
        message = err["msg"].removeprefix("Value error, ")
        if not err["loc"]:  # a check across fields: its message starts with the field it names
            lines.append(f"  {message}")
            continue
        lines.append(f"  {field}: {message}{shown}")
    return "\n".join(lines)


def load_model(model: type[M], path: Path) -> M:
    """Parse one YAML file into `model`, or raise SpecError naming file, field and expectation."""
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return model.model_validate(data, context={"base": path.resolve().parent})
    except ValidationError as exc:
        raise SpecError(_describe(exc, path)) from None


def _load_releases(path: Path, spec: StackSpec, files: dict[str, Path]) -> dict[str, ReleaseSpec]:
    """The release files a stack file lists: each valid, one file per version, services known,
    patches present, and every `previous` chain ending (no loop) at a listed release. Fills
    `files` with each version's release file."""
    releases: dict[str, ReleaseSpec] = {}
    for index, rel in enumerate(spec.releases):
        file = path.parent / rel
        if file.resolve() in [f.resolve() for f in files.values()]:
            raise SpecError(
                f"{path}: releases.{index}: {rel!r} is listed twice; expected each release "
                "file once"
            )
        if not file.is_file():
            raise SpecError(
                f"{path}: releases.{index}: expected an existing release file, {rel!r} not found"
            )
        release = load_model(ReleaseSpec, file)
        unknown = set(release.services) - set(spec.services)
        if unknown:
            raise SpecError(
                f"{file}: services: unknown service(s) {sorted(unknown)}, "
                f"expected names from {path.name}: {sorted(spec.services)}"
            )
        if release.version in releases:
            raise SpecError(
                f"{file}: version: {release.version!r} is also the version in "
                f"{files[release.version]}; expected one release file per version"
            )
        _check_release_parts(file, release, spec)
        if spec.chain.contracts and release.contract_version not in spec.chain.contracts:
            raise SpecError(
                f"{file}: contract_version: {release.contract_version!r} is not one of the "
                f"contract versions {path.name} lists under chain.contracts "
                f"{sorted(spec.chain.contracts)}"
            )
        releases[release.version] = release
        files[release.version] = file.resolve()
    for version, release in releases.items():
        if release.previous is not None and release.previous not in releases:
            raise SpecError(
                f"{files[version]}: previous: {release.previous!r} is not one of the "
                f"releases {path.name} lists {sorted(releases)}"
            )
        chain, at = [version], release.previous
        while at is not None:
            if at in chain:
                loop = " -> ".join([*chain[chain.index(at) :], at])
                raise SpecError(
                    f"{files[version]}: previous: {loop} forms a loop; expected a chain of "
                    "previous releases ending at one with `previous: null`"
                )
            chain.append(at)
            at = releases[at].previous
    return releases


def _check_release_parts(file: Path, release: ReleaseSpec, spec: StackSpec) -> None:
    for name, svc_release in release.services.items():
        for n, patch in enumerate(svc_release.patches):
            if not (file.parent / patch).is_file():
                raise SpecError(
                    f"{file}: services.{name}.patches.{n}: expected an existing patch file "
                    f"(relative to the release file), {patch!r} not found"
                )
    migration = release.migration
    if migration is not None and spec.services.get(migration.service, None) is None:
        raise SpecError(
            f"{file}: migration.service: unknown service {migration.service!r}, expected one "
            f"of {sorted(n for n, s in spec.services.items() if s.kind == 'app')}"
        )
    if migration is not None and spec.services[migration.service].kind != "app":
        raise SpecError(
            f"{file}: migration.service: {migration.service!r} is not an app service (a "
            "migration runs in an app's environment)"
        )
    if release.defect is not None:
        strays = set(release.defect.services) - set(spec.services)
        if strays:
            raise SpecError(
                f"{file}: defect.services: unknown service(s) {sorted(strays)}, expected "
                f"names from {sorted(spec.services)}"
            )


class LoadedStack:
    """A stack file with its releases loaded and its relative paths resolved; `environment`
    says which of its environments this is (see `in_environment`)."""

    def __init__(self, path: Path) -> None:
        self.path = path.resolve()
        self.root = self.path.parent
        self.spec = load_model(StackSpec, self.path)
        self.release_files: dict[str, Path] = {}
        self.releases: dict[str, ReleaseSpec] = _load_releases(
            self.path, self.spec, self.release_files
        )
        self.environment = PRODUCTION
        self.ports: PortRange | None = None
        self._check_files()
        for name, profile in self.spec.profiles.items():
            if profile.release is not None and profile.release not in self.releases:
                raise SpecError(
                    f"{self.path}: profiles.{name}.release: {profile.release!r} is not one of "
                    f"the releases {sorted(self.releases)}"
                )

    def in_environment(self, name: str) -> LoadedStack:
        """This stack file as the named environment: production is the file itself, any
        other name a profile of it (its seed, ports and release replace the file's)."""
        if name == PRODUCTION:
            return self
        profile = self.spec.profiles.get(name)
        if profile is None:
            known = sorted([PRODUCTION, *self.spec.profiles])
            raise SpecError(
                f"{self.path}: profiles: no environment {name!r}; expected one of {known}"
            )
        seed = self.spec.seed.model_copy(
            update={
                "users": profile.seed_users or self.spec.seed.users,
                "seed": self.spec.seed.seed if profile.seed is None else profile.seed,
            }
        )
        other = copy.copy(self)
        other.spec = self.spec.model_copy(update={"seed": seed})
        other.environment = name
        other.ports = profile.ports
        return other

    @property
    def profile(self) -> ProfileSpec | None:
        return self.spec.profiles.get(self.environment)

    def environment_release(self) -> str:
        """The release this environment runs: its profile's, or the first the file lists."""
        chosen = self.profile.release if self.profile else None
        return chosen or next(iter(self.releases))

    def _check_files(self) -> None:
        wanted = {
            "runbook": self.spec.runbook,
            "chain.contract_artifact": self.spec.chain.contract_artifact,
        }
        for name, svc in self.spec.services.items():
            if svc.config_template:
                wanted[f"services.{name}.config_template"] = svc.config_template
            if svc.static_root:
                wanted[f"services.{name}.static_root"] = svc.static_root
        for field, rel in wanted.items():
            if not (self.root / rel).exists():
                raise SpecError(
                    f"{self.path}: {field}: expected an existing path, {rel!r} not found"
                )

    def resolve(self, rel: str) -> Path:
        return self.root / rel

    def contract_artifact(self, version: str) -> Path:
        """The compiled artifact of a contract version (`chain.contracts`, else the stack's
        one `chain.contract_artifact`)."""
        chain = self.spec.chain
        return self.resolve(chain.contracts.get(version, chain.contract_artifact))

    def on_chain(self, chain_id: int) -> LoadedStack:
        """This stack file with its chain running as `chain_id`: the same stack standing in
        for another network (Polygon mainnet is 137, Amoy 80002)."""
        moved = copy.copy(self)
        chain = self.spec.chain.model_copy(update={"chain_id": chain_id})
        moved.spec = self.spec.model_copy(update={"chain": chain})
        return moved

    def release(self, version: str) -> ReleaseSpec:
        try:
            return self.releases[version]
        except KeyError:
            raise SpecError(
                f"{self.path}: no release {version!r}; expected one of {sorted(self.releases)}"
            ) from None

    def budget(self, severity: Severity) -> DecisionRow:
        for row in self.spec.decision_matrix:
            if row.severity == severity:
                return row
        raise SpecError(f"{self.path}: decision_matrix: no row for severity {severity!r}")


def load_stack(path: Path | str) -> LoadedStack:
    return LoadedStack(Path(path))


def load_target(path: Path | str) -> TargetSpec:
    path = Path(path)
    try:
        return load_model(TargetSpec, path)
    except UnicodeDecodeError as exc:
        raise SpecError(
            f"{path}: not UTF-8 text (byte {exc.start}); expected a YAML target file"
        ) from None
