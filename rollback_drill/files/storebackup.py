"""The manifests of a store backup, as pydantic models: what `stores.archive` (MongoDB) and
`stores.redis` (Redis) write beside the data, and read back before a byte of it reaches a
database. The bytes themselves (BSON, DUMP payloads) stay where their formats live; this is
only what describes and checks them.

MongoDB, `<backup>/mongodb/manifest.json`, format 3 (mongodump's layout: `<db>/<name>.bson`
and `<db>/<name>.metadata.json`, each with its checksum). Formats 1 and 2 are migrated on
read: 2 only lacks the metadata files (its `.bson` sit beside the manifest, which `file`
says); 1 also lacks the collection options and kept each index as name, key pairs and
uniqueness, which become the createIndexes spec they stand for. Any other format is refused
naming the file, the format found and the formats read.
Redis, `<backup>/redis.json`, format 1: every key's DUMP payload and TTL, with a checksum.
The restore's journal (`restore-journal.json` beside an archive being restored) is here too.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Final, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rollback_drill.files.specmodel import describe_errors
from rollback_drill.files.userfiles import read_json
from rollback_drill.process.errors import BackupFileError, SpecError

MONGO_FORMAT: Final = "rollback-drill-mongo-archive/3"
#: 1: indexes as name, key pairs and uniqueness, no options; 2: no mongodump metadata files
MONGO_OLD_FORMATS: Final = ("rollback-drill-mongo-archive/1", "rollback-drill-mongo-archive/2")
REDIS_FORMAT: Final = "rollback-drill-redis-archive/1"

Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class BackupManifestError(BackupFileError):
    """A backup manifest that cannot be read: the message names the file, field and why."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _file_config(title: str, schema_file: str) -> ConfigDict:
    """A file's model: its title and the `$id` of the schema generated from it."""
    schema_id = f"https://rollback-drill.invalid/schemas/{schema_file}"
    return ConfigDict(
        extra="forbid", frozen=True, title=title, json_schema_extra={"$id": schema_id}
    )


class MongoCollection(_Model):
    """One collection's files: its raw BSON, mongodump's metadata beside it and (when the
    backup kept them) its sorted per-document records, each with a checksum."""

    file: str = Field(description="the collection's BSON file, relative to the backup")
    count: int = Field(ge=0)
    sha256: Sha256
    metadata: str | None = Field(
        default=None,
        description="mongodump's `.metadata.json`, relative to the backup; null: format 1-2",
    )
    metadata_sha256: Sha256 | None = None
    records: str | None = Field(
        default=None, description="the sorted records' file; null: not kept (then the BSON is read)"
    )
    digest: Sha256 | None = Field(
        default=None, description="SHA-256 of the records: the collection's content hash"
    )
    indexes: list[dict[str, Any]] = Field(
        description="createIndexes specs as canonical extended JSON, `_id_` left out"
    )
    options: dict[str, Any] = Field(description="the collection's options as extended JSON")


class MongoManifest(_Model):
    model_config = _file_config(
        "rollback-drill MongoDB backup manifest, format 3", "mongo-archive-3.schema.json"
    )
    format: Literal["rollback-drill-mongo-archive/3"] = MONGO_FORMAT
    database: str
    created: float = Field(description="epoch seconds: every write acknowledged before it is in")
    finished: float | None = Field(description="epoch seconds; null: format 1 did not say")
    collections: dict[str, MongoCollection]

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.model_dump(mode="json"), indent=2) + "\n")


class RedisEntry(_Model):
    key: str = Field(description="the key, base64")
    ttl_ms: int = Field(ge=0, description="0: no expiry")
    dump: str = Field(description="DUMP's payload, base64")


class RedisArchive(_Model):
    model_config = _file_config(
        "rollback-drill Redis backup, format 1", "redis-archive-1.schema.json"
    )
    format: Literal["rollback-drill-redis-archive/1"] = REDIS_FORMAT
    keys: int = Field(ge=0)
    sha256: Sha256 = Field(description="of the entries as canonical JSON (`entries_sha256`)")
    entries: list[RedisEntry]

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.model_dump(mode="json")))


