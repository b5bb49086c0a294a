"""MongoDB: fingerprints for integrity checks, and backups the project makes itself.

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
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bson.raw_bson import RawBSONDocument
from pymongo import MongoClient

MANIFEST = "manifest.json"
FORMAT = "rollback-drill-mongo-archive/1"


class ArchiveError(RuntimeError):
    pass


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
    )
    try:
        yield conn
    finally:
        conn.close()


@dataclass(frozen=True)
class CollectionPrint:
    count: int
    sha256: str


@dataclass(frozen=True)
class Fingerprint:
    """Counts and content hashes of collections: equal prints mean equal data.

    `cutoffs` names collections users keep writing to (sessions, chat messages), each with
    its creation-time field and the moment the print was taken: only documents created up to
    then are hashed, so a later print proves none of those was lost or altered while new
    ones keep arriving."""

    database: str
    collections: dict[str, CollectionPrint]
    cutoffs: dict[str, tuple[str, datetime]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "collections": {k: asdict(v) for k, v in self.collections.items()},
            "cutoffs": {k: [f, t.isoformat()] for k, (f, t) in self.cutoffs.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Fingerprint:
        return cls(
            database=str(data["database"]),
            collections={
                name: CollectionPrint(int(v["count"]), str(v["sha256"]))
                for name, v in data["collections"].items()
            },
            cutoffs={
                name: (str(f), datetime.fromisoformat(str(t)))
                for name, (f, t) in (data.get("cutoffs") or {}).items()
            },
        )

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> Fingerprint:
        try:
            return cls.from_json(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ArchiveError(
                f"{path}: not a fingerprint file (expected JSON with database and "
                f"collections.<name>.count/sha256): {exc}"
            ) from None


def _ordered(
    conn: MongoClient[RawBSONDocument], db: str, name: str, query: dict[str, Any]
) -> Iterator[bytes]:
    for doc in conn[db][name].find(query, sort=[("_id", 1)], batch_size=2000):
        yield bytes(doc.raw)


def fingerprint(
    uri: str,
    database: str,
    collections: Sequence[str],
    timeout_s: float = 2.0,
    cutoffs: dict[str, tuple[str, datetime]] | None = None,
) -> Fingerprint:
    """Hash every document's raw BSON in _id order: any changed, added or lost byte shows.
    With `cutoffs`, a collection's print covers only documents created up to its cutoff."""
    prints: dict[str, CollectionPrint] = {}
    cuts = dict(cutoffs or {})
    with client(uri, timeout_s) as conn:
        for name in collections:
            digest = hashlib.sha256()
            count = 0
            query = {cuts[name][0]: {"$lte": cuts[name][1]}} if name in cuts else {}
            for raw in _ordered(conn, database, name, query):
                digest.update(raw)
                count += 1
            prints[name] = CollectionPrint(count, digest.hexdigest())
    return Fingerprint(database, prints, {k: v for k, v in cuts.items() if k in prints})


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
                for raw in _ordered(conn, database, name, {}):
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
