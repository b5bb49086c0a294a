"""A restore's own check reads back what it wrote when it wrote little of a collection, and
that read-back must see a document that did not land as the backup's: a replacement that
wrote something else, a delete or an insert that never happened. Real SecantusDB."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bson
import pytest
from bson.raw_bson import RawBSONDocument
from pymongo import ASCENDING, MongoClient, ReplaceOne
from pymongo.database import Database

from rollback_drill.stores import mongo, restore
from rollback_drill.stores.restoreplan import Plan

DB = "readbackdb"
PEOPLE = 5_000  # the restore writes 6 of them: read back (under 2 %)


@pytest.fixture
def backup(server: str, tmp_path: Path) -> Iterator[Path]:
    """A backup of `people` and `notes`, then a little damage to `people` only: 2 documents
    lost, 3 rewritten, 1 added; `notes` untouched."""
    conn: MongoClient[dict[str, Any]]
    with MongoClient(server) as conn:
        conn.drop_database(DB)
        db: Database[dict[str, Any]] = conn[DB]
        db.people.insert_many([{"_id": i, "email": f"p{i}@example.test"} for i in range(PEOPLE)])
        db.people.create_index([("email", ASCENDING)], unique=True, name="email_unique")
        db.notes.insert_many([{"_id": f"n{i}", "text": f"note {i}"} for i in range(200)])
        archive = tmp_path / "backup"
        mongo.backup(server, DB, archive)
        db.people.delete_many({"_id": {"$in": [10, 20]}})
        for i in (30, 40, 50):
            db.people.update_one({"_id": i}, {"$set": {"email": f"merged{i}@example.test"}})
        db.people.insert_one({"_id": "new", "email": "new@example.test"})
        yield archive
        conn.drop_database(DB)


def _everything(uri: str) -> mongo.Fingerprint:
    return mongo.fingerprint(uri, DB, ["notes", "people"])


def test_a_collection_the_restore_wrote_little_of_is_read_back_and_says_so(
    server: str, backup: Path
) -> None:
    report = mongo.restore(server, DB, backup)
    assert report.equal and report.atomic == "database", report.to_json()
    people = next(c for c in report.collections if c.name == "people")
    assert (people.deleted, people.inserted, people.replaced) == (1, 2, 3)
    assert report.verified_by["people"].startswith("6 documents the restore wrote read back")
    assert report.verified_by["notes"].startswith("not written by the restore")
    assert report.to_json()["verified_by"] == report.verified_by
    archive = mongo.verify_archive(backup)
    archived = {n: mongo.archive_print(archive, n) for n in ("people", "notes")}
    now = _everything(server).collections
    assert {n: (c.count, c.sha256) for n, c in now.items()} == {
        n: (c.count, c.sha256) for n, c in archived.items()
    }


def _wrong_replacement(doc: RawBSONDocument) -> ReplaceOne[RawBSONDocument]:
    changed = bson.decode(doc.raw)
    if changed["_id"] == 40:
        changed["email"] = "not-the-backup@example.test"
    return ReplaceOne({"_id": changed["_id"]}, RawBSONDocument(bson.encode(changed)))


@pytest.mark.parametrize("fault", ["replacement", "delete", "insert"])
def test_a_written_document_that_did_not_land_as_the_backups_fails_the_check(
    server: str, backup: Path, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    """The transaction writes something else, or leaves one delete or insert out; the plan
    (which the check reads back by) still says what should have been written."""
    if fault == "replacement":
        monkeypatch.setattr(restore, "_replacement", _wrong_replacement)
    else:
        write = restore._write

        def short(db: Any, archive: Any, plan: Plan, session: Any, replace: bool) -> None:
            if plan.name == "people" and fault == "delete":
                plan = dataclasses.replace(plan, delete=plan.delete[1:])
            if plan.name == "people" and fault == "insert":
                plan = dataclasses.replace(plan, insert=set(sorted(plan.insert)[1:]))
            write(db, archive, plan, session, replace)

        monkeypatch.setattr(restore, "_write", short)
    report = mongo.restore(server, DB, backup)
    assert report.verified_by["people"].startswith("6 documents the restore wrote read back")
    assert not report.equal
    people = next(d for d in report.verified if d.name == "people")
    assert (people.lost, people.altered, people.added) == {
        "replacement": (0, 1, 0), "delete": (0, 0, 1), "insert": (1, 0, 0),
    }[fault]  # fmt: skip
    monkeypatch.undo()
    assert mongo.restore(server, DB, backup).equal  # and a rerun converges
