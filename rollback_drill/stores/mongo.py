"""MongoDB: fingerprints for integrity checks, and backups the project makes itself.

`fingerprint` reads; what a fingerprint holds and how two compare is `stores.fingerprint`
(its names are re-exported here for the callers that always found them here).

mongodump cannot be had here, so a backup is a directory of raw BSON files (one per
collection, documents in _id order), the index definitions, and a manifest with counts and
SHA-256 checksums; restore refuses an archive whose checksums do not match.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import bson
import pymongo.common
from bson.raw_bson import RawBSONDocument
from pymongo import MongoClient
from pymongo.collection import Collection

from rollback_drill.stores import bsonscan
from rollback_drill.stores.fingerprint import (
    CollectionPrint,
    Fingerprint,
    FingerprintError,
    IndexPrint,
    canonical,
    pack,
)

# pymongo's monitor threads look at their stop flag every MIN_HEARTBEAT_INTERVAL (0.5 s), a
# streaming monitor waits on the server, and its exit hook joins them all: every process that
# used a client exited up to 0.7 s late (the verify process's whole budget is under a second).
# The clients here are short-lived: polling monitors that check the flag every 50 ms.
pymongo.common.MIN_HEARTBEAT_INTERVAL = 0.05

MANIFEST = "manifest.json"
FORMAT = "rollback-drill-mongo-archive/1"


class ArchiveError(RuntimeError):
    pass


__all__ = [
    "ArchiveError",
    "CollectionPrint",
    "Fingerprint",
    "FingerprintError",
    "backup",
    "client",
    "fingerprint",
    "ping",
    "restore",
    "verify_archive",
]


@contextmanager
def client(uri: str, timeout_s: float = 2.0) -> Iterator[MongoClient[RawBSONDocument]]:
    """A client that fails within `timeout_s` instead of pymongo's 30 s default."""
    ms = int(timeout_s * 1000)
    conn: MongoClient[RawBSONDocument] = MongoClient(
        uri,
        serverSelectionTimeoutMS=ms,
        connectTimeoutMS=ms,
        socketTimeoutMS=max(ms * 10, 10_000),
        document_class=RawBSONDocument,
        directConnection=True,
        retryWrites=False,
        serverMonitoringMode="poll",
    )
    try:
        yield conn
    finally:
        conn.close()


def _ordered(conn: MongoClient[RawBSONDocument], db: str, name: str) -> Iterator[bytes]:
    for doc in conn[db][name].find({}, sort=[("_id", 1)], batch_size=2000):
        yield bytes(doc.raw)


def _plain(doc: Any) -> dict[str, Any]:
    """A command answer as a dict, whatever document class the client was given."""
    raw = getattr(doc, "raw", None)
    return bson.decode(raw) if raw is not None else dict(doc)


def _index_prints(coll: Collection[RawBSONDocument]) -> tuple[IndexPrint, ...]:
    prints = []
    for info in map(_plain, coll.list_indexes()):
        name = str(info.pop("name"))
        key = tuple((str(k), v) for k, v in dict(info.pop("key")).items())
        unique = bool(info.pop("unique", False))
        for noise in ("v", "ns", "background"):
            info.pop(noise, None)
        prints.append(IndexPrint(name, key, unique, canonical(info)))
    return tuple(sorted(prints, key=lambda i: i.name))


def fingerprint(
    uri: str,
    database: str,
    collections: Sequence[str],
    timeout_s: float = 2.0,
    cutoffs: dict[str, tuple[str, datetime]] | None = None,
) -> Fingerprint:
    """Per-document digests, indexes and options of each collection (see stores.fingerprint).

    Documents are read in raw batches in natural order - sorting by _id costs SecantusDB up
    to six times the scan - and hashed as stored; the records are sorted afterwards. With
    `cutoffs`, a collection's print covers only documents created up to its cutoff.
    """
    cuts = {k: v for k, v in (cutoffs or {}).items() if k in collections}
    prints: dict[str, CollectionPrint] = {}
    with client(uri, timeout_s) as conn:
        db = conn[database]
        listed = {
            str(info["name"]): info.get("options", {})
            for info in map(
                _plain, db.list_collections(filter={"name": {"$in": list(collections)}})
            )
        }
        for name in collections:
            if name not in listed:
                prints[name] = CollectionPrint(0, pack([])[1], exists=False)
                continue
            records: list[bytes] = []
            query = {cuts[name][0]: {"$lte": cuts[name][1]}} if name in cuts else {}
            for batch in db[name].find_raw_batches(query, batch_size=10_000):
                records.extend(bsonscan.records(cast(bytes, batch)))
            packed, digest = pack(records)
            prints[name] = CollectionPrint(
                count=len(records),
                sha256=digest,
                indexes=_index_prints(db[name]),
                options=canonical(listed[name]),
                documents=packed,
            )
    return Fingerprint(database, prints, cuts)


