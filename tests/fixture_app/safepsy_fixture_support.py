"""Helpers for the SafePsy fixture app's tests: real servers as process groups.

Everything runs as a subprocess on a free 127.0.0.1 port in its own process group, and is
killed (the whole group) at teardown. No mocks: the services are launched exactly as the
engine launches them, ``python -m safepsy_app.<service>`` with configuration in env.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis
from pymongo import MongoClient

ROOT = Path(__file__).resolve().parents[2]
APP_DIR = ROOT / "fixtures" / "safepsy" / "app"
# The tests also call pure helpers of the app (reply list, seeded passwords) directly.
if str(APP_DIR) not in sys.path:
    sys.path.insert(0, str(APP_DIR))
ARTIFACT = ROOT / "fixtures" / "safepsy" / "contracts" / "build" / "1.4.0" / "DIDRegistry.json"
PYTHON = sys.executable
#: secantusd-py is installed next to the interpreter running the tests.
SECANTUSD = str(Path(sys.executable).parent / "secantusd-py")
TEST_PASSWORD = "drill-test-password"  # test-only value, handed to the seed through env
SEED_USERS = 40


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def closed_port() -> int:
    """A port with nothing listening on it (for "dependency is down" cases)."""
    return free_port()


def wait_until(probe: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if probe():
                return
        except Exception:
            pass
        time.sleep(0.02)
    raise TimeoutError(f"{what} not ready after {timeout}s")


def spawn(
    args: list[str], env: dict[str, str] | None = None, log: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start a process in its own session so its whole group can be killed."""
    return subprocess.Popen(
        args,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb") if log else subprocess.DEVNULL,
        start_new_session=True,
    )


def kill_group(process: subprocess.Popen[bytes], timeout: float = 3.0, hard: bool = False) -> None:
    """Stop a process group: SIGTERM (SIGKILL with ``hard``), SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGKILL if hard else signal.SIGTERM)
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout)
    except ProcessLookupError:
        pass


@dataclass
class Infra:
    """The running dependencies of one test module, plus the deployed registry."""

    workdir: Path
    mongo_port: int
    redis_port: int
    anvil_port: int
    registry: str = ""
    operator: str = ""
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def mongodb_uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.mongo_port}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self.anvil_port}"

    def mongo(self) -> MongoClient[dict[str, Any]]:
        return MongoClient(self.mongodb_uri, serverSelectionTimeoutMS=2000, tz_aware=True)

    def redis(self) -> redis.Redis:
        return redis.Redis(port=self.redis_port, decode_responses=True)

    def rpc(self, method: str, params: list[Any]) -> Any:
        reply = httpx.post(
            self.rpc_url,
            json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params},
            timeout=5,
            trust_env=False,
        ).json()
        return reply["result"]

    def service_env(self, **overrides: str) -> dict[str, str]:
        """A complete, valid backend environment (the chatbot ignores the extras)."""
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.lower().endswith("_proxy") and key != "SAFEPSY_TEST_PASSWORD"
        }
        env.update(
            PYTHONPATH=str(APP_DIR),
            RELEASE="1.4.0",
            HOST="127.0.0.1",
            MONGODB_URI=self.mongodb_uri,
            MONGODB_DATABASE="safepsy",
            REDIS_URL=self.redis_url,
            CHAIN_RPC_URL=self.rpc_url,
            DID_REGISTRY_ADDRESS=self.registry,
            DID_OPERATOR_ADDRESS=self.operator,
            USER_SCHEMA_VERSION="1",
            SESSION_TTL_SECONDS="600",
        )
        env.update(overrides)
        return env


def deploy_registry(rpc_url: str, version: str) -> tuple[str, str]:
    """Deploy DIDRegistry from anvil's first account with web3; returns (address, owner)."""
    from web3 import Web3

    w3 = Web3(Web3.HTTPProvider(rpc_url))
    artifact = json.loads(ARTIFACT.read_text())
    owner = w3.eth.accounts[0]
    contract = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    tx_hash = contract.constructor(version).transact({"from": owner})
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=10)
    return str(receipt["contractAddress"]), str(owner)


def run_seed(
    infra: Infra, *extra: str, password: str | None = TEST_PASSWORD
) -> subprocess.CompletedProcess[str]:
    env = infra.service_env()
    if password is not None:
        env["SAFEPSY_TEST_PASSWORD"] = password
    return subprocess.run(
        [PYTHON, "-m", "safepsy_app.seed", "--mongodb-uri", infra.mongodb_uri, *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@dataclass
class Service:
    """A running service subprocess and an HTTP client bound to it."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path
    startup_s: float
    client: httpx.Client

    def stop(self) -> int:
        self.client.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(5)

    def log_text(self) -> str:
        return self.log.read_text()


ServiceFactory = Callable[..., Service]
