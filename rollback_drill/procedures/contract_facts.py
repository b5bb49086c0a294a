"""What the steps of a Smart Contract Rollback hand each other (procedures/contract.py): the
registry in use, whether it was paused, the previous version compiled and redeployed, the
state carried over, the moment the backend moved - and how a step reaches the chain."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rollback_drill.chain import keys
from rollback_drill.chain.deploy import Deployment, Rpc
from rollback_drill.chain.migration import Migration
from rollback_drill.steps.facts import Fact
from rollback_drill.steps.procedure import DrillContext
from rollback_drill.steps.timeline import FAULT_INJECTED

AMOY = ("Polygon Amoy", 80002)
POLYGON = ("Polygon mainnet", 137)


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
    gas_used: int = 0
    cost_wei: int = 0
    seconds: float = 0.0


IN_USE = Fact[InUse]("registry in use", "the registry the backend uses, to be rolled back")
PAUSE = Fact[Pause]("pause", "whether the registry in use was paused, and at what cost")
COMPILED = Fact[Path]("previous contract compiled", "its artifact, recompiled from its source")
REDEPLOYED = Fact[Deployment]("redeployed registry", "the previous version, freshly deployed")
MIGRATED = Fact[Migration]("registry state carried over", "the carry-over's first pass")
REPOINTED = Fact[int]("backend repointed", "the last block before the backend used it")
CAUGHT_UP = Fact[Migration]("registrations caught up", "what landed on the old registry since")


def rpc_of(ctx: DrillContext, timeout_s: float = 5.0) -> Rpc:
    url = ctx.stack.target().rpc_url
    if not url:
        raise RuntimeError("the stack names no chain RPC URL")
    return Rpc(url, timeout_s)


def signer_of(ctx: DrillContext) -> keys.Signer:
    return keys.operator_signer(ctx.stack.workdir)


def since_fault(ctx: DrillContext) -> float | None:
    timeline = ctx.timeline
    return (
        round(timeline.now() - timeline.at(FAULT_INJECTED), 3)
        if timeline.has(FAULT_INJECTED)
        else None
    )
