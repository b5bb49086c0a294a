"""Stack and target files: the two files users write, validated once, with errors that name
the file, the field and what was expected (an operator fixing a file at 3 a.m. needs all three).
"""

from __future__ import annotations

from fnmatch import fnmatch
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)


class SpecError(ValueError):
    """A stack, release or target file is unusable; the message says where and why."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Port = Annotated[int, Field(ge=1, le=65535)]
Severity = Literal["critical", "high", "medium", "low"]


class ServiceSpec(_Model):
    kind: Literal["app", "nginx"]
    port: Port
    health_path: str = "/health"
    tls_port: Port | None = None
    command: list[str] = Field(default_factory=list)
    pythonpath: str | None = None
    uses: list[Literal["mongodb", "redis", "chain"]] = Field(default_factory=list)
    static_root: str | None = None
    config_template: str | None = None
    server_name: str = "localhost"
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


def _user_written() -> dict[str, str]:
    return {"sessions": "createdAt", "chat_messages": "createdAt", "did_documents": "anchoredAt"}


class MongoSpec(_Model):
    database: str = "safepsy"
    integrity_collections: list[str] = Field(default_factory=lambda: ["users", "sessions"])
    user_written: dict[str, str] = Field(
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
    contract_artifact: str
    image: str | None = None


class SeedSpec(_Model):
    command: list[str]
    pythonpath: str | None = None
    users: int = Field(default=200, ge=1)
    seed: int = 42


class TestAccountSpec(_Model):
    email: str
    password_env: str = Field(pattern=r"^[A-Z_][A-Z0-9_]*$")


class TargetAccountSpec(_Model):
    """The verify suite's test account; its password from an env variable or a file (0600)."""

    email: str
    password_env: str | None = Field(default=None, pattern=r"^[A-Z_][A-Z0-9_]*$")
    password_file: str | None = None

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
        "functional": "high",  # major bugs
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
    rollback: Literal["full", "partial", "database", "configuration"] = "full"


class ReleaseSpec(_Model):
    version: str
    previous: str | None = None
    contract_version: str
    notes: str = ""
    defect: DefectSpec | None = None
    services: dict[str, ServiceRelease]


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

    @model_validator(mode="after")
    def _references_resolve(self) -> StackSpec:
        for name, svc in self.services.items():
            for role, target in svc.upstreams.items():
                if target not in self.services:
                    raise ValueError(
                        f"services.{name}.upstreams.{role} names unknown service {target!r}"
                    )
        return self


class TargetServices(_Model):
    backend: str
    ai_chatbot: str = Field(alias="ai-chatbot")
    frontend: str
    frontend_tls: str | None = None


class TargetTLS(_Model):
    ca_file: str | None = None
    server_name: str | None = None


class IntegritySpec(_Model):
    baseline: str
    collections: list[str] = Field(default_factory=lambda: ["users"])


class TargetSpec(_Model):
    """A live environment to verify: where it is, and how to reach it read-only."""

    name: str = "target"
    services: TargetServices
    mongodb_uri_env: str | None = None
    mongodb_uri: str | None = None
    mongodb_database: str = "safepsy"
    redis_url_env: str | None = None
    redis_url: str | None = None
    rpc_url: str | None = None
    registry_address: str | None = Field(default=None, pattern=r"^0x[0-9a-fA-F]{40}$")
    chain_id: int | None = None
    contract_artifact: str | None = None
    test_account: TargetAccountSpec
    test_did: str | None = None
    tls: TargetTLS = Field(default_factory=TargetTLS)
    integrity: IntegritySpec | None = None
    thresholds: Thresholds = Field(default_factory=Thresholds)
    read_only: bool = True

    @model_validator(mode="after")
    def _one_source_each(self) -> TargetSpec:
        if not (self.mongodb_uri or self.mongodb_uri_env):
            raise ValueError(
                "give `mongodb_uri_env` (preferred: URIs carry passwords) or `mongodb_uri`"
            )
        if not (self.redis_url or self.redis_url_env):
            raise ValueError("give `redis_url_env` (preferred) or `redis_url`")
        return self


M = TypeVar("M", bound=BaseModel)


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{path}: file not found") from None
    except OSError as exc:
        raise SpecError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SpecError(f"{path}:{where} not valid YAML: {getattr(exc, 'problem', exc)}") from None


def _describe(errors: ValidationError, path: Path) -> str:
    lines = [f"{path}: {errors.error_count()} problem(s)"]
    for err in errors.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(top level)"
        got = err.get("input")
        shown = "" if isinstance(got, dict | list) or got is None else f", got {got!r}"
        message = err["msg"].removeprefix("Value error, ")
        lines.append(f"  {field}: {message}{shown}")
    return "\n".join(lines)


def load_model(model: type[M], path: Path) -> M:
    """Parse one YAML file into `model`, or raise SpecError naming file, field and expectation."""
    data = _read_yaml(path)
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_describe(exc, path)) from None


class LoadedStack:
    """A stack file with its releases loaded and its relative paths resolved."""

    def __init__(self, path: Path) -> None:
        self.path = path.resolve()
        self.root = self.path.parent
        self.spec = load_model(StackSpec, self.path)
        self.releases: dict[str, ReleaseSpec] = {}
        self.release_files: dict[str, Path] = {}
        for rel in self.spec.releases:
            release = load_model(ReleaseSpec, self.root / rel)
            unknown = set(release.services) - set(self.spec.services)
            if unknown:
                raise SpecError(
                    f"{self.root / rel}: services: unknown service(s) {sorted(unknown)}, "
                    f"expected names from {self.path.name}: {sorted(self.spec.services)}"
                )
            for name, svc_release in release.services.items():
                for n, patch in enumerate(svc_release.patches):
                    if not ((self.root / rel).parent / patch).is_file():
                        raise SpecError(
                            f"{self.root / rel}: services.{name}.patches.{n}: expected an "
                            f"existing patch file (relative to the release file), "
                            f"{patch!r} not found"
                        )
            if release.defect is not None:
                strays = set(release.defect.services) - set(self.spec.services)
                if strays:
                    raise SpecError(
                        f"{self.root / rel}: defect.services: unknown service(s) "
                        f"{sorted(strays)}, expected names from {sorted(self.spec.services)}"
                    )
            self.releases[release.version] = release
            self.release_files[release.version] = (self.root / rel).resolve()
        for version, release in self.releases.items():
            if release.previous is not None and release.previous not in self.releases:
                raise SpecError(
                    f"{self.root}: release {version}: previous: {release.previous!r} is not one "
                    f"of the listed releases {sorted(self.releases)}"
                )
        self._check_files()

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
    return load_model(TargetSpec, Path(path))