def ping(uri: str, timeout_s: float = 2.0) -> float:
    """Round-trip time of the `ping` command in seconds."""
    with client(uri, timeout_s) as conn:
        start = time.monotonic()
        conn.admin.command("ping")
        return time.monotonic() - start


def backup(uri: str, database: str, dest: Path, timeout_s: float = 5.0) -> Path:
    """Write every collection of `database` to `dest`; return the manifest path."""
    dest.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "database": database,
        "created": time.time(),
        "collections": {},
    }
    with client(uri, timeout_s) as conn:
        db = conn[database]
        for name in sorted(db.list_collection_names()):
            path = dest / f"{name}.bson"
            digest = hashlib.sha256()
            count = 0
            with path.open("wb") as out:
                for raw in _ordered(conn, database, name):
                    out.write(raw)
                    digest.update(raw)
                    count += 1
            indexes = [
                {
                    "name": idx_name,
                    "key": list(info["key"]),
                    "unique": bool(info.get("unique", False)),
                }
                for idx_name, info in db[name].index_information().items()
                if idx_name != "_id_"
            ]
            manifest["collections"][name] = {
                "file": path.name,
                "count": count,
                "sha256": digest.hexdigest(),
                "indexes": indexes,
            }
    out_path = dest / MANIFEST
    out_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return out_path


def _read_docs(path: Path) -> Iterator[RawBSONDocument]:
    data = path.read_bytes()
    offset = 0
    while offset < len(data):
        size = int.from_bytes(data[offset : offset + 4], "little")
        if size < 5 or offset + size > len(data):
            raise ArchiveError(f"{path}: truncated BSON document at byte {offset}")
        yield RawBSONDocument(data[offset : offset + size])
        offset += size


def verify_archive(archive: Path) -> dict[str, Any]:
    """Load the manifest and check every file's count and checksum before anything is dropped."""
    manifest_path = archive / MANIFEST
    try:
        manifest: dict[str, Any] = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as exc:
        raise ArchiveError(f"{manifest_path}: unreadable manifest: {exc}") from None
    if manifest.get("format") != FORMAT:
        raise ArchiveError(
            f"{manifest_path}: format: expected {FORMAT!r}, got {manifest.get('format')!r}"
        )
    for name, entry in manifest["collections"].items():
        path = archive / entry["file"]
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else "missing"
        if digest != entry["sha256"]:
            raise ArchiveError(f"{path}: checksum mismatch for collection {name} (archive corrupt)")
    return manifest


def restore(uri: str, database: str, archive: Path, timeout_s: float = 5.0) -> dict[str, int]:
    """Replace the database's collections with the archive's; return documents per collection."""
    manifest = verify_archive(archive)
    restored: dict[str, int] = {}
    with client(uri, timeout_s) as conn:
        db = conn[database]
        for name in db.list_collection_names():
            if name not in manifest["collections"]:
                db.drop_collection(name)
        for name, entry in manifest["collections"].items():
            db.drop_collection(name)
            coll = db[name]
            for index in entry["indexes"]:
                coll.create_index(
                    [tuple(k) for k in index["key"]], name=index["name"], unique=index["unique"]
                )
            batch: list[RawBSONDocument] = []
            for doc in _read_docs(archive / entry["file"]):
                batch.append(doc)
                if len(batch) >= 2000:
                    coll.insert_many(batch, ordered=True)
                    batch = []
            if batch:
                coll.insert_many(batch, ordered=True)
            restored[name] = int(entry["count"])
    return restored
