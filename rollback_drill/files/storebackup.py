"""The manifests of a store backup, as pydantic models: what `stores.archive` (MongoDB) and
`stores.redis` (Redis) write beside the data, and read back before a byte of it reaches a
database. The bytes themselves (BSON, DUMP payloads) stay where their formats live; this is
only what describes and checks them.

MongoDB, `<backup>/mongodb/manifest.json`, format 2 (format 1 is still read: its index entries
hold only name, key and uniqueness, which `stores.archive` turns into createIndexes specs).
Redis, `<backup>/redis.json`, format 1: every key's DUMP payload and TTL, with a checksum.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Final, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rollback_drill.files.specmodel import describe_errors
from rollback_drill.files.userfiles import SpecError, read_json

MONGO_FORMAT: Final = "rollback-drill-mongo-archive/2"
MONGO_OLD_FORMAT: Final = "rollback-drill-mongo-archive/1"
REDIS_FORMAT: Final = "rollback-drill-redis-archive/1"

Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class BackupManifestError(SpecError):
    """A backup manifest that cannot be read: the message names the file, field and why."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MongoCollection(_Model):
    """One collection's files: its raw BSON and (when the backup kept them) its sorted
    per-document records, each with a checksum."""

    file: str = Field(description="the collection's BSON file, relative to the backup")
    count: int = Field(ge=0)
    sha256: Sha256
    records: str | None = Field(default=None, description="the sorted records' file")
    digest: Sha256 | None = Field(
        default=None, description="SHA-256 of the records: the collection's content hash"
    )
    indexes: list[dict[str, Any]] = Field(
        description="createIndexes specs as extended JSON, `_id_` left out (format 1: name, "
        "key as [field, direction] pairs, unique)"
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="the collection's options as extended JSON"
    )


class MongoManifest(_Model):
    format: Literal["rollback-drill-mongo-archive/2", "rollback-drill-mongo-archive/1"] = (
        MONGO_FORMAT
    )
    database: str
    created: float = Field(description="epoch seconds: every write acknowledged before it is in")
    finished: float | None = Field(default=None, description="epoch seconds; absent in format 1")
    collections: dict[str, MongoCollection]

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.model_dump(mode="json"), indent=2) + "\n")


class RedisEntry(_Model):
    key: str = Field(description="the key, base64")
    ttl_ms: int = Field(ge=0, description="0: no expiry")
    dump: str = Field(description="DUMP's payload, base64")


class RedisArchive(_Model):
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


M = TypeVar("M", bound=BaseModel)


def _load(model: type[M], path: Path, formats: tuple[str, ...]) -> M:
    data = read_json(path, "a JSON backup manifest")
    found = data.get("format") if isinstance(data, dict) else type(data).__name__
    if found not in formats:
        raise BackupManifestError(
            f"{path}: format: found {found!r}, expected {' or '.join(map(repr, formats))}"
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise BackupManifestError(describe_errors(exc, path)) from None


def load_mongo(path: Path) -> MongoManifest:
    return _load(MongoManifest, path, (MONGO_FORMAT, MONGO_OLD_FORMAT))


def load_redis(path: Path) -> RedisArchive:
    return _load(RedisArchive, path, (REDIS_FORMAT,))


def mongo_schema() -> dict[str, Any]:
    return MongoManifest.model_json_schema()


def redis_schema() -> dict[str, Any]:
    return RedisArchive.model_json_schema()


__all__ = [
    "MONGO_FORMAT",
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
]
