"""MongoDB: fingerprints for integrity checks, and backups and restores the project makes
itself (mongodump cannot be had here).

`fingerprint` reads; what a fingerprint holds and how two compare is `stores.fingerprint`
(its names are re-exported here for the callers that always found them here). The backup's
format is `stores.archive` (mongodump's layout, with the tool's checksums beside it); the
backups mongodump writes are read by `stores.dump`; the restore, which cannot half-finish,
takes either and is `stores.restore`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime

from rollback_drill.process.errors import ArchiveError, FingerprintError, RestoreError
from rollback_drill.stores.archive import (
    MANIFEST,
    READABLE,
    Archive,
    archive_print,
    backup,
    verify_archive,
)
from rollback_drill.stores.fingerprint import CollectionPrint, Fingerprint, pack
from rollback_drill.stores.livescan import concurrently, print_collection
from rollback_drill.stores.mongoconn import client, collection_options
from rollback_drill.stores.restore import RestoreReport, restore

#: Archive formats `backup` writes and `restore` reads (assess finds backups by them).
FORMATS = READABLE

__all__ = [
    "FORMATS",
    "MANIFEST",
    "Archive",
    "ArchiveError",
    "CollectionPrint",
    "Fingerprint",
    "FingerprintError",
    "RestoreError",
    "RestoreReport",
    "archive_print",
    "backup",
    "client",
    "fingerprint",
    "ping",
    "restore",
    "verify_archive",
]


def fingerprint(
    uri: str,
    database: str,
    collections: Sequence[str],
    timeout_s: float = 2.0,
    cutoffs: dict[str, tuple[str, datetime]] | None = None,
) -> Fingerprint:
    """Per-document digests, indexes and options of each collection (see stores.fingerprint),
    the collections read concurrently.

    Documents are read in raw batches in natural order - sorting by _id costs SecantusDB up
    to six times the scan - and hashed as stored; the records are sorted afterwards. With
    `cutoffs`, a collection's print covers only documents created up to its cutoff.
    """
    cuts = {k: v for k, v in (cutoffs or {}).items() if k in collections}
    with client(uri, timeout_s) as conn:
        db = conn[database]
        listed = collection_options(db, list(collections))

        def one(name: str) -> CollectionPrint:
            if name not in listed:
                return CollectionPrint(0, pack([])[1], exists=False)
            query = {cuts[name][0]: {"$lte": cuts[name][1]}} if name in cuts else None
            return print_collection(db, name, listed[name], query)

        prints = dict(zip(collections, concurrently(one, collections), strict=True))
    return Fingerprint(database, prints, cuts)


def ping(uri: str, timeout_s: float = 2.0) -> float:
    """Round-trip time of the `ping` command in seconds."""
    with client(uri, timeout_s) as conn:
        start = time.monotonic()
        conn.admin.command("ping")
        return time.monotonic() - start
