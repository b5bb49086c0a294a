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
from typing import Any

from rollback_drill.chain.deploy import Rpc, deploy_registry, load_artifact
from rollback_drill.chain.migration import carry_over
from rollback_drill.chain.registry import Registry
from rollback_drill.failures.contract_release import chain_services
from rollback_drill.failures.rpcproxy import FlakyRpc, RpcFaults
from rollback_drill.procedures.contract_facts import (
    AMOY,
    CAUGHT_UP,
    COMPILED,
    IN_USE,
    MIGRATED,
    PAUSE,
    POLYGON,
    REDEPLOYED,
    REPOINTED,
    rpc_of,
    signer_of,
    since_fault,
)
from rollback_drill.procedures.contract_inspect import check_health, pause
from rollback_drill.procedures.contract_verify import verify
from rollback_drill.process.tools import find_tool
from rollback_drill.steps.procedure import DrillContext, Procedure, Step, StepAction, StepResult

MIGRATION_RPC_TIMEOUT_S = 2.0  # a public RPC answers in well under a second, or not at all
COMPILE_TIMEOUT_S = 60.0


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
        with rpc_of(ctx) as rpc:
            found = rpc.quantity("eth_chainId")
            if found != network[1]:
                raise RuntimeError(f"deploying to chain {found}, not {network[0]} ({network[1]})")
            deployed = deploy_registry(rpc, ctx.facts[COMPILED], version, signer_of(ctx))
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
                signer_of(ctx),
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
    with rpc_of(ctx) as rpc:
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
        figures["defect_live_after_fault_s"] = since_fault(ctx)
    return StepResult(
        {"services": services, "release": ctx.good_release, "registry": deployed.address},
        figures=figures,
    )


def catch_up(ctx: DrillContext) -> StepResult:
    """What was registered on the old registry after the first pass read it."""
    in_use, first = ctx.facts[IN_USE], ctx.facts[MIGRATED]
    with rpc_of(ctx) as rpc:
        done = carry_over(
            Registry(rpc, in_use.address, in_use.artifact),
            Registry(rpc, ctx.facts[REDEPLOYED].address, ctx.facts[COMPILED]),
            signer_of(ctx),
            from_block=first.to_block + 1,
        )
    ctx.facts[CAUGHT_UP] = done
    return StepResult(
        {"catch_up": done.to_json()},
        figures={"dids_caught_up_after_repoint": done.carried, "catch_up_gas": done.gas_used},
    )


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
