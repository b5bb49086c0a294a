"""What a check needs to reach a stack: URLs, store URIs, chain, credentials, thresholds, and
what the rollback must have produced (the expected releases, contract version and registry).

One shape for both worlds: a drill builds it from the stack it started, the verify suite
from a target file. Checks never know which.

One builder, `Target.build`, for every path (a target file here, a running stack in
stack/common.py, the compose reference stack in plugin/compose.py): each caller states what it
knows - how the host reaches the environment, the test account's password, what its file
says, what is deployed there and, from a target file only, how verify judges (the parts, in
stack/targetparts.py) - and the builder fills every field the same way. `Target` has no
defaults, so a new field is added to the builder (and to the part it comes from) or no Target
is made at all.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rollback_drill.files.specmodel import Thresholds
from rollback_drill.files.targetspec import TargetSpec, load_target
from rollback_drill.process.errors import SpecError
from rollback_drill.process.secrets import Secret
from rollback_drill.stack.targetparts import Deployed, Judging, Reach, Settings

if TYPE_CHECKING:
    from rollback_drill.files.perfbaseline import PerformanceBaseline
    from rollback_drill.stack.access import LogSource, StatsSource
    from rollback_drill.stores.fingerprint import Fingerprint

OWN_WRITES = ("sessions", "chat_messages")
"""Where the verify run's own writes land in SafePsy: the login samples' sessions and the
chat probe's messages. Integrity counts new documents there instead of failing on them."""


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
    contract_artifact: Path | None
    test_did: str | None
    ca_file: Path | None
    server_name: str | None
    integrity_collections: tuple[str, ...]
    baseline: Fingerprint | None
    thresholds: Thresholds
    read_only: bool
    # what the rollback must have produced (empty / None: the target does not say)
    expected_releases: Mapping[str, str]
    expected_contract_version: str | None
    expected_owner: str | None
    # collections users write to (plus the verify run's own): additions are counted
    user_written_collections: tuple[str, ...]
    own_writes: tuple[str, ...]
    logs: LogSource | None
    stats: StatsSource | None
    performance_baseline: PerformanceBaseline | None
    sampling_confidence: float
    sampling_workers: int
    # one request per route instead of a sample that bounds the error rate: the weight of a
    # drill's synthetic monitoring, which repeats every check twice a second under load
    probe_once: bool
    deadline_s: float
    source: Path | None

    @classmethod
    def build(
        cls,
        name: str,
        reach: Reach,
        password: Secret,
        settings: Settings,
        deployed: Deployed | None = None,
        *,
        logs: LogSource | None = None,
        stats: StatsSource | None = None,
        judging: Judging | None = None,
        source: Path | None = None,
    ) -> Target:
        """The one way a Target is made (see the module docstring). `deployed` None: the
        caller does not know yet (nothing expected); `logs`/`stats` None: no access granted
        (those checks say "not verified"); `judging` None: a drill's stack, judged with the
        target file's defaults; `source`: the target file it came from."""
        deployed = deployed or Deployed()
        judging = judging or Judging()
        frontend = reach.frontend_url.rstrip("/")
        served_tls = reach.frontend_tls_url.rstrip("/") if reach.frontend_tls_url else None
        if served_tls is None and frontend.startswith("https://"):
            served_tls = frontend  # a frontend served over TLS alone: its certificate is judged
        return cls(
            name=name,
            backend_url=reach.backend_url.rstrip("/"),
            chatbot_url=reach.chatbot_url.rstrip("/"),
            frontend_url=frontend,
            frontend_tls_url=served_tls,
            mongodb_uri=reach.mongodb_uri,
            mongodb_database=settings.mongodb_database,
            redis_url=reach.redis_url,
            rpc_url=reach.rpc_url,
            registry_address=deployed.registry_address,
            chain_id=settings.chain_id,
            test_email=settings.test_email,
            test_password=password,
            contract_artifact=settings.contract_artifact,
            test_did=deployed.test_did,
            ca_file=reach.ca_file,
            server_name=settings.server_name,
            integrity_collections=settings.integrity_collections,
            baseline=judging.baseline,
            thresholds=settings.thresholds,
            read_only=judging.read_only,
            expected_releases=dict(deployed.releases),
            expected_contract_version=deployed.contract_version,
            expected_owner=deployed.owner,
            user_written_collections=judging.user_written_collections,
            own_writes=OWN_WRITES,
            logs=logs,
            stats=stats,
            performance_baseline=judging.performance_baseline,
            sampling_confidence=judging.sampling_confidence,
            sampling_workers=judging.sampling_workers,
            probe_once=False,
            deadline_s=judging.deadline_s,
            source=source,
        )

    def frontend_routes(self) -> list[tuple[str, str]]:
        """(route, base URL) of each way users reach the frontend: its URL ("nginx http", or
        "nginx https" when served over TLS), and the TLS URL when it is another one. A
        production frontend is often HTTPS alone (port 80 redirects): its one route is then
        sampled once, not twice under two names."""
        first = "nginx https" if self.frontend_url.startswith("https://") else "nginx http"
        found = [(first, self.frontend_url)]
        if self.frontend_tls_url and self.frontend_tls_url != self.frontend_url:
            found.append(
                ("nginx https" if first == "nginx http" else "frontend_tls", self.frontend_tls_url)
            )
        return found

    def service_urls(self) -> dict[str, str]:
        urls = {
            "backend": self.backend_url,
            "ai-chatbot": self.chatbot_url,
            "frontend": self.frontend_url,
        }
        if self.frontend_tls_url:
            urls["frontend-tls"] = self.frontend_tls_url
        return urls

    def append_collections(self) -> set[str]:
        """Collections compared in append mode: new documents counted, not failed."""
        return {*self.user_written_collections, *self.own_writes}

    def origin(self) -> str:
        return str(self.source) if self.source else self.name


