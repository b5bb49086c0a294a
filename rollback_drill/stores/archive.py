"""A MongoDB backup the project makes itself (mongodump cannot be had here): a directory with
one raw BSON file per collection, exactly the bytes the server holds, and a manifest with
each file's count and SHA-256, the collection's options and its indexes as createIndexes
takes them (unique, sparse, TTL, partial filters: everything but the server's bookkeeping).

Collections are dumped concurrently, in natural order (sorting by `_id` cost SecantusDB up to
six times the scan), each read as raw batches (the next fetched while this one is written)
written straight to its file. The server gives no snapshot across collections: the backup's
moment is when it started - every write acknowledged before then is in it - and the manifest
says when it finished.

The archive's own fingerprint (`archive_print`) is in the same form as a live one
(stores.fingerprint), so "the database equals its backup" is one comparison. The backup
computes it from the batches as it writes them and keeps each collection's sorted
per-document records in a `.records` file beside its `.bson` (the manifest's `digest` is
their SHA-256 and the collection's content hash): a restore then plans and verifies without
parsing and hashing the whole archive again, inside the recovery budget. An archive without
them (older, or written by hand) is read from its BSON files, as before.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bson.raw_bson import RawBSONDocument
from bson.son import SON
from pymongo.database import Database

from rollback_drill.files.storebackup import (
    MONGO_FORMAT,
    MONGO_OLD_FORMAT,
    BackupManifestError,
    MongoCollection,
    MongoManifest,
    load_mongo,
)
from rollback_drill.stores import bsonscan
from rollback_drill.stores.fingerprint import (
    CollectionPrint,
    IndexPrint,
    canonical,
    index_print,
    pack,
)
from rollback_drill.stores.livescan import concurrently, raw_batches
from rollback_drill.stores.mongoconn import (
    client,
    collection_options,
    from_json_value,
    index_specs,
    to_json_value,
)

MANIFEST = "manifest.json"
FORMAT = MONGO_FORMAT
#: Version 1 kept only each index's name, key and uniqueness, and no collection options.
READABLE = (MONGO_OLD_FORMAT, FORMAT)


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
    records: str | None = None  # the sorted per-document records' file, when the backup kept it
    digest: str | None = None  # SHA-256 of those records: the collection's content hash

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


def _dump(
    db: Database[RawBSONDocument], name: str, dest: Path, options: dict[str, Any]
) -> MongoCollection:
    path = dest / f"{name}.bson"
    digest = hashlib.sha256()
    records: list[bytes] = []
    with path.open("wb") as out:
        for data in raw_batches(db[name]):
            out.write(data)
            digest.update(data)
            records.extend(bsonscan.records(data))
    packed, content = pack(records)
    (dest / f"{name}.records").write_bytes(packed)
    return MongoCollection(
        file=path.name,
        count=len(records),
        sha256=digest.hexdigest(),
        records=f"{name}.records",
        digest=content,
        indexes=[to_json_value(spec) for spec in index_specs(db[name])],
        options=to_json_value(options),
    )


def backup(uri: str, database: str, dest: Path, timeout_s: float = 5.0) -> Path:
    """Write every collection of `database` to `dest` (see the module docstring); return the
    manifest's path. The manifest is written last: a directory without one is no backup."""
    dest.mkdir(parents=True, exist_ok=True)
    started = time.time()
    with client(uri, timeout_s) as conn:
        db = conn[database]
        names = sorted(n for n in db.list_collection_names() if not n.startswith("system."))
        options = collection_options(db, names)
        dumped = concurrently(lambda n: _dump(db, n, dest, options.get(n, {})), names)
    manifest = MongoManifest(
        database=database,
        created=started,
        finished=time.time(),
        collections=dict(zip(names, dumped, strict=True)),
    )
    out = dest / MANIFEST
    manifest.save(out)
    return out


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _v1_index(entry: dict[str, Any]) -> dict[str, Any]:
    """A format-1 index entry (name, key as [field, direction] pairs, unique) as a spec."""
    spec: dict[str, Any] = {"name": entry["name"], "key": SON((k, v) for k, v in entry["key"])}
    if entry.get("unique"):
        spec["unique"] = True
    return spec


def _collection(name: str, entry: MongoCollection, version: str) -> ArchivedCollection:
    if version == FORMAT:
        indexes = tuple(from_json_value(i) for i in entry.indexes)
        options = dict(from_json_value(entry.options))
    else:
        indexes = tuple(_v1_index(i) for i in entry.indexes)
        options = {}
    digest = entry.digest if entry.records else None
    return ArchivedCollection(
        name, entry.file, entry.count, entry.sha256, options, indexes, entry.records, digest
    )


def verify_archive(archive: Path) -> Archive:
    """Load the manifest and check every file's checksum before anything is dropped."""
    manifest_path = archive / MANIFEST
    try:
        manifest = load_mongo(manifest_path)
    except BackupManifestError as exc:
        raise ArchiveError(str(exc)) from None
    try:
        collections = {
            name: _collection(name, entry, manifest.format)
            for name, entry in manifest.collections.items()
        }
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ArchiveError(
            f"{manifest_path}: collections: an index or options entry is not extended JSON "
            f"({type(exc).__name__}: {exc})"
        ) from None
    found = Archive(archive, manifest.database, manifest.created, manifest.finished, collections)
    files = [(n, e.file, e.sha256) for n, e in collections.items()]
    files += [(n, e.records, e.digest) for n, e in collections.items() if e.records and e.digest]

    def check(item: tuple[str, str, str]) -> None:
        name, file, expected = item
        path = archive / file
        digest = _file_sha256(path) if path.is_file() else "missing"
        if digest != expected:
            raise ArchiveError(f"{path}: checksum mismatch for collection {name} (archive corrupt)")

    concurrently(check, files)  # hashlib lets go of the GIL on large buffers
    return found


def archive_records(archive: Archive, name: str) -> bytes:
    """The sorted (id digest, document digest) records of every document the archive holds,
    packed: from the backup's `.records` file (its checksum verified with the archive), or
    computed from the BSON file when the archive has none."""
    entry = archive.collections[name]
    if entry.records:
        packed = (archive.path / entry.records).read_bytes()
        where = archive.path / entry.records
    else:
        with archive.contents(name) as data:
            packed, _ = pack(list(bsonscan.records(data)))
        where = archive.file(name)
    if len(packed) != entry.count * bsonscan.RECORD_BYTES:
        raise ArchiveError(
            f"{where}: {len(packed) // bsonscan.RECORD_BYTES} documents, the manifest says "
            f"{entry.count}"
        )
    return packed


def archive_print(archive: Archive, name: str, packed: bytes | None = None) -> CollectionPrint:
    """The collection as the archive holds it, in a live fingerprint's form (`packed`: its
    records, when the caller has already read them)."""
    entry = archive.collections[name]
    records = archive_records(archive, name) if packed is None else packed
    return CollectionPrint(
        count=len(records) // bsonscan.RECORD_BYTES,
        sha256=entry.digest or hashlib.sha256(records).hexdigest(),
        indexes=entry.index_prints(),
        options=canonical(entry.options),
        documents=records,
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
