"""Compiled contract artifacts, read without web3 (it costs 1.8 s to import; verify must not pay
it): the runtime code and the function names an artifact declares, and whether code deployed
on chain is the artifact's - byte for byte, the compiler's metadata hash aside and the owner
filled into its immutable slots, which is how Polygonscan verifies a contract. The target file
checks its artifact with these when it is loaded, the chain check when it compares, and the
engine builds web3's contract objects (evm.py, deploy.py, registry.py) and names reverts from
the same `Artifact`: one reader of compile.mjs's files, one `selector`.

`selector` is the one 4-byte function selector (bytes; a call's data is "0x" + its hex).
The registry's views and errors verify asks about are pinned (tests/test_verify_units.py
checks them against keccak): computing them would cost verify a 60 ms keccak import.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

PUSH1, PUSH32 = 0x60, 0x7F

PINNED_SELECTORS = {
    "version()": bytes.fromhex("54fd4d50"),
    "owner()": bytes.fromhex("8da5cb5b"),
    "paused()": bytes.fromhex("5c975abb"),
    "resolve(bytes32)": bytes.fromhex("5c23bdf5"),
}


@cache
def keccak(data: bytes) -> bytes:
    from Crypto.Hash import keccak as _keccak

    return bytes(_keccak.new(data=data, digest_bits=256).digest())


def selector(signature: str) -> bytes:
    """keccak256(signature)[:4]; the pinned ones without importing keccak."""
    pinned = PINNED_SELECTORS.get(signature)
    return pinned if pinned is not None else keccak(signature.encode("ascii"))[:4]


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
    """The artifact at `path`; ValueError naming the file when it is not one. Only the ABI
    is required here: deploying checks for its bytecode, comparing for its runtime code."""
    try:
        data = json.loads(path.read_text())
        return Artifact(
            path,
            str(data.get("contractName", path.stem)),
            data.get("version"),
            tuple(data["abi"]),
            str(data.get("bytecode", "")),
            str(data.get("deployedBytecode", "")),
            data.get("source"),
            data.get("sourceSha256"),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(
            f"{path}: not a contract artifact (expected JSON with abi and bytecode): {exc}"
        ) from None


@dataclass(frozen=True)
class RuntimeCode:
    """Runtime code split as the compiler lays it out: executable part + CBOR metadata."""

    body: bytes
    metadata: bytes

    @classmethod
    def split(cls, code: bytes) -> RuntimeCode:
        if len(code) < 2:
            return cls(code, b"")
        size = int.from_bytes(code[-2:], "big") + 2
        return cls(code[:-size], code[-size:]) if size <= len(code) else cls(code, b"")


def immutable_slots(code: bytes) -> list[int]:
    """Offsets of PUSH32 0x00..00 placeholders: where the deployer fills immutables."""
    slots, i = [], 0
    while i < len(code):
        op = code[i]
        if PUSH1 <= op <= PUSH32:
            width = op - PUSH1 + 1
            if op == PUSH32 and code[i + 1 : i + 33] == bytes(32):
                slots.append(i + 1)
            i += 1 + width
        else:
            i += 1
    return slots


def compare_code(artifact: bytes, deployed: bytes, owner: bytes) -> tuple[bool, dict[str, Any]]:
    """Equal when the deployed code is the artifact's with only immutable slots holding the
    owner word, whatever the metadata hash."""
    want, got = RuntimeCode.split(artifact), RuntimeCode.split(deployed)
    filled = bytearray(got.body)
    word = owner.rjust(32, b"\x00")
    slots = [s for s in immutable_slots(want.body) if bytes(filled[s : s + 32]) == word]
    for slot in slots:
        filled[slot : slot + 32] = bytes(32)
    equal = len(got.body) == len(want.body) and bytes(filled) == want.body
    return equal, {
        "runtime_equal": equal,
        "artifact_bytes": len(want.body),
        "deployed_bytes": len(got.body),
        "immutable_slots_with_owner": slots,
        "metadata_equal": want.metadata == got.metadata,
    }


def functions_of(artifact: Path) -> frozenset[str]:
    """The function names the artifact's ABI declares (a version without a pause has no
    `paused()` to ask)."""
    try:
        abi = load_artifact(artifact).abi
        return frozenset(str(e["name"]) for e in abi if e.get("type") == "function")
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(
            f"{artifact}: not a contract artifact (expected JSON with abi): {exc}"
        ) from None


def runtime_of(artifact: Path) -> bytes:
    code = load_artifact(artifact).deployed_bytecode
    try:
        if not code:
            raise ValueError("no deployedBytecode")
        return bytes.fromhex(code.removeprefix("0x"))
    except ValueError as exc:
        raise ValueError(
            f"{artifact}: not a contract artifact (expected JSON with deployedBytecode): {exc}"
        ) from None
