"""Fingerprints catch any change; backups restore byte-identical data; corrupt archives are
refused; a dead store fails within its timeout. Real SecantusDB and redis-server."""

from __future__ import annotations

import time
from pathlib import Path

import bson
import pytest
from bson.raw_bson import RawBSONDocument

from rollback_drill.stack.local import LocalStack
from rollback_drill.stores import mongo
from rollback_drill.stores import redis as redis_store

COLLECTIONS = ["users", "sessions"]


def _print(stack: LocalStack) -> mongo.Fingerprint:
    return mongo.fingerprint(stack.mongodb_uri, "safepsy", COLLECTIONS)


def test_fingerprint_is_stable_and_sees_every_kind_of_change(local_stack: LocalStack) -> None:
    before = _print(local_stack)
    assert before == _print(local_stack)
    assert before.collections["users"].count >= 50
    with mongo.client(local_stack.mongodb_uri) as conn:
        users = conn["safepsy"]["users"]
        victim = users.find_one({"email": {"$ne": "test@safepsy.com"}})
        assert victim is not None
        users.update_one({"_id": victim["_id"]}, {"$set": {"email": "changed@example.test"}})
        changed = _print(local_stack)
        assert changed.collections["users"].count == before.collections["users"].count
        assert changed.collections["users"].sha256 != before.collections["users"].sha256
        users.delete_one({"_id": victim["_id"]})
        assert (
            _print(local_stack).collections["users"].count == before.collections["users"].count - 1
        )
        users.insert_one(victim)
    assert _print(local_stack) == before


def test_backup_restore_round_trip(local_stack: LocalStack, tmp_path: Path) -> None:
    before = _print(local_stack)
    mongo.backup(local_stack.mongodb_uri, "safepsy", tmp_path / "archive")
    with mongo.client(local_stack.mongodb_uri) as conn:
        conn["safepsy"]["users"].delete_many({"email": {"$regex": "^user0000"}})
        conn["safepsy"]["scratch"].insert_one(RawBSONDocument(bson.encode({"x": 1})))
    assert _print(local_stack) != before
    restored = mongo.restore(local_stack.mongodb_uri, "safepsy", tmp_path / "archive")
    assert restored.equal and restored.counts()["users"] == before.collections["users"].count
    assert _print(local_stack) == before
    with mongo.client(local_stack.mongodb_uri) as conn:
        assert "scratch" not in conn["safepsy"].list_collection_names()
        assert any(
            info.get("unique") for info in conn["safepsy"]["users"].index_information().values()
        )


def test_corrupt_archive_is_refused_before_anything_is_dropped(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    archive = tmp_path / "archive"
    mongo.backup(local_stack.mongodb_uri, "safepsy", archive)
    users_file = archive / "users.bson"
    data = bytearray(users_file.read_bytes())
    data[100] ^= 0xFF
    users_file.write_bytes(bytes(data))
    before = _print(local_stack)
    with pytest.raises(mongo.ArchiveError, match="checksum mismatch"):
        mongo.restore(local_stack.mongodb_uri, "safepsy", archive)
    assert _print(local_stack) == before


def test_redis_backup_restore_and_flush(local_stack: LocalStack, tmp_path: Path) -> None:
    conn = redis_store.connect(local_stack.redis_url)
    conn.set("drill:probe", "v1")
    conn.set("drill:ttl", "v2", ex=300)
    archive = redis_store.backup(local_stack.redis_url, tmp_path / "redis.json")
    redis_store.flush_all(local_stack.redis_url)
    assert redis_store.key_count(local_stack.redis_url) == 0
    assert redis_store.restore(local_stack.redis_url, archive) >= 2
    assert conn.get("drill:probe") == b"v1"
    assert 0 < int(conn.ttl("drill:ttl")) <= 300
    conn.close()


@pytest.mark.parametrize("probe", ["mongodb", "redis"])
def test_unreachable_store_fails_within_its_timeout(probe: str) -> None:
    from rollback_drill.process.proc import free_port

    port = free_port()
    start = time.monotonic()
    with pytest.raises(Exception):  # noqa: B017 - any client error is the expected answer
        if probe == "mongodb":
            mongo.ping(f"mongodb://127.0.0.1:{port}/", timeout_s=1.0)
        else:
            redis_store.ping(f"redis://127.0.0.1:{port}/0", timeout_s=1.0)
    assert time.monotonic() - start < 3.0


def test_stack_backup_and_restore_of_both_stores(local_stack: LocalStack, tmp_path: Path) -> None:
    """The runbook's docker-manage.sh backup/restore, through the Stack protocol."""
    before = _print(local_stack)
    redis_store.connect(local_stack.redis_url).set("session:probe", "u1")
    archive = local_stack.backup_stores(tmp_path / "backup")
    with mongo.client(local_stack.mongodb_uri) as conn:
        conn["safepsy"]["sessions"].delete_many({})
    redis_store.flush_all(local_stack.redis_url)
    restored = local_stack.restore_stores(archive)
    assert restored["sessions"] == before.collections["sessions"].count
    assert restored["redis keys"] >= 1
    assert _print(local_stack) == before
    assert redis_store.connect(local_stack.redis_url).get("session:probe") == b"u1"
