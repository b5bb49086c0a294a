"""How verify may read a target's logs and resource usage, when the target grants it.

The runbook checks error counts in the logs (`logs | grep -i error | wc -l`) and memory
(`docker stats --no-stream`). A live target grants that access in its file (log files on this
machine, docker containers, or the processes listening on its own ports); a stack the harness
started grants it through the Stack protocol. Checks see only the two small protocols here.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

import psutil

from rollback_drill.process import procfs
from rollback_drill.process.errors import AccessError

if TYPE_CHECKING:
    from rollback_drill.files.targetspec import TargetSpec


class LogSource(Protocol):
    def services(self) -> list[str]: ...

    def mark(self) -> object:
        """Where the logs end now."""

    def since(self, mark: object) -> dict[str, str]:
        """Each service's log text written after `mark`."""


@dataclass(frozen=True)
class MemorySample:
    used_bytes: int
    limit_bytes: int

    @property
    def fraction(self) -> float:
        return self.used_bytes / self.limit_bytes if self.limit_bytes else float("inf")


class StatsSource(Protocol):
    def memory(self) -> dict[str, MemorySample]: ...


# -- logs ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FileLogs:
    files: Mapping[str, tuple[Path, ...]]

    def services(self) -> list[str]:
        return list(self.files)

    def mark(self) -> dict[Path, int]:
        return {p: p.stat().st_size if p.exists() else 0 for ps in self.files.values() for p in ps}

    def since(self, mark: object) -> dict[str, str]:
        assert isinstance(mark, dict)
        out: dict[str, str] = {}
        for service, paths in self.files.items():
            parts = []
            for path in paths:
                try:
                    with path.open("rb") as handle:
                        handle.seek(mark.get(path, 0))
                        parts.append(handle.read().decode(errors="replace"))
                except OSError as exc:
                    raise AccessError(f"log file {path} of {service}: {exc.strerror}") from None
            out[service] = "".join(parts)
        return out


@dataclass(frozen=True)
class DockerLogs:
    containers: Mapping[str, str]

    def services(self) -> list[str]:
        return list(self.containers)

    def mark(self) -> float:
        return time.time()

    def since(self, mark: object) -> dict[str, str]:
        assert isinstance(mark, float)
        return _docker_each(
            self.containers,
            lambda c: c.logs(since=mark, timestamps=False).decode(errors="replace"),
        )


@dataclass(frozen=True)
class StackLogs:
    """Logs through the Stack protocol (drills): whole text, marked by length."""

    logs_of: Callable[[str], str]
    names: tuple[str, ...]

    def services(self) -> list[str]:
        return list(self.names)

    def mark(self) -> dict[str, int]:
        return {name: len(self.logs_of(name)) for name in self.names}

    def since(self, mark: object) -> dict[str, str]:
        assert isinstance(mark, dict)
        return {name: self.logs_of(name)[mark.get(name, 0) :] for name in self.names}


@dataclass(frozen=True)
class CombinedLogs:
    parts: tuple[LogSource, ...]

    def services(self) -> list[str]:
        return [s for part in self.parts for s in part.services()]

    def mark(self) -> list[object]:
        return [part.mark() for part in self.parts]

    def since(self, mark: object) -> dict[str, str]:
        assert isinstance(mark, list)
        out: dict[str, str] = {}
        for part, part_mark in zip(self.parts, mark, strict=True):
            out.update(part.since(part_mark))
        return out


# -- resource usage -----------------------------------------------------------------------------
@dataclass(frozen=True)
class DockerStats:
    """`docker stats` memory: read from the container's cgroup when the daemon runs on this
    machine (instant), else from the stats API (which takes a second per sample)."""

    containers: Mapping[str, str]

    def memory(self) -> dict[str, MemorySample]:
        def sample(container: Any) -> MemorySample:
            found = _cgroup_memory(int(container.attrs.get("State", {}).get("Pid") or 0))
            if found is not None:
                return found
            memory = container.stats(stream=False, one_shot=True).get("memory_stats", {})
            if "usage" not in memory or "limit" not in memory:
                raise AccessError(f"container {container.name}: docker stats has no memory usage")
            return MemorySample(int(memory["usage"]), int(memory["limit"]))

        return _docker_each(self.containers, sample)


def _cgroup_memory(pid: int) -> MemorySample | None:
    """A process's cgroup memory usage and limit, as `docker stats` reports them (cgroup v1
    or v2); None when this machine cannot read them (a remote daemon, say). /proc/PID/cgroup
    and the cgroup files are read by hand: psutil has no cgroup API."""
    if pid <= 0:
        return None
    root = Path("/sys/fs/cgroup")
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
        v1 = next((x.split(":", 2)[2] for x in lines if x.split(":")[1:2] == ["memory"]), None)
        if v1 is not None:
            group = root / "memory" / v1.lstrip("/")
            used = int((group / "memory.usage_in_bytes").read_text())
            limit = int((group / "memory.limit_in_bytes").read_text())
        else:
            group = root / next(x[3:] for x in lines if x.startswith("0::")).lstrip("/")
            used = int((group / "memory.current").read_text())
            raw = (group / "memory.max").read_text().strip()
            limit = 0 if raw == "max" else int(raw)
    except (OSError, StopIteration, ValueError, IndexError):
        return None
    total = procfs.memory_total()
    return MemorySample(used, limit if 0 < limit < total else total)


class _UsageLike(Protocol):
    @property
    def memory_bytes(self) -> int: ...

    @property
    def memory_limit_bytes(self) -> int: ...


@dataclass(frozen=True)
class StackStats:
    """Resource usage through the Stack protocol (drills, both backends)."""

    stats_of: Callable[[], Mapping[str, _UsageLike]]

    def memory(self) -> dict[str, MemorySample]:
        return {
            name: MemorySample(usage.memory_bytes, usage.memory_limit_bytes)
            for name, usage in self.stats_of().items()
        }


