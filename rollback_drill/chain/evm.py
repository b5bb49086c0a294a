"""An EVM node over JSON-RPC (httpx, every call bounded), the ABI bits the harness needs
(selectors, calldata, custom-error names of a revert) and compiled contract artifacts.

web3 costs 1.8 s to import and hides the decisions chain.py makes about retries, so it is not
used; eth_abi encodes, pycryptodome hashes.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import httpx

from rollback_drill.process.errors import Reverted, RpcError, RpcUnavailable


class Rpc:
    """One JSON-RPC endpoint; every call bounded by `timeout_s`. Thread-safe."""

    def __init__(self, url: str, timeout_s: float = 5.0) -> None:
        self.url = url
        self._client = httpx.Client(timeout=timeout_s, trust_env=False)
        self._ids = itertools.count(1)

    def __enter__(self) -> Rpc:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)}
        try:
            resp = self._client.post(self.url, json=body)
            answer = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise RpcUnavailable(f"{method}: {type(exc).__name__}: {exc}") from None
        if not isinstance(answer, dict):
            raise RpcUnavailable(f"{method}: HTTP {resp.status_code}, not a JSON-RPC answer")
        error = answer.get("error")
        if isinstance(error, dict):
            raise RpcError(
                method, int(error.get("code", 0)), str(error.get("message", "")), error.get("data")
            )
        if "result" not in answer:
            raise RpcUnavailable(f"{method}: HTTP {resp.status_code} without a result")
        return answer["result"]

    def quantity(self, method: str, params: Sequence[Any] = ()) -> int:
        return int(str(self.call(method, params)), 16)


# -- contracts --------------------------------------------------------------------------------


@cache
def keccak(data: bytes) -> bytes:
    from Crypto.Hash import keccak as _keccak

    return bytes(_keccak.new(data=data, digest_bits=256).digest())


def selector(signature: str) -> bytes:
    return keccak(signature.encode("ascii"))[:4]


def calldata(signature: str, types: Sequence[str] = (), args: Sequence[Any] = ()) -> str:
    from eth_abi.abi import encode

    return "0x" + (selector(signature) + encode(list(types), list(args))).hex()


@dataclass(frozen=True)
class Artifact:
    """A compiled contract as compile.mjs writes it."""

    path: Path
    name: str
    version: str | None
    abi: tuple[dict[str, Any], ...]
    bytecode: str
    deployed_bytecode: str
    source: str | None
    source_sha256: str | None

    def has_function(self, name: str) -> bool:
        return any(e.get("type") == "function" and e.get("name") == name for e in self.abi)

    def errors(self) -> dict[bytes, str]:
        """Custom errors by selector, to name a revert."""
        found = {}
        for entry in self.abi:
            if entry.get("type") == "error":
                types = ",".join(str(i["type"]) for i in entry.get("inputs", []))
                found[selector(f"{entry['name']}({types})")] = str(entry["name"])
        return found


@cache
def load_artifact(path: Path) -> Artifact:
    try:
        data = json.loads(path.read_text())
        return Artifact(
            path,
            str(data.get("contractName", path.stem)),
            data.get("version"),
            tuple(data["abi"]),
            str(data["bytecode"]),
            str(data.get("deployedBytecode", "")),
            data.get("source"),
            data.get("sourceSha256"),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(
            f"{path}: not a contract artifact (expected JSON with abi and bytecode): {exc}"
        ) from None


def revert_reason(exc: RpcError, errors: dict[bytes, str]) -> str | None:
    """The custom error a JSON-RPC error carries, or None when it is not a revert."""
    data = exc.data.get("data") if isinstance(exc.data, dict) else exc.data
    if isinstance(data, str) and data.startswith("0x") and len(data) >= 10:
        return errors.get(bytes.fromhex(data[2:10]), f"error 0x{data[2:10]}")
    return "revert" if "revert" in exc.message.lower() else None


def eth_call(rpc: Rpc, address: str, data: str, errors: dict[bytes, str]) -> bytes:
    """A read; a revert becomes Reverted naming its custom error."""
    try:
        result = rpc.call("eth_call", [{"to": address, "data": data}, "latest"])
    except RpcError as exc:
        reason = revert_reason(exc, errors)
        if reason is None:
            raise
        raise Reverted(reason, exc.message) from None
    return bytes.fromhex(str(result).removeprefix("0x"))
