"""The docker backend: one container per service on a network private to the stack, built
with testcontainers, as the runbook's docker-compose deployment runs it.

No registry can be reached here, so Ryuk (the reaper) cannot be pulled: every container and
network carries labels with the run id and the owning harness pid, is removed on teardown,
and a later run sweeps whatever a killed run left behind. Published ports are bound to
127.0.0.1 on host ports allocated once per stack, so they survive stop/start like the local
backend's. A release is an image tag: deploying a release replaces the container with one
of that tag; stopping and starting keeps the container (and a store's data) as compose does.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

for _name, _value in {
    "TESTCONTAINERS_RYUK_DISABLED": "true",  # the reaper image cannot be pulled
    "TESTCONTAINERS_CONNECTION_MODE": "docker_host",  # else it returns 172.17.0.1 as host
    "TC_POOLING_INTERVAL": "0.1",  # the default 1 s poll adds a second to every start
}.items():
    os.environ.setdefault(_name, _value)

import docker  # noqa: E402 - after the environment testcontainers reads at import
from docker.errors import APIError, NotFound  # noqa: E402
from testcontainers.core.container import DockerContainer  # noqa: E402
from testcontainers.core.network import Network  # noqa: E402
from testcontainers.core.waiting_utils import WaitStrategy, WaitStrategyTarget  # noqa: E402

from rollback_drill import proc  # noqa: E402
from rollback_drill.access import DockerStats, LogSource, StatsSource  # noqa: E402
from rollback_drill.spec import LoadedStack, ServiceSpec, StackSpec  # noqa: E402
from rollback_drill.stack.base import ResourceUsage, StackError  # noqa: E402
from rollback_drill.stack.common import START_TIMEOUT_S, StackBase  # noqa: E402

LABEL_RUN = "rollback-drill.run"
LABEL_OWNER = "rollback-drill.owner-pid"
LABEL_SERVICE = "rollback-drill.service"
INTERNAL_PORTS = {"mongodb": 27017, "redis": 6379, "chain": 8545}
DEFAULT_IMAGES = {
    "mongodb": "rollback-drill/mongodb:secantus-0.7",
    "redis": "rollback-drill/redis:7.0",
    "chain": "rollback-drill/anvil:1.7.1",
}
NGINX_CONF_IN_CONTAINER = "/etc/nginx/nginx.conf"
NGINX_CERTS_IN_CONTAINER = "/etc/nginx/certs"


def container_nginx_values(svc: ServiceSpec, peers: dict[str, str]) -> dict[str, str]:
    """The nginx template's values for nginx in a container (also used for compose)."""
    return {
        "user_directive": "",
        "prefix": "/tmp/nginx",  # a tmpfs in the container: pid, logs, temp files
        "listen_host": "0.0.0.0",
        "http_port": str(svc.port),
        "https_port": str(svc.tls_port or 443),
        "cert_file": f"{NGINX_CERTS_IN_CONTAINER}/certificate.crt",
        "key_file": f"{NGINX_CERTS_IN_CONTAINER}/private.key",
        "static_root": "/usr/share/nginx/html",
        "backend_upstream": peers[svc.upstreams["backend"]],
        "chatbot_upstream": peers[svc.upstreams["chatbot"]],
    }


def container_peers(spec: StackSpec) -> dict[str, str]:
    """How containers reach each other on the stack's network: by service name."""
    peers = {
        "HOST": "0.0.0.0",
        "MONGODB_URI": "mongodb://mongodb:27017/?directConnection=true",
        "REDIS_URL": "redis://redis:6379/0",
        "CHAIN_RPC_URL": "http://chain:8545",
    }
    for name, svc in spec.services.items():
        peers[name] = f"{name}:{svc.port}"
    return peers


class ProbeWaitStrategy(WaitStrategy):
    """Ready when the harness's own probe (the one the local backend uses) says so, as the
    host sees the service through its published port; fails at once if the container exits,
    with its logs, instead of waiting out the timeout."""

    def __init__(self, service: str, probe: Callable[[], bool]) -> None:
        super().__init__()
        self._service = service
        self._probe = probe
        self.with_startup_timeout(int(START_TIMEOUT_S)).with_poll_interval(0.05)

    def wait_until_ready(self, container: WaitStrategyTarget) -> None:
        wrapped = container.get_wrapped_container()

        def ready() -> bool:
            wrapped.reload()
            if wrapped.status in ("exited", "dead"):
                logs = wrapped.logs().decode(errors="replace")[-2000:]
                raise StackError(f"{self._service}: container exited; logs:\n{logs}")
            try:
                return self._probe()
            except Exception:
                return False

        try:
            done = self._poll(ready)
        except RuntimeError as exc:
            raise (exc.__cause__ or exc) from None
        if not done:
            logs = wrapped.logs().decode(errors="replace")[-2000:]
            raise StackError(
                f"{self._service}: not ready within {START_TIMEOUT_S:.0f} s; logs:\n{logs}"
            )


