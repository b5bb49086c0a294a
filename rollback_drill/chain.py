"""The DID registry on an EVM chain, through web3: deploy, pause, repoint, verify.

On the embedded chain (anvil) transactions come from an unlocked dev account, so no key
exists anywhere; against a real network the deployer key is read from the environment
variable ROLLBACK_DRILL_DEPLOYER_KEY and never stored. web3 costs ~1.2 s to import, so it
is imported on first use, not when the harness loads.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from web3 import Web3

DEPLOYER_KEY_ENV = "ROLLBACK_DRILL_DEPLOYER_KEY"


@dataclass(frozen=True)
class Artifact:
    name: str
    abi: list[dict[str, Any]]
    bytecode: str


@dataclass(frozen=True)
class Deployment:
    address: str
    tx_hash: str
    block: int
    version: str
    operator: str


@dataclass(frozen=True)
class RegistryStatus:
    chain_id: int
    block_number: int
    address: str
    has_code: bool
    version: str | None
    paused: bool | None


@cache
def load_artifact(path: Path) -> Artifact:
    try:
        data = json.loads(path.read_text())
        return Artifact(data.get("contractName", path.stem), data["abi"], data["bytecode"])
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(
            f"{path}: not a contract artifact (expected JSON with abi and bytecode): {exc}"
        ) from None


def connect(rpc_url: str, timeout_s: float = 5.0) -> Web3:
    from web3 import HTTPProvider, Web3

    return Web3(HTTPProvider(rpc_url, request_kwargs={"timeout": timeout_s}))


def _send(w3: Web3, tx: dict[str, Any]) -> Any:
    key = os.environ.get(DEPLOYER_KEY_ENV)
    if key:
        account = w3.eth.account.from_key(key)
        tx = {**tx, "from": account.address, "nonce": w3.eth.get_transaction_count(account.address)}
        tx.setdefault("gas", w3.eth.estimate_gas(tx))  # type: ignore[arg-type]
        tx.setdefault("gasPrice", w3.eth.gas_price)
        tx.setdefault("chainId", w3.eth.chain_id)
        signed = account.sign_transaction(tx)
        tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    else:
        tx = {**tx, "from": w3.eth.accounts[0]}
        tx_hash = w3.eth.send_transaction(tx)  # type: ignore[arg-type]
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
    if receipt["status"] != 1:
        raise RuntimeError(f"transaction {tx_hash.hex()} reverted")
    return receipt


def operator_address(w3: Web3) -> str:
    key = os.environ.get(DEPLOYER_KEY_ENV)
    return str(w3.eth.account.from_key(key).address) if key else str(w3.eth.accounts[0])


def deploy_registry(rpc_url: str, artifact_path: Path, version: str) -> Deployment:
    """Deploy a fresh DIDRegistry that reports `version`; the deployer becomes its owner."""
    w3 = connect(rpc_url)
    artifact = load_artifact(artifact_path)
    contract = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    data = contract.constructor(version).build_transaction(
        {"from": operator_address(w3), "gas": 5_000_000}
    )["data"]
    receipt = _send(w3, {"data": data, "gas": 5_000_000})
    return Deployment(
        address=str(receipt["contractAddress"]),
        tx_hash=receipt["transactionHash"].to_0x_hex(),
        block=int(receipt["blockNumber"]),
        version=version,
        operator=operator_address(w3),
    )


def _registry(w3: Web3, artifact_path: Path, address: str) -> Any:
    from web3 import Web3 as _W3

    return w3.eth.contract(
        address=_W3.to_checksum_address(address), abi=load_artifact(artifact_path).abi
    )


def set_paused(rpc_url: str, artifact_path: Path, address: str, paused: bool) -> str:
    """The runbook's emergency contract pause (and its undo); returns the transaction hash."""
    w3 = connect(rpc_url)
    registry = _registry(w3, artifact_path, address)
    fn = registry.functions.pause() if paused else registry.functions.unpause()
    data = fn.build_transaction({"from": operator_address(w3), "gas": 200_000})["data"]
    receipt = _send(w3, {"to": registry.address, "data": data, "gas": 200_000})
    return str(receipt["transactionHash"].to_0x_hex())


def status(
    rpc_url: str, artifact_path: Path, address: str | None, timeout_s: float = 5.0
) -> RegistryStatus:
    """What a verifier asks of the chain: reachable, code at the address, version, paused."""
    w3 = connect(rpc_url, timeout_s)
    chain_id = int(w3.eth.chain_id)
    block = int(w3.eth.block_number)
    if not address:
        return RegistryStatus(chain_id, block, "", False, None, None)
    from web3 import Web3 as _W3

    has_code = len(w3.eth.get_code(_W3.to_checksum_address(address))) > 0
    version: str | None = None
    paused: bool | None = None
    if has_code:
        registry = _registry(w3, artifact_path, address)
        version = str(registry.functions.version().call())
        paused = bool(registry.functions.paused().call())
    return RegistryStatus(chain_id, block, address, has_code, version, paused)
