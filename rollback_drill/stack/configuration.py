"""The embedded stack's configuration, what both backends render the same way from the stack
file: where a stack lives (its workdir, host ports and the addresses they make), its secrets
(the test account's password, the chain operator's key, the front's TLS material), the
registries deployed for each contract version, and what each service is configured to run -
a release's build, a service's `.env` file, nginx's config and the front's page.

A backend supplies only the addresses services use to reach each other and the values nginx's
template takes as it runs nginx; the life cycle (stack/common.py) builds on this.
"""

from __future__ import annotations

import os
import secrets
import string
from abc import ABC, abstractmethod
from pathlib import Path

from rollback_drill.chain import deploy as chain
from rollback_drill.chain import keys
from rollback_drill.files.servicespec import DEFAULT_START_TIMEOUT_S, ServiceSpec
from rollback_drill.files.spec import LoadedStack
from rollback_drill.process import proc
from rollback_drill.process.errors import StackError
from rollback_drill.process.secrets import Secret
from rollback_drill.stack import releases, tls
from rollback_drill.stack.base import DATA_SERVICES
from rollback_drill.stack.envfile import read_env_file, write_env_file
from rollback_drill.stack.targetparts import (
    Reach,
    host_mongodb_uri,
    host_redis_url,
    host_tls_url,
    host_url,
)

OPERATOR_FUNDS_WEI = 10**22  # 10 000 POL on the dev chain: gas for any drill


class StackConfiguration(ABC):
    """The configuration half of a backend-independent Stack; see the module docstring."""

    def __init__(self, loaded: LoadedStack, workdir: Path | None = None) -> None:
        self.loaded = loaded
        self.spec = loaded.spec
        self.environment = loaded.environment
        self._owns_workdir = workdir is None
        self._workdir = workdir or proc.make_temp_dir(f"stack-{self.spec.name}-{self.environment}")
        self._workdir.mkdir(parents=True, exist_ok=True)
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
        self._password = self._test_password()
        self.certs: tls.CertSet | None = None

    # -- what a backend provides ----------------------------------------------------------------
    @abstractmethod
    def _peer_addresses(self) -> dict[str, str]:
        """How services reach each other: MONGODB_URI, REDIS_URL, CHAIN_RPC_URL, HOST, and
        `<service>` -> host:port for every app service."""

    @abstractmethod
    def _nginx_values(self, service: str, release: str) -> dict[str, str]:
        """Template values for the nginx config as this backend runs nginx."""

    # -- layout ---------------------------------------------------------------------------------
    @property
    def workdir(self) -> Path:
        return self._workdir

    def _remove_workdir(self) -> None:
        """The workdir with everything in it, when this stack made it (a caller's stays), and
        the host ports it reserved: nothing of this stack binds them any more."""
        if self._owns_workdir:
            proc.remove_temp_dir(self._workdir)
        proc.release_ports(self._reserved)
        self._reserved.clear()

    def new_port(self) -> int:
        """A host port in the environment's range (its profile's, or anywhere free), reserved
        across processes until this stack is torn down: a service stopped and started again
        binds it again, and no other worker or run takes it meanwhile (`proc.free_port`)."""
        ports = self.loaded.ports
        port = proc.free_port(within=(ports.first, ports.last) if ports else None)
        self._reserved.append(port)
        return port

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

    def start_timeout(self, name: str) -> float:
        """How long `name` may take to answer healthy after a start or a redeploy: its stack
        file's `start_timeout_s`; the stores' is the default."""
        svc = self.spec.services.get(name)
        return svc.start_timeout_s if svc is not None else DEFAULT_START_TIMEOUT_S

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
        return host_mongodb_uri(self._ports["mongodb"])

    @property
    def redis_url(self) -> str:
        return host_redis_url(self._ports["redis"])

    @property
    def rpc_url(self) -> str:
        return host_url(self._ports["chain"])

    def url(self, service: str, tls_port: bool = False) -> str:
        if tls_port:
            return host_tls_url(self._tls_ports[service])
        return host_url(self._ports[service])

    def port(self, service: str) -> int:
        return self._ports[service]

    def reach(self) -> Reach:
        """All of the above as a Target takes it, with the CA the front's certificate was
        issued by (None before `up` issues it)."""
        front = self._front()
        return Reach.on_host(
            backend=self._ports["backend"],
            chatbot=self._ports["ai-chatbot"],
            frontend=self._ports[front],
            frontend_tls=self._tls_ports.get(front),
            mongodb=self._ports["mongodb"],
            redis=self._ports["redis"],
            chain=self._ports["chain"],
            ca_file=self.certs.ca_file if self.certs else None,
        )

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

    def _issue_certs(self) -> None:
        """The front's TLS material: a throwaway CA and a certificate for its server name."""
        self.certs = tls.issue(
            self.config_dir / "nginx" / "ssl", self._service(self._front()).server_name
        )

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
