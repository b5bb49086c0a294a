"""What the harness asks of a DIDRegistry on chain: its registrations (from its events), what it
resolves a subject to, whether it can be paused, and registering as the operator.

The registry's state is read from its `DIDRegistered` events, not its views: every version
emits them, while a view may be paused (1.9.0 refuses `resolve` while paused) or be the very
defect being rolled back. The last event of a subject is its document; subjects keep the
order they were first registered in.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rollback_drill.chain.deploy import (
    Artifact,
    Receipt,
    Rpc,
    calldata,
    eth_call,
    keccak,
    load_artifact,
    selector,
    send_transaction,
)
from rollback_drill.chain.keys import Signer
from rollback_drill.process.errors import Reverted

DID_REGISTERED = "0x" + keccak(b"DIDRegistered(bytes32,string)").hex()
LOG_CHUNK_BLOCKS = 2000
"""Blocks per eth_getLogs: public Polygon endpoints refuse much wider ranges."""
PUSH4 = 0x63


@dataclass(frozen=True)
class Registration:
    subject: bytes
    document: str
    block: int
    log_index: int


def registrations(
    rpc: Rpc, address: str, from_block: int = 0, to_block: int | None = None
) -> list[Registration]:
    """Every DIDRegistered event of the registry in [from_block, to_block], in chain order."""
    from eth_abi.abi import decode

    last = rpc.quantity("eth_blockNumber") if to_block is None else to_block
    found: list[Registration] = []
    for start, end in _ranges(from_block, last):
        logs = rpc.call(
            "eth_getLogs",
            [{"address": address, "fromBlock": hex(start), "toBlock": hex(end),
              "topics": [DID_REGISTERED]}],
        )  # fmt: skip
        for log in logs:
            (document,) = decode(["string"], bytes.fromhex(str(log["data"]).removeprefix("0x")))
            found.append(
                Registration(
                    bytes.fromhex(str(log["topics"][1]).removeprefix("0x")),
                    str(document),
                    int(str(log["blockNumber"]), 16),
                    int(str(log["logIndex"]), 16),
                )
            )
    return sorted(found, key=lambda r: (r.block, r.log_index))


def _ranges(start: int, end: int) -> Iterator[tuple[int, int]]:
    while start <= end:
        yield start, min(end, start + LOG_CHUNK_BLOCKS - 1)
        start += LOG_CHUNK_BLOCKS


def state(events: list[Registration]) -> dict[bytes, str]:
    """Subject -> its document now (the last event wins), in first-registration order."""
    documents: dict[bytes, str] = {}
    for event in events:
        documents[event.subject] = event.document
    return documents


class Registry:
    """One registry: its address and the artifact of its contract version."""

    def __init__(self, rpc: Rpc, address: str, artifact: Artifact | Path) -> None:
        self.rpc = rpc
        self.address = address.lower()
        self.artifact = artifact if isinstance(artifact, Artifact) else load_artifact(artifact)
        self.errors = self.artifact.errors()

    def __repr__(self) -> str:
        return f"Registry({self.address}, {self.artifact.version or self.artifact.name})"

    def resolve(self, subject: bytes) -> str | None:
        """Its document for `subject`; None when NotRegistered."""
        from eth_abi.abi import decode

        try:
            raw = eth_call(
                self.rpc,
                self.address,
                calldata("resolve(bytes32)", ["bytes32"], [subject]),
                self.errors,
            )
        except Reverted as exc:
            if exc.reason == "NotRegistered":
                return None
            raise
        return str(decode(["string"], raw)[0])

    def version(self) -> str:
        from eth_abi.abi import decode

        raw = eth_call(self.rpc, self.address, calldata("version()"), self.errors)
        return str(decode(["string"], raw)[0])

    def paused(self) -> bool | None:
        """True or False; None for a contract without a pause."""
        if not self.can_pause():
            return None
        raw = eth_call(self.rpc, self.address, calldata("paused()"), self.errors)
        return int.from_bytes(raw[:32], "big") != 0

    def can_pause(self) -> bool:
        """Whether this contract has `pause()`: its artifact says so, and the code deployed at
        the address dispatches the selector (a PUSH4 of it), so neither alone is trusted."""
        if not self.artifact.has_function("pause"):
            return False
        code = bytes.fromhex(
            str(self.rpc.call("eth_getCode", [self.address, "latest"])).removeprefix("0x")
        )
        return bytes([PUSH4]) + selector("pause()") in code

    def register(self, signer: Signer, subject: bytes, document: str, timeout_s: float) -> Receipt:
        data = calldata("register(bytes32,string)", ["bytes32", "string"], [subject, document])
        return send_transaction(
            self.rpc, signer, to=self.address, data=data, errors=self.errors, timeout_s=timeout_s
        )

    def set_paused(self, signer: Signer, paused: bool) -> Receipt:
        return send_transaction(
            self.rpc,
            signer,
            to=self.address,
            data=calldata("pause()" if paused else "unpause()"),
            errors=self.errors,
        )

    def registrations(self, from_block: int = 0, to_block: int | None = None) -> list[Registration]:
        return registrations(self.rpc, self.address, from_block, to_block)
