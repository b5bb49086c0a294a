"""Per-document digests straight from raw BSON batches, without decoding documents.

A fingerprint must tell a lost or altered document from one added by live traffic, so it
keeps one (id digest, document digest) pair per document; and it must stay fast at 100 000
users, so it reads `find_raw_batches` and slices the bytes: the `_id` element (first in every
stored document) is located by its BSON type, and the whole document is hashed as stored.
Only a document whose first element is not `_id` (or has an exotic `_id` type) is decoded.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from hashlib import blake2b

import bson

DIGEST_BYTES = 8
RECORD_BYTES = 2 * DIGEST_BYTES
_ID_NAME = b"_id\x00"
# BSON element type -> length of its value when fixed (see bsonspec.org).
_FIXED = {0x01: 8, 0x07: 12, 0x08: 1, 0x09: 8, 0x0A: 0, 0x10: 4, 0x11: 8, 0x12: 8, 0x13: 16}


def _digest(data: bytes | memoryview) -> bytes:
    return blake2b(data, digest_size=DIGEST_BYTES).digest()


def _id_value(doc: memoryview) -> bytes | None:
    """The `_id` element's type byte and value bytes, when `_id` is the first element."""
    if doc[5:9] != _ID_NAME:
        return None
    kind = doc[4]
    start = 9
    if kind in _FIXED:
        length = _FIXED[kind]
    elif kind == 0x02:  # string: int32 length (with its NUL) + bytes
        length = 4 + int.from_bytes(doc[start : start + 4], "little")
    elif kind in (0x03, 0x04):  # embedded document or array: int32 total size
        length = int.from_bytes(doc[start : start + 4], "little")
    elif kind == 0x05:  # binary: int32 length + subtype byte + bytes
        length = 5 + int.from_bytes(doc[start : start + 4], "little")
    else:
        return None
    return bytes(doc[4:5]) + bytes(doc[start : start + length])


def _decoded_id(doc: memoryview) -> bytes:
    return bson.encode({"_id": bson.decode(bytes(doc)).get("_id")})


def id_digest(doc: memoryview) -> bytes:
    """A digest of the document's `_id` (type and value), equal for equal ids."""
    value = _id_value(doc)
    return _digest(b"decoded" + _decoded_id(doc) if value is None else value)


def id_document(doc: memoryview) -> bytes:
    """The BSON document `{_id: <the document's _id>}`: what a delete by id needs, kept
    without the rest of the document."""
    value = _id_value(doc)
    if value is None:
        return _decoded_id(doc)
    body = value[:1] + _ID_NAME + value[1:]
    return (len(body) + 5).to_bytes(4, "little") + body + b"\x00"


def keyed(buffer: bytes | memoryview, where: str = "a batch") -> Iterator[tuple[bytes, bytes]]:
    """(16-byte record, `{_id}` document) per document: what a restore plans with."""
    for doc in documents(buffer, where):
        value = _id_value(doc)
        if value is None:
            yield id_digest(doc) + _digest(doc), id_document(doc)
            continue
        body = value[:1] + _ID_NAME + value[1:]
        yield _digest(value) + _digest(doc), (len(body) + 5).to_bytes(4, "little") + body + b"\0"


def documents(buffer: bytes | memoryview, where: str = "a batch") -> Iterator[memoryview]:
    """Each document of concatenated BSON (a raw batch, an archive file), as a view."""
    view = memoryview(buffer)
    offset = 0
    end = len(view)
    while offset < end:
        size = int.from_bytes(view[offset : offset + 4], "little")
        if size < 5 or offset + size > end:
            raise ValueError(f"truncated BSON document at byte {offset} of {where}")
        yield view[offset : offset + size]
        offset += size


def records(batch: bytes | memoryview) -> Iterator[bytes]:
    """One 16-byte record (id digest + document digest) per document of a raw batch."""
    view = memoryview(batch)
    offset = 0
    end = len(batch)
    while offset < end:
        size = int.from_bytes(view[offset : offset + 4], "little")
        if size < 5 or offset + size > end:
            raise ValueError(f"truncated BSON document at byte {offset} of a batch")
        doc = view[offset : offset + size]
        yield id_digest(doc) + _digest(doc)
        offset += size


def as_pairs(packed: bytes | bytearray) -> set[tuple[int, int]]:
    """Packed records -> {(id digest, document digest)} as integers: set algebra in C."""
    words = _words(packed)
    return set(zip(words[0::2], words[1::2], strict=True))


def ids_of(packed: bytes | bytearray) -> memoryview:
    """The id digests of packed records, as integers, in the records' order."""
    return _words(packed)[0::2]


def digest_bytes(word: int) -> bytes:
    """An id digest as `ids_of` and `as_pairs` give it, back to its bytes."""
    return word.to_bytes(DIGEST_BYTES, sys.byteorder)


def _words(packed: bytes | bytearray) -> memoryview:
    if len(packed) % RECORD_BYTES:
        raise ValueError(f"packed digests: {len(packed)} bytes is not a multiple of {RECORD_BYTES}")
    return memoryview(packed).cast("Q")


def as_map(packed: bytes) -> dict[int, int]:
    """Sorted packed records -> {id digest: document digest}, as integers (fast set algebra)."""
    words = _words(packed)
    return dict(zip(words[0::2], words[1::2], strict=True))
