"""Put a database back to an archive's state (the runbook's `docker-manage.sh restore`) so that
the restore cannot half-finish: interrupted at any point - the harness killed, the connection
dropped - the database holds its old documents or the backup's, never a mixture, and running
the restore again converges on the backup.

    1. verify the archive (every file's checksum): nothing is touched before
    2. finish what an interrupted restore left: the transaction a killed restore leaves open
       holds its locks until the server reaps it (SecantusDB never does while a writer waits),
       so its session, recorded in the journal beside the archive, is killed; collections
       half-built beside their originals are dropped
    3. plan (stores.restoreplan), reading every collection concurrently: live documents
       against the archive's by (id digest, document digest) - deleted, missing, altered -
       and indexes and options
    4. documents: one multi-document transaction over every collection (create, delete,
       replace, insert), journalled with its session id: all of it commits or none. A
       collection whose options differ is instead rebuilt beside itself and renamed over the
       original (atomic per collection; the report says which), and so are the largest
       collections while the transaction would be too big for the server's cache
    5. what MongoDB cannot do in a transaction: indexes the backup lacks are dropped before
       the documents change (they could refuse the backup's documents), the backup's indexes
       created after them (a unique index holds only on the backup's data), surplus
       collections dropped. Interrupted there, the documents are the old ones or the
       backup's, and the rerun's plan finds only the indexes left to do
    6. verify (stores.restoreverify): every collection equals the archive's print (count,
       content hash, indexes, options), and nothing else is left; then the journal goes. A
       collection the restore wrote little of is checked by reading back what it wrote

A restore only writes what differs, so restoring a database that a migration damaged in a
few thousand documents costs those documents, not the whole database.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Literal

import bson
from bson.binary import Binary
from bson.raw_bson import RawBSONDocument
from pydantic import ValidationError
from pymongo import DeleteOne, MongoClient, ReplaceOne, WriteConcern
from pymongo.client_session import ClientSession
from pymongo.database import Database
from pymongo.errors import PyMongoError

from rollback_drill.files.specmodel import describe_errors
from rollback_drill.files.storebackup import RestoreJournal
from rollback_drill.process.errors import RestoreError
from rollback_drill.process.procfs import ProcessIdentity, current
from rollback_drill.stores import bsonscan, dump
from rollback_drill.stores.archive import JOURNAL, Archive
from rollback_drill.stores.fingerprint import CollectionDiff, canonical
from rollback_drill.stores.livescan import concurrently
from rollback_drill.stores.mongoconn import client, collection_options
from rollback_drill.stores.restoreplan import (
    BATCH,
    MAX_TRANSACTION_BYTES,
    MAX_TRANSACTION_DOCS,
    CollectionRestore,
    Plan,
    archive_keyed,
    fit_transaction,
    plan_collection,
)
from rollback_drill.stores.restoreverify import Verified, verify_restore

STAGING_SUFFIX = ".rollback-drill-restore"
DUPLICATE_KEY = 11000
COLLMOD_OPTIONS = ("validator", "validationLevel", "validationAction", "expireAfterSeconds")
Atomicity = Literal["database", "per collection", "nothing to restore"]


@dataclass(frozen=True)
class RestoreReport:
    database: str
    archive: Path
    backup_started: float  # epoch: writes acknowledged before it are in the backup
    atomic: Atomicity
    collections: tuple[CollectionRestore, ...]
    verified: tuple[CollectionDiff, ...]  # each collection against the archive, after
    surplus: tuple[str, ...] = ()  # collections left that the archive does not have
    interrupted: str | None = None  # an earlier restore this one found and finished
    seconds: dict[str, float] = field(default_factory=dict)
    verified_by: dict[str, str] = field(default_factory=dict)  # collection -> how it was read
    backup_checked: str = ""  # how the backup itself was verified before anything changed

    @property
    def equal(self) -> bool:
        return bool(self.verified) and all(d.equal for d in self.verified) and not self.surplus

    def counts(self) -> dict[str, int]:
        return {c.name: c.count_after for c in self.collections if c.how != "dropped"}

    def to_json(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "archive": str(self.archive),
            "backup_checked": self.backup_checked,
            "backup_started_epoch": self.backup_started,
            "atomic": self.atomic,
            "interrupted_restore_finished": self.interrupted,
            "collections": [c.to_json() for c in self.collections],
            "verified_against_backup": [d.row() for d in self.verified],
            "verified_by": self.verified_by,
            "surplus_collections": list(self.surplus),
            "equal_to_backup": self.equal,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }


class _Journal:
    """The restore's state beside the archive: which process, which session holds its
    transaction, how far it got. Written before the transaction starts; removed at the end."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> RestoreJournal | None:
        """The journal an earlier restore left; RestoreError naming the file and field for
        one that is not a journal (the restore does not guess whose it is)."""
        try:
            text = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise RestoreError(f"{self.path}: unreadable restore journal: {exc}") from None
        try:
            return RestoreJournal.model_validate_json(text)
        except ValidationError as exc:
            raise RestoreError(describe_errors(exc, self.path)) from None

    def save(self, *, started: float, state: str, session: str | None = None) -> None:
        journal = RestoreJournal(
            process=str(current()), updated=time.time(), started=started, state=state,
            session=session,
        )  # fmt: skip
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(journal.model_dump_json())
        os.replace(tmp, self.path)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


