"""A MongoDB backup the project makes itself (mongodump cannot be had here): a directory with
one raw BSON file per collection, exactly the bytes the server holds, and a manifest with
each file's count and SHA-256, the collection's options and its indexes as createIndexes
takes them (unique, sparse, TTL, partial filters: everything but the server's bookkeeping).

Collections are dumped concurrently, in natural order (sorting by `_id` cost SecantusDB up to
six times the scan), each read as raw batches written straight to its file. The server gives
no snapshot across collections: the backup's moment is when it started - every write
acknowledged before then is in it - and the manifest says when it finished.

The archive's own fingerprint (`archive_print`) comes from its files alone, in the same form
as a live one (stores.fingerprint), so "the database equals its backup" is one comparison.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from bson.raw_bson import RawBSONDocument
from bson.son import SON
from pymongo.database import Database

from rollback_drill.stores import bsonscan
from rollback_drill.stores.fingerprint import CollectionPrint, IndexPrint, canonical, pack
from rollback_drill.stores.mongoconn import (
    client,
    collection_options,
    from_json_value,
    index_specs,
    to_json_value,
)

MANIFEST = "manifest.json"
FORMAT = "rollback-drill-mongo-archive/2"
#: Version 1 kept only each index's name, key and uniqueness, and no collection options.
READABLE = ("rollback-drill-mongo-archive/1", FORMAT)
BATCH = 10_000
MAX_WORKERS = 4


class ArchiveError(RuntimeError):
    """An archive that cannot be trusted: unreadable, another format, a file that does not
    match its checksum. Raised before anything in the database is touched."""


@dataclass(frozen=True)
class ArchivedCollection:
    name: str
    file: str
    count: int
    sha256: str
    options: dict[str, Any]
    indexes: tuple[dict[str, Any], ...]  # createIndexes specs, `_id_` left out

    def index_prints(self) -> tuple[IndexPrint, ...]:
        return tuple(sorted((index_print(spec) for spec in self.indexes), key=lambda i: i.name))


@dataclass(frozen=True)
class Archive:
    path: Path
    database: str
    started: float  # epoch seconds: every write acknowledged before this is in the archive
    finished: float | None  # None in a version 1 archive
    collections: dict[str, ArchivedCollection]

    def file(self, name: str) -> Path:
        return self.path / self.collections[name].file

    @contextmanager
    def contents(self, name: str) -> Iterator[memoryview]:
        """A collection's file: its documents as one buffer."""
        yield memoryview(self.file(name).read_bytes())

    def documents(self, name: str) -> Iterator[RawBSONDocument]:
        with self.contents(name) as data:
            for doc in bsonscan.documents(data, str(self.file(name))):
                yield RawBSONDocument(bytes(doc))


def index_print(spec: dict[str, Any]) -> IndexPrint:
    """An index spec (from list_indexes or a manifest) as the fingerprint compares it."""
    info = dict(spec)
    name = str(info.pop("name"))
    key = tuple((str(k), v) for k, v in dict(info.pop("key")).items())
    unique = bool(info.pop("unique", False))
    return IndexPrint(name, key, unique, canonical(info))


def _dump(db: Database[RawBSONDocument], name: str, dest: Path) -> dict[str, Any]:
    path = dest / f"{name}.bson"
    digest = hashlib.sha256()
    count = 0
    with path.open("wb") as out:
        for batch in db[name].find_raw_batches({}, batch_size=BATCH):
            data = cast(bytes, batch)
            out.write(data)
            digest.update(data)
            count += sum(1 for _ in bsonscan.documents(data))
    return {
        "file": path.name,
        "count": count,
        "sha256": digest.hexdigest(),
        "indexes": [to_json_value(spec) for spec in index_specs(db[name])],
    }


