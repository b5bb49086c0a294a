"""How the harness talks to MongoDB: short-lived clients that fail within a timeout, command
answers as plain dicts, and a collection's indexes and options as exact, comparable values.
Shared by the fingerprint, the backup and the restore, so all three see a collection alike.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import bson
import pymongo.common
from bson import json_util
from bson.raw_bson import RawBSONDocument
from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.database import Database

# pymongo's monitor threads look at their stop flag every MIN_HEARTBEAT_INTERVAL (0.5 s), a
# streaming monitor waits on the server, and its exit hook joins them all: every process that
# used a client exited up to 0.7 s late (the verify process's whole budget is under a second).
# The clients here are short-lived: polling monitors that check the flag every 50 ms.
pymongo.common.MIN_HEARTBEAT_INTERVAL = 0.05

#: Index fields that describe the server's bookkeeping, not the index.
INDEX_NOISE = ("v", "ns", "background")


@contextmanager
def client(
    uri: str, timeout_s: float = 2.0, socket_timeout_s: float | None = None
) -> Iterator[MongoClient[RawBSONDocument]]:
    """A client that fails within `timeout_s` instead of pymongo's 30 s default when the
    server does not answer; one operation may take `socket_timeout_s` (default 10 x
    `timeout_s`, at least 10 s: a large transaction's commit takes a while)."""
    ms = int(timeout_s * 1000)
    socket_ms = int(socket_timeout_s * 1000) if socket_timeout_s else max(ms * 10, 10_000)
    conn: MongoClient[RawBSONDocument] = MongoClient(
        uri,
        serverSelectionTimeoutMS=ms,
        connectTimeoutMS=ms,
        socketTimeoutMS=socket_ms,
        document_class=RawBSONDocument,
        directConnection=True,
        retryWrites=False,
        serverMonitoringMode="poll",
    )
    try:
        yield conn
    finally:
        conn.close()


def plain(doc: Any) -> dict[str, Any]:
    """A command answer as a dict, whatever document class the client was given."""
    raw = getattr(doc, "raw", None)
    return bson.decode(raw) if raw is not None else dict(doc)


def index_specs(coll: Collection[RawBSONDocument]) -> list[dict[str, Any]]:
    """Every index but `_id_` as createIndexes takes it (name, key, unique, sparse, TTL,
    partial filter...), sorted by name; the server's bookkeeping fields left out."""
    specs = []
    for info in map(plain, coll.list_indexes()):
        if info.get("name") == "_id_":
            continue
        for noise in INDEX_NOISE:
            info.pop(noise, None)
        specs.append(info)
    return sorted(specs, key=lambda i: str(i["name"]))


def collection_options(
    db: Database[RawBSONDocument], names: list[str]
) -> dict[str, dict[str, Any]]:
    """name -> the options it was created with, for those of `names` that exist."""
    listed = db.list_collections(filter={"name": {"$in": names}})
    return {str(info["name"]): dict(info.get("options", {})) for info in map(plain, listed)}


def to_json_value(value: Any) -> Any:
    """BSON values (dates, regexes, int64) as canonical extended JSON objects: exact in a
    JSON file, and `from_json_value` gives back the same BSON types."""
    return json.loads(json_util.dumps(value, json_options=json_util.CANONICAL_JSON_OPTIONS))


def from_json_value(value: Any) -> Any:
    return json_util.loads(json.dumps(value))


__all__ = [
    "client",
    "collection_options",
    "from_json_value",
    "index_specs",
    "plain",
    "to_json_value",
]
