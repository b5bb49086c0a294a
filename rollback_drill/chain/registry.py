"""What the harness asks of a DIDRegistry on chain: its registrations (from its events), what it
resolves a subject to, whether it can be paused, and registering as the operator - through
web3's contract object for the version's artifact (evm.py).

The registry's state is read from its `DIDRegistered` events, not its views: every version
emits them, while a view may be paused (1.9.0 refuses `resolve` while paused) or be the very
defect being rolled back. The last event of a subject is its document; subjects keep the
order they were first registered in.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rollback_drill.chain.deploy import (
    Artifact,
    Receipt,
    Rpc,
    load_artifact,
    selector,
    send_transaction,
)
from rollback_drill.chain.evm import mapped
from rollback_drill.chain.keys import Signer
from rollback_drill.process.errors import Reverted

LOG_CHUNK_BLOCKS = 2000
"""Blocks per eth_getLogs: public Polygon endpoints refuse much wider ranges."""
PUSH4 = 0x63


@dataclass(frozen=True)
class Registration:
    subject: bytes
    document: str
    block: int
    log_index: int


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
        self.contract = rpc.contract(self.artifact, self.address)

    def __repr__(self) -> str:
        return f"Registry({self.address}, {self.artifact.version or self.artifact.name})"

    def _view(self, name: str, *args: Any) -> Any:
        """A view's decoded answer; a revert becomes Reverted naming its custom error."""
        with mapped("eth_call", self.errors):
            return self.contract.functions[name](*args).call()

    def resolve(self, subject: bytes) -> str | None:
        """Its document for `subject`; None when NotRegistered."""
        try:
            return str(self._view("resolve", subject))
        except Reverted as exc:
            if exc.reason == "NotRegistered":
                return None
            raise

    def version(self) -> str:
        return str(self._view("version"))

    def paused(self) -> bool | None:
        """True or False; None for a contract without a pause."""
        if not self.can_pause():
            return None
        return bool(self._view("paused"))

    def can_pause(self) -> bool:
        """Whether this contract has `pause()`: its artifact says so, and the code deployed at
        the address dispatches the selector (a PUSH4 of it), so neither alone is trusted."""
        if not self.artifact.has_function("pause"):
            return False
        with mapped("eth_getCode"):
            code = bytes(self.rpc.w3.eth.get_code(self.contract.address))
        return bytes([PUSH4]) + selector("pause()") in code

    def register(self, signer: Signer, subject: bytes, document: str, timeout_s: float) -> Receipt:
        data = self.contract.encode_abi("register", [subject, document])
        return send_transaction(
            self.rpc, signer, to=self.address, data=data, errors=self.errors, timeout_s=timeout_s
        )

    def set_paused(self, signer: Signer, paused: bool) -> Receipt:
        data = self.contract.encode_abi("pause" if paused else "unpause")
        return send_transaction(self.rpc, signer, to=self.address, data=data, errors=self.errors)

    def registrations(self, from_block: int = 0, to_block: int | None = None) -> list[Registration]:
        """Every DIDRegistered event in [from_block, to_block], in chain order."""
        if to_block is None:
            with mapped("eth_blockNumber"):
                to_block = int(self.rpc.w3.eth.block_number)
        found: list[Registration] = []
        for start, end in _ranges(from_block, to_block):
            with mapped("eth_getLogs", self.errors):
                logs = self.contract.events.DIDRegistered.get_logs(from_block=start, to_block=end)
            found.extend(
                Registration(
                    bytes(log["args"]["subject"]),
                    str(log["args"]["document"]),
                    int(log["blockNumber"]),
                    int(log["logIndex"]),
                )
                for log in logs
            )
        return sorted(found, key=lambda r: (r.block, r.log_index))