def backup(uri: str, database: str, dest: Path, timeout_s: float = 5.0) -> Path:
    """Write every collection of `database` to `dest` (see the module docstring); return the
    manifest's path. The manifest is written last: a directory without one is no backup."""
    dest.mkdir(parents=True, exist_ok=True)
    started = time.time()
    with client(uri, timeout_s) as conn:
        db = conn[database]
        names = sorted(n for n in db.list_collection_names() if not n.startswith("system."))
        options = collection_options(db, names)
        with ThreadPoolExecutor(max_workers=max(1, min(MAX_WORKERS, len(names)))) as pool:
            dumped = dict(zip(names, pool.map(lambda n: _dump(db, n, dest), names), strict=True))
    manifest = {
        "format": FORMAT,
        "database": database,
        "created": started,
        "finished": time.time(),
        "collections": {
            name: {**entry, "options": to_json_value(options.get(name, {}))}
            for name, entry in dumped.items()
        },
    }
    out = dest / MANIFEST
    out.write_text(json.dumps(manifest, indent=2) + "\n")
    return out


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _v1_index(entry: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": entry["name"], "key": SON((k, v) for k, v in entry["key"])}
    if entry.get("unique"):
        spec["unique"] = True
    return spec


def _collection(name: str, entry: dict[str, Any], version: str) -> ArchivedCollection:
    if version == FORMAT:
        indexes = tuple(from_json_value(i) for i in entry["indexes"])
        options = dict(from_json_value(entry.get("options", {})))
    else:
        indexes = tuple(_v1_index(i) for i in entry["indexes"])
        options = {}
    return ArchivedCollection(
        name, str(entry["file"]), int(entry["count"]), str(entry["sha256"]), options, indexes
    )


def verify_archive(archive: Path) -> Archive:
    """Load the manifest and check every file's checksum before anything is dropped."""
    manifest_path = archive / MANIFEST
    try:
        manifest: dict[str, Any] = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as exc:
        raise ArchiveError(f"{manifest_path}: unreadable manifest: {exc}") from None
    version = manifest.get("format") if isinstance(manifest, dict) else None
    if version not in READABLE:
        raise ArchiveError(
            f"{manifest_path}: format: expected one of {list(READABLE)}, got {version!r}"
        )
    try:
        collections = {
            str(name): _collection(str(name), entry, str(version))
            for name, entry in manifest["collections"].items()
        }
        found = Archive(
            archive,
            str(manifest["database"]),
            float(manifest["created"]),
            float(manifest["finished"]) if manifest.get("finished") else None,
            collections,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ArchiveError(
            f"{manifest_path}: expected database, created and collections.<name>.file/count/"
            f"sha256/indexes ({type(exc).__name__}: {exc})"
        ) from None
    for name, entry in collections.items():
        path = archive / entry.file
        digest = _file_sha256(path) if path.is_file() else "missing"
        if digest != entry.sha256:
            raise ArchiveError(f"{path}: checksum mismatch for collection {name} (archive corrupt)")
    return found


def archive_records(archive: Archive, name: str) -> list[bytes]:
    """One (id digest, document digest) record per document the archive holds."""
    with archive.contents(name) as data:
        records = list(bsonscan.records(data))
    if len(records) != archive.collections[name].count:
        raise ArchiveError(
            f"{archive.file(name)}: {len(records)} documents, the manifest says "
            f"{archive.collections[name].count}"
        )
    return records


def archive_print(
    archive: Archive, name: str, records: list[bytes] | None = None
) -> CollectionPrint:
    """The collection as the archive holds it, in a live fingerprint's form."""
    entry = archive.collections[name]
    packed, digest = pack(list(archive_records(archive, name) if records is None else records))
    return CollectionPrint(
        count=len(packed) // bsonscan.RECORD_BYTES,
        sha256=digest,
        indexes=entry.index_prints(),
        options=canonical(entry.options),
        documents=packed,
    )


__all__ = [
    "MANIFEST",
    "Archive",
    "ArchiveError",
    "ArchivedCollection",
    "archive_print",
    "archive_records",
    "backup",
    "index_print",
    "verify_archive",
]
