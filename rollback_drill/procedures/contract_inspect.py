"""The rollback's first look at the registry in use - which one the backend uses, on which
chain, how many DIDs it holds, what its defect answers - and, on mainnet, the emergency pause
"if supported": paused, a registry refuses what it was doing wrong (1.9.0 refuses resolve as
well as register); a version without `pause()` cannot be, and the step says so."""

from __future__ import annotations

import time
from typing import Any

import httpx

from rollback_drill.chain import keys
from rollback_drill.chain.deploy import keccak
from rollback_drill.chain.evm import mapped
from rollback_drill.chain.registry import Registry, state
from rollback_drill.checks.chain import NEVER_REGISTERED
from rollback_drill.procedures.contract_facts import (
    AMOY,
    IN_USE,
    PAUSE,
    POLYGON,
    InUse,
    Pause,
    rpc_of,
    signer_of,
    since_fault,
)
from rollback_drill.process.errors import Reverted, RpcError
from rollback_drill.steps.procedure import DrillContext, StepResult


def _probe(registry: Registry) -> str:
    """What the registry answers for a DID nobody registered (the defect shows here)."""
    try:
        document = registry.resolve(keccak(NEVER_REGISTERED.encode()))
    except Reverted as exc:
        return f"refused ({exc.reason})"
    return "not registered" if document is None else f"another DID's document: {document[:80]}"


def _in_use(ctx: DrillContext, network: tuple[str, int]) -> tuple[InUse, dict[str, Any]]:
    """The backend's registry (its /api/did/health), on the chain the step is for."""
    name, chain_id = network
    target = ctx.stack.target()
    resp = httpx.get(target.backend_url + "/api/did/health", timeout=5.0, trust_env=False)
    body = resp.json() if resp.headers.get("content-type", "").startswith("application") else {}
    address, version = str(body.get("registry", "")).lower(), body.get("contractVersion")
    if resp.status_code != 200 or not address or not isinstance(version, str):
        raise RuntimeError(f"/api/did/health -> {resp.status_code} {body.get('error', body)}")
    if address != (target.registry_address or "").lower():
        raise RuntimeError(
            f"the backend uses registry {address}; its configuration names "
            f"{target.registry_address}"
        )
    with rpc_of(ctx) as rpc:
        found = rpc.quantity("eth_chainId")
        if found != chain_id:
            raise RuntimeError(f"the chain answers as chain {found}, not {name} ({chain_id})")
        artifact = ctx.stack.loaded.contract_artifact(version)
        registry = Registry(rpc, address, artifact)
        on_chain = registry.version()
        if on_chain != version:
            raise RuntimeError(f"{address} says it is version {on_chain}, the backend {version}")
        dids = len(state(registry.registrations()))
        can_pause = registry.can_pause()
        detail = {
            "chain_id": found,
            "block": rpc.quantity("eth_blockNumber"),
            "registry": address,
            "contract_version": version,
            "paused": registry.paused(),
            "dids": dids,
            "a DID nobody registered resolves to": _probe(registry),
        }
    return InUse(address, version, artifact, found, dids, can_pause), detail


def check_health(ctx: DrillContext) -> StepResult:
    in_use, detail = _in_use(ctx, AMOY)
    ctx.facts[IN_USE] = in_use
    return StepResult(
        detail,
        figures={"registry_rolled_back": f"{in_use.address} (v{in_use.version})",
                 "dids_on_old_registry": in_use.dids,
                 "pause": "not in the runbook's Amoy procedure (only mainnet pauses): the "
                 "defect stays live until the backend is repointed",
                 "defect_while_not_paused": detail["a DID nobody registered resolves to"]},
    )  # fmt: skip


def pause(ctx: DrillContext) -> StepResult:
    in_use, detail = _in_use(ctx, POLYGON)
    ctx.facts[IN_USE] = in_use
    if not in_use.can_pause:
        ctx.facts[PAUSE] = Pause(False)
        return StepResult(
            {**detail, "pause": "not supported"},
            figures={
                "registry_rolled_back": f"{in_use.address} (v{in_use.version})",
                "dids_on_old_registry": in_use.dids,
                "pause": f"NOT SUPPORTED: DIDRegistry {in_use.version} has no pause() (neither "
                "its ABI nor its code): the defect stays live and writes stay open until the "
                "backend is repointed",
                "defect_while_not_paused": detail["a DID nobody registered resolves to"],
            },
        )
    started = time.monotonic()
    signer = signer_of(ctx)
    with rpc_of(ctx) as rpc:
        registry = Registry(rpc, in_use.address, in_use.artifact)
        receipt = registry.set_paused(signer, True)
        seconds = time.monotonic() - started
        if registry.paused() is not True:
            raise RuntimeError(f"pause() mined in {receipt.tx_hash}, yet paused() is not true")
        defect = _probe(registry)
        writes = _write_refused(signer, registry)
    ctx.facts[PAUSE] = Pause(True, receipt.gas_used, receipt.cost_wei, seconds)
    return StepResult(
        {**detail, "pause_tx": receipt.tx_hash, "after pause, resolve": defect,
         "after pause, register": writes},
        figures={
            "registry_rolled_back": f"{in_use.address} (v{in_use.version})",
            "dids_on_old_registry": in_use.dids,
            "pause": f"paused in {seconds:.3f} s ({receipt.gas_used} gas); resolve {defect}, "
            f"register {writes}",
            "pause_s": round(seconds, 3),
            "defect_contained_after_fault_s": since_fault(ctx),
        },
    )  # fmt: skip


def _write_refused(signer: keys.Signer, registry: Registry) -> str:
    """Whether the paused registry still takes a registration (simulated, never sent)."""
    from web3 import Web3

    probe = registry.contract.functions.register(bytes(32), "rollback-drill probe")
    try:
        with mapped("eth_estimateGas", registry.errors):
            probe.estimate_gas({"from": Web3.to_checksum_address(signer.address)})
    except Reverted as exc:
        return f"refused ({exc.reason})"
    except RpcError as exc:
        return f"refused ({exc.message})"
    return "STILL ACCEPTED"