@dataclass(frozen=True)
class LocalStats:
    """Same machine: the process group listening on each of the target's loopback ports,
    its resident memory against the machine's."""

    ports: Mapping[str, int]

    def memory(self) -> dict[str, MemorySample]:
        listeners = listening_pids(set(self.ports.values()))
        total = procfs.memory_total()
        out = {}
        for service, port in self.ports.items():
            pids = listeners.get(port)
            if not pids:
                raise AccessError(f"{service}: no process of this machine listens on port {port}")
            out[service] = MemorySample(group_rss(os.getpgid(min(pids))), total)
        return out


# -- building the sources from a target file ----------------------------------------------------
def sources_from_spec(spec: TargetSpec, base: Path) -> tuple[LogSource | None, StatsSource | None]:
    access = spec.access
    logs: LogSource | None = None
    if access.logs is not None:
        parts: list[LogSource] = []
        if access.logs.files:
            parts.append(
                FileLogs({s: tuple(base / p for p in ps) for s, ps in access.logs.files.items()})
            )
        if access.logs.docker:
            parts.append(DockerLogs(dict(access.logs.docker)))
        logs = parts[0] if len(parts) == 1 else CombinedLogs(tuple(parts)) if parts else None
    stats: StatsSource | None = None
    if access.stats is not None and access.stats.docker:
        stats = DockerStats(dict(access.stats.docker))
    elif access.stats is not None and access.stats.local:
        stats = LocalStats(_loopback_ports(spec))
    return logs, stats


def _loopback_ports(spec: TargetSpec) -> dict[str, int]:
    urls = {
        "backend": spec.services.backend,
        "ai-chatbot": spec.services.ai_chatbot,
        "frontend": spec.services.frontend,
        "chain": spec.rpc_url or "",
        "redis": spec.redis_url or "",
        "mongodb": spec.mongodb_uri or "",
    }
    ports = {}
    for service, url in urls.items():
        parts = urlsplit(url)
        if parts.hostname in ("127.0.0.1", "localhost", "::1") and parts.port:
            ports[service] = parts.port
    return ports


def _docker_each(containers: Mapping[str, str], read: Callable[[Any], Any]) -> dict[str, Any]:
    from rollback_drill.process import lazy

    with lazy.imports():
        import docker
        from docker.errors import DockerException, NotFound

    try:
        client = docker.from_env(timeout=5)
    except DockerException as exc:
        raise AccessError(f"docker: no daemon answers ({exc})") from None

    def one(item: tuple[str, str]) -> tuple[str, Any]:
        service, name = item
        try:
            return service, read(client.containers.get(name))
        except NotFound:
            raise AccessError(f"{service}: no docker container named {name}") from None

    try:
        with ThreadPoolExecutor(max_workers=max(len(containers), 1)) as pool:
            return dict(pool.map(one, containers.items()))
    finally:
        client.close()


LISTENERS_FRESH_S = 2.0
"""How long one scan of the machine's listening sockets serves every caller: a verify run asks
five times within a second (each flow for its contention control, and the resources check)."""


@dataclass(frozen=True)
class _Listeners:
    taken_at: float
    by_port: dict[int, frozenset[int]]

    def answers(self, ports: Collection[int]) -> bool:
        """Still true for these ports: young, every port seen, every process behind them
        alive (a redeployed service listens on the same port from a new process)."""
        return (
            time.monotonic() - self.taken_at < LISTENERS_FRESH_S
            and all(port in self.by_port for port in ports)
            and all(psutil.pid_exists(pid) for port in ports for pid in self.by_port[port])
        )


_listeners_lock = threading.Lock()
_listeners: _Listeners | None = None


def _scan_listeners() -> _Listeners:
    """Every listening TCP socket of the machine and its processes. psutil decodes every
    socket's addresses, listening or not: 0.08-0.10 s with 10 400 TCP sockets on this machine
    (mostly the TIME_WAITs of load and verify runs), where the hand scan of /proc/net/tcp it
    replaced skipped the others. Shared by every caller (`listening_pids`), once per run is
    within verify's budget."""
    found: dict[int, set[int]] = {}
    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.Error, OSError):
        connections = []
    for conn in connections:
        port = conn.laddr.port if conn.laddr else None
        if conn.status == psutil.CONN_LISTEN and port is not None and conn.pid:
            found.setdefault(port, set()).add(conn.pid)
    return _Listeners(time.monotonic(), {port: frozenset(p) for port, p in found.items()})


def listening_pids(ports: Collection[int]) -> dict[int, set[int]]:
    """port -> the processes listening on it (TCP, IPv4 or IPv6; nginx's master and workers
    share one socket), for those of `ports` that have one this user may see.

    One scan of the machine's sockets serves every caller while it still answers for their
    ports (`_Listeners.answers`); callers that ask at once wait for the one scan under way
    instead of each paying for their own. Five scans at once took 0.2-0.3 s of a 2-core
    machine's CPU in each verify run with 10 000 sockets on the machine; sharing one took
    `rollback-drill verify` from 1.81 s to 1.17 s there (`benchmarks/bench_verify_ab.sh`,
    docs/benchmarks.md)."""
    global _listeners
    if not ports:
        return {}
    with _listeners_lock:
        if _listeners is None or not _listeners.answers(ports):
            _listeners = _scan_listeners()
        by_port = _listeners.by_port
    return {port: set(by_port[port]) for port in ports if port in by_port}


def group_rss(pgid: int) -> int:
    """Resident memory of every process in a process group."""
    return procfs.rss_bytes(procfs.group(pgid))
