"""The runbook's database connectivity checks (`mongosh ping`, `redis-cli ping`), and the
chain: each answers within the timeout or fails - never hangs."""

from __future__ import annotations

from rollback_drill import chain
from rollback_drill.checks.result import Check, CheckResult, CheckSkipped
from rollback_drill.stores import mongo
from rollback_drill.stores import redis as redis_store
from rollback_drill.target import Target


def _mongodb(target: Target) -> CheckResult:
    seconds = mongo.ping(target.mongodb_uri.reveal(), timeout_s=target.thresholds.request_timeout_s)
    return CheckResult(
        "connectivity.mongodb",
        True,
        f"ping answered in {seconds * 1000:.1f} ms",
        {"seconds": seconds},
    )


def _redis(target: Target) -> CheckResult:
    seconds = redis_store.ping(
        target.redis_url.reveal(), timeout_s=target.thresholds.request_timeout_s
    )
    return CheckResult(
        "connectivity.redis", True, f"PONG in {seconds * 1000:.1f} ms", {"seconds": seconds}
    )


def _chain(target: Target) -> CheckResult:
    if not target.rpc_url or target.contract_artifact is None:
        raise CheckSkipped("target names no rpc_url / contract_artifact")
    state = chain.status(
        target.rpc_url,
        target.contract_artifact,
        target.registry_address,
        timeout_s=target.thresholds.request_timeout_s,
    )
    problems = []
    if target.chain_id is not None and state.chain_id != target.chain_id:
        problems.append(f"chain id {state.chain_id}, expected {target.chain_id}")
    if target.registry_address and not state.has_code:
        problems.append(f"no contract code at {target.registry_address}")
    if state.paused:
        problems.append("registry is paused")
    evidence = {
        "chain_id": state.chain_id,
        "block": state.block_number,
        "registry": state.address,
        "has_code": state.has_code,
        "version": state.version,
        "paused": state.paused,
    }
    summary = (
        "; ".join(problems)
        or f"chain {state.chain_id} at block {state.block_number}, registry v{state.version}"
    )
    return CheckResult("connectivity.chain", not problems, summary, evidence)


CHECKS = [
    Check(
        "connectivity.mongodb",
        "connectivity",
        _mongodb,
        doc="mongosh --eval db.adminCommand('ping')",
    ),
    Check("connectivity.redis", "connectivity", _redis, doc="redis-cli ping"),
    Check("connectivity.chain", "connectivity", _chain, doc="npm run check:amoy:health"),
]
