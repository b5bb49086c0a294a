"""Reading a live collection the way the fingerprint, the backup and the restore compare it:
raw batches, one (id digest, document digest) record per document, the collection's indexes
and options.

SecantusDB serves one request at a time (two scans at once take as long as both one after
the other; splitting a collection into `_id` ranges is slower still, an index walk instead
of the natural order), so what there is to gain is keeping it busy: each collection's next
batch is fetched in a thread while this one is hashed (`raw_batches`), and collections are
read concurrently. A fingerprint then costs about the server's raw scan
(benchmarks/bench_stores.py measures it beside a plain pymongo scan).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from bson.raw_bson import RawBSONDocument
from pymongo.collection import Collection
from pymongo.database import Database

from rollback_drill.stores import bsonscan
from rollback_drill.stores.fingerprint import (
    CollectionPrint,
    IndexPrint,
    canonical,
    index_print,
    pack,
)
from rollback_drill.stores.mongoconn import index_specs

BATCH = 10_000
MAX_WORKERS = 4
PREFETCH = 2  # batches fetched ahead of the reader (10 000 user documents: about 2.5 MB each)
_DONE = object()
T = TypeVar("T")
R = TypeVar("R")


def concurrently(fn: Callable[[T], R], items: Iterable[T], workers: int = MAX_WORKERS) -> list[R]:
    """`fn` over `items` on up to `workers` threads, results in order; the first error raises."""
    items = list(items)
    if len(items) <= 1:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(fn, items))


def raw_batches(
    coll: Collection[RawBSONDocument],
    query: dict[str, Any] | None = None,
    batch_size: int = BATCH,
    prefetch: int = PREFETCH,
) -> Generator[bytes, None, None]:
    """The documents matching `query`, in natural order, as raw BSON batches; up to
    `prefetch` batches are fetched ahead in a thread while the caller works on the current
    one. The first error (the server gone, a timeout) is raised to the caller; a caller that
    stops early stops the fetching too."""
    ahead: queue.Queue[object] = queue.Queue(maxsize=max(1, prefetch))
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                ahead.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def fetch() -> None:
        try:
            with coll.find_raw_batches(query or {}, batch_size=batch_size) as cursor:
                for batch in cursor:
                    if not put(cast(bytes, batch)):
                        return
            put(_DONE)
        except BaseException as exc:  # handed to the reader, raised there
            put(exc)

    fetcher = threading.Thread(target=fetch, name=f"fetch-{coll.name}", daemon=True)
    fetcher.start()
    try:
        while True:
            item = ahead.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield cast(bytes, item)
    finally:
        stop.set()
        fetcher.join(timeout=5)


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
    for batch in raw_batches(db[name], query):
        records.extend(bsonscan.records(batch))
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
    """A collection's documents as a restore plans with them: one 16-byte record (id digest,
    document digest) per document, packed in natural order, and beside each the `{_id}`
    document a delete or a replace needs."""

    packed: bytearray = field(default_factory=bytearray)
    id_docs: list[bytes] = field(default_factory=list)
    size: int = 0  # bytes of all the documents

    def __len__(self) -> int:
        return len(self.id_docs)


def keyed_collection(db: Database[RawBSONDocument], name: str) -> Keyed:
    found = Keyed()
    for batch in raw_batches(db[name]):
        found.size += len(batch)
        for record, id_doc in bsonscan.keyed(batch):
            found.packed += record
            found.id_docs.append(id_doc)
    return found


__all__ = [
    "Keyed",
    "concurrently",
    "index_prints",
    "keyed_collection",
    "print_collection",
    "raw_batches",
]
