"""The stack file's parts that say what the stack runs: its services (an app's argv, nginx's
template, ports, health path, images), its stores, its chain and contract artifacts, the seed
that fills it and the test account the checks log in with.

Separate from `files.spec` (the stack file as a whole, its cross-field checks and loading)
because these sections are what the backends in `stack/` read to start things, and each
section checks only its own fields.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from rollback_drill.files.fields import (
    CollectionName,
    ContractArtifact,
    DatabaseName,
    Email,
    EnvVarName,
    ExistingDir,
    HealthPath,
    NonEmptyStr,
    Port,
)
from rollback_drill.files.specmodel import FileModel

DEFAULT_START_TIMEOUT_S = 30.0
"""How long a service may take to answer healthy after a start or a redeploy, unless its
stack file says otherwise; also the stores' (MongoDB, Redis, the chain node)."""


class ServiceSpec(FileModel):
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
    start_timeout_s: float = Field(
        default=DEFAULT_START_TIMEOUT_S,
        gt=0,
        le=3600,
        description="how long the service may take to answer healthy after a start or a "
        "redeploy (a JVM or a cache warm-up may need minutes); past it the start fails",
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


class MongoSpec(FileModel):
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


class RedisSpec(FileModel):
    image: str | None = None


class StoresSpec(FileModel):
    mongodb: MongoSpec = Field(default_factory=MongoSpec)
    redis: RedisSpec = Field(default_factory=RedisSpec)


class ChainSpec(FileModel):
    chain_id: int = Field(ge=1)
    contract_artifact: ContractArtifact
    contracts: dict[NonEmptyStr, ContractArtifact] = Field(
        default_factory=dict,
        description="contract version (a release's contract_version) -> its compiled artifact; "
        "when given, every release's contract version must be listed",
    )
    image: str | None = None


class SeedSpec(FileModel):
    command: list[NonEmptyStr] = Field(min_length=1)
    pythonpath: ExistingDir | None = None
    users: int = Field(default=200, ge=1)
    seed: int = 42
    chain_dids: int = Field(
        default=0, ge=0, description="synthetic users whose DIDs are anchored on chain as well"
    )


class TestAccountSpec(FileModel):
    email: Email
    password_env: EnvVarName


__all__ = [
    "ChainSpec",
    "MongoSpec",
    "RedisSpec",
    "SeedSpec",
    "ServiceSpec",
    "StoresSpec",
    "TestAccountSpec",
]
