"""The chain as the harness drives it: JSON-RPC over httpx, transactions signed here with the
operator's key (keys.py), and sent so that a retry can never send one twice.

No unlocked account is used: a real network has none, and nonces - what makes a retry safe -
only mean something for transactions signed here. A transaction is signed once, with a fixed
nonce; when the RPC drops the answer or times out, the same signed bytes go out again (a node
takes them at most once) and the receipt is looked up by hash. "nonce too low" then means
either that ours was mined (its receipt exists) or that another sender of the same account -
the backend registering a DID - took the nonce: only then is it signed again, with the next.

web3 costs 1.8 s to import and hides these decisions, so it is not used; eth_account (0.5 s)
signs and is imported on first use.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import httpx

from rollback_drill.keys import Signer

T = TypeVar("T")
RECEIPT_POLL_S = 0.05
RETRY_PAUSE_S = 0.2


class RpcUnavailable(RuntimeError):
    """No usable answer: refused, timed out, connection dropped, or not JSON-RPC. A
    transaction sent when this was raised may or may not have reached the node."""


class RpcError(RuntimeError):
    """The node answered with a JSON-RPC error (revert data, when any, in `data`)."""

    def __init__(self, method: str, code: int, message: str, data: Any) -> None:
        super().__init__(f"{method}: JSON-RPC error {code}: {message}")
        self.code = code
        self.message = message
        self.data = data


class Reverted(RuntimeError):
    """A call or transaction reverted; `reason` is the custom error's name when known."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"reverted: {reason}{': ' + detail if detail else ''}")
        self.reason = reason


class Rpc:
    """One JSON-RPC endpoint; every call bounded by `timeout_s`. Thread-safe."""

    def __init__(self, url: str, timeout_s: float = 5.0) -> None:
        self.url = url
        self._client = httpx.Client(timeout=timeout_s, trust_env=False)
        self._ids = itertools.count(1)

    def __enter__(self) -> Rpc:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)}
        try:
            resp = self._client.post(self.url, json=body)
            answer = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise RpcUnavailable(f"{method}: {type(exc).__name__}: {exc}") from None
        if not isinstance(answer, dict):
            raise RpcUnavailable(f"{method}: HTTP {resp.status_code}, not a JSON-RPC answer")
        error = answer.get("error")
        if isinstance(error, dict):
            raise RpcError(
                method, int(error.get("code", 0)), str(error.get("message", "")), error.get("data")
            )
        if "result" not in answer:
            raise RpcUnavailable(f"{method}: HTTP {resp.status_code} without a result")
        return answer["result"]

    def quantity(self, method: str, params: Sequence[Any] = ()) -> int:
        return int(str(self.call(method, params)), 16)


def retrying(what: Callable[[], T], deadline: float) -> T:
    """`what()`, tried again while the RPC is unavailable, until `deadline` (monotonic)."""
    while True:
        try:
            return what()
        except RpcUnavailable:
            if time.monotonic() >= deadline:
                raise
            time.sleep(RETRY_PAUSE_S)


# -- contracts --------------------------------------------------------------------------------


@cache
def keccak(data: bytes) -> bytes:
    from Crypto.Hash import keccak as _keccak

    return bytes(_keccak.new(data=data, digest_bits=256).digest())


def selector(signature: str) -> bytes:
    return keccak(signature.encode("ascii"))[:4]


def calldata(signature: str, types: Sequence[str] = (), args: Sequence[Any] = ()) -> str:
    from eth_abi.abi import encode

    return "0x" + (selector(signature) + encode(list(types), list(args))).hex()


@dataclass(frozen=True)
class Artifact:
    """A compiled contract as compile.mjs writes it."""

    path: Path
    name: str
    version: str | None
    abi: tuple[dict[str, Any], ...]
    bytecode: str
    deployed_bytecode: str
    source: str | None
    source_sha256: str | None

    def has_function(self, name: str) -> bool:
        return any(e.get("type") == "function" and e.get("name") == name for e in self.abi)

    def errors(self) -> dict[bytes, str]:
        """Custom errors by selector, to name a revert."""
        found = {}
        for entry in self.abi:
            if entry.get("type") == "error":
                types = ",".join(str(i["type"]) for i in entry.get("inputs", []))
                found[selector(f"{entry['name']}({types})")] = str(entry["name"])
        return found


@cache
def load_artifact(path: Path) -> Artifact:
    try:
        data = json.loads(path.read_text())
        return Artifact(
            path,
            str(data.get("contractName", path.stem)),
            data.get("version"),
            tuple(data["abi"]),
            str(data["bytecode"]),
            str(data.get("deployedBytecode", "")),
            data.get("source"),
            data.get("sourceSha256"),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(
            f"{path}: not a contract artifact (expected JSON with abi and bytecode): {exc}"
        ) from None


def revert_reason(exc: RpcError, errors: dict[bytes, str]) -> str | None:
    """The custom error a JSON-RPC error carries, or None when it is not a revert."""
    data = exc.data.get("data") if isinstance(exc.data, dict) else exc.data
    if isinstance(data, str) and data.startswith("0x") and len(data) >= 10:
        return errors.get(bytes.fromhex(data[2:10]), f"error 0x{data[2:10]}")
    return "revert" if "revert" in exc.message.lower() else None


def eth_call(rpc: Rpc, address: str, data: str, errors: dict[bytes, str]) -> bytes:
    """A read; a revert becomes Reverted naming its custom error."""
    try:
        result = rpc.call("eth_call", [{"to": address, "data": data}, "latest"])
    except RpcError as exc:
        reason = revert_reason(exc, errors)
        if reason is None:
            raise
        raise Reverted(reason, exc.message) from None
    return bytes.fromhex(str(result).removeprefix("0x"))


# -- transactions -----------------------------------------------------------------------------


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


_ALREADY_SEEN = ("nonce too low", "already known", "known transaction", "already imported")


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
    from eth_abi.abi import encode

    started = time.monotonic()
    artifact = load_artifact(artifact_path)
    data = artifact.bytecode + encode(["string"], [version]).hex()
    with _rpc(rpc) as client:
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
        return send_transaction(
            client,
            signer,
            to=address,
            data=calldata("pause()" if paused else "unpause()"),
            errors=artifact.errors(),
        )


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
