"""What each caller states to build a Target (`Target.build`, stack/target.py): how the host
reaches the environment (`Reach`), what its file says (`Settings`: the target file's, or the
stack file's through `stack_settings`), what is deployed there (`Deployed`) and how verify
judges it (`Judging`, from a target file only). Kept apart from Target so that each part is
stated once by each path, and the addresses of a stack this harness runs are spelled once
(`host_url` and its kin, which the backends use too).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rollback_drill.files.specmodel import Thresholds
from rollback_drill.files.targetspec import SamplingSpec, TargetSpec
from rollback_drill.process.secrets import Secret

if TYPE_CHECKING:
    from rollback_drill.files.perfbaseline import PerformanceBaseline
    from rollback_drill.files.spec import LoadedStack
    from rollback_drill.stores.fingerprint import Fingerprint


def host_url(port: int) -> str:
    """A service of a stack this harness runs, as the host reaches it."""
    return f"http://127.0.0.1:{port}"


def host_tls_url(port: int) -> str:
    """The front's TLS port: `localhost`, a name its certificate covers (stack/tls.py)."""
    return f"https://localhost:{port}"


def host_mongodb_uri(port: int) -> str:
    return f"mongodb://127.0.0.1:{port}/?directConnection=true"


def host_redis_url(port: int) -> str:
    return f"redis://127.0.0.1:{port}/0"


@dataclass(frozen=True)
class Reach:
    """How the host reaches the environment: the services' URLs, the stores' URIs (which may
    carry credentials, hence Secret), the chain's RPC and the CA the front's certificate
    verifies against."""

    backend_url: str
    chatbot_url: str
    frontend_url: str
    frontend_tls_url: str | None
    mongodb_uri: Secret
    redis_url: Secret
    rpc_url: str | None
    ca_file: Path | None

    @classmethod
    def on_host(
        cls,
        *,
        backend: int,
        chatbot: int,
        frontend: int,
        frontend_tls: int | None,
        mongodb: int,
        redis: int,
        chain: int,
        ca_file: Path | None,
    ) -> Reach:
        """A stack this harness runs (a backend's or the compose project), at these host
        ports."""
        return cls(
            backend_url=host_url(backend),
            chatbot_url=host_url(chatbot),
            frontend_url=host_url(frontend),
            frontend_tls_url=host_tls_url(frontend_tls) if frontend_tls else None,
            mongodb_uri=Secret(host_mongodb_uri(mongodb)),
            redis_url=Secret(host_redis_url(redis)),
            rpc_url=host_url(chain),
            ca_file=ca_file,
        )


@dataclass(frozen=True)
class Settings:
    """What a file says of the environment beside how to reach it: the target file's for a
    live one, the stack file's (`stack_settings`) for a stack this harness runs."""

    mongodb_database: str
    chain_id: int | None
    test_email: str
    contract_artifact: Path | None
    server_name: str | None
    integrity_collections: tuple[str, ...]
    thresholds: Thresholds


def stack_settings(loaded: LoadedStack, contract_version: str | None = None) -> Settings:
    """The stack file's settings; the contract artifact is `contract_version`'s (the backend's
    release's, once known), else the stack's one `chain.contract_artifact`."""
    spec = loaded.spec
    front = next(s for s in spec.services.values() if s.kind == "nginx")
    return Settings(
        mongodb_database=spec.stores.mongodb.database,
        chain_id=spec.chain.chain_id,
        test_email=spec.test_account.email,
        contract_artifact=loaded.contract_artifact(contract_version)
        if contract_version
        else loaded.resolve(spec.chain.contract_artifact),
        server_name=front.server_name,
        integrity_collections=tuple(spec.stores.mongodb.integrity_collections),
        thresholds=spec.thresholds,
    )


@dataclass(frozen=True)
class Deployed:
    """What is deployed there and what the rollback must have produced: the registry, the
    test account's DID, each service's release, the contract version and the registry's
    owner (None / empty: not said, and the checks that need it say "not verified")."""

    registry_address: str | None = None
    test_did: str | None = None
    releases: Mapping[str, str] = field(default_factory=dict)
    contract_version: str | None = None
    owner: str | None = None


_SAMPLING = SamplingSpec()


@dataclass(frozen=True)
class Judging:
    """How verify judges what it finds, as only a target file says: the baselines, the
    collections users write to, read-only, sampling and the run's deadline. The defaults are
    the target file's own (files/targetspec.py), what a drill's stack is judged with."""

    baseline: Fingerprint | None = None
    performance_baseline: PerformanceBaseline | None = None
    user_written_collections: tuple[str, ...] = ()
    read_only: bool = False
    sampling_confidence: float = _SAMPLING.confidence
    sampling_workers: int = _SAMPLING.workers
    deadline_s: float = TargetSpec.model_fields["deadline_s"].default
