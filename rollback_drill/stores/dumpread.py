"""What every shape of mongodump's is read through: a collection's metadata (its options and
index specs, from a `.metadata.json` file or an archive's prelude), a file gunzipped when its
name says so, a stream of concatenated BSON documents each decoded, and the `Archive` a dump
becomes once unpacked.

Separate from the shapes (`stores.dumpfolder`, `stores.dumparchive`) because both read their
documents and metadata the same way and refuse them with the same errors; `stores.dump`
chooses the shape.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bson
from bson import json_util
from bson.errors import BSONError

from rollback_drill.stores import bsonscan
from rollback_drill.stores.archive import JOURNAL, Archive, ArchivedCollection, ArchiveError
from rollback_drill.stores.mongoconn import INDEX_NOISE

SYSTEM_DATABASES = ("admin", "config", "local")


@dataclass(frozen=True)
class Metadata:
    """A collection's `.metadata.json` as the restore needs it."""

    options: dict[str, Any]
    indexes: tuple[dict[str, Any], ...]  # createIndexes specs, `_id_` and bookkeeping left out


def parse_metadata(text: str | bytes, where: str) -> Metadata:
    """mongodump's metadata JSON (canonical or relaxed extended JSON) -> options and index
    specs; anything else is refused naming `where`."""
    try:
        meta = json_util.loads(text)
    except (ValueError, TypeError, BSONError) as exc:
        raise ArchiveError(f"{where}: not mongodump metadata JSON: {exc}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("indexes", []), list):
        raise ArchiveError(f"{where}: expected an object with an `indexes` list")
    options = meta.get("options") or {}
    if not isinstance(options, dict):
        raise ArchiveError(f"{where}: options: expected an object, got {options!r}")
    specs = []
    for i, index in enumerate(meta.get("indexes", [])):
        if (
            not isinstance(index, dict)
            or not isinstance(index.get("key"), dict)
            or not index.get("name")
        ):
            raise ArchiveError(f"{where}: indexes[{i}]: expected an object with name and key")
        if index["name"] == "_id_":
            continue
        specs.append({k: v for k, v in index.items() if k not in INDEX_NOISE})
    return Metadata(dict(options), tuple(sorted(specs, key=lambda s: str(s["name"]))))


def read(path: Path) -> bytes:
    """A file's bytes, gunzipped when its name ends in `.gz` (gzip checks its own CRC)."""
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as handle:
                return handle.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise ArchiveError(f"{path}: unreadable: {exc}") from None


def parse_all(data: bytes | memoryview, where: str) -> int:
    """Every document of concatenated BSON decoded (not just framed); their number."""
    count = 0
    try:
        for doc in bsonscan.documents(data, where):
            bson.decode(doc)
            count += 1
    except ValueError as exc:  # BSONError is a ValueError, and so is a truncated document
        raise ArchiveError(f"{where}: not BSON as mongodump writes it: {exc}") from None
    return count


def unpacked(
    work: Path, database: str, source: Path, collections: dict[str, ArchivedCollection], kind: str
) -> Archive:
    """The Archive over a dump unpacked into `work` (plain `.bson` files), without the tool's
    checksums: it says what was checked instead."""
    started = min((p.stat().st_mtime for p in source.rglob("*")), default=0.0)
    if source.is_file():
        started = source.stat().st_mtime
    checked = (
        f"a {kind} (no tool checksums): every document parsed as BSON, every metadata file "
        "as mongodump's" + (", each collection against its CRC-64 and size" if "archive" in kind
                            else "")
    )  # fmt: skip
    journal = source / JOURNAL if source.is_dir() else source.with_name(source.name + f".{JOURNAL}")
    return Archive(work, database, started, None, collections, source, checked, journal)


__all__ = ["SYSTEM_DATABASES", "Metadata", "parse_all", "parse_metadata", "read", "unpacked"]
