"""Reading a live collection with the next batch fetched ahead: every document once, in
order; an error in the fetching thread reaches the reader (a fingerprint never passes on
part of a collection); a reader that stops early stops the fetching. Real SecantusDB."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from bson.raw_bson import RawBSONDocument
from pymongo import MongoClient
from pymongo.database import Database
from pymongo.errors import OperationFailure

from rollback_drill.stores import bsonscan, mongo, secantus
from rollback_drill.stores.livescan import raw_batches


@pytest.fixture(scope="module")
def uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("secantus")
    with secantus.running(data / "db", data / "mongodb.log") as server:
        conn: MongoClient[dict[str, Any]]
        with MongoClient(server.uri) as conn:
            db: Database[dict[str, Any]] = conn["scan"]
            db.items.insert_many([{"_id": i, "v": "x" * (i % 50)} for i in range(2500)])
        yield server.uri


def _fetchers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("fetch-")]


def test_every_document_once_in_natural_order(uri: str) -> None:
    with mongo.client(uri) as conn:
        coll = conn.scan.items
        ids = [
            RawBSONDocument(bytes(doc))["_id"]
            for batch in raw_batches(coll, batch_size=300, prefetch=2)
            for doc in bsonscan.documents(batch)
        ]
        assert ids == [doc["_id"] for doc in coll.find({})]
    assert len(ids) == 2500 and not _fetchers()


def test_an_error_while_fetching_reaches_the_reader(uri: str) -> None:
    with mongo.client(uri) as conn, pytest.raises(OperationFailure):
        list(raw_batches(conn.scan.items, {"_id": {"$nosuchoperator": 1}}))
    assert not _fetchers()


def test_a_reader_that_stops_early_stops_the_fetching(uri: str) -> None:
    with mongo.client(uri) as conn:
        batches = raw_batches(conn.scan.items, batch_size=100, prefetch=1)
        first = next(batches)
        assert sum(1 for _ in bsonscan.documents(first)) == 100
        batches.close()
        assert not _fetchers(), "the fetching thread outlived its reader"
