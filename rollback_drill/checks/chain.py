"""The chain, asked over raw JSON-RPC (web3 costs 1.8 s to import; verify must not pay it):
the right chain answers, and the code at the registry address is the artifact's - the
runtime code byte for byte, the compiler's metadata hash aside and the owner filled into
its immutable slot, which is how Polygonscan verifies a contract - with the expected version
and owner, not paused. And what the registry answers through the backend: each DID its own
document, and a DID nobody registered none (anything else is another person's identity).

The engine's chain work goes through web3 (chain/evm.py); these reads keep the light client
because web3 would double verify's time (`benchmarks/bench_verify.py --only "rollback-drill
verify" --only "rollback-drill verify + web3"`; evm.py has the figures). Both read the
artifact through chain/artifacts.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from rollback_drill.chain.artifacts import (
    RuntimeCode,
    compare_code,
    functions_of,
    immutable_slots,
    runtime_of,
    selector,
)
from rollback_drill.chain.jsonrpc import request_body, result_of
from rollback_drill.checks.health import get
from rollback_drill.checks.http import request
from rollback_drill.checks.result import Check, CheckResult
from rollback_drill.process.errors import ChainError, CheckSkipped, HttpFailure
from rollback_drill.stack.target import Target


def rpc(target: Target, method: str, params: list[Any]) -> Any:
    """One JSON-RPC call through the target's request() (its timeouts, TLS and evidence); the
    envelope and the errors are chain/jsonrpc's, shared with the engine's client."""
    assert target.rpc_url is not None
    resp = request(target, "POST", target.rpc_url, json=request_body(method, params))
    return result_of(method, resp.status, resp.body, resp.text)


def call(target: Target, address: str, signature: str) -> bytes:
    data = "0x" + selector(signature).hex()
    result = rpc(target, "eth_call", [{"to": address, "data": data}, "latest"])
    return bytes.fromhex(str(result).removeprefix("0x"))


def decode_string(data: bytes) -> str:
    offset = int.from_bytes(data[:32], "big")
    length = int.from_bytes(data[offset : offset + 32], "big")
    return data[offset + 32 : offset + 32 + length].decode()


def _connectivity(target: Target) -> CheckResult:
    if not target.rpc_url:
        raise CheckSkipped("the target names no rpc_url")
    try:
        chain_id = int(str(rpc(target, "eth_chainId", [])), 16)
        block = int(str(rpc(target, "eth_blockNumber", [])), 16)
    except HttpFailure as exc:
        return CheckResult("connectivity.chain", False, f"RPC {exc.detail}", {"rpc": exc.url})
    ok = target.chain_id is None or chain_id == target.chain_id
    summary = (
        f"chain {chain_id} at block {block}"
        if ok
        else f"chain id {chain_id}, expected {target.chain_id}"
    )
    return CheckResult("connectivity.chain", ok, summary, {"chain_id": chain_id, "block": block})


def _filled_owner(artifact: bytes, deployed: bytes) -> bytes:
    """The address the deployer filled into the first immutable slot (the owner)."""
    slots = immutable_slots(RuntimeCode.split(artifact).body)
    word = RuntimeCode.split(deployed).body[slots[0] : slots[0] + 32] if slots else b""
    return word[12:] if len(word) == 32 and word[:12] == bytes(12) else b""


def _views(target: Target, address: str, artifact: Path) -> tuple[dict[str, Any], list[str]]:
    """version, owner and paused (when the contract version has a pause) from the contract;
    a call that fails is a problem."""
    found: dict[str, Any] = {}
    problems = []
    reads: dict[str, Callable[[bytes], Any]] = {
        "version": lambda data: decode_string(data),
        "owner": lambda data: "0x" + data[12:32].hex(),
        "paused": lambda data: int.from_bytes(data[:32], "big") != 0,
    }
    if "paused" not in functions_of(artifact):
        del reads["paused"]
        found["paused"] = None  # nothing to ask: this version cannot be paused
    for name, decode in reads.items():
        try:
            found[name] = decode(call(target, address, f"{name}()"))
        except (ChainError, ValueError, UnicodeDecodeError) as exc:
            found[name] = None
            problems.append(f"{name}() does not answer ({exc})")
    return found, problems


def _registry(target: Target) -> CheckResult:
    address = target.registry_address
    if not target.rpc_url or not address or target.contract_artifact is None:
        raise CheckSkipped("the target names no rpc_url, registry_address and contract_artifact")
    code = bytes.fromhex(str(rpc(target, "eth_getCode", [address, "latest"])).removeprefix("0x"))
    if not code:
        return CheckResult(
            "chain.registry", False, f"no contract code at {address}", {"registry": address}
        )
    artifact = runtime_of(target.contract_artifact)
    filled = _filled_owner(artifact, code)
    same_code, code_evidence = compare_code(artifact, code, filled)
    problems = []
    if not same_code:
        problems.append(f"the code at {address} is not {target.contract_artifact.name}'s runtime")
    views, failed_calls = _views(target, address, target.contract_artifact)
    problems += failed_calls
    version, owner = views["version"], views["owner"]
    if owner is not None and filled and owner != "0x" + filled.hex():
        problems.append(f"owner() says {owner}, the code's immutable says 0x{filled.hex()}")
    want_version = target.expected_contract_version
    if version is not None and want_version and version != want_version:
        problems.append(f"registry version {version}, expected {want_version}")
    if owner is not None and target.expected_owner and owner != target.expected_owner.lower():
        problems.append(f"registry owner {owner}, expected {target.expected_owner}")
    if views["paused"]:
        problems.append("registry is paused")
    summary = "; ".join(problems) or (
        f"{address}: {target.contract_artifact.name} runtime (metadata aside), v{version}, "
        f"owner {owner}, not paused"
    )
    return CheckResult(
        "chain.registry", not problems, summary, {"registry": address, **views, **code_evidence}
    )


NEVER_REGISTERED = "did:safepsy:rollback-drill-never-registered"
"""A DID no user has: resolving it must answer 404."""


def _resolution(target: Target) -> CheckResult:
    """Each DID resolves to its own document; one nobody registered to none."""
    probes = [(NEVER_REGISTERED, False)]
    if target.test_did:
        probes.append((target.test_did, True))
    rows: list[dict[str, Any]] = []
    problems = []
    for did, registered in probes:
        url = f"{target.backend_url}/api/did/resolve/{quote(did, safe=':')}"
        resp = get(target, "chain.resolution", url, f"GET /api/did/resolve/{did}")
        if isinstance(resp, CheckResult):
            return resp
        body = resp.body if isinstance(resp.body, dict) else {}
        document = body.get("document")
        owner = document.get("id") if isinstance(document, dict) else None
        rows.append({"did": did, "status": resp.status, "document_of": owner})
        if not registered and resp.status == 200:
            problems.append(
                f"{did}, which nobody registered, resolves to the document of {owner}: "
                "another person's identity"
            )
        elif not registered and resp.status != 404:
            problems.append(f"{did} -> {resp.status} {body.get('error', '')}, expected 404")
        elif registered and (resp.status != 200 or owner != did):
            problems.append(
                f"the test DID -> {resp.status} {body.get('error', '')}"
                + (f" with the document of {owner}" if owner else "")
            )
    summary = "; ".join(problems) or (
        "each DID resolves to its own document, one nobody registered to 404"
    )
    return CheckResult("chain.resolution", not problems, summary, {"probes": rows})


CHECKS = [
    Check("connectivity.chain", "connectivity", _connectivity, doc="npm run check:amoy:health"),
    Check(
        "chain.registry",
        "chain",
        _registry,
        doc="npm run verify:amoy (runtime code, version, owner, paused)",
    ),
    Check(
        "chain.resolution",
        "chain",
        _resolution,
        doc="curl /api/did/resolve/<a DID nobody registered> -> 404; the test DID -> its own",
    ),
]
