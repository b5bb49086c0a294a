"""A restore's own check, its last step: every collection of the archive against the
archive's print (count, content hash over the per-document records, indexes, options), and
no other collection left.

Reading a collection again is the dearest part of a restore on SecantusDB (one request at a
time; a scan of 100 000 users costs about a second), and after a restore that wrote a few
documents of a large collection, most of it would re-read what the plan read seconds before,
with the services that write to it stopped. So the documents are checked the cheaper of two
ways, per collection:

- read again, whole: a collection rebuilt or created, or one the restore wrote more than
  `READ_BACK_FRACTION` of (a read by `_id` costs about as much as scanning 30-40 documents);
- read back: every document the restore deleted, inserted or replaced is asked for by its
  `_id` (a deleted one must be gone, the others equal to the backup's), and the documents it
  did not touch are taken as the plan read them, at the start of this restore. A collection
  the restore did not write at all is judged on the plan's reading alone.

Indexes and options are always read again. The report says, per collection, which way it was
checked. A writer the runbook did not stop, writing into the documents the restore did not
touch in the seconds between the plan and this check, is not seen here; the drill's
verification reads the integrity collections again, whole, afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from bson.raw_bson import RawBSONDocument
from pymongo.database import Database

from rollback_drill.stores import bsonscan
from rollback_drill.stores.archive import Archive
from rollback_drill.stores.fingerprint import (
    CollectionDiff,
    CollectionPrint,
    canonical,
    diff_collection,
    pack,
)
from rollback_drill.stores.livescan import concurrently, index_prints, print_collection
from rollback_drill.stores.mongoconn import collection_options
from rollback_drill.stores.restoreplan import Plan, archive_keyed

READ_BACK_FRACTION = 0.02
"""Read back by `_id` when the restore wrote at most this fraction of a collection's
documents; read the collection again otherwise. Measured here on 100 000 users: a read by
`_id` 0.3-0.55 ms, a scan 11-19 us a document."""

READ_BACK_THREADS = 4  # reads by `_id` in flight at once: the server works while one travels
READ_BACK_CHUNK = 100


@dataclass(frozen=True)
class Verified:
    diffs: tuple[CollectionDiff, ...]  # each archive collection, in the archive's order
    surplus: tuple[str, ...]  # collections left that the archive does not have
    how: dict[str, str] = field(default_factory=dict)  # collection -> how it was checked


def _documents(n: int) -> str:
    return f"{n} document" + ("" if n == 1 else "s")


def reads_back(plan: Plan) -> bool:
    """Whether the check reads back what the restore wrote, rather than the whole collection."""
    if plan.before is None or plan.create or plan.rebuild or plan.drop:
        return False
    return plan.documents <= READ_BACK_FRACTION * plan.before


def _written_ids(archive: Archive, plan: Plan) -> Iterator[RawBSONDocument]:
    """`{_id}` of every document the restore deleted, replaced or inserted."""
    for id_doc in [*plan.delete, *plan.replace.values()]:
        yield RawBSONDocument(id_doc)
    for batch in archive_keyed(archive, plan.name, plan.insert) if plan.insert else ():
        for _, doc in batch:
            yield RawBSONDocument(bsonscan.id_document(memoryview(doc.raw)))


def _read_back(
    db: Database[RawBSONDocument], archive: Archive, plan: Plan, options: dict[str, object]
) -> CollectionPrint:
    """The collection's print: the plan's records of the documents the restore did not touch,
    and every document it touched as the database holds it now."""
    touched = {bsonscan.id_digest(memoryview(d)) for d in plan.delete}
    touched |= plan.insert | plan.replace.keys()
    size = bsonscan.RECORD_BYTES
    live = bytes(plan.live)
    records = [
        live[i : i + size]
        for i in range(0, len(live), size)
        if live[i : i + bsonscan.DIGEST_BYTES] not in touched
    ]
    coll = db[plan.name]

    def ask(ids: list[RawBSONDocument]) -> list[bytes]:
        found = (coll.find_one(i) for i in ids)  # a deleted one must be gone: found, counted
        return [r for doc in found if doc is not None for r in bsonscan.records(doc.raw)]

    ids = list(_written_ids(archive, plan)) if touched else []
    step = max(READ_BACK_CHUNK, -(-len(ids) // READ_BACK_THREADS))
    for found in concurrently(ask, [ids[i : i + step] for i in range(0, len(ids), step)]):
        records.extend(found)
    packed, digest = pack(records)
    return CollectionPrint(
        count=len(records),
        sha256=digest,
        indexes=index_prints(db, plan.name),
        options=canonical(options),
        documents=packed,
    )


def verify_restore(
    db: Database[RawBSONDocument],
    archive: Archive,
    plans: Sequence[Plan],
    prints: dict[str, CollectionPrint],
) -> Verified:
    """Every archive collection now against its archived print (see the module docstring)."""
    names = list(archive.collections)
    planned = {p.name: p for p in plans}
    now = collection_options(db, names)
    how: dict[str, str] = {}

    def check(name: str) -> CollectionPrint | None:
        if name not in now:
            how[name] = "missing after the restore"
            return None
        plan = planned.get(name)
        if plan is not None and reads_back(plan):
            untouched = (plan.before or 0) - len(plan.delete) - len(plan.replace)
            how[name] = (
                f"{_documents(plan.documents)} the restore wrote read back by _id, the other "
                f"{untouched} as read when the restore began"
                if plan.documents
                else f"not written by the restore: its {_documents(plan.before or 0)} as read "
                "when the restore began"
            )
            return _read_back(db, archive, plan, now[name])
        printed = print_collection(db, name, now[name])
        how[name] = f"read again, all {_documents(printed.count)}"
        return printed

    after = concurrently(check, names)
    diffs = tuple(
        diff_collection(n, "exact", prints[n], a, empty_is_a_state=True)
        for n, a in zip(names, after, strict=True)
    )
    surplus = tuple(
        n for n in db.list_collection_names()
        if n not in archive.collections and not n.startswith("system.")
    )  # fmt: skip
    return Verified(diffs, surplus, {n: how[n] for n in names})


__all__ = ["READ_BACK_FRACTION", "Verified", "reads_back", "verify_restore"]
