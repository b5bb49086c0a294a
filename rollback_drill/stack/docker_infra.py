"""What the docker backend needs around its containers: the environment testcontainers reads,
the labels that mark what a run owns and the sweep of what a killed run left, the images
present and current, how containers reach each other, and waiting on a container with the
harness's own probe.

No registry can be reached here, so Ryuk (the reaper) cannot be pulled: every container and
network carries labels with the run id and the owning harness pid, and a later run sweeps
whatever a killed run left behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import sys
from collections.abc import Callable
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

from rollback_drill.files.servicespec import ServiceSpec  # noqa: E402
from rollback_drill.files.spec import LoadedStack, StackSpec  # noqa: E402
from rollback_drill.process import interrupts  # noqa: E402
from rollback_drill.process.errors import StackError  # noqa: E402
from rollback_drill.process.procfs import ProcessIdentity  # noqa: E402

LABEL_RUN = "rollback-drill.run"
LABEL_OWNER = "rollback-drill.owner-pid"
#: The owner as pid and start time (procfs.ProcessIdentity): dead or not, without doubt.
LABEL_OWNER_ID = "rollback-drill.owner"
LABEL_SERVICE = "rollback-drill.service"
INTERNAL_PORTS = {"mongodb": 27017, "redis": 6379, "chain": 8545}
DEFAULT_IMAGES = {
    "mongodb": "rollback-drill/mongodb:secantus-0.7",
    "redis": "rollback-drill/redis:7.0",
    "chain": "rollback-drill/anvil:1.7.1",
}
NGINX_CONF_IN_CONTAINER = "/etc/nginx/nginx.conf"
NGINX_CERTS_IN_CONTAINER = "/etc/nginx/certs"
NGINX_STATIC_IN_CONTAINER = "/usr/share/nginx/html"
#: Docker's embedded DNS on a user-defined network; nginx asks it per request (re-asking after
#: a second), so a container replacing another under the same alias gets traffic at once.
DOCKER_DNS = "127.0.0.11"


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
        "static_root": NGINX_STATIC_IN_CONTAINER,
        # The template's upstream groups (fixed addresses, resolved once when nginx loads its
        # config) are not what proxies here: the API goes to the service names below,
        # resolved per request, so a replacement container is found at once.
        "backend_upstream": peers[svc.upstreams["backend"]],
        "chatbot_upstream": peers[svc.upstreams["chatbot"]],
        # On the stack's network a connect is answered at once; one that is not goes to a
        # replaced container's address nginx still has cached: give up on it soon (the
        # request then goes to the service's other address).
        "connect_timeout": "500ms",
        "resolver": f"resolver {DOCKER_DNS} valid=1s ipv6=off;\n    resolver_timeout 2s;",
        "backend_target": peers[svc.upstreams["backend"]],
        "chatbot_target": peers[svc.upstreams["chatbot"]],
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

    def __init__(self, service: str, probe: Callable[[], bool], timeout_s: float) -> None:
        super().__init__()
        self._service = service
        self._probe = probe
        self._timeout_s = timeout_s
        self.with_startup_timeout(max(1, math.ceil(timeout_s))).with_poll_interval(0.05)

    def wait_until_ready(self, container: WaitStrategyTarget) -> None:
        wrapped = container.get_wrapped_container()

        def ready() -> bool:
            interrupts.check(self._service)  # stop waiting: the stack is being torn down
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
                f"{self._service}: not ready within {self._timeout_s:g} s; logs:\n{logs}"
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
            if all_runs:
                return True
            identity = ProcessIdentity.parse(labels.get(LABEL_OWNER_ID, ""))
            owner = labels.get(LABEL_OWNER, "")
            if identity is not None:  # gone, or its pid now another process's: dead
                key = str(identity)
                if key not in owners:
                    owners[key] = not identity.alive()
                return owners[key]
            if not owner.isdigit():
                return False  # not a mark this harness wrote: not ours to judge
            if owner not in owners:
                owners[owner] = ProcessIdentity.of(int(owner)) is None  # zombies are dead
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


def ensure_images(loaded: LoadedStack) -> dict[str, str]:
    """Every image the stack file needs is present and current; returns image ids by tag.

    The reference images (`rollback-drill/...`) are brought up to date by the image build
    (about a second when nothing changed): an image made before a release's patch changed
    is rebuilt, never run. Any other image must already be there: nothing can be pulled.
    """
    spec = loaded.spec
    wanted = set(DEFAULT_IMAGES.values())
    for name, svc in spec.services.items():
        for release in loaded.releases:
            wanted.add(svc.images.get(release, f"rollback-drill/safepsy-{name}:{release}"))
    for named in (spec.stores.mongodb.image, spec.stores.redis.image, spec.chain.image):
        if named:
            wanted.add(named)
    from rollback_drill.process.errors import ImageBuildError
    from rollback_drill.stack.images.build import build_all
    from rollback_drill.stack.images.dockercli import inspect_images
    from rollback_drill.stack.images.layout import Layout

    if any(ref.startswith("rollback-drill/") for ref in wanted):
        layout = dataclasses.replace(Layout.default(), stack=loaded.path)

        def say(line: str) -> None:
            if not line.startswith("cached"):
                print(f"[images] {line}", file=sys.stderr, flush=True)

        try:
            build_all(layout, emit=say)
        except ImageBuildError as exc:
            raise StackError(f"{loaded.path}: the reference images: {exc}") from None
    found = inspect_images(sorted(wanted))
    absent = sorted(wanted - set(found))
    if absent:
        raise StackError(
            f"{loaded.path}: image(s) not present locally and no registry to pull from: "
            f"{absent}; build or `docker load` them first"
        )
    return {ref: info.image_id for ref, info in found.items()}


__all__ = [
    "DEFAULT_IMAGES",
    "DOCKER_DNS",
    "INTERNAL_PORTS",
    "LABEL_OWNER",
    "LABEL_OWNER_ID",
    "LABEL_RUN",
    "LABEL_SERVICE",
    "NGINX_CERTS_IN_CONTAINER",
    "NGINX_CONF_IN_CONTAINER",
    "NGINX_STATIC_IN_CONTAINER",
    "DockerContainer",  # testcontainers' own, imported here after its environment is set
    "Network",
    "ProbeWaitStrategy",
    "container_nginx_values",
    "container_peers",
    "ensure_images",
    "sweep_containers",
]