def _compose_owner(project: str) -> str:
    """`rollback-drill-<pid>[-suffix]` -> `<pid>` (compose projects the plugin names)."""
    return project.removeprefix("rollback-drill-").split("-", 1)[0]


def sweep_containers(all_runs: bool = False) -> list[str]:
    """Remove containers and networks of runs whose harness is gone (or of every run)."""
    removed: list[str] = []
    client = docker.from_env(timeout=10)
    try:
        owners: dict[str, bool] = {}

        def orphaned(labels: dict[str, str]) -> bool:
            owner = labels.get(LABEL_OWNER, "")
            if all_runs:
                return True
            if not owner.isdigit():
                return False  # not a mark this harness wrote: not ours to judge
            if owner not in owners:
                owners[owner] = not proc._pid_alive(int(owner))
            return owners[owner]

        def remove(found: dict[str, Any]) -> None:
            with contextlib.suppress(NotFound, APIError):
                client.api.remove_container(found["Id"], force=True, v=True)
                removed.append(str((found.get("Names") or ["?"])[0]).lstrip("/"))

        # the low-level list: labels come with it, so a container removed meanwhile (another
        # run's teardown) is no error, where containers.list() inspects each one again
        for found in client.api.containers(all=True, filters={"label": LABEL_RUN}):
            if orphaned(found.get("Labels") or {}):
                remove(found)
        compose = "com.docker.compose.project"
        for found in client.api.containers(all=True, filters={"label": compose}):
            project = (found.get("Labels") or {}).get(compose, "")
            owner = _compose_owner(project)
            if project.startswith("rollback-drill-") and orphaned({LABEL_OWNER: owner}):
                remove(found)
        for network in client.networks.list():
            labels = network.attrs.get("Labels") or {}
            project = labels.get(compose, "")
            if project.startswith("rollback-drill-"):
                labels = {LABEL_RUN: project, LABEL_OWNER: _compose_owner(project)}
            elif LABEL_RUN not in labels:
                continue
            if orphaned(labels):
                with contextlib.suppress(NotFound, APIError):
                    network.remove()
                    removed.append(network.name)
    finally:
        client.close()
    return removed


def ensure_images(loaded: LoadedStack) -> None:
    """Every image the stack file needs is present: the reference images are built (or
    loaded from the cache) on demand; any other must already be there - nothing can be
    pulled here."""
    spec = loaded.spec
    wanted = set(DEFAULT_IMAGES.values())
    for name, svc in spec.services.items():
        for release in loaded.releases:
            wanted.add(svc.images.get(release, f"rollback-drill/safepsy-{name}:{release}"))
    for named in (spec.stores.mongodb.image, spec.stores.redis.image, spec.chain.image):
        if named:
            wanted.add(named)
    client = docker.from_env(timeout=30)
    try:

        def missing() -> list[str]:
            absent = []
            for ref in sorted(wanted):
                try:
                    client.images.get(ref)
                except NotFound:
                    absent.append(ref)
            return absent

        absent = missing()
        if absent and all(ref.startswith("rollback-drill/") for ref in absent):
            from rollback_drill import images

            images.build_all()
            absent = missing()
    finally:
        client.close()
    if absent:
        raise StackError(
            f"{loaded.path}: image(s) not present locally and no registry to pull from: "
            f"{absent}; build or `docker load` them first"
        )


