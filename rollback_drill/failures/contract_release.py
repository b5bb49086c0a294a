"""A release that changes the contract goes out as a deploy pipeline does it: the release's
contract version is deployed by the operator, the registry's state is carried into it from the
registry the backend uses now (a new contract starts empty), the services that use the chain
are redeployed with configuration naming it, and what was registered meanwhile is caught up.

`DeployContractRelease` is that, as a drill's scenario; `roll_out` is the same for tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rollback_drill.chain import keys
from rollback_drill.chain.deploy import Rpc, deploy_registry
from rollback_drill.chain.migration import carry_over
from rollback_drill.chain.registry import Registry
from rollback_drill.process.errors import StackError
from rollback_drill.stack.base import Stack
from rollback_drill.steps.facts import Fact
from rollback_drill.steps.procedure import DrillContext, StepResult


def chain_services(stack: Stack) -> list[str]:
    """The app services that talk to the chain (their configuration names the registry)."""
    spec = stack.loaded.spec
    return [s for s in stack.app_services() if "chain" in spec.services[s].uses]


def roll_out(stack: Stack, release: str) -> dict[str, Any]:
    """Deploy `release`'s contract, carry the state over, point the chain's users at it."""
    loaded = stack.loaded
    version = loaded.release(release).contract_version
    now = stack.target()
    if not now.rpc_url or not now.registry_address or now.expected_contract_version is None:
        raise StackError("the stack names no registry in use to roll a contract release from")
    signer = keys.operator_signer(stack.workdir)
    with Rpc(now.rpc_url) as rpc:
        source = Registry(
            rpc, now.registry_address, loaded.contract_artifact(now.expected_contract_version)
        )
        deployed = deploy_registry(rpc, loaded.contract_artifact(version), version, signer)
        target = Registry(rpc, deployed.address, loaded.contract_artifact(version))
        carried = carry_over(source, target, signer)
        stack.use_registry(version, deployed.address)
        for service in chain_services(stack):
            stack.redeploy(service, release)
        caught_up = carry_over(source, target, signer, from_block=carried.to_block + 1)
    return {
        "contract_version": version,
        "registry": deployed.address,
        "replaces": source.address,
        "dids_carried": carried.carried + caught_up.carried,
        "gas": deployed.gas_used + carried.gas_used + caught_up.gas_used,
    }


@dataclass(frozen=True)
class DeployContractRelease:
    """A contract release goes out: see the module docstring. Only the services that use the
    chain change; the others keep running as they are."""

    name: str = "deploy_contract_release"
    description: str = (
        "deploy release N+1's contract, carry the registry's state into it and point the "
        "backend at it (its defect then shows in production)"
    )
    provides: tuple[Fact[Any], ...] = ()
    changes_release: bool = True

    def inject(self, ctx: DrillContext) -> StepResult:
        return StepResult({"release": ctx.bad_release, **roll_out(ctx.stack, ctx.bad_release)})
