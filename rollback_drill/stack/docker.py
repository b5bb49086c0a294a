"""The docker backend: one container per service on a network private to the stack, built
with testcontainers, as the runbook's docker-compose deployment runs it.

Every container and network carries the run's labels, is removed on teardown, and a later
run sweeps what a killed run left (docker_infra). Published ports are bound to 127.0.0.1 on
host ports allocated once per stack, so they survive stop/start like the local backend's. A
release is an image tag: deploying a release replaces the container with one of that tag;
stopping and starting keeps the container (and a store's data) as compose does. A service's
`memory_limit_mb` is its container's memory limit.

`redeploy` replaces an app without a gap: the next release's container joins the network
under the same alias beside the old one (Docker's DNS then answers with both, and nginx,
which resolves per request, sends traffic to both), is awaited until it answers as the new
release on a host port of its own, then takes over the service's host port in the stack's
port map (`target()` moves with it) while the old one gets SIGTERM, drains and is removed.
The nginx front is reloaded in place instead (the release's page copied in, the rendered
config re-read on SIGHUP): its host ports are where users are, and they cannot move.

The containers themselves (definition, start, stop, removal) are `stack.docker_containers`;
this module is the stack's verbs while it runs: the zero-downtime redeploy, `docker exec`,
logs (marked per part for verify) and `docker stats`.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
import tarfile
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from docker.errors import APIError, NotFound
from testcontainers.core.exceptions import ContainerStartException

from rollback_drill.process.errors import StackError
from rollback_drill.process.wait import Wait
from rollback_drill.stack import cgroupcpu
from rollback_drill.stack.access import DockerStats, LogSource, StatsSource
from rollback_drill.stack.base import ResourceUsage
from rollback_drill.stack.docker_containers import DockerContainers
from rollback_drill.stack.docker_infra import (
    NGINX_CONF_IN_CONTAINER,
    NGINX_STATIC_IN_CONTAINER,
    DockerContainer,
    ProbeWaitStrategy,
)

#: nginx's resolver keeps an answer `valid=1s`, on its whole-second clock: after this long
#: it has asked Docker's DNS again. A margin on top.
DNS_REFRESH_S = 2.2
#: How long a replaced app may drain after SIGTERM before docker kills it (the app's own
#: drain is 3 s).
STOP_GRACE_S = 10


NGINX_LOG_FILES = ("access.log", "error.log")


def _logged_at(line: str) -> float:
    """The epoch time of a `docker logs --timestamps` line (RFC 3339, nanoseconds)."""
    stamp = line.split(" ", 1)[0]
    try:
        whole, _, frac = stamp.rstrip("Z").partition(".")
        moment = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
        return moment.timestamp() + float(f"0.{frac or 0}")
    except ValueError:
        return 0.0


_ACCESS_TIME = re.compile(r"\[(\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4})\]")
_ERROR_TIME = re.compile(r"^(\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}) ")


def nginx_logged_at(line: str) -> float:
    """The epoch second nginx stamped a line of its access log (`[$time_local]`) or error log
    (its leading date, UTC in the container) with; 0.0 for a line without one."""
    found = _ACCESS_TIME.search(line)
    if found:
        return datetime.strptime(found.group(1), "%d/%b/%Y:%H:%M:%S %z").timestamp()
    found = _ERROR_TIME.match(line)
    if found:
        return (
            datetime.strptime(found.group(1), "%Y/%m/%d %H:%M:%S").replace(tzinfo=UTC).timestamp()
        )
    return 0.0


@dataclass(frozen=True)
class _DockerStackLogs:
    """A docker stack's logs as verify reads them: marked per part - each container's output
    by time, nginx's access and error logs by line - so what was logged before the mark never
    counts again (one concatenated text, marked by length, would slide old error lines in)."""

    stack: DockerStack

    def services(self) -> list[str]:
        return self.stack.app_services()

    def mark(self) -> tuple[float, dict[str, dict[str, int | None]]]:
        return time.time(), {s: self.stack.log_lines(s) for s in self.services()}

    def since(self, mark: object) -> dict[str, str]:
        assert isinstance(mark, tuple)
        at, lines = mark
        return {s: self.stack.log_since(s, at, lines.get(s, {})) for s in self.services()}


class DockerStack(DockerContainers):
    """A stack of containers; see the module docstring."""

    backend_name = "docker"

    # -- zero-downtime replacement -------------------------------------------------------------
    def redeploy(self, service: str, release: str) -> None:
        """See the module docstring: a new container beside the old for an app, an in-place
        reload for the nginx front. Returns once the service answers as `release`."""
        svc = self._service(service)
        self.set_release(service, release)
        if not self.is_running(service):
            self.start(service)  # nothing running to replace
        elif svc.kind == "nginx":
            self._reload_front(service, release)
        else:
            self._replace_app(service, release)
        Wait(f"{service} answering as release {release}", self.start_timeout(service)).until(
            lambda: self.answers_as(service) == release
        )

    def _replace_app(self, service: str, release: str) -> None:
        svc = self._service(service)
        old = self._containers[service]
        generation = self._generation.get(service, 0) + 1
        self._generation[service] = generation
        published = {inside: self.new_port() for inside in self._published(service)}
        container, fingerprint = self._definition(
            service, published, name=f"rd-{self.run_id}-{service}-{generation}"
        )
        url = f"http://127.0.0.1:{published[svc.port]}"
        wait = ProbeWaitStrategy(
            service, lambda: self.answers_at(service, url) == release, self.start_timeout(service)
        )
        joined = time.monotonic()
        try:
            container.waiting_for(wait).start()
        except BaseException:
            self._remove(container)  # the old one never stopped serving
            raise
        # nginx must know the new address before the old one stops answering: its resolver
        # keeps an answer for `valid` (1 s, counted in whole seconds), so one it got just
        # before the new container joined may name only the old one for up to 2 s.
        time.sleep(max(0.0, joined + DNS_REFRESH_S - time.monotonic()))
        # The service's address moves to the new container; then the old one goes: SIGTERM
        # closes its listener at once (nginx retries a refused request on the new address),
        # requests in flight finish, and it exits.
        self._containers[service] = container
        self._fingerprints[service] = fingerprint
        self._ports[service] = published[svc.port]
        if svc.tls_port:
            self._tls_ports[service] = published[svc.tls_port]
        self._retire(service, old)

    def _retire(self, service: str, container: DockerContainer) -> None:
        wrapped = container.get_wrapped_container()
        with contextlib.suppress(NotFound):
            wrapped.stop(timeout=STOP_GRACE_S)
            self._keep_logs(service, container)
        self._remove(container)

    def _reload_front(self, service: str, release: str) -> None:
        """nginx's own zero-downtime change: the release's page (from its build) copied in,
        the config (rendered by set_release into the file the container mounts) tested, then
        SIGHUP: new workers with the new config, old ones finish what they serve."""
        wrapped = self._wrapped(service)
        static = self.render_static(service, release, self._workdir / "static" / service)
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w") as tar:
            for path in sorted(static.rglob("*")):
                if path.is_file():
                    tar.add(path, arcname=str(path.relative_to(static)))
        if not wrapped.put_archive(NGINX_STATIC_IN_CONTAINER, archive.getvalue()):
            raise StackError(f"{service}: could not copy release {release}'s page in")
        code, head = self.exec(service, ["head", "-n", "1", NGINX_CONF_IN_CONTAINER])
        if code != 0 or head.strip() != f"# {service} {release}":
            raise StackError(
                f"{service}: the container does not see release {release}'s config "
                f"(its first line: {head.strip()!r})"
            )
        code, out = self.exec(service, ["nginx", "-t"])
        if code != 0:
            raise StackError(f"{service}: nginx -t rejects release {release}'s config:\n{out}")
        wrapped.kill(signal="SIGHUP")

    def logs(self, service: str) -> str:
        kept = self._log(service)
        earlier = kept.read_text(errors="replace") if kept.exists() else ""
        if service not in self._containers:
            return earlier
        try:
            text: str = earlier + self._wrapped(service).logs(timestamps=False).decode(
                errors="replace"
            )
        except NotFound:
            return earlier
        nginx = service in self.spec.services and self._service(service).kind == "nginx"
        if nginx and self.is_running(service):
            code, access = self.exec(
                service, ["cat", "/tmp/nginx/access.log", "/tmp/nginx/error.log"]
            )
            if code == 0:
                text += "\n--- access.log / error.log\n" + access
        return text

    def outside_cpu_seconds(self) -> dict[str, float]:
        """Each container's CPU counter (`cgroupcpu`): its processes are containerd's children,
        not the harness's. A container whose counter cannot be read is left out."""
        found: dict[str, float] = {}
        for container in list(self._containers.values()):
            try:  # read beside a redeploy, which may be replacing this very container
                wrapped = container.get_wrapped_container()
            except ContainerStartException:
                continue  # not started (yet, or any more): it has no counter to read
            seconds = cgroupcpu.cpu_seconds(wrapped.id)
            if seconds is not None:
                found[f"container {wrapped.id}"] = seconds
        return found

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
            usage = int(memory.get("usage", 0))
            # As `docker stats` shows it: without the page cache the kernel can drop at once
            # (inactive file pages), which is not the service's own memory.
            counters = memory.get("stats") or {}
            inactive = int(counters.get("total_inactive_file", counters.get("inactive_file", 0)))
            used = usage - inactive if inactive < usage else usage
            return service, ResourceUsage(round(percent, 1), used, int(memory.get("limit", 0)))

        running = [s for s in [*self.all_services(), "chain"] if self.is_running(s)]
        with ThreadPoolExecutor(max_workers=max(len(running), 1)) as pool:
            return dict(pool.map(sample, running))

    def exec(self, service: str, argv: list[str], timeout_s: float = 30.0) -> tuple[int, str]:
        """`docker exec`: the tool runs inside the service's container with its defaults.
        When the service is not running (an nginx its config keeps down), the command runs
        in a one-off container of the service's definition instead (`docker-compose run
        --rm`): `nginx -t` must be able to gate a config that nothing is running."""
        if argv[:1] == ["mongosh"]:
            argv = ["mongosh", "--quiet", "--norc", *argv[1:]]
        bounded = ["timeout", f"{timeout_s:g}", *argv]  # exec_run itself has no timeout
        if service in self.spec.services and not self.is_running(service):
            return self._run_once(service, bounded, timeout_s)
        result = self._wrapped(service).exec_run(bounded, demux=False)
        output = result.output.decode(errors="replace") if result.output else ""
        return int(result.exit_code), output

    def _run_once(self, service: str, argv: list[str], timeout_s: float) -> tuple[int, str]:
        generation = self._generation.get(service, 0) + 1
        self._generation[service] = generation
        container, _ = self._definition(
            service, {}, name=f"rd-{self.run_id}-{service}-run-{generation}", alias=False
        )
        container.with_command(argv)
        try:
            container.start()
            wrapped = container.get_wrapped_container()
            code = wrapped.wait(timeout=timeout_s + 10)["StatusCode"]
            return int(code), wrapped.logs().decode(errors="replace")
        finally:
            self._remove(container)

    def _access(self) -> tuple[LogSource, StatsSource]:
        """Logs per part (each container's output by time, nginx's files by line), memory
        through one-shot `docker stats` (a full sample waits two seconds for CPU)."""
        return _DockerStackLogs(self), DockerStats(self.container_names())

    def log_lines(self, service: str) -> dict[str, int | None]:
        """Lines in each of nginx's own log files now (the marks `_DockerStackLogs` keeps);
        None for a file whose count could not be read, asked twice. Read as 0, a failed
        `docker exec` once made a whole access log count as new: every 502 of the drill's
        own restart judged again in its Verify phase, a false red."""
        if not (self._service(service).kind == "nginx" and self.is_running(service)):
            return {}
        counts: dict[str, int | None] = {}
        for name in NGINX_LOG_FILES:
            counts[name] = None
            for _ in range(2):
                code, out = self.exec(service, ["sh", "-c", f"wc -l < /tmp/nginx/{name}"])
                if code == 0 and out.strip().isdigit():
                    counts[name] = int(out.strip())
                    break
        return counts

    def log_since(self, service: str, at: float, lines: Mapping[str, int | None]) -> str:
        """What the service logged after `at` (its container's output, by timestamp) and
        after `lines` in each of nginx's files; in a file whose count is unknown, the lines
        nginx stamped in `at`'s second or later."""
        parts = []
        container = self._containers.get(service)
        wrapped = getattr(container, "_container", None)
        if wrapped is not None:
            with contextlib.suppress(NotFound, APIError):
                stamped = wrapped.logs(timestamps=True).decode(errors="replace")
                parts += [
                    line.split(" ", 1)[1] if " " in line else ""
                    for line in stamped.splitlines()
                    if _logged_at(line) > at
                ]
        for name, count in lines.items():
            start = 1 if count is None else count + 1
            code, out = self.exec(service, ["tail", "-n", f"+{start}", f"/tmp/nginx/{name}"])
            if code != 0:
                continue
            if count is None:
                kept = [ln for ln in out.splitlines() if nginx_logged_at(ln) >= math.floor(at)]
                out = "\n".join(kept)
            parts.append(out.rstrip("\n"))
        return "\n".join(p for p in parts if p)

    def container_names(self) -> dict[str, str]:
        """Each started service's container name (one being replaced right now may have
        none yet: it is left out, not an error in whoever asked)."""
        names = {}
        for service, container in self._containers.items():
            wrapped = getattr(container, "_container", None)
            if wrapped is not None:
                names[service] = str(wrapped.name)
        return names


__all__ = ["DockerStack"]