# -- a target file ----------------------------------------------------------------------------
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
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise SpecError(
            f"{path}: test_account.password_file: cannot read {file}: {reason}"
        ) from None


def _existing(path: Path, field_name: str, value: str | None) -> Path | None:
    if value is None:
        return None
    resolved = path.resolve().parent / value
    if not resolved.is_file():
        raise SpecError(f"{path}: {field_name}: expected an existing file, {resolved} not found")
    return resolved


def _ca(path: Path, spec: TargetSpec) -> Path | None:
    ca = _existing(path, "tls.ca_file", spec.tls.ca_file)
    if ca is not None:
        import ssl

        try:
            ssl.create_default_context(cafile=str(ca))
        except (ssl.SSLError, ValueError) as exc:
            raise SpecError(
                f"{path}: tls.ca_file: expected PEM CA certificates in {ca} ({exc})"
            ) from None
    return ca


def _artifact(path: Path, spec: TargetSpec) -> Path | None:
    from rollback_drill.chain.artifacts import runtime_of

    artifact = _existing(path, "contract_artifact", spec.contract_artifact)
    if artifact is not None:
        try:
            runtime_of(artifact)
        except ValueError as exc:
            raise SpecError(f"{path}: contract_artifact: {exc}") from None
    return artifact


def _baseline(path: Path, spec: TargetSpec) -> Fingerprint | None:
    from rollback_drill.process.errors import FingerprintError
    from rollback_drill.stores.fingerprint import Fingerprint

    if spec.integrity is None:
        return None
    file = path.resolve().parent / spec.integrity.baseline
    try:
        taken = Fingerprint.load(file)
    except FingerprintError as exc:
        raise SpecError(f"{path}: integrity.baseline: {exc}") from None
    if taken.database != spec.mongodb_database:  # else integrity.mongodb fails, much later
        raise SpecError(
            f"{path}: integrity.baseline: {file} is a baseline of database "
            f"{taken.database!r}, but mongodb_database is {spec.mongodb_database!r}: correct "
            f"mongodb_database, or take a baseline of {spec.mongodb_database!r} "
            f"(`rollback-drill fingerprint --target {path}`)"
        )
    return taken


def _performance(path: Path, spec: TargetSpec) -> PerformanceBaseline | None:
    from rollback_drill.files.perfbaseline import load
    from rollback_drill.process.errors import PerformanceBaselineError

    file = _existing(path, "performance_baseline", spec.performance_baseline)
    if file is None:
        return None
    try:
        return load(file)
    except PerformanceBaselineError as exc:
        raise SpecError(f"{path}: performance_baseline: {exc}") from None


def resolve_target(path: Path, spec: TargetSpec, with_baseline: bool = True) -> Target:
    """Everything the file refers to: secrets from the environment or files, paths relative
    to the file, the baselines. Raises SpecError naming the file and the field."""
    from rollback_drill.stack.access import sources_from_spec

    password = _password(path, spec)
    reach = Reach(
        backend_url=spec.services.backend,
        chatbot_url=spec.services.ai_chatbot,
        frontend_url=spec.services.frontend,
        frontend_tls_url=spec.services.frontend_tls,
        mongodb_uri=_from_env(path, "mongodb_uri_env", spec.mongodb_uri_env, spec.mongodb_uri),
        redis_url=_from_env(path, "redis_url_env", spec.redis_url_env, spec.redis_url),
        rpc_url=spec.rpc_url,
        ca_file=_ca(path, spec),
    )
    settings = Settings(
        mongodb_database=spec.mongodb_database,
        chain_id=spec.chain_id,
        test_email=spec.test_account.email,
        contract_artifact=_artifact(path, spec),
        server_name=spec.tls.server_name,
        integrity_collections=tuple(spec.integrity.collections) if spec.integrity else ("users",),
        thresholds=spec.thresholds,
    )
    deployed = Deployed(
        registry_address=spec.registry_address,
        test_did=spec.test_did,
        releases={str(k): v for k, v in spec.expected.releases.items()},
        contract_version=spec.expected.contract_version,
        owner=spec.expected.registry_owner,
    )
    logs, stats = sources_from_spec(spec, path.resolve().parent)
    judging = Judging(
        baseline=_baseline(path, spec) if with_baseline else None,
        performance_baseline=_performance(path, spec),
        user_written_collections=tuple(spec.integrity.written_by_users) if spec.integrity else (),
        read_only=spec.read_only,
        sampling_confidence=spec.sampling.confidence,
        sampling_workers=spec.sampling.workers,
        deadline_s=spec.deadline_s,
    )
    return Target.build(
        spec.name,
        reach,
        Secret(password),
        settings,
        deployed,
        logs=logs,
        stats=stats,
        judging=judging,
        source=path,
    )


def mongodb_of(path: Path, spec: TargetSpec) -> Secret:
    """Only the MongoDB URI (what `fingerprint` needs: no password, CA or baseline)."""
    return _from_env(path, "mongodb_uri_env", spec.mongodb_uri_env, spec.mongodb_uri)


def target_from_file(path: Path, with_baseline: bool = True) -> Target:
    """Load and resolve a target file; any problem is one SpecError naming file and field."""
    return resolve_target(path, load_target(path), with_baseline)
