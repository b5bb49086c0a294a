"""What a check needs to reach a stack: URLs, store URIs, chain, credentials, thresholds.

One shape for both worlds: a drill builds it from the stack it started, the verify suite
from a target file. Checks never know which.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from rollback_drill.secrets import Secret
from rollback_drill.spec import SpecError, TargetSpec, Thresholds
from rollback_drill.stores.mongo import Fingerprint


@dataclass(frozen=True)
class Target:
    name: str
    backend_url: str
    chatbot_url: str
    frontend_url: str
    frontend_tls_url: str | None
    mongodb_uri: Secret
    mongodb_database: str
    redis_url: Secret
    rpc_url: str | None
    registry_address: str | None
    chain_id: int | None
    test_email: str
    test_password: Secret
    contract_artifact: Path | None = None
    test_did: str | None = None
    ca_file: Path | None = None
    server_name: str | None = None
    integrity_collections: tuple[str, ...] = ("users",)
    baseline: Fingerprint | None = None
    thresholds: Thresholds = field(default_factory=Thresholds)
    read_only: bool = True

    def service_urls(self) -> dict[str, str]:
        urls = {
            "backend": self.backend_url,
            "ai-chatbot": self.chatbot_url,
            "frontend": self.frontend_url,
        }
        if self.frontend_tls_url:
            urls["frontend-tls"] = self.frontend_tls_url
        return urls


def _from_env(spec_path: Path, field_name: str, var: str | None, literal: str | None) -> Secret:
    if var:
        value = os.environ.get(var)
        if not value:
            raise SpecError(f"{spec_path}: {field_name}: environment variable {var} is not set")
        return Secret(value)
    assert literal is not None
    return Secret(literal)


def _password(path: Path, spec: TargetSpec) -> str:
    account = spec.test_account
    if account.password_env:
        value = os.environ.get(account.password_env)
        if not value:
            raise SpecError(
                f"{path}: test_account.password_env: environment variable "
                f"{account.password_env} is not set (the test account's password)"
            )
        return value
    assert account.password_file is not None
    file = path.resolve().parent / account.password_file
    try:
        return file.read_text().strip()
    except OSError as exc:
        raise SpecError(
            f"{path}: test_account.password_file: cannot read {file}: {exc.strerror}"
        ) from None


def target_from_file(path: Path) -> Target:
    """Resolve a target file: secrets from the environment, paths relative to the file."""
    from rollback_drill.spec import load_target

    spec: TargetSpec = load_target(path)
    base = path.resolve().parent
    password = _password(path, spec)
    baseline = None
    if spec.integrity:
        baseline = Fingerprint.load(base / spec.integrity.baseline)
    artifact = base / spec.contract_artifact if spec.contract_artifact else None
    ca = base / spec.tls.ca_file if spec.tls.ca_file else None
    if ca is not None and not ca.exists():
        raise SpecError(f"{path}: tls.ca_file: expected an existing file, {ca} not found")
    return Target(
        name=spec.name,
        backend_url=spec.services.backend.rstrip("/"),
        chatbot_url=spec.services.ai_chatbot.rstrip("/"),
        frontend_url=spec.services.frontend.rstrip("/"),
        frontend_tls_url=spec.services.frontend_tls.rstrip("/")
        if spec.services.frontend_tls
        else None,
        mongodb_uri=_from_env(path, "mongodb_uri_env", spec.mongodb_uri_env, spec.mongodb_uri),
        mongodb_database=spec.mongodb_database,
        redis_url=_from_env(path, "redis_url_env", spec.redis_url_env, spec.redis_url),
        rpc_url=spec.rpc_url,
        registry_address=spec.registry_address,
        chain_id=spec.chain_id,
        test_email=spec.test_account.email,
        test_password=Secret(password),
        contract_artifact=artifact,
        test_did=spec.test_did,
        ca_file=ca,
        server_name=spec.tls.server_name,
        integrity_collections=tuple(spec.integrity.collections) if spec.integrity else ("users",),
        baseline=baseline,
        thresholds=spec.thresholds,
        read_only=spec.read_only,
    )
