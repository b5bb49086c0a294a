"""Smart Contract Rollback, on Polygon Amoy (chain 80002) and on mainnet (chain 137):

    Amoy:     check:amoy:health -> checkout, compile:did -> deploy:did:amoy -> verify:amoy
    Mainnet:  pause:contracts (if supported) -> checkout, compile:did -> deploy:did:polygon
              -> verify:polygon (as Polygonscan verifies: the runtime code is the artifact's)

What the runbook leaves unsaid, the drill does and names: a redeployed contract starts empty,
and the backend keeps using the registry its configuration names. So `deploy:did:*` here also
carries the registry's state over (the old registry's events replayed by the operator:
migration.py), points the backend at the new registry (its configuration changed, then
`docker-compose up -d backend`), and catches up what was registered on the old one meanwhile.
Without them every DID is lost; the verification counts the DIDs lost and registered twice.

Pause, on mainnet, "if supported": a registry version with `pause()` is paused first, so its
defect can do no more harm (1.9.0's pause stops resolve as well) and nothing more is written
to it while its state is copied. A version without one (1.9.1) cannot be: the step says so,
shows the defect still live, and the procedure goes on; the defect then lasts until the
backend is repointed, and the figures say how long.
"""

from __future__ import annotations

import hashlib
import subprocess
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from rollback_drill import keys
from rollback_drill.chain import (
    Deployment,
    Reverted,
    Rpc,
    RpcError,
    calldata,
    deploy_registry,
    keccak,
    load_artifact,
    revert_reason,
)
from rollback_drill.checks import BY_NAME
from rollback_drill.checks.chain import NEVER_REGISTERED
from rollback_drill.checks.result import run_checks
from rollback_drill.contract_release import chain_services
from rollback_drill.facts import Fact
from rollback_drill.migration import Migration, carry_over, compare
from rollback_drill.procedures.base import DrillContext, Procedure, Step, StepAction, StepResult
from rollback_drill.registry import Registry, state
from rollback_drill.rpcproxy import FlakyRpc, RpcFaults
from rollback_drill.timeline import FAULT_INJECTED
from rollback_drill.tools import find_tool

AMOY = ("Polygon Amoy", 80002)
POLYGON = ("Polygon mainnet", 137)
MIGRATION_RPC_TIMEOUT_S = 2.0  # a public RPC answers in well under a second, or not at all
COMPILE_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class InUse:
    """The registry the backend uses when the rollback starts: the one to roll back."""

    address: str
    version: str
    artifact: Path
    chain_id: int
    dids: int
    can_pause: bool


@dataclass(frozen=True)
class Pause:
    supported: bool
    receipt_gas: int = 0
    seconds: float = 0.0


IN_USE = Fact[InUse]("registry in use", "the registry the backend uses, to be rolled back")
PAUSE = Fact[Pause]("pause", "whether the registry in use was paused, and at what cost")
COMPILED = Fact[Path]("previous contract compiled", "its artifact, recompiled from its source")
REDEPLOYED = Fact[Deployment]("redeployed registry", "the previous version, freshly deployed")
MIGRATED = Fact[Migration]("registry state carried over", "the carry-over's first pass")
REPOINTED = Fact[int]("backend repointed", "the last block before the backend used it")
CAUGHT_UP = Fact[Migration]("registrations caught up", "what landed on the old registry since")


def _rpc(ctx: DrillContext, timeout_s: float = 5.0) -> Rpc:
    url = ctx.stack.target().rpc_url
    if not url:
        raise RuntimeError("the stack names no chain RPC URL")
    return Rpc(url, timeout_s)


def _signer(ctx: DrillContext) -> keys.Signer:
    return keys.operator_signer(ctx.stack.workdir)


