"""Real servers for the SafePsy fixture app's tests: SecantusDB, redis-server and anvil.

Everything runs as a subprocess on a free 127.0.0.1 port in its own process group, and is
killed (the whole group) at teardown. No mocks: the services are launched exactly as the
engine launches them, ``python -m safepsy_app.<service>`` with configuration in env.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from safepsy_fixture_support import (
    PYTHON,
    ROOT,
    SECANTUSD,
    SEED_USERS,
    Infra,
    Service,
    ServiceFactory,
    deploy_registry,
    free_port,
    kill_group,
    run_seed,
    spawn,
    wait_until,
)


@pytest.fixture(scope="module")
def infra() -> Iterator[Infra]:
    """SecantusDB, Redis and anvil on free ports, with DIDRegistry 1.4.0 deployed."""
    with tempfile.TemporaryDirectory(prefix="safepsy-fixture-") as tmp:
        workdir = Path(tmp)
        home = workdir / "anvil-home"
        home.mkdir()
        state = Infra(workdir, free_port(), free_port(), free_port())
        try:
            state.processes.append(
                spawn(
                    [SECANTUSD, "--host", "127.0.0.1",
                     "--port", str(state.mongo_port), "--storage-path", ":memory:"],
                    # Its :memory: store lands in TMPDIR, removed with workdir, so a SIGKILL
                    # (instant, where SIGTERM takes 2 s) leaves nothing behind.
                    env={**os.environ, "TMPDIR": str(workdir)},
                    log=workdir / "secantusd.log",
                )
            )  # fmt: skip
            state.processes.append(
                spawn(
                    ["redis-server", "--bind", "127.0.0.1", "--port", str(state.redis_port),
                     "--save", "", "--appendonly", "no"],
                    log=workdir / "redis.log",
                )
            )  # fmt: skip
            state.processes.append(
                spawn(
                    [str(ROOT / "node_modules" / ".bin" / "anvil"), "--host", "127.0.0.1",
                     "--port", str(state.anvil_port), "--chain-id", "80002", "--silent",
                     "--prune-history"],
                    env={**os.environ, "HOME": str(home)},
                    log=workdir / "anvil.log",
                )
            )  # fmt: skip
            import web3  # noqa: F401 - 1.8 s import, paid while the servers boot

            wait_until(lambda: bool(state.rpc("eth_chainId", [])), 10, "anvil")
            with state.redis() as cache:
                wait_until(lambda: bool(cache.ping()), 10, "redis-server")
            with state.mongo() as client:
                wait_until(lambda: bool(client.admin.command("ping")), 10, "secantusd")
            state.registry, state.operator = deploy_registry(state.rpc_url, "1.4.0")
            yield state
        finally:
            for process in state.processes:
                kill_group(process, hard=True)  # throwaway servers: no state worth a clean stop


@pytest.fixture(scope="module")
def seeded(infra: Infra) -> dict[str, Any]:
    """The database seeded with SEED_USERS users and the test DID registered on chain."""
    result = run_seed(
        infra,
        "--users", str(SEED_USERS),
        "--rpc-url", infra.rpc_url,
        "--registry", infra.registry,
        "--operator", infra.operator,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return summary


@pytest.fixture(scope="module")
def start_service(infra: Infra) -> Iterator[ServiceFactory]:
    """Launch ``safepsy_app.<module>`` with a valid env plus overrides; wait for an answer."""
    started: list[Service] = []

    def launch(module: str, **overrides: str) -> Service:
        port = free_port()
        log = infra.workdir / f"{module}-{port}.log"
        env = infra.service_env(PORT=str(port), **overrides)
        begin = time.monotonic()
        process = spawn([PYTHON, "-m", f"safepsy_app.{module}"], env=env, log=log)
        url = f"http://127.0.0.1:{port}"
        client = httpx.Client(base_url=url, timeout=10, trust_env=False)

        def answers() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"{module} exited {process.returncode}: {log.read_text()}")
            # Any HTTP answer proves it serves; /health could take a dependency timeout.
            client.get("/__ready", timeout=5)
            return True

        deadline = time.monotonic() + 10
        while True:
            try:
                answers()
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        service = Service(process, url, log, time.monotonic() - begin, client)
        started.append(service)
        return service

    yield launch
    for service in started:
        service.client.close()
        kill_group(service.process)
