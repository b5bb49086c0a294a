"""The rollback's last step, as Polygonscan verifies a contract (the runtime code at the
address is the artifact's, its metadata hash aside), the backend on the new registry, each
DID resolving to its own document - and every DID of the old registry carried over, once.
Its figures are the drill's headline: DIDs expected, lost and registered twice, the
bytecode verification, the gas the whole rollback spent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rollback_drill.chain.migration import compare
from rollback_drill.chain.registry import Registry
from rollback_drill.checks import BY_NAME
from rollback_drill.checks.result import run_checks
from rollback_drill.procedures.contract_facts import (
    CAUGHT_UP,
    COMPILED,
    IN_USE,
    MIGRATED,
    PAUSE,
    REDEPLOYED,
    REPOINTED,
    rpc_of,
)
from rollback_drill.steps.procedure import DrillContext, StepResult


def verify(ctx: DrillContext) -> StepResult:
    """As Polygonscan verifies (runtime code = the artifact's, metadata hash aside), the backend
    on it, each DID resolving to its own document - and every DID of the old registry carried,
    once."""
    in_use, deployed = ctx.facts[IN_USE], ctx.facts[REDEPLOYED]
    with rpc_of(ctx) as rpc:
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
    """The code verification as one line (chain.registry's evidence)."""
    name = artifact.parent.name if artifact else "the artifact"
    if not evidence.get("runtime_equal"):
        return f"NOT VERIFIED: the code at the registry is not {name}'s runtime ({evidence})"
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
    if paused is not None:
        gas, wei = gas + paused.gas_used, wei + paused.cost_wei
    return gas, wei
