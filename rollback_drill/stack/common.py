"""What every backend shares beside its configuration (stack/configuration.py) and its
stores' backup and restore (stack/backups.py): the order a stack comes up in and goes down,
readiness as the host sees it, seeding (`seeding`), and how checks reach it (`target`). A
backend supplies only how a service runs (a process or a container), so a drill behaves the
same on both and neither repeats the other.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import threading
import time
from abc import abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Self

import httpx

from rollback_drill.chain import deploy as chain
from rollback_drill.files.spec import LoadedStack
from rollback_drill.process import interrupts
from rollback_drill.process.errors import StackError
from rollback_drill.process.wait import Wait
from rollback_drill.stack.access import LogSource, StackLogs, StackStats, StatsSource
from rollback_drill.stack.backups import StoreBackups
from rollback_drill.stack.base import DATA_SERVICES, ResourceUsage
from rollback_drill.stack.seeding import SeedTarget, finish_seed, lookup_test_did, start_seed
from rollback_drill.stack.target import Target
from rollback_drill.stack.targetparts import Deployed, stack_settings
from rollback_drill.stores import mongo
from rollback_drill.stores import redis as redis_store

_RELEASE_META = re.compile(r'<meta name="safepsy-release" content="([^"]+)"')


def http_status(url: str, timeout: float = 1.0) -> int:
    return httpx.get(url, timeout=timeout).status_code


def _preload_signing() -> None:
    import eth_account  # noqa: F401 - warms the import cache while servers start
    import web3  # noqa: F401 - the chain client (chain/evm.py): ~1.8 s to import


class StackBase(StoreBackups):
    """The backend-independent half of a Stack; see the module docstring."""

    backend_name = "base"

    def __init__(
        self, loaded: LoadedStack, workdir: Path | None = None, seed_users: int | None = None
    ) -> None:
        interrupts.check(f"stack {loaded.spec.name}")  # an interrupted session starts none
        super().__init__(loaded, workdir)
        self.seed_users = seed_users or self.spec.seed.users
        self.test_did: str | None = None
        self.timings: dict[str, float] = {}
        self.step = ""  # what `up` is doing now (`_step`)
        self.on_step: Callable[[str], None] | None = None

    def _step(self, what: str) -> None:
        """Say what `up` does next, to `on_step` too (the `up` supervisor's state and log): a
        start that hangs - a seed command that never returns, say - names the step it hung
        in instead of only running out of time. Nothing further starts once the session is
        interrupted: `up` then tears down what it started."""
        interrupts.check(f"stack {self.spec.name}: {what}")
        self.step = what
        if self.on_step is not None:
            self.on_step(what)

    # -- what a backend provides ----------------------------------------------------------------
    @abstractmethod
    def _start_group(self, services: list[str], healthy: bool = True) -> None:
        """Start these services (not running now) together; wait until each is ready."""

    @abstractmethod
    def _teardown(self) -> None:
        """Remove every process or container of this stack."""

    @abstractmethod
    def is_running(self, service: str) -> bool: ...

    @abstractmethod
    def instance(self, service: str) -> str | None: ...

    @abstractmethod
    def redeploy(self, service: str, release: str) -> None: ...

    @abstractmethod
    def stop(self, service: str) -> None: ...

    @abstractmethod
    def kill(self, service: str) -> None: ...

    @abstractmethod
    def pause(self, service: str) -> None: ...

    @abstractmethod
    def unpause(self, service: str) -> None: ...

    @abstractmethod
    def logs(self, service: str) -> str: ...

    @abstractmethod
    def stats(self) -> dict[str, ResourceUsage]: ...

    def outside_cpu_seconds(self) -> dict[str, float]:
        """Nothing outside the harness's own children, unless a backend says otherwise."""
        return {}

    @abstractmethod
    def exec(self, service: str, argv: list[str], timeout_s: float = 30.0) -> tuple[int, str]: ...

    def target(self) -> Target:
        """How checks reach this stack, and what it must be running now: each service's
        release, the contract version of the backend's release, the registry and its owner."""
        configured = {
            name: self.configured_release(name)
            for name in self.app_services()
            if name in self._releases
        }
        backend_release = configured.get("backend")
        contract = (
            self.loaded.release(backend_release).contract_version if backend_release else None
        )
        deployed = Deployed(
            registry_address=self.registries.get(contract) if contract else None,
            test_did=self.test_did,
            releases=configured,
            contract_version=contract,
            owner=self.operator_address,
        )
        logs, stats = self._access()
        return Target.build(
            f"{self.spec.name} ({self.backend_name})",
            self.reach(),
            self._password,
            stack_settings(self.loaded, contract),
            deployed,
            logs=logs,
            stats=stats,
        )

    def _access(self) -> tuple[LogSource, StatsSource]:
        """How verify reads this stack's logs and resource usage: through the Stack protocol
        (a backend with a cheaper, file-describable way overrides this)."""
        return StackLogs(self.logs, tuple(self.app_services())), StackStats(self.stats)

    # -- life cycle -----------------------------------------------------------------------------
    def up(self, release: str) -> None:
        """Stores and chain, then the contract, then seed data and apps together, then nginx."""
        self.loaded.release(release)  # fail early on an unknown release
        started = time.monotonic()
        signing_import = threading.Thread(target=_preload_signing, daemon=True)
        signing_import.start()
        self._issue_certs()
        try:
            self._step(f"starting {', '.join([*DATA_SERVICES, 'chain'])}")
            self._start_group([*DATA_SERVICES, "chain"])
            self.timings["stores_and_chain_ready_s"] = time.monotonic() - started
            signing_import.join()
            self._step("deploying the contract")
            self._prepare_operator()
            version = self.loaded.release(release).contract_version
            deployment = chain.deploy_registry(
                self.rpc_url, self.loaded.contract_artifact(version), version, self._signer()
            )
            self.registries[version] = deployment.address
            for name in self.app_services():
                self.set_release(name, release)
            self.timings["contract_deployed_s"] = time.monotonic() - started
            apps = [n for n in self.app_services() if self._service(n).kind == "app"]
            self._step(
                f"seeding (`{shlex.join(self.spec.seed.command)}`) while {', '.join(apps)} boot"
            )
            seeding = self._start_seed()
            try:
                self._start_group(apps, healthy=False)  # boots while the seed runs
                self._finish_seed(seeding)
            finally:
                if seeding.poll() is None:
                    seeding.kill()
            self.test_did = self._lookup_test_did()
            self.timings["seeded_s"] = time.monotonic() - started
            for name in apps:
                self._step(f"waiting for {name} to answer healthy")
                self._wait_healthy(name)
            self._step(f"starting {self._front()}")
            self._start_group([self._front()])
            self.timings["ready_s"] = time.monotonic() - started
        except BaseException:
            self.down()
            raise

    def down(self) -> None:
        """Everything of the stack removed; Ctrl-C meanwhile is raised once that is done
        (`interrupts.shielded`), not half-way through."""
        with interrupts.shielded():
            self._teardown()
            self._remove_workdir()

    @contextmanager
    def running(self, release: str) -> Iterator[Self]:
        """Up at `release` for the block; down afterwards, whatever happens in it."""
        try:
            self.up(release)
            yield self
        finally:
            self.down()

    def start(self, service: str, wait_healthy: bool = True) -> None:
        if not self.is_running(service):
            self._start_group([service], healthy=wait_healthy)

    def restart(self, service: str) -> None:
        self.stop(service)
        self.start(service)

    def deploy(self, service: str, release: str) -> None:
        self.set_release(service, release)
        if self.is_running(service):
            self.stop(service)
        self.start(service, wait_healthy=False)

    # -- readiness, as the host sees it ---------------------------------------------------------
    def probe(self, name: str, healthy: bool = True) -> Callable[[], bool]:
        if name == "mongodb":
            return lambda: mongo.ping(self.mongodb_uri, timeout_s=0.5) >= 0
        if name == "redis":
            return lambda: redis_store.ping(self.redis_url, timeout_s=0.5) >= 0
        if name == "chain":
            body = {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}
            return lambda: httpx.post(self.rpc_url, json=body, timeout=0.5).status_code == 200
        svc = self._service(name)
        if svc.kind == "nginx":
            url = self.url(name) + "/nginx-health"
            return lambda: http_status(url) == 200
        url = self.url(name) + svc.health_path
        if healthy:
            return lambda: http_status(url) == 200
        return lambda: http_status(url) > 0

    def answers_as(self, service: str) -> str | None:
        """The release a running service says it is: `release` in an app's /health, the
        page's safepsy-release meta for the nginx front; None when it does not answer so."""
        return self.answers_at(service, self.url(service))

    def answers_at(self, service: str, base_url: str) -> str | None:
        """`answers_as` for one instance of the service at `base_url` (a replacement that
        does not take the service's address until it answers)."""
        svc = self._service(service)
        try:
            if svc.kind == "nginx":
                page = httpx.get(base_url + "/", timeout=1.0).text
                found = _RELEASE_META.search(page)
                return found.group(1) if found else None
            body = httpx.get(base_url + svc.health_path, timeout=1.0).json()
        except (httpx.HTTPError, ValueError):
            return None
        if isinstance(body, dict) and body.get("status") == "ok":
            return str(body.get("release"))
        return None

    def _wait_healthy(self, name: str) -> None:
        try:
            self.timings[f"{name}_healthy_s"] = Wait(
                f"{name} healthy", self.start_timeout(name), 0.02
            ).until(self.probe(name))
        except TimeoutError as exc:
            raise StackError(f"{exc}; log tail:\n{self.logs(name)[-2000:]}") from None

    # -- seed data ---------------------------------------------------------------------------
    def _start_seed(self) -> subprocess.Popen[bytes]:
        return start_seed(
            self.loaded,
            SeedTarget(
                self.mongodb_uri, self.rpc_url, self.registry_address, self.operator_address
            ),
            self._password,
            self._log("seed"),
            users=self.seed_users,
        )

    def _finish_seed(self, seeding: subprocess.Popen[bytes]) -> None:
        finish_seed(seeding, self._log("seed"))

    def _lookup_test_did(self) -> str | None:
        return lookup_test_did(self.loaded, self.mongodb_uri)
