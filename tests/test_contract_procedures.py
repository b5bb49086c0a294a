"""The contract rollback is shown to fail when it is done wrong - the state not carried over,
the backend's configuration changed without the restart, the Amoy procedure run against
mainnet - each on a real stack under load, turning red with the reason. And the operator's
key, which every one of these drills used, appears in none of their artifacts."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rollback_drill import DeployContractRelease, Drill, run_drill
from rollback_drill.chain import keys
from rollback_drill.chain.deploy import Rpc
from rollback_drill.engine.outcome import DrillOutcome
from rollback_drill.files.spec import LoadedStack
from rollback_drill.procedures import contract
from rollback_drill.procedures.contract_facts import REDEPLOYED, REPOINTED
from rollback_drill.stack.local import LocalStack
from rollback_drill.steps.procedure import DrillContext, Procedure, Step, StepResult

pytestmark = pytest.mark.slow  # whole contract drills, each made wrong: not in the fast tier

Run = Callable[[Drill], DrillOutcome]


@pytest.fixture
def run(stack_file: LoadedStack, tmp_path: Path) -> Iterator[Run]:
    def go(drill: Drill) -> DrillOutcome:
        good = drill.check(stack_file)
        artifacts = tmp_path / "artifacts"
        with LocalStack(drill.stack_file(stack_file), seed_users=30).running(good) as stack:
            key = keys.operator_signer(stack.workdir).key.reveal()
            outcome = run_drill(stack, drill, artifacts=artifacts)
        for path in artifacts.rglob("*"):
            if path.is_file():
                text = path.read_bytes()
                assert key[2:].encode() not in text, f"the operator's key is in {path}"
        return outcome

    yield go


def _drill(procedure: Procedure, chain_id: int = 80002) -> Drill:
    return Drill(
        f"contract, wrong: {procedure.name}",
        "1.9.0",
        DeployContractRelease(),
        procedure,
        "critical",
        only_services=("backend",),
        chain_id=chain_id,
    )


def _without(procedure: Procedure, *prefixes: str) -> Procedure:
    steps = tuple(s for s in procedure.steps if not s.name.startswith(prefixes))
    assert len(steps) == len(procedure.steps) - len(prefixes)
    return dataclasses.replace(procedure, steps=steps, name=procedure.name + " (cut)")


def test_a_redeploy_without_carrying_the_state_loses_every_did(run: Run) -> None:
    outcome = run(_drill(_without(contract.AMOY_PROCEDURE, "Carry the", "Catch up")))
    assert not outcome.passed
    assert "DIDs lost" in (outcome.failure or ""), outcome.failure
    assert "chain.resolution" in (outcome.failure or "")  # the test DID no longer resolves


def test_a_configuration_change_without_the_restart_leaves_the_defect(run: Run) -> None:
    """The backend's .env names the new registry (and release 1.4.0), but the backend is not
    restarted: it goes on answering from 1.9.0's registry."""

    def configure_only(ctx: DrillContext) -> StepResult:
        version = ctx.stack.loaded.release(ctx.good_release).contract_version
        ctx.stack.use_registry(version, ctx.facts[REDEPLOYED].address)
        ctx.stack.set_release("backend", ctx.good_release)  # .env rendered, no restart
        with Rpc(ctx.stack.target().rpc_url or "") as rpc:
            ctx.facts[REPOINTED] = rpc.quantity("eth_blockNumber")
        return StepResult()

    procedure = contract.AMOY_PROCEDURE
    steps = tuple(
        dataclasses.replace(s, action=configure_only) if s.name.startswith("Point") else s
        for s in procedure.steps
    )
    outcome = run(_drill(dataclasses.replace(procedure, steps=steps, name="no restart")))
    assert not outcome.passed
    failure = outcome.failure or ""
    assert "rollback.contract: FAIL" in failure and "contract version 1.9.0" in failure, failure
    assert "another person's identity" in failure  # chain.resolution: the defect answers on


def test_the_amoy_procedure_refuses_mainnet(run: Run) -> None:
    outcome = run(_drill(contract.AMOY_PROCEDURE, chain_id=137))
    assert not outcome.passed
    assert "not Polygon Amoy (80002)" in (outcome.failure or ""), outcome.failure


def test_wiring_the_verification_before_the_repoint_is_refused(stack_file: LoadedStack) -> None:
    procedure = contract.MAINNET_PROCEDURE
    verify = procedure.steps[-1]
    early = (*procedure.steps[:3], verify, *procedure.steps[3:-1])
    drill = _drill(dataclasses.replace(procedure, steps=early), chain_id=137)
    with pytest.raises(ValueError, match=r"Verify on Polygonscan\) needs \['backend repointed'\]"):
        drill.check(stack_file)
    assert isinstance(verify, Step)