def _since_fault(ctx: DrillContext) -> float | None:
    timeline = ctx.timeline
    return (
        round(timeline.now() - timeline.at(FAULT_INJECTED), 3)
        if timeline.has(FAULT_INJECTED)
        else None
    )


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
    resp = httpx.get(target.backend_url + "/api/did/health", timeout=5.0)
    body = resp.json() if resp.headers.get("content-type", "").startswith("application") else {}
    address, version = str(body.get("registry", "")).lower(), body.get("contractVersion")
    if resp.status_code != 200 or not address or not isinstance(version, str):
        raise RuntimeError(f"/api/did/health -> {resp.status_code} {body.get('error', body)}")
    if address != (target.registry_address or "").lower():
        raise RuntimeError(
            f"the backend uses registry {address}; its configuration names "
            f"{target.registry_address}"
        )
    with _rpc(ctx) as rpc:
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
                 "dids_on_old_registry": in_use.dids},
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
    signer = _signer(ctx)
    with _rpc(ctx) as rpc:
        registry = Registry(rpc, in_use.address, in_use.artifact)
        receipt = registry.set_paused(signer, True)
        seconds = time.monotonic() - started
        if registry.paused() is not True:
            raise RuntimeError(f"pause() mined in {receipt.tx_hash}, yet paused() is not true")
        defect = _probe(registry)
        writes = _write_refused(rpc, signer, registry)
    ctx.facts[PAUSE] = Pause(True, receipt.gas_used, seconds)
    return StepResult(
        {**detail, "pause_tx": receipt.tx_hash, "after pause, resolve": defect,
         "after pause, register": writes},
        figures={
            "registry_rolled_back": f"{in_use.address} (v{in_use.version})",
            "dids_on_old_registry": in_use.dids,
            "pause": f"paused in {seconds:.3f} s ({receipt.gas_used} gas); resolve {defect}, "
            f"register {writes}",
            "pause_s": round(seconds, 3),
            "defect_contained_after_fault_s": _since_fault(ctx),
        },
    )  # fmt: skip


def _write_refused(rpc: Rpc, signer: keys.Signer, registry: Registry) -> str:
    """Whether the paused registry still takes a registration (simulated, never sent)."""
    data = calldata(
        "register(bytes32,string)", ["bytes32", "string"], [bytes(32), "rollback-drill probe"]
    )
    call = {"from": signer.address, "to": registry.address, "data": data}
    try:
        rpc.call("eth_estimateGas", [call])
    except RpcError as exc:
        return f"refused ({revert_reason(exc, registry.errors) or exc.message})"
    return "STILL ACCEPTED"


def compile_previous(ctx: DrillContext) -> StepResult:
    """The previous release's contract version, from its source, with the committed compiler
    settings (compile.mjs): the bytecode about to be deployed is what that source makes."""
    version = ctx.stack.loaded.release(ctx.good_release).contract_version
    path = ctx.stack.loaded.contract_artifact(version)
    artifact = load_artifact(path)
    contracts = path.parents[2]  # <contracts>/build/<version>/<Name>.json
    if artifact.source is None or artifact.source_sha256 is None:
        raise RuntimeError(f"{path} names no source: not built by compile.mjs")
    source = contracts / artifact.source
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    if digest != artifact.source_sha256:
        raise RuntimeError(f"{source} changed since {path} was compiled from it")
    started = time.monotonic()
    done = subprocess.run(
        [find_tool("node"), str(contracts / "compile.mjs"), "--check", "--version", version],
        capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"compile:did {version}: {(done.stderr or done.stdout)[-500:]}")
    ctx.facts[COMPILED] = path
    return StepResult(
        {"contract_version": version, "source": artifact.source, "source_sha256": digest,
         "compiled_s": round(time.monotonic() - started, 3), "artifact": str(path.name)},
    )  # fmt: skip


def deploy(network: tuple[str, int]) -> StepAction:
    def action(ctx: DrillContext) -> StepResult:
        version = ctx.stack.loaded.release(ctx.good_release).contract_version
        with _rpc(ctx) as rpc:
            found = rpc.quantity("eth_chainId")
            if found != network[1]:
                raise RuntimeError(f"deploying to chain {found}, not {network[0]} ({network[1]})")
            deployed = deploy_registry(rpc, ctx.facts[COMPILED], version, _signer(ctx))
        ctx.facts[REDEPLOYED] = deployed
        return StepResult(
            {"registry": deployed.address, "tx": deployed.tx_hash, "block": deployed.block,
             "version": version},
            figures={"new_registry": f"{deployed.address} (v{version})",
                     "deploy_s": round(deployed.seconds, 3), "deploy_gas": deployed.gas_used},
        )  # fmt: skip

    return action


