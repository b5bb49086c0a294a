"""Reading a live collection the way the fingerprint, the backup and the restore compare it:
raw batches, one (id digest, document digest) record per document, the collection's indexes
and options. Collections are read concurrently: on a server that serves one request at a
time per core this mostly overlaps our hashing with its reading, which is what there is to
gain (see benchmarks/bench_data.py for the figures)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from bson.raw_bson import RawBSONDocument
from pymongo.database import Database

from rollback_drill.stores import bsonscan
from rollback_drill.stores.archive import index_print
from rollback_drill.stores.fingerprint import CollectionPrint, IndexPrint, canonical, pack
from rollback_drill.stores.mongoconn import index_specs

BATCH = 10_000
MAX_WORKERS = 4
T = TypeVar("T")
R = TypeVar("R")


def concurrently(fn: Callable[[T], R], items: Iterable[T], workers: int = MAX_WORKERS) -> list[R]:
    """`fn` over `items` on up to `workers` threads, results in order; the first error raises."""
    items = list(items)
    if len(items) <= 1:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(fn, items))


def index_prints(db: Database[RawBSONDocument], name: str) -> tuple[IndexPrint, ...]:
    return tuple(sorted((index_print(s) for s in index_specs(db[name])), key=lambda i: i.name))


def print_collection(
    db: Database[RawBSONDocument],
    name: str,
    options: dict[str, Any],
    query: dict[str, Any] | None = None,
) -> CollectionPrint:
    """One existing collection's fingerprint (documents matching `query`, or all)."""
    records: list[bytes] = []
    for batch in db[name].find_raw_batches(query or {}, batch_size=BATCH):
        records.extend(bsonscan.records(cast(bytes, batch)))
    packed, digest = pack(records)
    return CollectionPrint(
        count=len(records),
        sha256=digest,
        indexes=index_prints(db, name),
        options=canonical(options),
        documents=packed,
    )


@dataclass
class Keyed:
    """A collection's documents keyed for a restore: id digest -> (document digest, the
    `{_id}` document a delete needs)."""

    docs: dict[bytes, tuple[bytes, bytes]] = field(default_factory=dict)


def keyed_collection(db: Database[RawBSONDocument], name: str) -> Keyed:
    found = Keyed()
    for batch in db[name].find_raw_batches({}, batch_size=BATCH):
        for record, id_doc in bsonscan.keyed(cast(bytes, batch)):
            found.docs[record[: bsonscan.DIGEST_BYTES]] = (record[bsonscan.DIGEST_BYTES :], id_doc)
    return found


__all__ = ["Keyed", "concurrently", "index_prints", "keyed_collection", "print_collection"]