def _finish_interrupted(
    conn: MongoClient[RawBSONDocument], db: Database[RawBSONDocument], journal: _Journal
) -> str | None:
    prior = journal.read()
    leftovers = [n for n in db.list_collection_names() if n.endswith(STAGING_SUFFIX)]
    for name in leftovers:
        db.drop_collection(name)
    if prior is None:
        return f"dropped half-built {leftovers}" if leftovers else None
    owner = ProcessIdentity.parse(prior.process)
    if owner is not None and owner != current() and owner.alive():
        raise RestoreError(
            f"{journal.path}: a restore by process {owner.pid} is still running; not starting "
            "another over it"
        )
    if prior.session:
        try:  # its transaction, if the server still holds it open, ends now
            lsid = {"id": Binary(bytes.fromhex(prior.session), 4)}
            conn.admin.command("killSessions", [lsid])
        except PyMongoError:
            pass  # a server without killSessions reaps it itself; the plan reads what is there
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(prior.started))
    return f"a restore started {started} UTC stopped during its {prior.state}"


def _archive_documents(archive: Archive, name: str) -> Iterator[list[RawBSONDocument]]:
    """Every document the archive holds of a collection, in batches."""
    with archive.contents(name) as data:
        docs = bsonscan.documents(data, str(archive.file(name)))
        while batch := [RawBSONDocument(bytes(doc)) for doc in islice(docs, BATCH)]:
            yield batch


def _replacement(doc: RawBSONDocument) -> ReplaceOne[RawBSONDocument]:
    return ReplaceOne({"_id": doc["_id"]}, doc, upsert=True)


def _duplicate_key(exc: PyMongoError) -> bool:
    if getattr(exc, "code", None) == DUPLICATE_KEY:
        return True
    errors = getattr(exc, "details", None) or {}
    return any(e.get("code") == DUPLICATE_KEY for e in errors.get("writeErrors", []))


def _in_transaction(
    conn: MongoClient[RawBSONDocument],
    db: Database[RawBSONDocument],
    archive: Archive,
    plans: Sequence[Plan],
    journal: _Journal,
    started: float,
) -> None:
    """Altered documents are replaced in place (half the server's work of a delete and an
    insert). Replacing them one by one can meet a unique value another altered document
    still holds (two e-mail addresses swapped): then that transaction is abandoned - none of
    it happened - and a second one deletes every altered document before inserting."""

    def attempt(replace: bool) -> None:
        session: ClientSession
        with conn.start_session() as session:
            lsid = bytes(session.session_id["id"]).hex()
            journal.save(started=started, state="transaction", session=lsid)
            with session.start_transaction(write_concern=WriteConcern("majority", j=True)):
                for plan in plans:
                    _write(db, archive, plan, session, replace)

    try:
        attempt(replace=True)
    except PyMongoError as exc:
        if not _duplicate_key(exc):
            raise
        attempt(replace=False)
    journal.save(started=started, state="indexes and surplus collections")


def _write(
    db: Database[RawBSONDocument],
    archive: Archive,
    plan: Plan,
    session: ClientSession,
    replace: bool,
) -> None:
    """One collection's part of the transaction."""
    coll = db[plan.name]
    if plan.create:
        db.create_collection(plan.name, session=session, **archive.collections[plan.name].options)
    deletes = plan.delete if replace else plan.delete + list(plan.replace.values())
    for i in range(0, len(deletes), BATCH):
        # one DeleteOne per id: SecantusDB answers `_id: {$in: [...]}` by scanning
        chunk = [DeleteOne(bson.decode(d)) for d in deletes[i : i + BATCH]]
        coll.bulk_write(chunk, ordered=False, session=session)
    replaced = plan.replace.keys() if replace else set()
    wanted = plan.insert | plan.replace.keys()
    for batch in archive_keyed(archive, plan.name, wanted) if wanted else ():
        swaps = [_replacement(doc) for key, doc in batch if key in replaced]
        if swaps:
            coll.bulk_write(swaps, ordered=False, session=session)
        new = [doc for key, doc in batch if key not in replaced]
        if new:
            coll.insert_many(new, ordered=True, session=session)


def _rebuild(db: Database[RawBSONDocument], archive: Archive, plan: Plan) -> None:
    """The collection made anew beside the original, then renamed over it: readers see the
    old collection or the backup's, whole."""
    entry = archive.collections[plan.name]
    staging = plan.name + STAGING_SUFFIX
    db.drop_collection(staging)
    db.create_collection(staging, **entry.options)
    for batch in _archive_documents(archive, plan.name):
        db[staging].insert_many(batch, ordered=False)
    if entry.indexes:
        db.command("createIndexes", staging, indexes=list(entry.indexes))
    db.client.admin.command(
        "renameCollection", f"{db.name}.{staging}", to=f"{db.name}.{plan.name}", dropTarget=True
    )
    # SecantusDB's rename forgets the options a collection was created with (mongod keeps
    # them): put back the ones collMod can set; verification reports any other.
    now = collection_options(db, [plan.name]).get(plan.name, {})
    settable = {k: v for k, v in entry.options.items() if k in COLLMOD_OPTIONS}
    if canonical(now) != canonical(entry.options) and settable:
        db.command("collMod", plan.name, **settable)


