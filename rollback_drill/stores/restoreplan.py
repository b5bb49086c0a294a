"""The restore's plan: what differs between the live database and an archive, collection by
collection, and which of it one transaction can take (see stores.restore for the whole).

Live documents are matched to the archive's by (id digest, document digest): deleted ones the
backup lacks, inserted ones the database lost, altered ones replaced. A collection whose
options differ is rebuilt instead; so are the largest, one by one, while the transaction
would exceed `MAX_TRANSACTION_DOCS` changes or `MAX_TRANSACTION_BYTES` of documents: an
uncommitted transaction pins its documents, their oplog entries and index entries in the
server's cache, and past a fraction of it SecantusDB's storage engine livelocks (a
transaction of 100 000 user documents, 25 MB, never finished against its 1 GB cache; 60 000
took 5 s). A surplus collection too big for the transaction is dropped on its own.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from bson.raw_bson import RawBSONDocument
from pymongo.database import Database

from rollback_drill.stores import bsonscan
from rollback_drill.stores.archive import Archive, archive_print, archive_records, index_print
from rollback_drill.stores.fingerprint import CollectionPrint, canonical
from rollback_drill.stores.livescan import Keyed, keyed_collection
from rollback_drill.stores.mongoconn import index_specs

MAX_TRANSACTION_DOCS = 250_000
MAX_TRANSACTION_BYTES = 8 * 2**20
BATCH = 5_000
How = Literal["unchanged", "transaction", "rebuilt", "dropped"]


@dataclass(frozen=True)
class CollectionRestore:
    """What the restore did to one collection."""

    name: str
    how: How
    count_before: int | None  # None: the collection did not exist
    count_after: int
    deleted: int = 0  # documents the backup does not have
    inserted: int = 0  # documents the backup has and the database had lost
    replaced: int = 0  # documents that differed from the backup's
    index_changes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "collection": self.name,
            "how": self.how,
            "count_before": self.count_before,
            "count_after": self.count_after,
            "deleted": self.deleted,
            "inserted": self.inserted,
            "replaced": self.replaced,
            "indexes": list(self.index_changes) or "unchanged",
        }


@dataclass
class Plan:
    name: str
    before: int | None
    after: int
    delete: list[bytes] = field(default_factory=list)  # `{_id}` of those the backup lacks
    insert: set[bytes] = field(default_factory=set)  # id digests of those the database lacks
    replace: dict[bytes, bytes] = field(default_factory=dict)  # id digest -> `{_id}`: altered
    create: bool = False
    drop: bool = False
    rebuild: bool = False
    drop_alone: bool = False  # a surplus collection dropped outside the transaction
    bytes: int = 0  # the documents the transaction would write or delete (estimated)
    index_drops: list[str] = field(default_factory=list)
    index_creates: list[dict[str, Any]] = field(default_factory=list)
    live: bytearray = field(default_factory=bytearray, repr=False)  # live records, as read

    @property
    def documents(self) -> int:
        return len(self.delete) + len(self.insert) + len(self.replace)

    @property
    def in_transaction(self) -> bool:
        changed = self.documents or self.create or self.drop
        return bool(changed) and not (self.rebuild or self.drop_alone)

    @property
    def index_changes(self) -> tuple[str, ...]:
        return tuple(
            [f"dropped {n}" for n in self.index_drops]
            + [f"created {s['name']}" for s in self.index_creates]
        )

    def outcome(self) -> CollectionRestore:
        how: How = "dropped" if self.drop else "rebuilt" if self.rebuild else "transaction"
        if not (self.documents or self.create or self.drop or self.rebuild):
            how = "unchanged"
        deleted = (self.before or 0) if self.drop else len(self.delete)
        return CollectionRestore(
            self.name, how, self.before, 0 if self.drop else self.after,
            deleted, len(self.insert), len(self.replace), self.index_changes,
        )  # fmt: skip


def _differences(plan: Plan, live: Keyed, archived: bytes) -> None:
    """Deleted, inserted and replaced documents, by set algebra on (id digest, document
    digest) pairs: a million documents cost a fraction of a second, not a Python loop over a
    dictionary of them."""
    have, want = bsonscan.as_pairs(live.packed), bsonscan.as_pairs(archived)
    if have == want:
        return
    gone, new = have - want, want - have  # live pairs the backup lacks, and the reverse
    gone_ids, new_ids = {i for i, _ in gone}, {i for i, _ in new}
    altered = gone_ids & new_ids
    for word, id_doc in (
        zip(bsonscan.ids_of(live.packed), live.id_docs, strict=True) if gone else ()
    ):
        if word in gone_ids:
            if word in altered:
                plan.replace[bsonscan.digest_bytes(word)] = id_doc
            else:
                plan.delete.append(id_doc)
    plan.insert = {bsonscan.digest_bytes(i) for i in new_ids - altered}


def plan_collection(
    db: Database[RawBSONDocument],
    archive: Archive,
    name: str,
    live_options: dict[str, dict[str, Any]],
) -> tuple[Plan, CollectionPrint | None]:
    entry = archive.collections.get(name)
    exists = name in live_options
    live: Keyed = keyed_collection(db, name) if exists else Keyed()
    if entry is None:  # a collection the backup does not have: emptied, then dropped
        plan = Plan(name, len(live), 0, drop=True, bytes=live.size)
        plan.delete = list(live.id_docs)
        return plan, None
    packed = archive_records(archive, name)
    printed = archive_print(archive, name, packed)
    plan = Plan(name, len(live) if exists else None, entry.count, create=not exists)
    plan.live = live.packed
    _differences(plan, live, packed)
    archived_size = archive.file(name).stat().st_size // max(1, entry.count)
    live_size = live.size // max(1, len(live))
    written = len(plan.insert) + len(plan.replace)
    plan.bytes = written * archived_size + len(plan.delete) * live_size
    if exists and canonical(live_options[name]) != canonical(entry.options):
        plan.rebuild = True
    elif exists:
        have = {str(s["name"]): index_print(s) for s in index_specs(db[name])}
        want = {str(s["name"]): s for s in entry.indexes}
        plan.index_drops = sorted(
            n for n in have if n not in want or have[n] != index_print(want[n])
        )
        plan.index_creates = [
            want[n] for n in sorted(want) if n not in have or n in plan.index_drops
        ]
    else:
        plan.index_creates = [want for want in entry.indexes]
    return plan, printed


def archive_keyed(
    archive: Archive, name: str, wanted: set[bytes]
) -> Iterator[list[tuple[bytes, RawBSONDocument]]]:
    """The archive's documents of a collection whose id digest is in `wanted`, with it, in
    batches."""
    batch: list[tuple[bytes, RawBSONDocument]] = []
    with archive.contents(name) as data:
        for doc in bsonscan.documents(data, str(archive.file(name))):
            digest = bsonscan.id_digest(doc)
            if digest in wanted:
                batch.append((digest, RawBSONDocument(bytes(doc))))
                if len(batch) >= BATCH:
                    yield batch
                    batch = []
    if batch:
        yield batch


def fit_transaction(changed: Sequence[Plan], max_docs: int, max_bytes: int) -> None:
    """Take the largest collections out of the transaction - rebuilt, or dropped on their
    own - until what is left fits it (see the module docstring)."""
    inside = [p for p in changed if p.in_transaction]
    docs = sum(p.documents for p in inside)
    size = sum(p.bytes for p in inside)
    for plan in sorted(inside, key=lambda p: (p.bytes, p.documents), reverse=True):
        if docs <= max_docs and size <= max_bytes:
            return
        if plan.drop:
            plan.drop_alone, plan.delete = True, []
        else:
            plan.rebuild = True
        docs, size = docs - plan.documents, size - plan.bytes


__all__ = [
    "MAX_TRANSACTION_BYTES",
    "MAX_TRANSACTION_DOCS",
    "CollectionRestore",
    "How",
    "Plan",
    "archive_keyed",
    "fit_transaction",
    "plan_collection",
]
