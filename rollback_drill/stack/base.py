"""The Stack protocol: everything a procedure or a check may do to a running stack.

Procedures see only this, never a backend's internals, so one drill runs unchanged on the
local (processes) and docker (containers) backends - the same move as httpx's transports.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

from rollback_drill.files.spec import LoadedStack
from rollback_drill.stack.target import Target
from rollback_drill.stack.tls import CertSet

DATA_SERVICES = ("mongodb", "redis")
"""Stores the stack owns; the chain is external infrastructure and is never stopped."""


@dataclass(frozen=True)
class ResourceUsage:
    """One sample of what `docker stats --no-stream` shows for a service."""

    cpu_percent: float
    memory_bytes: int
    memory_limit_bytes: int

    @property
    def memory_fraction(self) -> float:
        return self.memory_bytes / self.memory_limit_bytes if self.memory_limit_bytes else 0.0


@runtime_checkable
class Stack(Protocol):
    backend_name: str
    loaded: LoadedStack
    seed_users: int  # the users its data was seeded with: the drill's data volume
    certs: CertSet | None  # the TLS material it issued (CA, certificate, key); None before up

    @property
    def workdir(self) -> Path:
        """Where this stack keeps its config, data, logs and artifacts."""

    @property
    def config_dir(self) -> Path:
        """The live configuration (service .env files, nginx.conf, certificates)."""

    def app_services(self) -> list[str]:
        """Services a release deploys, in start order (apps before the nginx front)."""

    def all_services(self) -> list[str]:
        """Data services then app services: the order to start; reversed, to stop."""

    def up(self, release: str) -> None:
        """Start everything at `release` with seeded data, and wait until it is healthy."""

    def down(self) -> None:
        """Stop everything and remove every process, container and temp dir."""

    def target(self) -> Target:
        """How checks reach this stack."""

    def release_of(self, service: str) -> str:
        """The release a service is set to run."""

    def set_release(self, service: str, release: str) -> None:
        """Select a release's code and render its configuration; takes effect at next start."""

    def use_registry(self, contract_version: str, address: str) -> None:
        """A DID registry of `contract_version` now lives at `address` (a contract deployed
        or redeployed): configuration rendered from now on names it for that version, and
        `target()` expects it. Its operator's key: keys.operator_signer(workdir)."""

    def build_dir(self, service: str, release: str) -> Path:
        """Where the release's build of the service lives (the runbook's `build/`)."""

    def answers_as(self, service: str) -> str | None:
        """The release a running service says it is (its /health, or the page's meta);
        None when it does not answer healthy."""

    def start_timeout(self, service: str) -> float:
        """How long `service` may take to answer healthy after a start or a redeploy (its
        stack file's `start_timeout_s`)."""

    def rebuild(self, service: str, release: str) -> Path:
        """The runbook's `build --no-cache` / `rm -rf build/`: remove the release's build of
        the service and make it again from its sources."""

    def deploy(self, service: str, release: str) -> None:
        """set_release then (re)start, waiting only until the service listens, not until healthy."""

    def redeploy(self, service: str, release: str) -> None:
        """Replace a running service with `release` without a gap (the next process serves
        before the old one stops, or nginx reloads): what `docker-compose up -d SERVICE`
        should mean during a planned rollback. Returns once the new release answers."""

    def start(self, service: str, wait_healthy: bool = True) -> None: ...

    def stop(self, service: str) -> None: ...

    def kill(self, service: str) -> None: ...

    def restart(self, service: str) -> None: ...

    def pause(self, service: str) -> None:
        """Freeze the service (SIGSTOP / docker pause): connections hang, nothing answers."""

    def unpause(self, service: str) -> None: ...

    def is_running(self, service: str) -> bool: ...

    def instance(self, service: str) -> str | None:
        """Who runs the service now (pid and start time, or container id and start time):
        changes exactly when the service is restarted; None when it is not running."""

    def logs(self, service: str) -> str: ...

    @property
    def backups(self) -> list[tuple[datetime, Path]]:
        """Every store backup this stack took: when, and where."""

    def backup_stores(self, dest: Path) -> Path:
        """Logical backups of MongoDB and Redis (with checksums) into `dest`."""

    def restore_stores(self, archive: Path) -> dict[str, int]:
        """Put both stores back to an archive's state; refuses a corrupt archive."""

    def stats(self) -> dict[str, ResourceUsage]: ...

    def outside_cpu_seconds(self) -> dict[str, float]:
        """CPU seconds used so far by the stack's own work that is not a process the harness
        started (a container's processes), keyed by what ran it; empty where every service is
        the harness's child. A drill counts it apart from other work on the machine."""

    def exec(self, service: str, argv: list[str], timeout_s: float = 30.0) -> tuple[int, str]:
        """Run a command in the service's environment (docker exec, or locally with its env)."""