class DockerStack(StackBase):
    """A stack of containers; see the module docstring."""

    backend_name = "docker"

    def __init__(
        self, loaded: LoadedStack, workdir: Path | None = None, seed_users: int | None = None
    ) -> None:
        sweep_containers()
        super().__init__(loaded, workdir, seed_users)
        self.run_id = os.urandom(5).hex()
        self._labels = {LABEL_RUN: self.run_id, LABEL_OWNER: str(os.getpid())}
        self._client = docker.from_env(timeout=30)
        ensure_images(loaded)
        self._network = Network(docker_network_kw={"labels": dict(self._labels)}).create()
        self._containers: dict[str, DockerContainer] = {}
        self._fingerprints: dict[str, str] = {}

    # -- images ---------------------------------------------------------------------------------
    def image_of(self, service: str) -> str:
        if service in DEFAULT_IMAGES:
            named = {
                "mongodb": self.spec.stores.mongodb.image,
                "redis": self.spec.stores.redis.image,
                "chain": self.spec.chain.image,
            }[service]
            return named or DEFAULT_IMAGES[service]
        release = self.release_of(service)
        images = self._service(service).images
        if release in images:
            return images[release]
        return f"rollback-drill/safepsy-{service}:{release}"

    # -- addresses and config -------------------------------------------------------------------
    def _peer_addresses(self) -> dict[str, str]:
        return container_peers(self.spec)

    def _nginx_values(self, service: str, release: str) -> dict[str, str]:
        return container_nginx_values(self._service(service), self._peer_addresses())

    # -- containers -----------------------------------------------------------------------------
    def _published(self, service: str) -> dict[int, int]:
        """container port -> host port (bound on 127.0.0.1)."""
        if service in INTERNAL_PORTS:
            return {INTERNAL_PORTS[service]: self._ports[service]}
        svc = self._service(service)
        ports = {svc.port: self._ports[service]}
        if svc.tls_port:
            ports[svc.tls_port] = self._tls_ports[service]
        return ports

    def _definition(self, service: str) -> tuple[DockerContainer, str]:
        """The container a service should run as now, and a fingerprint of that definition."""
        image = self.image_of(service)
        container = DockerContainer(image).with_name(f"rd-{self.run_id}-{service}")
        container.with_network(self._network).with_network_aliases(service)
        container.with_kwargs(labels={**self._labels, LABEL_SERVICE: service})
        for inside, host in self._published(service).items():
            container.ports[f"{inside}/tcp"] = ("127.0.0.1", host)  # type: ignore[assignment]
        parts: list[str] = [image]
        if service in self.spec.services and self._service(service).kind == "app":
            env = self.service_env(service)
            container.with_envs(**env)
            parts.append(json.dumps(env, sort_keys=True))
        elif service in self.spec.services:
            conf = self.config_dir / "nginx" / "nginx.conf"
            certs = self.config_dir / "nginx" / "ssl"
            container.with_volume_mapping(str(conf), NGINX_CONF_IN_CONTAINER, "ro")
            container.with_volume_mapping(str(certs), NGINX_CERTS_IN_CONTAINER, "ro")
            container.with_tmpfs_mount("/tmp/nginx")  # the template's prefix: pid, logs, temp
            for path in [conf, *sorted(certs.iterdir())]:
                parts.append(hashlib.sha256(path.read_bytes()).hexdigest())
        elif service == "chain":
            container.with_command(
                ["anvil", "--host", "0.0.0.0", "--port", "8545", "--chain-id",
                 str(self.spec.chain.chain_id), "--prune-history", "--silent"]
            )  # fmt: skip
        return container, hashlib.sha256("\n".join(parts).encode()).hexdigest()

    def _wrapped(self, service: str) -> Any:
        container = self._containers.get(service)
        if container is None:
            raise StackError(f"{service} has no container")
        wrapped = container.get_wrapped_container()
        wrapped.reload()
        return wrapped

    def _launch(self, service: str, healthy: bool) -> float:
        """Start the existing container if its definition is unchanged, else replace it;
        return the seconds until its wait strategy said ready."""
        container, fingerprint = self._definition(service)
        wait = ProbeWaitStrategy(service, self.probe(service, healthy))
        start = time.monotonic()
        existing = self._containers.get(service)
        if existing is not None and self._fingerprints.get(service) == fingerprint:
            existing.get_wrapped_container().start()
            wait.wait_until_ready(existing)
            return time.monotonic() - start
        if existing is not None:
            self._remove(existing)
        self._containers[service] = container  # registered before start: teardown finds it
        self._fingerprints[service] = fingerprint
        container.waiting_for(wait).start()
        return time.monotonic() - start

    def _start_group(self, services: list[str], healthy: bool = True) -> None:
        errors: list[str] = []
        with ThreadPoolExecutor(max_workers=max(len(services), 1)) as pool:
            futures = {name: pool.submit(self._launch, name, healthy) for name in services}
            for name, future in futures.items():
                try:
                    self.timings[f"{name}_ready_s"] = future.result()
                except Exception as exc:
                    errors.append(str(exc) if isinstance(exc, StackError) else f"{name}: {exc}")
        if errors:
            raise StackError("\n".join(errors))

    @staticmethod
    def _remove(container: DockerContainer) -> None:
        wrapped = getattr(container, "_container", None)
        if wrapped is not None:
            with contextlib.suppress(NotFound, APIError):
                wrapped.remove(force=True, v=True)

    def _teardown(self) -> None:
        for container in self._containers.values():
            self._remove(container)
        self._containers.clear()
        with contextlib.suppress(NotFound, APIError, AssertionError):
            self._network.remove()
        self._client.close()

    def redeploy(self, service: str, release: str) -> None:
        self.deploy(service, release)
        self._wait_healthy(service) if self._service(service).kind == "app" else None

    def stop(self, service: str) -> None:
        if self.is_running(service):
            wrapped = self._wrapped(service)
            if wrapped.status == "paused":
                wrapped.unpause()
            wrapped.stop(timeout=5)

    def kill(self, service: str) -> None:
        if self.is_running(service):
            self._wrapped(service).kill()

    def pause(self, service: str) -> None:
        self._wrapped(service).pause()

    def unpause(self, service: str) -> None:
        self._wrapped(service).unpause()

    def is_running(self, service: str) -> bool:
        if service not in self._containers:
            return False
        try:
            return self._wrapped(service).status in ("running", "paused", "restarting")
        except NotFound:
            return False

    def instance(self, service: str) -> str | None:
        if not self.is_running(service):
            return None
        wrapped = self._wrapped(service)
        return f"container {wrapped.short_id} started at {wrapped.attrs['State']['StartedAt']}"

    def logs(self, service: str) -> str:
        if service not in self._containers:
            return ""
        try:
            text: str = self._wrapped(service).logs(timestamps=False).decode(errors="replace")
        except NotFound:
            return ""
        nginx = service in self.spec.services and self._service(service).kind == "nginx"
        if nginx and self.is_running(service):
            code, access = self.exec(
                service, ["cat", "/tmp/nginx/access.log", "/tmp/nginx/error.log"]
            )
            if code == 0:
                text += "\n--- access.log / error.log\n" + access
        return text

    def stats(self) -> dict[str, ResourceUsage]:
        """What `docker stats --no-stream` shows: one sample per container, in parallel."""

        def sample(service: str) -> tuple[str, ResourceUsage]:
            raw = self._wrapped(service).stats(stream=False)
            cpu = raw["cpu_stats"]
            pre = raw["precpu_stats"]
            cpu_delta = cpu["cpu_usage"]["total_usage"] - pre.get("cpu_usage", {}).get(
                "total_usage", 0
            )
            sys_delta = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
            cpus = cpu.get("online_cpus") or 1
            percent = cpu_delta / sys_delta * cpus * 100 if sys_delta > 0 else 0.0
            memory = raw["memory_stats"]
            return service, ResourceUsage(
                round(percent, 1), int(memory.get("usage", 0)), int(memory.get("limit", 0))
            )

        running = [s for s in [*self.all_services(), "chain"] if self.is_running(s)]
        with ThreadPoolExecutor(max_workers=max(len(running), 1)) as pool:
            return dict(pool.map(sample, running))

    def exec(self, service: str, argv: list[str], timeout_s: float = 30.0) -> tuple[int, str]:
        """`docker exec`: the tool runs inside the service's container with its defaults."""
        if argv[:1] == ["mongosh"]:
            argv = ["mongosh", "--quiet", "--norc", *argv[1:]]
        bounded = ["timeout", f"{timeout_s:g}", *argv]  # exec_run itself has no timeout
        result = self._wrapped(service).exec_run(bounded, demux=False)
        output = result.output.decode(errors="replace") if result.output else ""
        return int(result.exit_code), output

    def container_names(self) -> dict[str, str]:
        return {s: c.get_wrapped_container().name for s, c in self._containers.items()}

    def _access(self) -> tuple[LogSource, StatsSource]:
        """Memory through one-shot `docker stats` (a full sample waits two seconds for CPU)."""
        logs, _ = super()._access()
        return logs, DockerStats(self.container_names())
