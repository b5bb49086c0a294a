"""Sending a signed transaction exactly once, whatever the RPC does: a thin layer on web3
(`w3.eth`: nonce, gas, `send_raw_transaction`, receipt and transaction by hash), because web3
itself sends once and gives up (evm.py says why its middleware does not do this).

No unlocked account is used: a real network has none, and nonces - what makes a retry safe -
only mean something for transactions signed here (keys.py). A transaction is signed once, with
a fixed nonce; when the RPC drops the answer or times out, the same signed bytes go out again
(a node takes them at most once) and the receipt is looked up by hash. It is signed again only
when the node does not have it and its nonce is spent: another sender of the same account (the
backend registering a DID) took it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from rollback_drill.chain.evm import Rpc, mapped
from rollback_drill.chain.keys import Signer
from rollback_drill.process.errors import Reverted, RpcError, RpcUnavailable

T = TypeVar("T")
RECEIPT_POLL_S = 0.05
RETRY_PAUSE_S = 0.2


@dataclass(frozen=True)
class Receipt:
    tx_hash: str
    block: int
    gas_used: int
    gas_price: int  # wei per gas actually paid
    contract_address: str | None
    broadcasts: int  # times the signed bytes went out (1 unless the RPC failed us)
    resigned: int  # times another sender took our nonce and we signed again
    rpc_failures: int  # calls that got no usable answer on the way

    @property
    def cost_wei(self) -> int:
        return self.gas_used * self.gas_price


# The node has this transaction, or another holds its nonce (mined: "nonce too low"; still
# pending: "replacement transaction underpriced") - either way the receipt and the nonce decide
# what comes next: wait, send the same bytes again, or sign again with the next nonce.
_ALREADY_SEEN = (
    "nonce too low",
    "already known",
    "known transaction",
    "already imported",
    "replacement transaction underpriced",
)


class _Counters:
    def __init__(self) -> None:
        self.broadcasts = 0
        self.resigned = 0
        self.rpc_failures = 0

    def retrying(
        self, method: str, what: Callable[[], T], deadline: float, errors: dict[bytes, str]
    ) -> T:
        while True:
            try:
                with mapped(method, errors):
                    return what()
            except RpcUnavailable:
                self.rpc_failures += 1
                if time.monotonic() >= deadline:
                    raise
                time.sleep(RETRY_PAUSE_S)


def send_transaction(
    rpc: Rpc,
    signer: Signer,
    *,
    data: str,
    to: str | None = None,
    errors: dict[bytes, str] | None = None,
    timeout_s: float = 60.0,
    receipt_wait_s: float = 5.0,
) -> Receipt:
    """Sign and send once, whatever the RPC does; see the module docstring. A revert the gas
    estimate foresees (EnforcedPause, NotOwner) is raised as `Reverted`, named, before
    anything is signed."""
    from web3 import Web3

    deadline = time.monotonic() + timeout_s
    counters = _Counters()
    errors = errors or {}
    eth = rpc.w3.eth
    sender = Web3.to_checksum_address(signer.address)
    chain_id = counters.retrying("eth_chainId", lambda: eth.chain_id, deadline, errors)
    call: dict[str, Any] = {"from": sender, "data": data}
    if to is not None:
        call["to"] = Web3.to_checksum_address(to)
    while True:
        nonce = counters.retrying(
            "eth_getTransactionCount",
            lambda: eth.get_transaction_count(sender, "pending"),
            deadline,
            errors,
        )
        estimate = counters.retrying(
            "eth_estimateGas",
            lambda: eth.estimate_gas(call),  # type: ignore[arg-type]
            deadline,
            errors,
        )
        price = counters.retrying("eth_gasPrice", lambda: eth.gas_price, deadline, errors)
        tx: dict[str, Any] = {
            "nonce": nonce, "gasPrice": price, "gas": estimate * 5 // 4 + 10_000, "data": data,
            "value": 0, "chainId": chain_id,
        }  # fmt: skip
        if to is not None:
            tx["to"] = call["to"]
        raw, tx_hash = signer.sign(tx)
        sending = _Sending(rpc, sender, raw, tx_hash, nonce, counters)
        receipt = sending.until_mined(deadline, receipt_wait_s)
        if receipt is None:
            counters.resigned += 1
            continue
        if receipt.get("status") != 1:
            raise Reverted("transaction failed", f"{tx_hash} in block {receipt.get('blockNumber')}")
        address = receipt.get("contractAddress")
        return Receipt(
            tx_hash,
            int(receipt["blockNumber"]),
            int(receipt["gasUsed"]),
            int(receipt.get("effectiveGasPrice") or price),
            str(address).lower() if address else None,
            counters.broadcasts,
            counters.resigned,
            counters.rpc_failures,
        )


@dataclass
class _Sending:
    """One signed transaction on its way: its bytes, hash and nonce."""

    rpc: Rpc
    sender: str
    raw: str
    tx_hash: str
    nonce: int
    counters: _Counters

    def until_mined(self, deadline: float, receipt_wait_s: float) -> dict[str, Any] | None:
        """Broadcast the bytes until their receipt shows; None only when the node does not
        have them and their nonce is spent - another transaction of the account took it (sign
        again). A node may count a mined transaction's nonce a moment before it serves the
        receipt, so "no receipt yet" alone never means "not ours": the node is asked for the
        transaction itself, twice."""
        while True:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"transaction {self.tx_hash} not mined in time")
            self.counters.broadcasts += 1
            try:
                with mapped("eth_sendRawTransaction"):
                    self.rpc.w3.eth.send_raw_transaction(self.raw)  # type: ignore[arg-type]
            except RpcUnavailable:
                self.counters.rpc_failures += 1  # taken or not: the answer is lost
            except RpcError as exc:
                if not any(text in exc.message.lower() for text in _ALREADY_SEEN):
                    raise
            receipt = self.receipt()
            if receipt is not None:
                return receipt
            if self.known() is False:
                if not self.nonce_used():
                    continue  # it never got there: the same bytes again, now
                time.sleep(RETRY_PAUSE_S)
                receipt = self.receipt()
                if receipt is not None:
                    return receipt
                if self.known() is False:
                    return None  # the nonce went to another transaction
            until = min(deadline, time.monotonic() + receipt_wait_s)
            while time.monotonic() < until:
                time.sleep(RECEIPT_POLL_S)
                receipt = self.receipt()
                if receipt is not None:
                    return receipt

    def receipt(self) -> dict[str, Any] | None:
        from web3.exceptions import TransactionNotFound

        try:
            with mapped("eth_getTransactionReceipt"):
                return dict(self.rpc.w3.eth.get_transaction_receipt(self.tx_hash))  # type: ignore[arg-type]
        except TransactionNotFound:
            return None
        except RpcUnavailable:
            self.counters.rpc_failures += 1
            return None

    def known(self) -> bool | None:
        """Whether the node has the transaction (pending or mined); None: it did not answer."""
        from web3.exceptions import TransactionNotFound

        try:
            with mapped("eth_getTransactionByHash"):
                self.rpc.w3.eth.get_transaction(self.tx_hash)  # type: ignore[arg-type]
        except TransactionNotFound:
            return False
        except RpcUnavailable:
            self.counters.rpc_failures += 1
            return None
        return True

    def nonce_used(self) -> bool:
        try:
            with mapped("eth_getTransactionCount"):
                count = self.rpc.w3.eth.get_transaction_count(self.sender, "latest")  # type: ignore[arg-type]
        except RpcUnavailable:
            self.counters.rpc_failures += 1
            return False
        return count > self.nonce
