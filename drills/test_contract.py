"""Runbook: Smart Contract Rollback (Polygon Amoy Testnet, Production Mainnet).

Release 1.9.0's DIDRegistry answers a DID nobody registered with another DID's document: a
security breach, critical, the emergency row. On Amoy (the stack's chain runs as 80002): check
the contract's health, redeploy the previous version (1.4.0), carry the registry's state over,
point the backend at it, verify. On mainnet (chain 137): pause first, then the same, verified
as Polygonscan does - while the RPC drops and stalls the migration's transactions. Release
1.9.1's contract has no pause: the mainnet drill on it shows the defect live until the backend
is repointed, and says so.
"""

from __future__ import annotations

import pytest

from rollback_drill import DeployContractRelease, Drill, DrillRunner, contract

pytestmark = [pytest.mark.drill, pytest.mark.contract]

MIGRATION_FAULTS = contract.RpcFaults(drop_answer=(3,), drop_request=(7,), stall=(12,), stall_s=3.0)
"""Mid-migration: an answer lost for a transaction the node took, a request the node never
saw, an answer held past the client's timeout."""

AMOY = Drill(
    name="contract: amoy",
    release="1.9.0",
    scenario=DeployContractRelease(),
    procedure=contract.AMOY_PROCEDURE,
    severity="critical",
    only_services=("backend",),
    chain_id=contract.AMOY[1],
)
MAINNET = Drill(
    name="contract: mainnet",
    release="1.9.0",
    scenario=DeployContractRelease(),
    procedure=contract.mainnet(MIGRATION_FAULTS),
    severity="critical",
    only_services=("backend",),
    chain_id=contract.POLYGON[1],
)
MAINNET_NO_PAUSE = Drill(
    name="contract: mainnet, no pause",
    release="1.9.1",
    scenario=DeployContractRelease(),
    procedure=contract.MAINNET_PROCEDURE,
    severity="critical",
    only_services=("backend",),
    chain_id=contract.POLYGON[1],
)


@pytest.mark.parametrize(
    "drill",
    [AMOY, MAINNET, MAINNET_NO_PAUSE],
    ids=["amoy", "mainnet", "mainnet_no_pause"],
)
def test_contract_rollback(drill: Drill, drill_runner: DrillRunner) -> None:
    outcome = drill_runner(drill)
    assert outcome.passed, outcome.failure
    figures = outcome.figures()
    assert figures["dids_lost"] == 0
    assert figures["dids_registered_twice"] == 0
    assert figures["dids_expected"] == figures["dids_on_old_registry"] > 1
    assert figures["bytecode"].startswith("runtime code equal"), figures["bytecode"]
    assert figures["gas_total"] > figures["deploy_gas"] > 0
    if drill is MAINNET:
        assert figures["pause_s"] > 0 and "refused (EnforcedPause)" in figures["pause"]
        assert figures["rpc_faults"].startswith("eth_sendRawTransaction")
    if drill is MAINNET_NO_PAUSE:
        assert figures["pause"].startswith("NOT SUPPORTED")
        assert figures["defect_while_not_paused"].startswith("another DID's document")
        assert figures["defect_live_after_fault_s"] > 0
