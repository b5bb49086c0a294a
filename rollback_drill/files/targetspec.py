"""The target file: a live environment to verify - where it is, how to reach it, what the
rollback must have produced there. Read by `pytest -m verify`, `rollback-drill verify`,
`fingerprint` and `assess`; it shares only the model base and the thresholds with the stack
file, so loading one imports nothing of the other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from rollback_drill.files.fields import (
    CollectionName,
    ContractArtifact,
    DatabaseName,
    Email,
    EnvVarName,
    HttpsUrl,
    HttpUrl,
    MongoUri,
    NonEmptyStr,
    RedisUrl,
)
from rollback_drill.files.specmodel import FileModel, Thresholds, load_model
from rollback_drill.process.errors import SpecError


class TargetAccountSpec(FileModel):
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


Address = Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{40}$")]
SERVICE_NAMES = ("backend", "ai-chatbot", "frontend")


class TargetServices(FileModel):
    backend: HttpUrl
    ai_chatbot: HttpUrl = Field(alias="ai-chatbot")
    frontend: HttpUrl
    frontend_tls: HttpsUrl | None = None


class TargetTLS(FileModel):
    ca_file: str | None = None
    server_name: str | None = None


class IntegritySpec(FileModel):
    """Which collections a baseline protects, and which of them users write to."""

    baseline: NonEmptyStr
    collections: list[CollectionName] = Field(default_factory=lambda: ["users"], min_length=1)
    written_by_users: list[CollectionName] = Field(
        default_factory=list,
        description="collections live traffic (and the verify run's own login and chat probe) "
        "adds documents to: baseline documents must survive unchanged, new ones are counted",
    )


class ExpectedSpec(FileModel):
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


class LogAccessSpec(FileModel):
    """Where verify may read service logs: files on this machine, or docker containers."""

    files: dict[str, list[str]] = Field(default_factory=dict)
    docker: dict[str, str] = Field(default_factory=dict)


class StatsAccessSpec(FileModel):
    """Where verify may read resource usage: docker containers, or (same machine) the
    processes listening on the target's own ports."""

    docker: dict[str, str] = Field(default_factory=dict)
    local: bool = False


class AccessSpec(FileModel):
    logs: LogAccessSpec | None = None
    stats: StatsAccessSpec | None = None


class SamplingSpec(FileModel):
    """How hard each flow is sampled: enough requests to bound its error rate below the
    runbook's threshold at this confidence when none fails."""

    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    workers: int = Field(default=3, ge=1, le=32)


class TargetSpec(FileModel):
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


def load_target(path: Path | str) -> TargetSpec:
    path = Path(path)
    try:
        return load_model(TargetSpec, path)
    except UnicodeDecodeError as exc:
        raise SpecError(
            f"{path}: not UTF-8 text (byte {exc.start}); expected a YAML target file"
        ) from None