def _drop_indexes(db: Database[RawBSONDocument], plan: Plan) -> None:
    """Before the documents: an index the backup does not have (a unique one above all)
    could refuse the backup's documents; dropping one changes no document."""
    for name in plan.index_drops:
        db[plan.name].drop_index(name)


def _ddl(db: Database[RawBSONDocument], plan: Plan) -> None:
    """After the documents: the backup's indexes (a unique one holds only on its data) and
    the surplus collections dropped (emptied by the transaction, or too big for it)."""
    if plan.drop:
        db.drop_collection(plan.name)
    elif plan.index_creates:
        db.command("createIndexes", plan.name, indexes=plan.index_creates)


def restore(
    uri: str,
    database: str,
    archive_dir: Path,
    timeout_s: float = 5.0,
    *,
    max_transaction_docs: int = MAX_TRANSACTION_DOCS,
    max_transaction_bytes: int = MAX_TRANSACTION_BYTES,
    verify: bool = True,
    progress: Callable[[str], None] | None = None,
) -> RestoreReport:
    """Make `database` equal to the backup at `archive_dir` (see the module docstring): the
    tool's own, or any form of mongodump's that stores.dump reads. `progress` hears each
    phase as it starts: planning, transaction, rebuilding, indexes, verifying, done."""
    with dump.opened(archive_dir, database) as archive:
        return _restore(
            uri, database, archive, archive_dir, timeout_s,
            (max_transaction_docs, max_transaction_bytes), verify, progress or (lambda _: None),
        )  # fmt: skip


def _restore(
    uri: str,
    database: str,
    archive: Archive,
    archive_dir: Path,
    timeout_s: float,
    limits: tuple[int, int],
    verify: bool,
    say: Callable[[str], None],
) -> RestoreReport:
    max_transaction_docs, max_transaction_bytes = limits
    journal = _Journal(archive.journal)
    started = time.time()
    seconds: dict[str, float] = {}
    clock = time.monotonic()
    phase = "planning"
    say("planning")
    try:
        with client(uri, timeout_s, socket_timeout_s=300.0) as conn:
            db = conn[database]
            interrupted = _finish_interrupted(conn, db, journal)
            live_names = [n for n in db.list_collection_names() if not n.startswith("system.")]
            names = sorted(set(archive.collections) | set(live_names))
            options = collection_options(db, live_names)
            planned = concurrently(lambda n: plan_collection(db, archive, n, options), names)
            plans = [p for p, _ in planned]
            prints = {p.name: printed for p, printed in planned if printed is not None}
            seconds["plan"] = time.monotonic() - clock
            changed = [p for p in plans if p.documents or p.create or p.drop or p.rebuild]
            fit_transaction(changed, max_transaction_docs, max_transaction_bytes)
            in_txn = [p for p in changed if p.in_transaction]
            rebuilt = [p for p in changed if p.rebuild]
            clock, phase = time.monotonic(), "documents (nothing committed yet)"
            for p in plans:
                if not p.rebuild:
                    _drop_indexes(db, p)
            if in_txn:
                say("transaction")
                _in_transaction(conn, db, archive, in_txn, journal, started)
            phase = "collection rebuilds (each collection old or the backup's)"
            if rebuilt:
                say("rebuilding")
                journal.save(started=started, state="collection rebuilds")
                concurrently(lambda p: _rebuild(db, archive, p), rebuilt)
            seconds["documents"] = time.monotonic() - clock
            clock, phase = time.monotonic(), "indexes (documents already the backup's)"
            say("indexes")
            for p in plans:
                if not p.rebuild:
                    _ddl(db, p)
            seconds["indexes"] = time.monotonic() - clock
            clock, phase = time.monotonic(), "verification"
            checked = Verified((), ())
            if verify:
                say("verifying")
                checked = verify_restore(db, archive, plans, prints)
                seconds["verify"] = time.monotonic() - clock
    except PyMongoError as exc:
        raise RestoreError(
            f"restore of {database} from {archive_dir} stopped during {phase}: "
            f"{str(exc).splitlines()[0][:300]}; run the restore again to finish it"
        ) from exc
    journal.clear()
    say("done")
    alone = rebuilt or any(p.drop_alone for p in changed)
    atomic: Atomicity = (
        "nothing to restore" if not changed else "per collection" if alone else "database"
    )
    return RestoreReport(
        database, archive_dir, archive.started, atomic, tuple(p.outcome() for p in plans),
        checked.diffs, checked.surplus, interrupted, seconds, checked.how, archive.checked,
    )  # fmt: skip


__all__ = ["JOURNAL", "CollectionRestore", "RestoreError", "RestoreReport", "restore"]
