"""The embedded default backend: every component a real server process on 127.0.0.1.

SecantusDB for MongoDB, redis-server, anvil for the chain, the stack's app services and
nginx with real TLS, each in its own process group on ports allocated once per stack (a
restart comes back where clients expect it, as in production). Processes are started from
the calling thread only - PR_SET_PDEATHSIG is tied to the thread that forks - and their
readiness is awaited in parallel.
"""

from __future__ import annotations

import os
import secrets
import signal
import string
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from rollback_drill import chain, proc, tls
from rollback_drill.secrets import Secret
from rollback_drill.spec import LoadedStack, ServiceSpec
from rollback_drill.stack.base import DATA_SERVICES, ResourceUsage, StackError
from rollback_drill.stores import mongo
from rollback_drill.stores import redis as redis_store
from rollback_drill.target import Target
from rollback_drill.tools import find_tool

START_TIMEOUT_S = 20.0


def _http_status(url: str, timeout: float = 1.0) -> int:
    return httpx.get(url, timeout=timeout).status_code


def read_env_file(path: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            raise StackError(f"{path}:{number}: expected KEY=value, got {line!r}")
        key, value = line.split("=", 1)
        env[key.strip()] = value.strip()
    return env


def write_env_file(path: Path, env: dict[str, str], header: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"# {header}"] + [f"{k}={v}" for k, v in sorted(env.items())]
    path.write_text("\n".join(lines) + "\n")


class LocalStack:
    """A stack of real processes; see the module docstring."""

    backend_name = "local"

    def __init__(
        self, loaded: LoadedStack, workdir: Path | None = None, seed_users: int | None = None
    ) -> None:
        proc.sweep_orphans()
        self.loaded = loaded
        self.spec = loaded.spec
        self._owns_workdir = workdir is None
        self._workdir = workdir or proc.make_temp_dir(f"stack-{self.spec.name}")
        self._workdir.mkdir(parents=True, exist_ok=True)
        self.seed_users = seed_users or self.spec.seed.users
        self._procs: dict[str, proc.ManagedProcess] = {}
        self._releases: dict[str, str] = {}
        self._ports = {
            name: proc.free_port() for name in [*DATA_SERVICES, "chain", *self.spec.services]
        }
        self._tls_ports = {
            name: proc.free_port() for name, svc in self.spec.services.items() if svc.tls_port
        }
        self.registry_address: str | None = None
        self.test_did: str | None = None
        self.operator_address: str | None = None
        self._password = self._test_password()
        self.certs: tls.CertSet | None = None
        self.timings: dict[str, float] = {}

    # -- layout -----------------------------------------------------------------------------
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

    def _test_password(self) -> Secret:
        var = self.spec.test_account.password_env
        value = os.environ.get(var)
        if not value:
            value = secrets.token_urlsafe(18)
            path = self._workdir / "secrets" / "test-password"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(value)
            path.chmod(0o600)
        return Secret(value)

    @property
    def password_file(self) -> Path:
        return self._workdir / "secrets" / "test-password"

    # -- URLs ---------------------------------------------------------------------------------
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

    def target(self) -> Target:
        front = next(n for n, s in self.spec.services.items() if s.kind == "nginx")
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
            registry_address=self.registry_address,
            chain_id=self.spec.chain.chain_id,
            test_email=self.spec.test_account.email,
            test_password=self._password,
            contract_artifact=self.loaded.resolve(self.spec.chain.contract_artifact),
            test_did=self.test_did,
            ca_file=self.certs.ca_file if self.certs else None,
            server_name=self._service(front).server_name,
            integrity_collections=tuple(self.spec.stores.mongodb.integrity_collections),
            thresholds=self.spec.thresholds,
            read_only=False,
        )

    # -- life cycle ---------------------------------------------------------------------------
    def up(self, release: str) -> None:
        self.loaded.release(release)  # fail early on an unknown release
        started = time.monotonic()
        web3_import = threading.Thread(target=_preload_web3, daemon=True)
        web3_import.start()
        self.certs = tls.issue(self.config_dir / "nginx" / "ssl", self._front_spec().server_name)
        for name in self.app_services():
            self.set_release(name, release)
        try:
            self._parallel_ready({name: self._launch(name) for name in [*DATA_SERVICES, "chain"]})
            self.timings["stores_and_chain_ready_s"] = time.monotonic() - started
            web3_import.join()
            deployment = chain.deploy_registry(
                self.rpc_url,
                self.loaded.resolve(self.spec.chain.contract_artifact),
                self.loaded.release(release).contract_version,
            )
            self.registry_address = deployment.address
            self.operator_address = deployment.operator
            for name in self.app_services():  # render again now that the registry exists
                self.set_release(name, release)
            self.timings["contract_deployed_s"] = time.monotonic() - started
            seeding = self._start_seed()
            apps = [n for n in self.app_services() if self._service(n).kind == "app"]
            launched = {name: self._launch(name) for name in apps}
            self._finish_seed(seeding)
            self.test_did = self._lookup_test_did()
            self.timings["seeded_s"] = time.monotonic() - started
            self._parallel_ready(launched)
            fronts = [n for n in self.app_services() if self._service(n).kind == "nginx"]
            self._parallel_ready({name: self._launch(name) for name in fronts})
            self.timings["ready_s"] = time.monotonic() - started
        except BaseException:
            self.down()
            raise

    def down(self) -> None:
        for name in reversed([*self.all_services(), "chain"]):
            process = self._procs.pop(name, None)
            if process is not None:
                process.stop(grace=3.0)
        if self._owns_workdir:
            proc.remove_temp_dir(self._workdir)

    def __enter__(self) -> LocalStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    # -- releases and configuration -----------------------------------------------------------
    def release_of(self, service: str) -> str:
        return self._releases[service]

    def _front_spec(self) -> ServiceSpec:
        return next(s for s in self.spec.services.values() if s.kind == "nginx")

    def set_release(self, service: str, release: str) -> None:
        svc = self._service(service)
        rel = self.loaded.release(release)
        self._releases[service] = release
        if svc.kind == "app":
            env = {
                "RELEASE": release,
                "HOST": "127.0.0.1",
                "PORT": str(self._ports[service]),
                "MONGODB_URI": self.mongodb_uri,
                "MONGODB_DATABASE": self.spec.stores.mongodb.database,
                "REDIS_URL": self.redis_url,
                "CHAIN_RPC_URL": self.rpc_url,
                "DID_REGISTRY_ADDRESS": self.registry_address or "",
                "DID_OPERATOR_ADDRESS": self.operator_address or "",
            }
            env.update(rel.services.get(service, _EMPTY).env)
            write_env_file(self.config_dir / f"{service}.env", env, f"{service} {release}")
        else:
            self._render_nginx(service, release)

    def _render_nginx(self, service: str, release: str) -> None:
        svc = self._service(service)
        assert svc.config_template and svc.static_root
        static = self._workdir / "static" / service
        static.mkdir(parents=True, exist_ok=True)
        page = (self.loaded.resolve(svc.static_root) / "index.html").read_text()
        (static / "index.html").write_text(string.Template(page).safe_substitute(release=release))
        prefix = self._workdir / "run" / service
        (prefix / "logs").mkdir(parents=True, exist_ok=True)
        ssl_dir = self.config_dir / "nginx" / "ssl"
        values = {
            "user_directive": "user root;" if os.geteuid() == 0 else "",
            "prefix": str(prefix),
            "listen_host": "127.0.0.1",
            "http_port": str(self._ports[service]),
            "https_port": str(self._tls_ports.get(service, proc.free_port())),
            "cert_file": str(ssl_dir / "certificate.crt"),
            "key_file": str(ssl_dir / "private.key"),
            "static_root": str(static),
            "backend_upstream": f"127.0.0.1:{self._ports[svc.upstreams['backend']]}",
            "chatbot_upstream": f"127.0.0.1:{self._ports[svc.upstreams['chatbot']]}",
        }
        template = self.loaded.resolve(svc.config_template).read_text()
        conf = self.config_dir / "nginx" / "nginx.conf"
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text(f"# {service} {release}\n" + string.Template(template).substitute(values))

    def deploy(self, service: str, release: str) -> None:
        self.set_release(service, release)
        if self.is_running(service):
            self.stop(service)
        self.start(service, wait_healthy=False)

    # -- processes ----------------------------------------------------------------------------
    def _argv_env(self, name: str) -> tuple[list[str], dict[str, str]]:
        if name == "mongodb":
            data = self._workdir / "data" / "mongodb"
            data.mkdir(parents=True, exist_ok=True)
            argv = [
                find_tool("secantusd-py"),
                "--host",
                "127.0.0.1",
                "--port",
                str(self._ports[name]),
                "--storage-path",
                str(data),
                "--log-level",
                "WARNING",
            ]
            return argv, {}
        if name == "redis":
            data = self._workdir / "data" / "redis"
            data.mkdir(parents=True, exist_ok=True)
            argv = [
                find_tool("redis-server"),
                "--port",
                str(self._ports[name]),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(data),
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ]
            return argv, {}
        if name == "chain":
            home = self._workdir / "anvil-home"
            home.mkdir(parents=True, exist_ok=True)
            argv = [
                find_tool("anvil"),
                "--host",
                "127.0.0.1",
                "--port",
                str(self._ports[name]),
                "--chain-id",
                str(self.spec.chain.chain_id),
                "--silent",
                "--prune-history",
            ]
            return argv, {"HOME": str(home)}
        svc = self._service(name)
        if svc.kind == "nginx":
            prefix = self._workdir / "run" / name
            argv = [
                find_tool("nginx"),
                "-p",
                str(prefix),
                "-c",
                str(self.config_dir / "nginx" / "nginx.conf"),
                "-g",
                "daemon off;",
            ]
            return argv, {}
        env = read_env_file(self.config_dir / f"{name}.env")
        if svc.pythonpath:
            env["PYTHONPATH"] = str(self.loaded.resolve(svc.pythonpath))
        env["PYTHONUNBUFFERED"] = "1"
        argv = [sys.executable if a == "python" else a for a in svc.command]
        return argv, env

    def _probe(self, name: str, healthy: bool) -> Callable[[], bool]:
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
            return lambda: _http_status(url) == 200
        url = self.url(name) + svc.health_path
        if healthy:
            return lambda: _http_status(url) == 200
        return lambda: _http_status(url) > 0

    def _launch(self, name: str) -> proc.ManagedProcess:
        argv, env = self._argv_env(name)
        process = proc.spawn(name, argv, self._log(name), env=env, cwd=self._workdir)
        self._procs[name] = process
        return process

    def _parallel_ready(
        self, launched: dict[str, proc.ManagedProcess], healthy: bool = True
    ) -> None:
        def wait(name: str) -> float:
            return launched[name].wait_ready(self._probe(name, healthy), START_TIMEOUT_S)

        with ThreadPoolExecutor(max_workers=max(len(launched), 1)) as pool:
            futures = {name: pool.submit(wait, name) for name in launched}
            errors = []
            for name, future in futures.items():
                try:
                    self.timings[f"{name}_ready_s"] = future.result()
                except Exception as exc:
                    errors.append(str(exc))
        if errors:
            raise StackError("\n".join(errors))

    def _start_seed(self) -> subprocess.Popen[bytes]:
        seed = self.spec.seed
        argv = [sys.executable if a == "python" else a for a in seed.command] + [
            "--mongodb-uri",
            self.mongodb_uri,
            "--database",
            self.spec.stores.mongodb.database,
            "--users",
            str(self.seed_users),
            "--seed",
            str(seed.seed),
            "--rpc-url",
            self.rpc_url,
            "--registry",
            self.registry_address or "",
            "--operator",
            self.operator_address or "",
        ]
        env = dict(os.environ)
        env[self.spec.test_account.password_env] = self._password.reveal()
        env[proc.OWNER_VAR] = str(os.getpid())
        if seed.pythonpath:
            env["PYTHONPATH"] = str(self.loaded.resolve(seed.pythonpath))
        log = self._log("seed")
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)

    def _finish_seed(self, seeding: subprocess.Popen[bytes]) -> None:
        try:
            code = seeding.wait(timeout=600)
        except subprocess.TimeoutExpired:
            seeding.kill()
            raise StackError("seed did not finish within 600 s") from None
        if code != 0:
            raise StackError(
                f"seed exited with code {code}:\n{self._log('seed').read_text()[-2000:]}"
            )

    def _lookup_test_did(self) -> str | None:
        with mongo.client(self.mongodb_uri) as conn:
            users = conn[self.spec.stores.mongodb.database]["users"]
            doc = users.find_one({"email": self.spec.test_account.email})
        return str(doc["did"]) if doc is not None and "did" in doc else None

    def start(self, service: str, wait_healthy: bool = True) -> None:
        if self.is_running(service):
            return
        process = self._launch(service)
        self._parallel_ready({service: process}, healthy=wait_healthy)

    def stop(self, service: str) -> None:
        process = self._procs.pop(service, None)
        if process is not None:
            process.signal_group(signal.SIGCONT)  # a paused process cannot handle SIGTERM
            process.stop(grace=5.0)

    def kill(self, service: str) -> None:
        process = self._procs.pop(service, None)
        if process is not None:
            process.kill()

    def restart(self, service: str) -> None:
        self.stop(service)
        self.start(service)

    def pause(self, service: str) -> None:
        self._running(service).signal_group(signal.SIGSTOP)

    def unpause(self, service: str) -> None:
        self._running(service).signal_group(signal.SIGCONT)

    def _running(self, service: str) -> proc.ManagedProcess:
        process = self._procs.get(service)
        if process is None or not process.alive():
            raise StackError(f"{service} is not running")
        return process

    def is_running(self, service: str) -> bool:
        process = self._procs.get(service)
        return process is not None and process.alive()

    def logs(self, service: str) -> str:
        parts = []
        path = self._log(service)
        if path.exists():
            parts.append(path.read_text(errors="replace"))
        if service in self.spec.services and self._service(service).kind == "nginx":
            for name in ("access.log", "error.log"):
                extra = self._workdir / "run" / service / name
                if extra.exists():
                    parts.append(f"--- {name}\n" + extra.read_text(errors="replace"))
        return "\n".join(parts)

    def stats(self) -> dict[str, ResourceUsage]:
        """CPU over a 0.25 s window and resident memory of each service's process group."""
        total_mem = _mem_total()
        pids = {name: p.pid for name, p in self._procs.items() if p.alive() and p.pid}
        before = {name: _group_cpu_ticks(pid) for name, pid in pids.items()}
        window = 0.25
        time.sleep(window)
        ticks = os.sysconf("SC_CLK_TCK")
        usage = {}
        for name, pid in pids.items():
            cpu = (_group_cpu_ticks(pid) - before[name]) / ticks / window * 100
            usage[name] = ResourceUsage(round(cpu, 1), _group_rss(pid), total_mem)
        return usage

    def exec(self, service: str, argv: list[str], timeout_s: float = 30.0) -> tuple[int, str]:
        """Run a tool against one service, the way `docker exec` would find its defaults."""
        tool = argv[0]
        extra: list[str] = []
        if tool == "nginx":
            extra = [
                "-p",
                str(self._workdir / "run" / service),
                "-c",
                str(self.config_dir / "nginx" / "nginx.conf"),
            ]
        elif tool == "redis-cli":
            extra = ["-p", str(self._ports["redis"])]
        elif tool == "mongosh":
            extra = [self.mongodb_uri, "--quiet", "--norc"]
        try:
            done = subprocess.run(
                [find_tool(tool), *extra, *argv[1:]],
                capture_output=True,
                timeout=timeout_s,
                cwd=self._workdir,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return 124, f"{tool} did not finish within {timeout_s} s"
        return done.returncode, (done.stdout + done.stderr).decode(errors="replace")


class _Empty:
    env: dict[str, str] = {}  # noqa: RUF012 - read-only default


_EMPTY = _Empty()


def _preload_web3() -> None:
    import web3  # noqa: F401 - warms the import cache while servers start


def _group_pids(pgid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid:
                pids.append(int(entry.name))
    return pids


def _group_cpu_ticks(pgid: int) -> int:
    total = 0
    for pid in _group_pids(pgid):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError):
            continue
    return total


def _group_rss(pgid: int) -> int:
    total = 0
    for pid in _group_pids(pgid):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def _mem_total() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0
