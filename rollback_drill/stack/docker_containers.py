"""The docker backend's containers, from definition to removal: which image a service runs,
its container's definition (network alias, published ports on 127.0.0.1, environment, nginx's
mounts, memory limit) and the fingerprint that says whether a stopped container can simply be
started again, starting a group of them in parallel behind the harness's probes, stop, kill,
pause, and removal on teardown (a removed container's log kept in the stack's log file).

Separate from `stack.docker` (the stack's verbs while it runs: zero-downtime redeploy, exec,
logs, stats) because this is the lifecycle every verb stands on: `up`, `down` and
`start`/`stop` of the Stack protocol come down to these methods, and the containers'
labels and network are set up here once. The infrastructure around them (the environment
testcontainers reads, sweeping, images, waits) is `stack.docker_infra`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from docker.errors import APIError, NotFound

from rollback_drill.files.spec import LoadedStack
from rollback_drill.process import interrupts
from rollback_drill.process.errors import StackError
from rollback_drill.process.procfs import current
from rollback_drill.stack.common import StackBase
from rollback_drill.stack.docker_infra import (
    DEFAULT_IMAGES,
    INTERNAL_PORTS,
    LABEL_OWNER,
    LABEL_OWNER_ID,
    LABEL_RUN,
    LABEL_SERVICE,
    NGINX_CERTS_IN_CONTAINER,
    NGINX_CONF_IN_CONTAINER,
    DockerContainer,
    Network,
    ProbeWaitStrategy,
    container_nginx_values,
    container_peers,
    ensure_images,
    sweep_containers,
)
from rollback_drill.stores import secantus


class DockerContainers(StackBase):
    """A stack's containers and their lifecycle; `stack.docker.DockerStack` adds the verbs
    of a running stack."""

    def __init__(
        self, loaded: LoadedStack, workdir: Path | None = None, seed_users: int | None = None
    ) -> None:
        interrupts.check(f"stack {loaded.spec.name}")  # before the sweep: nothing to start
        sweep_containers()
        super().__init__(loaded, workdir, seed_users)
        self.run_id = os.urandom(5).hex()
        self._labels = {
            LABEL_RUN: self.run_id,
            LABEL_OWNER: str(os.getpid()),
            LABEL_OWNER_ID: str(current()),  # the pid alone could be reused once it is gone
        }
        self._network: Network | None = None
        self._containers: dict[str, DockerContainer] = {}
        self._fingerprints: dict[str, str] = {}
        self._generation: dict[str, int] = {}
        try:
            # Pinned by id: a rebuild of a tag elsewhere on the machine cannot change this.
            self._image_ids = ensure_images(loaded)
            interrupts.check(f"stack {loaded.spec.name}: its network")
            self._network = Network(docker_network_kw={"labels": dict(self._labels)}).create()
        except BaseException:
            self.down()  # an interrupt mid-construction leaves no folder, port or network
            raise

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

    def _definition(
        self,
        service: str,
        published: dict[int, int] | None = None,
        name: str | None = None,
        alias: bool = True,
    ) -> tuple[DockerContainer, str]:
        """The container a service should run as now, and a fingerprint of that definition
        (`published` and `name` differ for a replacement started beside the running one; a
        one-off command's container takes no traffic under the service's name: no `alias`)."""
        image = self.image_of(service)
        image_id = self._image_ids.get(image, image)
        container = DockerContainer(image_id).with_name(name or f"rd-{self.run_id}-{service}")
        if self._network is None:
            raise StackError("the stack is torn down: no network to start a container on")
        container.with_network(self._network)
        if alias:
            container.with_network_aliases(service)
        options: dict[str, Any] = {"labels": {**self._labels, LABEL_SERVICE: service}}
        svc = self.spec.services.get(service)
        limit_mb = svc.memory_limit_mb if svc is not None else None
        if limit_mb:
            options["mem_limit"] = f"{limit_mb}m"
            options["memswap_limit"] = f"{limit_mb}m"  # the limit is memory, not memory + swap
        container.with_kwargs(**options)
        for inside, host in (published or self._published(service)).items():
            container.ports[f"{inside}/tcp"] = ("127.0.0.1", host)  # type: ignore[assignment]
        parts: list[str] = [image_id, f"memory limit {limit_mb} MiB"]
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
        elif service == "mongodb" and image == DEFAULT_IMAGES["mongodb"]:  # SecantusDB's
            container.with_command(
                ["secantusd-py", "--host", "0.0.0.0", "--port", "27017", "--storage-path",
                 "/data/db", *secantus.options()]
            )  # fmt: skip
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
        wait = ProbeWaitStrategy(service, self.probe(service, healthy), self.start_timeout(service))
        start = time.monotonic()
        existing = self._containers.get(service)
        if existing is not None and self._fingerprints.get(service) == fingerprint:
            existing.get_wrapped_container().start()
            wait.wait_until_ready(existing)
            return time.monotonic() - start
        if existing is not None:
            self._keep_logs(service, existing)
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
        """Every container removed at once: after an interrupt xdist kills a worker 10 s
        later, and one removal at a time took most of that on a busy daemon."""
        containers = list(self._containers.values())
        with ThreadPoolExecutor(max_workers=max(len(containers), 1)) as pool:
            list(pool.map(self._remove, containers))
        self._containers.clear()
        network, self._network = self._network, None
        if network is not None:
            with contextlib.suppress(NotFound, APIError, AssertionError):
                network.remove()

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

    def _keep_logs(self, service: str, container: DockerContainer) -> None:
        """A container about to be removed leaves its log in the stack's log file, as a
        replaced process's output stays in the local backend's."""
        wrapped = getattr(container, "_container", None)
        if wrapped is None:
            return
        with contextlib.suppress(NotFound, APIError):
            text = wrapped.logs(timestamps=False).decode(errors="replace")
            path = self._log(service)
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as out:
                out.write(f"--- {wrapped.name} (removed)\n{text}")


__all__ = ["DockerContainers"]
