"""Compiled contract artifacts, read without web3 (it costs 1.8 s to import; verify must not pay
it): the runtime code and the function names an artifact declares, and whether code deployed
on chain is the artifact's - byte for byte, the compiler's metadata hash aside and the owner
filled into its immutable slots, which is how Polygonscan verifies a contract. The target file
checks its artifact with these when it is loaded, the chain check when it compares.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

PUSH1, PUSH32 = 0x60, 0x7F


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


@lru_cache(maxsize=8)
def functions_of(artifact: Path) -> frozenset[str]:
    """The function names the artifact's ABI declares (a version without a pause has no
    `paused()` to ask)."""
    try:
        abi = json.loads(artifact.read_text())["abi"]
        return frozenset(str(e["name"]) for e in abi if e.get("type") == "function")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(
            f"{artifact}: not a contract artifact (expected JSON with abi): {exc}"
        ) from None


@lru_cache(maxsize=8)
def runtime_of(artifact: Path) -> bytes:
    try:
        data = json.loads(artifact.read_text())
        return bytes.fromhex(str(data["deployedBytecode"]).removeprefix("0x"))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(
            f"{artifact}: not a contract artifact (expected JSON with deployedBytecode): {exc}"
        ) from None
