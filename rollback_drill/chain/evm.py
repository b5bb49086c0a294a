"""An EVM node over JSON-RPC (httpx, every call bounded), the ABI bits the harness needs
(selectors, calldata, custom-error names of a revert) and compiled contract artifacts.

web3 costs 1.8 s to import and hides the decisions chain.py makes about retries, so it is not
used; eth_abi encodes, pycryptodome hashes.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import httpx

from rollback_drill.chain.artifacts import selector
from rollback_drill.chain.jsonrpc import request_body, result_of
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
        body = request_body(method, params, next(self._ids))
        try:
            resp = self._client.post(self.url, json=body)
            answer = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise RpcUnavailable(f"{method}: {type(exc).__name__}: {exc}") from None
        return result_of(method, resp.status_code, answer)

    def quantity(self, method: str, params: Sequence[Any] = ()) -> int:
        return int(str(self.call(method, params)), 16)


# -- contracts --------------------------------------------------------------------------------


def calldata(signature: str, types: Sequence[str] = (), args: Sequence[Any] = ()) -> str:
    from eth_abi.abi import encode

    return "0x" + (selector(signature) + encode(list(types), list(args))).hex()


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
