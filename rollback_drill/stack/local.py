"""The embedded default backend: every component a real server process on 127.0.0.1.

SecantusDB for MongoDB, redis-server, anvil for the chain, the stack's app services and
nginx with real TLS, each in its own process group on ports allocated once per stack (a
restart comes back where clients expect it, as in production). Processes are started from
the calling thread only - PR_SET_PDEATHSIG is tied to the thread that forks - and their
readiness is awaited in parallel.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rollback_drill.files.spec import LoadedStack
from rollback_drill.process import proc, procfs
from rollback_drill.process.errors import SpecError, StackError
from rollback_drill.process.tools import find_tool
from rollback_drill.process.wait import Wait
from rollback_drill.stack import releases
from rollback_drill.stack.access import (
    FileLogs,
    LocalStats,
    LogSource,
    StatsSource,
    group_rss,
)
from rollback_drill.stack.base import DATA_SERVICES, ResourceUsage
from rollback_drill.stack.common import StackBase
from rollback_drill.stores import secantus


class LocalStack(StackBase):
    """A stack of real processes; see the module docstring."""

    backend_name = "local"

    def __init__(
        self, loaded: LoadedStack, workdir: Path | None = None, seed_users: int | None = None
    ) -> None:
        check_commands(loaded)
        proc.sweep_orphans()
        super().__init__(loaded, workdir, seed_users)
        self._procs: dict[str, proc.ManagedProcess] = {}

    # -- addresses and config -------------------------------------------------------------------
    def _peer_addresses(self) -> dict[str, str]:
        peers = {
            "HOST": "127.0.0.1",
            "MONGODB_URI": self.mongodb_uri,
            "REDIS_URL": self.redis_url,
            "CHAIN_RPC_URL": self.rpc_url,
        }
        for name in self.spec.services:
            peers[name] = f"127.0.0.1:{self._ports[name]}"
        return peers

    def _nginx_values(self, service: str, release: str) -> dict[str, str]:
        svc = self._service(service)
        static = self.render_static(service, release, self._workdir / "static" / service)
        prefix = self._workdir / "run" / service
        (prefix / "logs").mkdir(parents=True, exist_ok=True)  # nginx opens logs/ before its config
        ssl_dir = self.config_dir / "nginx" / "ssl"
        peers = self._peer_addresses()
        return {
            "user_directive": "user root;" if os.geteuid() == 0 else "",
            "prefix": str(prefix),
            "listen_host": "127.0.0.1",
            "http_port": str(self._ports[service]),
            "https_port": str(self._tls_ports.get(service) or self.new_port()),
            "cert_file": str(ssl_dir / "certificate.crt"),
            "key_file": str(ssl_dir / "private.key"),
            "static_root": str(static),
            "backend_upstream": peers[svc.upstreams["backend"]],
            "chatbot_upstream": peers[svc.upstreams["chatbot"]],
            "connect_timeout": "2s",
            "resolver": "",  # fixed 127.0.0.1 addresses: nothing to resolve
            "backend_target": "safepsy_backend",  # the template's upstream groups
            "chatbot_target": "safepsy_chatbot",
        }

    # -- processes ------------------------------------------------------------------------------
    def _argv_env(self, name: str) -> tuple[list[str], dict[str, str]]:
        port = str(self._ports.get(name, 0))
        if name == "mongodb":
            data = self._workdir / "data" / "mongodb"
            data.mkdir(parents=True, exist_ok=True)
            return secantus.argv(port, data), {}
        if name == "redis":
            data = self._workdir / "data" / "redis"
            data.mkdir(parents=True, exist_ok=True)
            return [find_tool("redis-server"), "--port", port, "--bind", "127.0.0.1",
                    "--dir", str(data), "--save", "", "--appendonly", "no"], {}  # fmt: skip
        if name == "chain":
            home = self._workdir / "anvil-home"
            home.mkdir(parents=True, exist_ok=True)
            return [find_tool("anvil"), "--host", "127.0.0.1", "--port", port,
                    "--chain-id", str(self.spec.chain.chain_id), "--silent",
                    "--prune-history"], {"HOME": str(home)}  # fmt: skip
        svc = self._service(name)
        if svc.kind == "nginx":
            conf = self.config_dir / "nginx" / "nginx.conf"
            prefix = self._workdir / "run" / name
            return [find_tool("nginx"), "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"], {}
        env = self.service_env(name)
        if svc.pythonpath:
            build = self.build(name, self.release_of(name))
            env["PYTHONPATH"] = str(build / releases.in_build(self.loaded, name, svc.pythonpath))
        env["PYTHONUNBUFFERED"] = "1"
        return [sys.executable if a == "python" else a for a in svc.command], env

    def _start_group(self, services: list[str], healthy: bool = True) -> None:
        launched = {}
        for name in services:  # Popen in this thread: PDEATHSIG follows the forking thread
            argv, env = self._argv_env(name)
            launched[name] = proc.spawn(name, argv, self._log(name), env=env, cwd=self._workdir)
            self._procs[name] = launched[name]

        def wait(name: str) -> float:
            return launched[name].wait_ready(self.probe(name, healthy), self.start_timeout(name))

        errors = []
        with ThreadPoolExecutor(max_workers=max(len(launched), 1)) as pool:
            futures = {name: pool.submit(wait, name) for name in launched}
            for name, future in futures.items():
                try:
                    self.timings[f"{name}_ready_s"] = future.result()
                except Exception as exc:
                    errors.append(str(exc))
        if errors:
            raise StackError("\n".join(errors))

    def redeploy(self, service: str, release: str) -> None:
        """The next release's process binds the same port beside the old one (REUSE_PORT),
        is awaited until it answers as `release`, then the old one stops and drains; nginx
        reloads in place (SIGHUP: new workers, the listening sockets kept)."""
        svc = self._service(service)
        old = self._procs.get(service)
        self.set_release(service, release)
        if old is None or not old.alive():
            self.start(service)
            return
        if svc.kind == "nginx":
            assert old.pid is not None
            os.kill(old.pid, signal.SIGHUP)
            self._wait_answers_as(service, release)
            return
        argv, env = self._argv_env(service)
        new = proc.spawn(service, argv, self._log(service), env=env, cwd=self._workdir)
        try:
            new.wait_ready(lambda: self.answers_as(service) == release, self.start_timeout(service))
        except BaseException:
            new.stop(grace=2.0)
            raise
        self._procs[service] = new
        old.stop(grace=5.0)

    def _wait_answers_as(self, service: str, release: str) -> None:
        Wait(f"{service} answering as release {release}", self.start_timeout(service)).until(
            lambda: self.answers_as(service) == release
        )

    def _teardown(self) -> None:
        """Every service told to stop at once, then each waited for. When the stack's data
        goes with its workdir, nothing needs a graceful shutdown: SecantusDB alone spends
        2.1 s of it flushing files that are deleted next, so what has not exited within
        half a second is killed. A caller's workdir keeps its data: 3 s each, as `stop`."""
        grace = 0.5 if self._owns_workdir else 3.0
        stopping = [
            process
            for name in reversed([*self.all_services(), "chain"])
            if (process := self._procs.pop(name, None)) is not None
        ]
        # also one spawned just before an interrupt, which never reached `_procs` (measured:
        # it kept writing into the workdir, which then outlived the stack)
        stopping += [p for p in proc.started_in(self._workdir) if p not in stopping]
        for process in stopping:
            process.signal_group(signal.SIGCONT)  # a paused process cannot handle SIGTERM
            process.signal_group(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in stopping:
            process.stop(grace=max(deadline - time.monotonic(), 0.05))

    places_rdb = True

    def _place_rdb(self, rdb: Path, place: Path) -> None:
        """The server's `dir` is this stack's own data folder: the file is copied there,
        owner-only (it holds what the cache held), replacing what was there."""
        tmp = place.with_name(place.name + ".restoring")
        shutil.copyfile(rdb, tmp)
        tmp.chmod(0o600)
        os.replace(tmp, place)

    def stop(self, service: str) -> None:
        process = self._procs.pop(service, None)
        if process is not None:
            process.signal_group(signal.SIGCONT)  # a paused process cannot handle SIGTERM
            process.stop(grace=5.0)

    def kill(self, service: str) -> None:
        process = self._procs.pop(service, None)
        if process is not None:
            process.kill()

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

    def instance(self, service: str) -> str | None:
        process = self._procs.get(service)
        if process is None or not process.alive() or process.pid is None:
            return None
        found = procfs.ProcessIdentity.of(process.pid)
        return None if found is None else f"pid {found.pid} started at tick {found.start_ticks}"

    def log_files(self, service: str) -> list[Path]:
        """Where a service logs: its output, and nginx's own access and error logs."""
        files = [self._log(service)]
        if service in self.spec.services and self._service(service).kind == "nginx":
            files += [self._workdir / "run" / service / n for n in ("access.log", "error.log")]
        return files

    def logs(self, service: str) -> str:
        main, *extra = self.log_files(service)
        parts = [main.read_text(errors="replace")] if main.exists() else []
        for path in extra:
            if path.exists():
                parts.append(f"--- {path.name}\n" + path.read_text(errors="replace"))
        return "\n".join(parts)

    def _access(self) -> tuple[LogSource, StatsSource]:
        """Verify reads these logs as files and finds these processes by their ports, the same
        way it does for the target file `rollback-drill up` writes."""
        names = self.app_services()
        ports = {name: self._ports[name] for name in [*names, *DATA_SERVICES, "chain"]}
        return FileLogs({n: tuple(self.log_files(n)) for n in names}), LocalStats(ports)

    def stats(self) -> dict[str, ResourceUsage]:
        """CPU over a 0.25 s window and resident memory of each service's process group (a
        service's pid leads its own group)."""
        total_mem = procfs.memory_total()
        pids = {name: p.pid for name, p in self._procs.items() if p.alive() and p.pid}
        before = {name: _group_cpu_seconds(pid) for name, pid in pids.items()}
        window = 0.25
        time.sleep(window)
        usage = {}
        for name, pid in pids.items():
            cpu = (_group_cpu_seconds(pid) - before[name]) / window * 100
            usage[name] = ResourceUsage(round(cpu, 1), group_rss(pid), total_mem)
        return usage

    def exec(self, service: str, argv: list[str], timeout_s: float = 30.0) -> tuple[int, str]:
        """Run a tool against one service, the way `docker exec` would find its defaults; in
        an app service, any command runs with the service's environment and code (its `.env`
        and its release's build on PYTHONPATH), as it would inside its container."""
        tool = argv[0]
        extra: list[str] = []
        if service in self.spec.services and self._service(service).kind == "app":
            _, env = self._argv_env(service)
            command = [sys.executable if a == "python" else a for a in argv]
            return _run(command, self._workdir, timeout_s, {**os.environ, **env})
        if tool == "nginx":
            conf = self.config_dir / "nginx" / "nginx.conf"
            extra = ["-p", str(self._workdir / "run" / service), "-c", str(conf)]
        elif tool == "redis-cli":
            extra = ["-p", str(self._ports["redis"])]
        elif tool == "mongosh":
            extra = [self.mongodb_uri, "--quiet", "--norc"]
        return _run([find_tool(tool), *extra, *argv[1:]], self._workdir, timeout_s)


def _run(
    argv: list[str], cwd: Path, timeout_s: float, env: dict[str, str] | None = None
) -> tuple[int, str]:
    """Run a command to completion as an owned process (it dies with the harness, and a later
    run sweeps it), output and errors together; 124 when it outlives `timeout_s`."""
    child, _ = proc.popen_owned(argv, env or dict(os.environ), subprocess.PIPE, cwd)
    try:
        out, _ = child.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        child.communicate()
        return 124, f"{argv[0]} did not finish within {timeout_s} s"
    return child.returncode, out.decode(errors="replace")


def check_commands(loaded: LoadedStack) -> None:
    """This backend runs the stack file's commands on this machine: each must be there (the
    docker backend does not need them, so the stack file alone cannot say)."""
    wanted = {f"services.{n}.command": s.command for n, s in loaded.spec.services.items()}
    wanted["seed.command"] = loaded.spec.seed.command
    for field, command in wanted.items():
        program = command[0] if command else "python"
        if program == "python" or shutil.which(program) or (loaded.root / program).is_file():
            continue
        raise SpecError(
            f"{loaded.path}: {field}: {program!r} is not an executable on PATH (the local "
            "backend runs it on this machine)"
        )


def _group_cpu_seconds(pgid: int) -> float:
    return procfs.cpu_seconds(procfs.group(pgid))
