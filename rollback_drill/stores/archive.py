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

Since format 3 the backup is laid out as `mongodump --out` lays out one database:
`<db>/<collection>.bson` (the documents, concatenated as mongodump writes them) and
`<db>/<collection>.metadata.json` (mongodump's metadata: options, every index, uuid,
collection name, type - canonical extended JSON), so mongorestore reads it as it reads a
dump. The tool's own files stay outside `<db>/` (mongorestore skips files at the top of a
dump): `manifest.json` with every file's checksum, and the `.records`. Backups that are not
the tool's (a mongodump folder, archive or tarball) are read by `stores.dump`.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

from bson import json_util
from bson.raw_bson import RawBSONDocument
from bson.son import SON
from pymongo.database import Database

from rollback_drill.files.storebackup import (
    MONGO_FORMAT,
    MONGO_OLD_FORMATS,
    BackupManifestError,
    MongoCollection,
    MongoManifest,
    load_mongo,
)
from rollback_drill.process.errors import ArchiveError
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
    plain,
    to_json_value,
)

MANIFEST = "manifest.json"
FORMAT = MONGO_FORMAT  # the manifest's model: files.storebackup.MongoManifest
#: Version 1 kept only each index's name, key and uniqueness, and no collection options;
#: version 2 kept the `.bson` files beside the manifest, without mongodump's metadata files.
#: Both are migrated on read (`storebackup.migrate_mongo`).
READABLE = (*MONGO_OLD_FORMATS, FORMAT)
JOURNAL = "restore-journal.json"


@dataclass(frozen=True)
class ArchivedCollection:
    name: str
    file: str  # the documents' file, relative to the archive's folder
    count: int
    sha256: str | None  # None: a backup without the tool's checksums (see stores.dump)
    options: dict[str, Any]
    indexes: tuple[dict[str, Any], ...]  # createIndexes specs, `_id_` left out
    records: str | None = None  # the sorted per-document records' file, when the backup kept it
    digest: str | None = None  # SHA-256 of those records: the collection's content hash
    metadata: str | None = None  # mongodump's `.metadata.json`, when the backup has one
    metadata_sha256: str | None = None

    def index_prints(self) -> tuple[IndexPrint, ...]:
        return tuple(sorted((index_print(spec) for spec in self.indexes), key=lambda i: i.name))


@dataclass(frozen=True)
class Archive:
    path: Path
    database: str
    started: float  # epoch seconds: every write acknowledged before this is in the archive
    finished: float | None  # None in a version 1 archive
    collections: dict[str, ArchivedCollection]
    source: Path | None = None  # what the operator named, when it is not `path` (stores.dump)
    checked: str = "every file against the SHA-256 in the tool's manifest"
    journal_path: Path | None = None  # where a restore keeps its journal (default: in `path`)

    @property
    def journal(self) -> Path:
        return self.journal_path or self.path / JOURNAL

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


def metadata_json(
    name: str, options: dict[str, Any], indexes: list[dict[str, Any]], uuid: str | None
) -> str:
    """A collection's `.metadata.json` as mongodump writes it (mongodump/metadata_dump.go:
    options when there are any, every index as listIndexes gives it - `_id_` and `v` too -,
    the uuid as hex, the name, the type; canonical extended JSON on one line)."""
    meta: SON[str, Any] = SON()
    if options:
        meta["options"] = options
    meta["indexes"] = indexes
    if uuid:
        meta["uuid"] = uuid
    meta["collectionName"] = name
    meta["type"] = "collection"
    return json_util.dumps(meta, json_options=json_util.CANONICAL_JSON_OPTIONS)


def _uuids(db: Database[RawBSONDocument], names: list[str]) -> dict[str, str]:
    listed = db.list_collections(filter={"name": {"$in": names}})
    found = {}
    for info in map(plain, listed):
        uuid = info.get("info", {}).get("uuid")
        if uuid is not None:
            found[str(info["name"])] = bytes(uuid).hex()
    return found


def _dump(
    db: Database[RawBSONDocument], name: str, dest: Path, options: dict[str, Any], uuid: str | None
) -> MongoCollection:
    folder = dest / db.name
    escaped = quote_plus(name, safe="")  # as mongodump names files: Go's url.QueryEscape
    path = folder / f"{escaped}.bson"
    indexes = [plain(i) for i in db[name].list_indexes()]
    meta = metadata_json(name, options, indexes, uuid).encode()
    (folder / f"{escaped}.metadata.json").write_bytes(meta)
    digest = hashlib.sha256()
    records: list[bytes] = []
    with path.open("wb") as out:
        for data in raw_batches(db[name]):
            out.write(data)
            digest.update(data)
            records.extend(bsonscan.records(data))
    packed, content = pack(records)
    (dest / f"{escaped}.records").write_bytes(packed)
    return MongoCollection(
        file=f"{db.name}/{path.name}",
        metadata=f"{db.name}/{escaped}.metadata.json",
        metadata_sha256=hashlib.sha256(meta).hexdigest(),
        count=len(records),
        sha256=digest.hexdigest(),
        records=f"{escaped}.records",
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
        uuids = _uuids(db, names)
        (dest / database).mkdir(exist_ok=True)
        dumped = concurrently(lambda n: _dump(db, n, dest, options.get(n, {}), uuids.get(n)), names)
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


def _collection(name: str, entry: MongoCollection) -> ArchivedCollection:
    indexes = tuple(from_json_value(i) for i in entry.indexes)
    options = dict(from_json_value(entry.options))
    digest = entry.digest if entry.records else None
    metadata_sha256 = entry.metadata_sha256 if entry.metadata else None
    return ArchivedCollection(
        name, entry.file, entry.count, entry.sha256, options, indexes, entry.records, digest,
        entry.metadata, metadata_sha256,
    )  # fmt: skip


def verify_archive(archive: Path) -> Archive:
    """Load the manifest (older formats migrated, others refused naming the file) and check
    every file's checksum before anything is dropped."""
    manifest_path = archive / MANIFEST
    try:
        manifest = load_mongo(manifest_path)
    except BackupManifestError as exc:
        raise ArchiveError(str(exc)) from None
    try:
        collections = {
            name: _collection(name, entry) for name, entry in manifest.collections.items()
        }
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ArchiveError(
            f"{manifest_path}: collections: an index or options entry is not extended JSON "
            f"({type(exc).__name__}: {exc})"
        ) from None
    found = Archive(archive, manifest.database, manifest.created, manifest.finished, collections)
    files = [(n, e.file, e.sha256) for n, e in collections.items() if e.sha256]
    files += [(n, e.records, e.digest) for n, e in collections.items() if e.records and e.digest]
    files += [
        (n, e.metadata, e.metadata_sha256)
        for n, e in collections.items()
        if e.metadata and e.metadata_sha256
    ]

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
    "JOURNAL",
    "MANIFEST",
    "Archive",
    "ArchiveError",
    "ArchivedCollection",
    "archive_print",
    "archive_records",
    "backup",
    "index_print",
    "metadata_json",
    "verify_archive",
]
