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
    users_file = archive / "safepsy" / "users.bson"
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


# -- Redis as an RDB file (`dump.rdb`), written here to the RDB format ---------------------------
def _crc64_jones(data: bytes) -> int:
    """Redis's CRC-64 (Jones: reflected in and out, initial 0, no final xor), bit by bit."""
    poly = int(f"{0xAD93D23594C935A9:064b}"[::-1], 2)  # the reflected polynomial
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
    return crc


def _rdb_length(n: int) -> bytes:
    if n < 64:
        return bytes([n])
    if n < 16384:
        return bytes([0x40 | (n >> 8), n & 0xFF])
    return b"\x80" + n.to_bytes(4, "big")


def _rdb_string(s: bytes) -> bytes:
    return _rdb_length(len(s)) + s


def _rdb(strings: dict[bytes, bytes], sets: dict[bytes, list[bytes]],
         hashes: dict[bytes, dict[bytes, bytes]], expiring: dict[bytes, int],
         bad_checksum: bool = False) -> bytes:  # fmt: skip
    """An RDB version 9 file: header, an aux field, SELECTDB 0, RESIZEDB, the keys (strings,
    sets, hashes; EXPIRETIME_MS before those that expire), EOF and the CRC-64 of it all."""
    out = b"REDIS0009" + b"\xfa" + _rdb_string(b"redis-ver") + _rdb_string(b"7.0.0")
    total = len(strings) + len(sets) + len(hashes)
    out += b"\xfe\x00" + b"\xfb" + _rdb_length(total) + _rdb_length(len(expiring))
    for key, value in strings.items():
        if key in expiring:
            out += b"\xfc" + expiring[key].to_bytes(8, "little")
        out += b"\x00" + _rdb_string(key) + _rdb_string(value)
    for key, members in sets.items():
        out += b"\x02" + _rdb_string(key) + _rdb_length(len(members))
        out += b"".join(_rdb_string(m) for m in members)
    for key, fields in hashes.items():
        out += b"\x04" + _rdb_string(key) + _rdb_length(len(fields))
        out += b"".join(_rdb_string(f) + _rdb_string(v) for f, v in fields.items())
    out += b"\xff"
    return out + (_crc64_jones(out) ^ (1 if bad_checksum else 0)).to_bytes(8, "little")


STRINGS = {f"session:{i}".encode(): f"user-{i}".encode() * 3 for i in range(300)}
SETS = {b"online": [f"u{i}".encode() for i in range(70)]}
HASHES = {b"user:7": {b"name": b"Seven", b"plan": b"pro"}}


def test_redis_rdb_file_restores_through_the_stacks_own_server(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    assert _crc64_jones(b"123456789") == 0xE9C6D914C4B8D9CA  # Redis's crc64 check value
    expires = int(time.time() * 1000) + 3_600_000
    rdb = tmp_path / "dump.rdb"
    rdb.write_bytes(_rdb(STRINGS, SETS, HASHES, {b"session:1": expires}))
    conn = redis_store.connect(local_stack.redis_url)
    conn.set("left:over", "from before the restore")
    keys = local_stack.restore_redis_rdb(rdb)
    conn = redis_store.connect(local_stack.redis_url)
    try:
        assert keys == conn.dbsize() == 302
        assert conn.get("left:over") is None
        assert conn.get("session:299") == b"user-299" * 3
        assert conn.scard("online") == 70 and conn.hget("user:7", "plan") == b"pro"
        assert 3_500_000 < conn.pttl("session:1") <= 3_600_000
    finally:
        conn.close()


def test_a_corrupt_rdb_file_is_refused_naming_it_and_redis_is_untouched(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    rdb = tmp_path / "dump.rdb"
    rdb.write_bytes(_rdb(STRINGS, SETS, HASHES, {}, bad_checksum=True))
    conn = redis_store.connect(local_stack.redis_url)
    conn.set("kept", "yes")
    before = redis_store.url_contents(local_stack.redis_url)
    with pytest.raises(redis_store.RdbError, match=rf"{rdb}: redis-server would not load it: .*"):
        local_stack.restore_redis_rdb(rdb)
    assert redis_store.url_contents(local_stack.redis_url) == before
    conn.close()
