"""The JSON-RPC envelope, once: the request body and what an answer means. Two transports
carry it - the engine's `evm.Rpc` (web3's provider, for the raw calls web3 has no method for:
anvil_*) and verify's light reads in `checks/chain.rpc` (the target's request(), so timeouts,
TLS and evidence are the checks' own) - and both raise the same two errors: `RpcError` when
the node answered an error, `RpcUnavailable` when there was no usable answer. Light on purpose:
verify reads the chain without web3 (1.8 s to import; `benchmarks/bench_verify.py --only
"rollback-drill verify" --only "rollback-drill verify + web3"`: 4.49 s vs 9.65 s, median of 5
on a loaded machine; evm.py has the figures).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rollback_drill.process.errors import RpcError, RpcUnavailable


def request_body(method: str, params: Sequence[Any] = (), request_id: int = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": list(params)}


def result_of(method: str, status: int, answer: Any, text: str = "") -> Any:
    """The `result` of an answer, or the error that says why there is none. `text` (the raw
    body, when the caller has it) is quoted when the answer is not JSON-RPC."""
    if not isinstance(answer, dict):
        quoted = f": {text[:200]}" if text else ""
        raise RpcUnavailable(f"{method}: HTTP {status}, not a JSON-RPC answer{quoted}")
    error = answer.get("error")
    if isinstance(error, dict):
        code, message = int(error.get("code", 0)), str(error.get("message", ""))
        raise RpcError(method, code, message, error.get("data"))
    if "result" not in answer or status != 200:
        raise RpcUnavailable(f"{method}: HTTP {status} without a result")
    return answer["result"]