def entries_sha256(entries: list[RedisEntry]) -> str:
    """The Redis archive's checksum: its entries as sorted-key JSON."""
    body = json.dumps([e.model_dump(mode="json") for e in entries], sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()


class RestoreJournal(_Model):
    """`restore-journal.json` beside an archive being restored: which process restores, the
    session holding its transaction, how far it got; removed when the restore ends, so a next
    restore can finish what an interrupted one left."""

    process: str = Field(description="the restoring process, `<pid>:<start ticks>`")
    updated: float = Field(description="epoch seconds of this state")
    started: float = Field(description="epoch seconds the restore started")
    state: str = Field(description="the phase it was in: transaction, rebuilds, indexes ...")
    session: str | None = Field(default=None, description="the transaction's lsid, hex")


def _v1_index(entry: Any) -> Any:
    """A format-1 index entry (name, key as [field, direction] pairs, unique) as the
    createIndexes spec it stands for, in extended JSON (left as it is when it is not one:
    the model then names what is wrong)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("key"), list):
        return entry
    try:
        spec: dict[str, Any] = {"name": entry["name"], "key": {str(k): v for k, v in entry["key"]}}
    except (KeyError, TypeError, ValueError):
        return entry
    if entry.get("unique"):
        spec["unique"] = True
    return spec


def migrate_mongo(data: dict[str, Any]) -> dict[str, Any]:
    """A manifest of format 1 or 2 as format 3 (see the module docstring)."""
    major = int(str(data["format"]).rsplit("/", 1)[1])
    new = {"finished": None, **data, "format": MONGO_FORMAT}
    collections = data.get("collections")
    if isinstance(collections, dict):
        migrated = {}
        for name, entry in collections.items():
            if isinstance(entry, dict) and major < 2:
                indexes = entry.get("indexes")
                entry = {"options": {}, **entry}
                if isinstance(indexes, list):
                    entry["indexes"] = [_v1_index(i) for i in indexes]
            migrated[name] = entry
        new["collections"] = migrated
    return new


M = TypeVar("M", bound=BaseModel)


def _parse(model: type[M], data: Any, path: Path, formats: tuple[str, ...]) -> M:
    found = data.get("format") if isinstance(data, dict) else type(data).__name__
    if found not in formats:
        raise BackupManifestError(
            f"{path}: format: found {found!r}, expected {' or '.join(map(repr, formats))}"
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise BackupManifestError(describe_errors(exc, path)) from None


def _read(path: Path) -> Any:
    try:
        return read_json(path, "a JSON backup manifest")
    except SpecError as exc:
        raise BackupManifestError(str(exc)) from None


def load_mongo(path: Path) -> MongoManifest:
    """The MongoDB backup's manifest (formats 1-2 migrated); BackupManifestError else."""
    data = _read(path)
    if isinstance(data, dict) and data.get("format") in MONGO_OLD_FORMATS:
        data = migrate_mongo(data)
    return _parse(MongoManifest, data, path, (MONGO_FORMAT, *MONGO_OLD_FORMATS))


def load_redis(path: Path) -> RedisArchive:
    return _parse(RedisArchive, _read(path), path, (REDIS_FORMAT,))


def mongo_schema() -> dict[str, Any]:
    return MongoManifest.model_json_schema()


def redis_schema() -> dict[str, Any]:
    return RedisArchive.model_json_schema()


__all__ = [
    "MONGO_FORMAT",
    "MONGO_OLD_FORMATS",
    "REDIS_FORMAT",
    "BackupManifestError",
    "MongoCollection",
    "MongoManifest",
    "RedisArchive",
    "RedisEntry",
    "RestoreJournal",
    "entries_sha256",
    "load_mongo",
    "load_redis",
    "migrate_mongo",
]