def carry(faults: RpcFaults | None) -> StepAction:
    """The first pass of the carry-over, through an RPC that fails as `faults` say (if any)."""

    def action(ctx: DrillContext) -> StepResult:
        in_use, deployed = ctx.facts[IN_USE], ctx.facts[REDEPLOYED]
        url = ctx.stack.target().rpc_url or ""
        with ExitStack() as running:
            proxy = running.enter_context(FlakyRpc(url, faults)) if faults else None
            rpc = running.enter_context(Rpc(proxy.url if proxy else url, MIGRATION_RPC_TIMEOUT_S))
            done = carry_over(
                Registry(rpc, in_use.address, in_use.artifact),
                Registry(rpc, deployed.address, ctx.facts[COMPILED]),
                _signer(ctx),
            )
        ctx.facts[MIGRATED] = done
        figures: dict[str, Any] = {
            "migration_s": round(done.seconds, 3),
            "dids_carried": done.carried,
            "dids_found_already_carried": done.already,
            "migration_gas": done.gas_used,
        }
        if proxy is not None:
            figures["rpc_faults"] = f"{faults.describe() if faults else ''}: " + (
                f"{len(proxy.log.faults)} happened, {done.rpc_failures} calls retried, "
                f"{done.broadcasts - done.carried} transactions resent, none signed twice"
            )
        rpc_log = proxy.log.to_json() if proxy else None
        return StepResult({"migration": done.to_json(), "rpc": rpc_log}, figures=figures)

    return action


def repoint(ctx: DrillContext) -> StepResult:
    """The backend's configuration names the new registry; the backend redeployed with it."""
    version = ctx.stack.loaded.release(ctx.good_release).contract_version
    deployed = ctx.facts[REDEPLOYED]
    with _rpc(ctx) as rpc:
        before = rpc.quantity("eth_blockNumber")
    started = time.monotonic()
    ctx.stack.use_registry(version, deployed.address)
    services = chain_services(ctx.stack)
    for service in services:
        ctx.stack.redeploy(service, ctx.good_release)
    ctx.facts[REPOINTED] = before
    paused = ctx.facts.get(PAUSE)
    figures: dict[str, Any] = {"repoint_s": round(time.monotonic() - started, 3)}
    if paused is None or not paused.supported:
        figures["defect_live_after_fault_s"] = _since_fault(ctx)
    return StepResult(
        {"services": services, "release": ctx.good_release, "registry": deployed.address},
        figures=figures,
    )


def catch_up(ctx: DrillContext) -> StepResult:
    """What was registered on the old registry after the first pass read it."""
    in_use, first = ctx.facts[IN_USE], ctx.facts[MIGRATED]
    with _rpc(ctx) as rpc:
        done = carry_over(
            Registry(rpc, in_use.address, in_use.artifact),
            Registry(rpc, ctx.facts[REDEPLOYED].address, ctx.facts[COMPILED]),
            _signer(ctx),
            from_block=first.to_block + 1,
        )
    ctx.facts[CAUGHT_UP] = done
    return StepResult(
        {"catch_up": done.to_json()},
        figures={"dids_caught_up_after_repoint": done.carried, "catch_up_gas": done.gas_used},
    )


def verify(ctx: DrillContext) -> StepResult:
    """As Polygonscan verifies (runtime code = the artifact's, metadata hash aside), the backend
    on it, each DID resolving to its own document - and every DID of the old registry carried,
    once."""
    in_use, deployed = ctx.facts[IN_USE], ctx.facts[REDEPLOYED]
    with _rpc(ctx) as rpc:
        carried = compare(
            Registry(rpc, in_use.address, in_use.artifact),
            Registry(rpc, deployed.address, ctx.facts[COMPILED]),
            window=(deployed.block, ctx.facts[REPOINTED]),
        )
    target = ctx.stack.target()
    checked = run_checks(
        [BY_NAME[n] for n in ("chain.registry", "rollback.contract", "chain.resolution")], target
    )
    problems = [o.result.explain() for o in checked if o.failed and o.result]
    if carried.lost:
        problems.append(f"{len(carried.lost)} of {carried.expected} DIDs lost: {carried.lost[:3]}")
    if carried.duplicated:
        problems.append(
            f"{len(carried.duplicated)} DIDs registered twice: {carried.duplicated[:3]}"
        )
    code = next(
        (o.result.evidence for o in checked if o.check.name == "chain.registry" and o.result), {}
    )
    gas = _gas(ctx)
    figures = {
        "dids_expected": carried.expected,
        "dids_lost": len(carried.lost),
        "dids_registered_twice": len(carried.duplicated),
        "bytecode": _bytecode(code, target.contract_artifact),
        "gas_total": gas[0],
        "cost_pol": round(gas[1] / 10**18, 6),
    }
    if problems:
        raise RuntimeError("; ".join(problems) + f" (figures: {figures})")
    return StepResult(
        {"carried": carried.to_json(), "checks": [o.check.name for o in checked]}, figures=figures
    )


