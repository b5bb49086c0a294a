"""Keccak-256 as Ethereum uses it (the original padding, not NIST SHA3-256's), in plain
Python: verify hashes a few dozen DIDs to find their registry keys, and pycryptodome's
Keccak costs 60-80 ms to import - more than the hashing it would save (about 0.1 ms a hash
here, pinned against pycryptodome by tests/test_verify_units.py)."""

from __future__ import annotations

_MASK = (1 << 64) - 1
_RATE = 136  # bytes absorbed per permutation at 256-bit output

_ROUND_CONSTANTS = (
    0x0000000000000001, 0x0000000000008082, 0x800000000000808A, 0x8000000080008000,
    0x000000000000808B, 0x0000000080000001, 0x8000000080008081, 0x8000000000008009,
    0x000000000000008A, 0x0000000000000088, 0x0000000080008009, 0x000000008000000A,
    0x000000008000808B, 0x800000000000008B, 0x8000000000008089, 0x8000000000008003,
    0x8000000000008002, 0x8000000000000080, 0x000000000000800A, 0x800000008000000A,
    0x8000000080008081, 0x8000000000008080, 0x0000000080000001, 0x8000000080008008,
)  # fmt: skip

# rho rotation of lane x + 5y, and where pi moves it
_ROTATIONS = (
    0, 1, 62, 28, 27, 36, 44, 6, 55, 20, 3, 10, 43, 25, 39, 41, 45, 15, 21, 8, 18, 2, 61, 56, 14,
)  # fmt: skip
_PI = tuple((y + 5 * ((2 * x + 3 * y) % 5)) for y in range(5) for x in range(5))
# _PI[x + 5y] is the index lane x + 5y moves to: B[y, 2x + 3y] = rot(A[x, y])


def _permute(a: list[int]) -> None:
    rot, pi = _ROTATIONS, _PI
    for rc in _ROUND_CONSTANTS:
        c = [a[x] ^ a[x + 5] ^ a[x + 10] ^ a[x + 15] ^ a[x + 20] for x in range(5)]
        d = [c[(x - 1) % 5] ^ (((c[(x + 1) % 5] << 1) | (c[(x + 1) % 5] >> 63)) & _MASK)
             for x in range(5)]  # fmt: skip
        b = [0] * 25
        for i in range(25):
            lane = a[i] ^ d[i % 5]
            r = rot[i]
            b[pi[i]] = ((lane << r) | (lane >> (64 - r))) & _MASK if r else lane
        for y in range(0, 25, 5):
            b0, b1, b2, b3, b4 = b[y : y + 5]
            a[y] = b0 ^ (~b1 & b2)
            a[y + 1] = b1 ^ (~b2 & b3)
            a[y + 2] = b2 ^ (~b3 & b4)
            a[y + 3] = b3 ^ (~b4 & b0)
            a[y + 4] = b4 ^ (~b0 & b1)
        a[0] ^= rc


def keccak256(data: bytes) -> bytes:
    """Ethereum's Keccak-256 of `data`."""
    padded = bytearray(data) + b"\x01"
    padded += bytes(-len(padded) % _RATE)
    padded[-1] |= 0x80
    state = [0] * 25
    for start in range(0, len(padded), _RATE):
        block = padded[start : start + _RATE]
        for i in range(_RATE // 8):
            state[i] ^= int.from_bytes(block[8 * i : 8 * i + 8], "little")
        _permute(state)
    return b"".join(lane.to_bytes(8, "little") for lane in state[:4])
