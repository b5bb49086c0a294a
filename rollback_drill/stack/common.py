"""What every backend shares: host ports, configuration rendering (service .env files and the
nginx config), the order a stack comes up in, seeding (`seeding`), and how checks reach it.
A backend supplies only how a service runs (a process or a container) and the addresses
services use to reach each other, so a drill behaves the same on both and neither repeats the
other.

Over 400 lines: what both backends share of the Stack protocol, kept as one base class so
neither backend repeats it; seeding and the .env format are already modules of their own.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import string
import subprocess
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Self

import httpx

from rollback_drill.chain import deploy as chain
from rollback_drill.chain import keys
from rollback_drill.files.spec import LoadedStack, ServiceSpec
from rollback_drill.process import interrupts, proc
from rollback_drill.process.errors import StackError
from rollback_drill.process.secrets import Secret
from rollback_drill.process.wait import Wait
from rollback_drill.stack import releases, tls
from rollback_drill.stack.access import LogSource, StackLogs, StackStats, StatsSource
from rollback_drill.stack.base import DATA_SERVICES, ResourceUsage
from rollback_drill.stack.envfile import read_env_file, write_env_file
from rollback_drill.stack.seeding import SeedTarget, finish_seed, lookup_test_did, start_seed
from rollback_drill.stack.target import Target
from rollback_drill.stores import mongo
from rollback_drill.stores import redis as redis_store

START_TIMEOUT_S = 30.0
OPERATOR_FUNDS_WEI = 10**22  # 10 000 POL on the dev chain: gas for any drill
_RELEASE_META = re.compile(r'<meta name="safepsy-release" content="([^"]+)"')


def http_status(url: str, timeout: float = 1.0) -> int:
    return httpx.get(url, timeout=timeout).status_code


def _preload_signing() -> None:
    import eth_abi  # noqa: F401 - warms the import cache while servers start
    import eth_account  # noqa: F401


class StackBase(ABC):
    """The backend-independent half of a Stack; see the module docstring."""

    backend_name = "base"

    def __init__(
        self, loaded: LoadedStack, workdir: Path | None = None, seed_users: int | None = None
    ) -> None:
        interrupts.check(f"stack {loaded.spec.name}")  # an interrupted session starts none
        self.loaded = loaded
        self.spec = loaded.spec
        self.environment = loaded.environment
        self._owns_workdir = workdir is None
        self._workdir = workdir or proc.make_temp_dir(f"stack-{self.spec.name}-{self.environment}")
        self._workdir.mkdir(parents=True, exist_ok=True)
        self.seed_users = seed_users or self.spec.seed.users
        self._releases: dict[str, str] = {}
        self._reserved: list[int] = []  # every host port this stack holds (`new_port`)
        self._ports = {
            name: self.new_port() for name in [*DATA_SERVICES, "chain", *self.spec.services]
        }
        self._tls_ports = {
            name: self.new_port() for name, svc in self.spec.services.items() if svc.tls_port
        }
        self.registries: dict[str, str] = {}  # contract version -> its registry's address
        self.operator: keys.Signer | None = None
        self.operator_address: str | None = None
        self.test_did: str | None = None
        self._password = self._test_password()
        self.certs: tls.CertSet | None = None
        self.timings: dict[str, float] = {}
        self._backups: list[tuple[datetime, Path]] = []
        self.step = ""  # what `up` is doing now (`_step`)
        self.on_step: Callable[[str], None] | None = None

    def new_port(self) -> int:
        """A host port in the environment's range (its profile's, or anywhere free), reserved
        across processes until this stack is torn down: a service stopped and started again
        binds it again, and no other worker or run takes it meanwhile (`proc.free_port`)."""
        ports = self.loaded.ports
        port = proc.free_port(within=(ports.first, ports.last) if ports else None)
        self._reserved.append(port)
        return port

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
    def _peer_addresses(self) -> dict[str, str]:
        """How services reach each other: MONGODB_URI, REDIS_URL, CHAIN_RPC_URL, HOST, and
        `<service>` -> host:port for every app service."""

    @abstractmethod
    def _nginx_values(self, service: str, release: str) -> dict[str, str]:
        """Template values for the nginx config as this backend runs nginx."""

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

    @abstractmethod
    def exec(self, service: str, argv: list[str], timeout_s: float = 30.0) -> tuple[int, str]: ...

    # -- layout ---------------------------------------------------------------------------------
    @property
    def workdir(self) -> Path:
        return self._workdir

    @property
    def config_dir(self) -> Path:
        return self._workdir / "config"

    def _log(self, service: str) -> Path:
        return self._workdir / "logs" / f"{service}.log"

    def app_services(self) -> list[str]:
        apps = [n for n, s in self.spec.services.items() if s.kind == "app"]
        fronts = [n for n, s in self.spec.services.items() if s.kind == "nginx"]
        return apps + fronts

    def all_services(self) -> list[str]:
        return [*DATA_SERVICES, *self.app_services()]

    def _service(self, name: str) -> ServiceSpec:
        try:
            return self.spec.services[name]
        except KeyError:
            raise StackError(
                f"unknown service {name!r}; expected one of {self.all_services()}"
            ) from None

    def _front(self) -> str:
        return next(n for n, s in self.spec.services.items() if s.kind == "nginx")

    def _test_password(self) -> Secret:
        value = os.environ.get(self.spec.test_account.password_env)
        if not value:
            value = secrets.token_urlsafe(18)
            self.password_file.parent.mkdir(parents=True, exist_ok=True)
            self.password_file.write_text(value)
            self.password_file.chmod(0o600)
        return Secret(value)

    @property
    def password_file(self) -> Path:
        return self._workdir / "secrets" / "test-password"

    # -- how the host reaches the stack (always 127.0.0.1) --------------------------------------
    @property
    def mongodb_uri(self) -> str:
        return f"mongodb://127.0.0.1:{self._ports['mongodb']}/?directConnection=true"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self._ports['redis']}/0"

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self._ports['chain']}"

    def url(self, service: str, tls_port: bool = False) -> str:
        if tls_port:
            return f"https://localhost:{self._tls_ports[service]}"
        return f"http://127.0.0.1:{self._ports[service]}"

    def port(self, service: str) -> int:
        return self._ports[service]

    # -- the chain operator and the registries --------------------------------------------------
    def _prepare_operator(self) -> None:
        """The operator's key (keys.py: the environment's, else a fresh one kept owner-only in
        the workdir), funded on this stack's dev chain. The reference backend and seed send
        their registrations through the node (eth_sendTransaction, as behind a node-side
        signer): anvil allows that for this one address only; anvil's own accounts are unused."""
        signer = keys.configured()
        if signer is None:
            signer = keys.Signer.generate()
            signer.write(self._workdir / keys.STACK_KEY_FILE)
        self.operator = signer
        self.operator_address = signer.address
        chain.fund_dev_operator(self.rpc_url, signer.address, OPERATOR_FUNDS_WEI)

    def _signer(self) -> keys.Signer:
        if self.operator is None:
            raise StackError("the stack has no operator key before it is up")
        return self.operator

    @property
    def registry_address(self) -> str | None:
        """The registry of the backend's configured release's contract version."""
        if "backend" not in self._releases:
            return None
        release = self.loaded.release(self.configured_release("backend"))
        return self.registries.get(release.contract_version)

    @registry_address.setter
    def registry_address(self, address: str) -> None:
        release = self.configured_release("backend")
        self.use_registry(self.loaded.release(release).contract_version, address)

    def use_registry(self, contract_version: str, address: str) -> None:
        """A registry of `contract_version` now lives at `address`: configuration rendered
        from now on (set_release, deploy, redeploy) names it for that contract version."""
        self.registries[contract_version] = address.lower()

    def target(self) -> Target:
        """How checks reach this stack, and what it must be running now: each service's
        release, the contract version of the backend's release, the registry and its owner."""
        front = self._front()
        configured = {
            name: self.configured_release(name)
            for name in self.app_services()
            if name in self._releases
        }
        backend_release = configured.get("backend")
        contract = (
            self.loaded.release(backend_release).contract_version if backend_release else None
        )
        logs, stats = self._access()
        return Target(
            name=f"{self.spec.name} ({self.backend_name})",
            backend_url=self.url("backend"),
            chatbot_url=self.url("ai-chatbot"),
            frontend_url=self.url(front),
            frontend_tls_url=self.url(front, tls_port=True) if front in self._tls_ports else None,
            mongodb_uri=Secret(self.mongodb_uri),
            mongodb_database=self.spec.stores.mongodb.database,
            redis_url=Secret(self.redis_url),
            rpc_url=self.rpc_url,
            registry_address=self.registries.get(contract) if contract else None,
            chain_id=self.spec.chain.chain_id,
            test_email=self.spec.test_account.email,
            test_password=self._password,
            contract_artifact=self.loaded.contract_artifact(contract)
            if contract
            else self.loaded.resolve(self.spec.chain.contract_artifact),
            test_did=self.test_did,
            ca_file=self.certs.ca_file if self.certs else None,
            server_name=self._service(front).server_name,
            integrity_collections=tuple(self.spec.stores.mongodb.integrity_collections),
            thresholds=self.spec.thresholds,
            read_only=False,
            expected_releases=configured,
            expected_contract_version=contract,
            expected_owner=self.operator_address,
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
        self.certs = tls.issue(
            self.config_dir / "nginx" / "ssl", self._service(self._front()).server_name
        )
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
            if self._owns_workdir:
                proc.remove_temp_dir(self._workdir)
            proc.release_ports(self._reserved)  # nothing of this stack binds them any more
            self._reserved.clear()

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

    # -- releases and configuration -------------------------------------------------------------
    def configured_release(self, service: str) -> str:
        """The release a service must say it is: for an app, the RELEASE in its `.env` (a
        configuration rollback changes that, and a service not restarted after it still says
        the old one); for the front, the release its page was built from."""
        svc = self._service(service)
        env_file = self.config_dir / f"{service}.env"
        if svc.kind == "app" and env_file.exists():
            release = read_env_file(env_file).get("RELEASE")
            if release:
                return release
        return self._releases[service]

    def release_of(self, service: str) -> str:
        """The release whose code the service runs (its configuration, `.env`, is separate:
        a configuration rollback changes that and not this)."""
        return self._releases[service]

    def build_dir(self, service: str, release: str) -> Path:
        """Where a release's build of a service lives (the runbook's `build/`)."""
        return self._workdir / "builds" / service / release

    def build(self, service: str, release: str) -> Path:
        """The release's code and config of a service: base sources plus its patches."""
        return releases.build(self.loaded, service, release, self.build_dir(service, release))

    def rebuild(self, service: str, release: str) -> Path:
        releases.clear(self.build_dir(service, release))
        return self.build(service, release)

    def set_release(self, service: str, release: str) -> None:
        svc = self._service(service)
        rel = self.loaded.release(release)
        registry = self.registries.get(rel.contract_version)
        if registry is None and "chain" in svc.uses:
            raise StackError(
                f"{service} {release} uses contract {rel.contract_version}, and no registry of "
                f"that version is deployed on this stack (deployed: {self.registries}); deploy "
                "it first (contract_release.roll_out)"
            )
        self.build(service, release)
        self._releases[service] = release
        if svc.kind == "nginx":
            self._render_nginx(service, release)
            return
        peers = self._peer_addresses()
        env = {
            "RELEASE": release,
            "HOST": peers["HOST"],
            "PORT": peers[service].rsplit(":", 1)[1],
            "MONGODB_URI": peers["MONGODB_URI"],
            "MONGODB_DATABASE": self.spec.stores.mongodb.database,
            "REDIS_URL": peers["REDIS_URL"],
            "CHAIN_RPC_URL": peers["CHAIN_RPC_URL"],
            "DID_REGISTRY_ADDRESS": registry or "",
            "DID_OPERATOR_ADDRESS": self.operator_address or "",
            "REUSE_PORT": "1",  # lets `redeploy` start the next process beside this one
        }
        if service in rel.services:
            env.update(rel.services[service].env)
        write_env_file(self.config_dir / f"{service}.env", env, f"{service} {release}")

    def service_env(self, service: str) -> dict[str, str]:
        return read_env_file(self.config_dir / f"{service}.env")

    def _render_nginx(self, service: str, release: str) -> None:
        svc = self._service(service)
        assert svc.config_template
        built = releases.in_build(self.loaded, service, svc.config_template)
        template = (self.build_dir(service, release) / built).read_text()
        values = self._nginx_values(service, release)
        conf = self.config_dir / "nginx" / "nginx.conf"
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text(f"# {service} {release}\n" + string.Template(template).substitute(values))

    def render_static(self, service: str, release: str, dest: Path) -> Path:
        """The frontend build for a release: its page with the release substituted."""
        svc = self._service(service)
        assert svc.static_root
        dest.mkdir(parents=True, exist_ok=True)
        root = self.build_dir(service, release) / releases.in_build(
            self.loaded, service, svc.static_root
        )
        page = (root / "index.html").read_text()
        (dest / "index.html").write_text(string.Template(page).safe_substitute(release=release))
        return dest

    def deploy(self, service: str, release: str) -> None:
        self.set_release(service, release)
        if self.is_running(service):
            self.stop(service)
        self.start(service, wait_healthy=False)

    # -- the stores ----------------------------------------------------------------------------
    @property
    def backups(self) -> list[tuple[datetime, Path]]:
        return list(self._backups)

    def backup_stores(self, dest: Path) -> Path:
        """The runbook's `docker-manage.sh backup`: MongoDB and Redis into `dest`."""
        taken = datetime.now(UTC)
        mongo.backup(self.mongodb_uri, self.spec.stores.mongodb.database, dest / "mongodb")
        redis_store.backup(self.redis_url, dest / "redis.json")
        self._backups.append((taken, dest))
        return dest

    def restore_stores(self, archive: Path) -> dict[str, int]:
        """The runbook's `docker-manage.sh restore`: both stores back to the archive's state.
        The MongoDB part is the tool's `mongodb/` folder or mongodump output anywhere in
        `archive` (stores.dump); the Redis part the tool's `redis.json`."""
        part = archive / "mongodb" if (archive / "mongodb").is_dir() else archive
        report = mongo.restore(self.mongodb_uri, self.spec.stores.mongodb.database, part)
        if not report.equal:
            raise StackError(f"MongoDB restore from {archive} did not end equal to the backup")
        restored = report.counts()
        rdb = sorted(archive.rglob("*.rdb"), key=lambda p: len(p.parts))
        if (archive / "redis.json").is_file():
            redis_store.flush_all(self.redis_url)
            restored["redis keys"] = redis_store.restore(self.redis_url, archive / "redis.json")
        elif rdb:
            restored["redis keys"] = self.restore_redis_rdb(rdb[0])
        else:  # mongodump output alone: the runbook's Redis rollback, the cache emptied
            redis_store.flush_all(self.redis_url)
            restored["redis keys"] = 0
        return restored

    def restore_redis_rdb(self, rdb: Path) -> int:
        """An RDB file (`dump.rdb`) restored by the stack's own redis-server: what it holds is
        read first by a scratch server (stores.redis), then the server is stopped, the file
        placed as its `dbfilename` in its `dir`, the server started, and every key read back
        against the scratch server's reading. Returns the number of keys."""
        if not self.places_rdb:
            raise StackError(
                f"{rdb}: this backend restores Redis from the tool's redis.json only; an RDB "
                "file needs the server's data folder, which only the local backend owns "
                "(nothing was stopped)"
            )
        expected = redis_store.rdb_contents(rdb)
        place = redis_store.rdb_location(self.redis_url)
        self.stop("redis")
        try:
            self._place_rdb(rdb, place)
        finally:
            self.start("redis")
        found = redis_store.url_contents(self.redis_url)
        if found != expected:
            raise StackError(
                f"Redis restore from {rdb}: the server holds {found.keys} keys "
                f"(sha256 {found.sha256[:12]}), the file {expected.keys} "
                f"(sha256 {expected.sha256[:12]})"
            )
        return found.keys

    #: Whether `_place_rdb` can put a file where the Redis server reads it at start.
    places_rdb = False

    def _place_rdb(self, rdb: Path, place: Path) -> None:
        """Put the RDB file where the stopped server reads it at start."""
        raise StackError(f"{rdb}: this backend cannot place an RDB file")

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
                f"{name} healthy", START_TIMEOUT_S, 0.02
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