def _bytecode(evidence: dict[str, Any], artifact: Path | None) -> str:
    if not evidence:
        return "not verified"
    name = artifact.parent.name if artifact else "the artifact"
    metadata = "equal" if evidence.get("metadata_equal") else "differs (ignored, as Polygonscan)"
    return (
        f"runtime code equal to {name}'s artifact ({evidence.get('deployed_bytes')} bytes; "
        f"owner in immutable slots {evidence.get('immutable_slots_with_owner')}; metadata hash "
        f"{metadata})"
    )


def _gas(ctx: DrillContext) -> tuple[int, int]:
    """Gas and wei the rollback spent: pause, deployment, carry-over, catch-up."""
    gas = wei = 0
    deployed = ctx.facts[REDEPLOYED]
    gas += deployed.gas_used
    wei += deployed.gas_used * deployed.gas_price
    for fact in (MIGRATED, CAUGHT_UP):
        done = ctx.facts.get(fact)
        if done is not None:
            gas, wei = gas + done.gas_used, wei + done.cost_wei
    paused = ctx.facts.get(PAUSE)
    if paused is not None and paused.supported:
        gas += paused.receipt_gas
        wei += paused.receipt_gas * deployed.gas_price
    return gas, wei


_CHECKOUT = "git checkout HEAD~1 -- contracts/; npm run compile:did"
_REPOINT = "docker-compose up -d backend"  # as Backend Rollback words it: the .env changed


def _common(network: str, faults: RpcFaults | None) -> tuple[Step, ...]:
    deploy_cmd = f"npm run deploy:did:{network}"
    chain_of = AMOY if network == "amoy" else POLYGON
    return (
        Step("Check out and compile the previous contract version", _CHECKOUT, compile_previous,
             provides=(COMPILED,)),
        Step("Deploy the previous contract version", deploy_cmd, deploy(chain_of),
             needs=(COMPILED,), provides=(REDEPLOYED,)),
        Step("Carry the registry's state over (a redeployed contract starts empty)", deploy_cmd,
             carry(faults), needs=(IN_USE, REDEPLOYED), provides=(MIGRATED,)),
        Step("Point the backend at the new registry (configuration, redeploy)", _REPOINT,
             repoint, needs=(REDEPLOYED,), provides=(REPOINTED,)),
        Step("Catch up what was registered on the old registry meanwhile", deploy_cmd, catch_up,
             needs=(MIGRATED,), provides=(CAUGHT_UP,)),
        Step("Verify on Polygonscan" if network == "polygon" else "Verify rollback",
             f"npm run verify:{network}", verify, needs=(REPOINTED,)),
    )  # fmt: skip


def amoy(faults: RpcFaults | None = None) -> Procedure:
    return Procedure(
        name="contract: amoy",
        runbook_section="Smart Contract Rollback > Polygon Amoy Testnet",
        rollback_type="emergency",
        steps=(
            Step("Check current contract state", "npm run check:amoy:health", check_health,
                 provides=(IN_USE,)),
            *_common("amoy", faults),
        ),
    )  # fmt: skip


def mainnet(faults: RpcFaults | None = None) -> Procedure:
    """`faults`: the RPC fails the carry-over this way (the drill proves it survives)."""
    return Procedure(
        name="contract: mainnet",
        runbook_section="Smart Contract Rollback > Production Mainnet",
        rollback_type="emergency",
        steps=(
            Step("Emergency contract pause (if supported)", "npm run pause:contracts", pause,
                 provides=(IN_USE, PAUSE)),
            *_common("polygon", faults),
        ),
    )  # fmt: skip


AMOY_PROCEDURE = amoy()
MAINNET_PROCEDURE = mainnet()

__all__ = [
    "AMOY",
    "AMOY_PROCEDURE",
    "MAINNET_PROCEDURE",
    "POLYGON",
    "RpcFaults",
    "amoy",
    "mainnet",
]
