"""The chain as the harness drives it: the DID registry deployed, paused and unpaused by the
operator (keys.py) through web3's contract objects built from the artifact's ABI (evm.py),
every transaction signed here and sent exactly once (transactions.py), and a dev chain's
operator funded.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from rollback_drill.chain.artifacts import Artifact, keccak, load_artifact, selector
from rollback_drill.chain.evm import Rpc
from rollback_drill.chain.keys import Signer
from rollback_drill.chain.transactions import Receipt, send_transaction
from rollback_drill.process.errors import Reverted, RpcError, RpcUnavailable

# -- a dev chain's operator --------------------------------------------------------------------


def contract_address(sender: str, nonce: int) -> str:
    """Where `sender`'s transaction number `nonce` deploys a contract (CREATE)."""
    import rlp  # type: ignore[import-untyped]

    encoded = rlp.encode([bytes.fromhex(sender.removeprefix("0x")), nonce])
    return "0x" + keccak(bytes(encoded))[12:].hex()


def fund_dev_operator(rpc: Rpc | str, address: str, wei: int) -> None:
    """On a dev chain (anvil) only: give the operator gas money, and let services that send
    through the node (eth_sendTransaction, as behind a node-side signer) send as it. Anvil's
    own accounts stay unused."""
    with _rpc(rpc) as client:
        client.call("anvil_setBalance", [address, hex(wei)])
        client.call("anvil_impersonateAccount", [address])


# -- the registry -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Deployment:
    address: str
    tx_hash: str
    block: int
    version: str
    operator: str
    gas_used: int
    gas_price: int
    seconds: float
    broadcasts: int = 1
    rpc_failures: int = 0


def deploy_registry(
    rpc: Rpc | str, artifact_path: Path, version: str, signer: Signer, timeout_s: float = 60.0
) -> Deployment:
    """Deploy a fresh DIDRegistry that reports `version`; the signer becomes its owner."""
    started = time.monotonic()
    artifact = load_artifact(artifact_path)
    if not artifact.bytecode:
        raise ValueError(f"{artifact_path}: not a contract artifact (expected bytecode to deploy)")
    with _rpc(rpc) as client:
        data = str(client.deployer(artifact).constructor(version).data_in_transaction)
        receipt = send_transaction(
            client, signer, data=data, errors=artifact.errors(), timeout_s=timeout_s
        )
    if not receipt.contract_address:
        raise RuntimeError(f"deployment {receipt.tx_hash} created no contract")
    return Deployment(
        address=str(receipt.contract_address).lower(),
        tx_hash=receipt.tx_hash,
        block=receipt.block,
        version=version,
        operator=signer.address,
        gas_used=receipt.gas_used,
        gas_price=receipt.gas_price,
        seconds=time.monotonic() - started,
        broadcasts=receipt.broadcasts,
        rpc_failures=receipt.rpc_failures,
    )


def set_paused(
    rpc: Rpc | str, artifact_path: Path, address: str, paused: bool, signer: Signer
) -> Receipt:
    """The runbook's emergency contract pause (and its undo)."""
    artifact = load_artifact(artifact_path)
    with _rpc(rpc) as client:
        data = client.contract(artifact, address).encode_abi("pause" if paused else "unpause")
        return send_transaction(client, signer, to=address, data=data, errors=artifact.errors())


class _Borrowed:
    """An Rpc the caller owns: used, not closed."""

    def __init__(self, rpc: Rpc) -> None:
        self.rpc = rpc

    def __enter__(self) -> Rpc:
        return self.rpc

    def __exit__(self, *_: object) -> None:
        pass


def _rpc(rpc: Rpc | str) -> Rpc | _Borrowed:
    return Rpc(rpc) if isinstance(rpc, str) else _Borrowed(rpc)


__all__ = [
    "Artifact",
    "Deployment",
    "Receipt",
    "Reverted",
    "Rpc",
    "RpcError",
    "RpcUnavailable",
    "contract_address",
    "deploy_registry",
    "fund_dev_operator",
    "keccak",
    "load_artifact",
    "selector",
    "send_transaction",
    "set_paused",
]
