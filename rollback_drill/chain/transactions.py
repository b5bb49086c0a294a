"""Sending a signed transaction exactly once, whatever the RPC does.

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

from rollback_drill.chain.evm import Rpc, revert_reason
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

    def retrying(self, what: Callable[[], T], deadline: float) -> T:
        while True:
            try:
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
    """Sign and send once, whatever the RPC does; see the module docstring."""
    deadline = time.monotonic() + timeout_s
    counters = _Counters()
    errors = errors or {}
    chain_id = counters.retrying(lambda: rpc.quantity("eth_chainId"), deadline)
    while True:
        nonce = counters.retrying(
            lambda: rpc.quantity("eth_getTransactionCount", [signer.address, "pending"]), deadline
        )
        gas = _estimate(rpc, signer, to, data, errors, counters, deadline)
        price = counters.retrying(lambda: rpc.quantity("eth_gasPrice"), deadline)
        tx: dict[str, Any] = {
            "nonce": nonce, "gasPrice": price, "gas": gas, "data": data, "value": 0,
            "chainId": chain_id,
        }  # fmt: skip
        if to is not None:
            tx["to"] = bytes.fromhex(to.removeprefix("0x"))
        raw, tx_hash = signer.sign(tx)
        receipt = _until_mined(rpc, signer, raw, tx_hash, nonce, counters, deadline, receipt_wait_s)
        if receipt is None:
            counters.resigned += 1
            continue
        if receipt.get("status") != "0x1":
            raise Reverted("transaction failed", f"{tx_hash} in block {receipt.get('blockNumber')}")
        return Receipt(
            tx_hash,
            int(str(receipt["blockNumber"]), 16),
            int(str(receipt["gasUsed"]), 16),
            int(str(receipt.get("effectiveGasPrice") or hex(price)), 16),
            receipt.get("contractAddress"),
            counters.broadcasts,
            counters.resigned,
            counters.rpc_failures,
        )


def _estimate(
    rpc: Rpc,
    signer: Signer,
    to: str | None,
    data: str,
    errors: dict[bytes, str],
    counters: _Counters,
    deadline: float,
) -> int:
    """The gas the transaction needs, with a margin; a revert (EnforcedPause, NotOwner) is
    raised here, named, before anything is signed."""
    call: dict[str, Any] = {"from": signer.address, "data": data}
    if to is not None:
        call["to"] = to
    try:
        estimate = counters.retrying(lambda: rpc.quantity("eth_estimateGas", [call]), deadline)
    except RpcError as exc:
        reason = revert_reason(exc, errors)
        if reason is None:
            raise
        raise Reverted(reason, exc.message) from None
    return estimate * 5 // 4 + 10_000


def _until_mined(
    rpc: Rpc,
    signer: Signer,
    raw: str,
    tx_hash: str,
    nonce: int,
    counters: _Counters,
    deadline: float,
    receipt_wait_s: float,
) -> dict[str, Any] | None:
    """Broadcast `raw` until its receipt shows; None only when the node does not have it and
    its nonce is spent - another transaction of the account took it (sign again). A node may
    count a mined transaction's nonce a moment before it serves the receipt, so "no receipt
    yet" alone never means "not ours": the node is asked for the transaction itself, twice."""
    while True:
        if time.monotonic() >= deadline:
            raise TimeoutError(f"transaction {tx_hash} not mined in time")
        counters.broadcasts += 1
        try:
            rpc.call("eth_sendRawTransaction", [raw])
        except RpcUnavailable:
            counters.rpc_failures += 1  # taken or not: the answer is lost
        except RpcError as exc:
            if not any(text in exc.message.lower() for text in _ALREADY_SEEN):
                raise
        receipt = _receipt(rpc, tx_hash, counters)
        if receipt is not None:
            return receipt
        if _known(rpc, tx_hash, counters) is False:
            if not _nonce_used(rpc, signer, nonce, counters):
                continue  # it never got there: the same bytes again, now
            time.sleep(RETRY_PAUSE_S)
            receipt = _receipt(rpc, tx_hash, counters)
            if receipt is not None:
                return receipt
            if _known(rpc, tx_hash, counters) is False:
                return None  # the nonce went to another transaction
        until = min(deadline, time.monotonic() + receipt_wait_s)
        while time.monotonic() < until:
            time.sleep(RECEIPT_POLL_S)
            receipt = _receipt(rpc, tx_hash, counters)
            if receipt is not None:
                return receipt


def _receipt(rpc: Rpc, tx_hash: str, counters: _Counters) -> dict[str, Any] | None:
    try:
        receipt = rpc.call("eth_getTransactionReceipt", [tx_hash])
    except RpcUnavailable:
        counters.rpc_failures += 1
        return None
    return receipt if isinstance(receipt, dict) else None


def _known(rpc: Rpc, tx_hash: str, counters: _Counters) -> bool | None:
    """Whether the node has the transaction (pending or mined); None: it did not answer."""
    try:
        return rpc.call("eth_getTransactionByHash", [tx_hash]) is not None
    except RpcUnavailable:
        counters.rpc_failures += 1
        return None


def _nonce_used(rpc: Rpc, signer: Signer, nonce: int, counters: _Counters) -> bool:
    try:
        return rpc.quantity("eth_getTransactionCount", [signer.address, "latest"]) > nonce
    except RpcUnavailable:
        counters.rpc_failures += 1
        return False
