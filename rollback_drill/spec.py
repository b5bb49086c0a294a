"""Stack and target files: the two files users write, validated once, with errors that name
the file, the field and what was expected (an operator fixing a file at 3 a.m. needs all three).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
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

    @model_validator(mode="after")
    def _kind_needs(self) -> ServiceSpec:
        if self.kind == "app" and not self.command:
            raise ValueError("an app service needs `command` (the argv that starts it)")
        if self.kind == "nginx" and not (self.config_template and self.static_root):
            raise ValueError("an nginx service needs `config_template` and `static_root`")
        return self


class MongoSpec(_Model):
    database: str = "safepsy"
    integrity_collections: list[str] = Field(default_factory=lambda: ["users", "sessions"])
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
    memory_warning: float = Field(default=0.9, gt=0, le=1)
    request_timeout_s: float = Field(default=5.0, gt=0)


class DecisionRow(_Model):
    severity: Severity
    impact: str
    rollback_type: str
    budget_s: float = Field(gt=0)


class ServiceRelease(_Model):
    env: dict[str, str] = Field(default_factory=dict)


class ReleaseSpec(_Model):
    version: str
    previous: str | None = None
    contract_version: str
    notes: str = ""
    services: dict[str, ServiceRelease]


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
    decision_matrix: list[DecisionRow] = Field(min_length=1)

    @model_validator(mode="after")
    def _references_resolve(self) -> StackSpec:
        for name, svc in self.services.items():
            for role, target in svc.upstreams.items():
                if target not in self.services:
                    raise ValueError(
                        f"services.{name}.upstreams.{role} names unknown service {target!r}"
                    )
        return self


def _url(value: str, schemes: tuple[str, ...], what: str) -> str:
    """Local and small on purpose (the stack-file helper owns the shared URL types)."""
    scheme, sep, rest = value.partition("://")
    if not sep or scheme.lower() not in schemes or not rest.strip("/"):
        raise ValueError(f"expected {' or '.join(s + '://' for s in schemes)}{what}, got {value!r}")
    return value


HttpUrl = Annotated[str, AfterValidator(lambda v: _url(v, ("http", "https"), "HOST[:PORT]"))]
HttpsUrl = Annotated[str, AfterValidator(lambda v: _url(v, ("https",), "HOST[:PORT] (TLS)"))]
Address = Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{40}$")]
EnvName = Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]*$")]
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

    baseline: str
    collections: list[str] = Field(default_factory=lambda: ["users"], min_length=1)
    written_by_users: list[str] = Field(
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
    mongodb_uri_env: EnvName | None = None
    mongodb_uri: str | None = None
    mongodb_database: str = Field(default="safepsy", min_length=1)
    redis_url_env: EnvName | None = None
    redis_url: str | None = None
    rpc_url: HttpUrl | None = None
    registry_address: Address | None = None
    chain_id: int | None = Field(default=None, ge=1)
    contract_artifact: str | None = None
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
                "give `mongodb_uri_env` (preferred: URIs carry passwords) or `mongodb_uri`"
            )
        if not (self.redis_url or self.redis_url_env):
            raise ValueError("give `redis_url_env` (preferred) or `redis_url`")
        if self.integrity:
            stray = sorted(set(self.integrity.written_by_users) - set(self.integrity.collections))
            if stray:
                raise ValueError(
                    f"integrity.written_by_users: {stray} are not in integrity.collections"
                )
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
        for rel in self.spec.releases:
            release = load_model(ReleaseSpec, self.root / rel)
            unknown = set(release.services) - set(self.spec.services)
            if unknown:
                raise SpecError(
                    f"{self.root / rel}: services: unknown service(s) {sorted(unknown)}, "
                    f"expected names from {self.path.name}: {sorted(self.spec.services)}"
                )
            self.releases[release.version] = release
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
    path = Path(path)
    try:
        return load_model(TargetSpec, path)
    except UnicodeDecodeError as exc:
        raise SpecError(
            f"{path}: not UTF-8 text (byte {exc.start}); expected a YAML target file"
        ) from None
