"""MongoDB backups in mongodump's formats, written here to the formats' specifications (no
mongodump binary exists on these machines): BSON per bsonspec.org with pymongo's `bson`,
`.metadata.json` as mongodump/metadata_dump.go writes it (canonical extended JSON), and
archives per mongo-tools' common/archive/spec.md. Each restores into a real SecantusDB through
the same restore the drills use, with its read-back check green; the tool's own backup passes
the same layout check; and a truncated `.bson`, an archive with a bad magic number and a
metadata file naming an index the database does not have are each refused naming the file."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import tarfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import bson
import pytest
from bson import Binary, Decimal128, Int64, ObjectId, json_util
from bson.raw_bson import RawBSONDocument
from bson.son import SON
from pymongo import MongoClient
from pymongo.database import Database

from rollback_drill.monitoring.assess import newest_backup_in
from rollback_drill.stack import backupfile
from rollback_drill.stores import dump, dumparchive, dumpfolder, mongo
from rollback_drill.stores.mongoconn import collection_options, index_specs

DB = "safepsy"
CANONICAL = json_util.CANONICAL_JSON_OPTIONS


# -- the data, and the files mongodump would write for it --------------------------------------
def _users(n: int) -> list[dict[str, Any]]:
    base = datetime(2026, 11, 1, tzinfo=UTC)
    return [
        {"_id": ObjectId(f"{i:024x}"), "email": f"u{i}@example.test", "n": Int64(i),
         "balance": Decimal128(Decimal(f"{i}.25")), "created": base, "tags": ["a", str(i)],
         "profile": {"name": f"user {i}", "key": Binary(bytes([i % 256]) * 8)}}
        for i in range(n)
    ]  # fmt: skip


def _sessions(n: int) -> list[dict[str, Any]]:
    return [{"_id": f"s{i}", "user": i, "expires": datetime(2027, 1, 1)} for i in range(n)]


COLLECTIONS: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]] = {
    # name: (documents, indexes as listIndexes gives them, options)
    "users": (
        _users(1500),
        [{"v": 2, "key": SON([("_id", 1)]), "name": "_id_"},
         {"v": 2, "key": SON([("email", 1)]), "name": "email_1", "unique": True},
         {"v": 2, "key": SON([("created", -1), ("n", 1)]), "name": "created_-1_n_1"}],
        {},
    ),
    "sessions": (
        _sessions(400),
        [{"v": 2, "key": SON([("_id", 1)]), "name": "_id_"},
         {"v": 2, "key": SON([("expires", 1)]), "name": "expires_1", "expireAfterSeconds": 3600}],
        {"validator": {"user": {"$exists": True}}},
    ),
    "audit": ([], [{"v": 2, "key": SON([("_id", 1)]), "name": "_id_"}], {}),
}  # fmt: skip


def _bson(docs: list[dict[str, Any]]) -> bytes:
    """Concatenated BSON documents, as mongodump writes a collection's `.bson`."""
    return b"".join(bson.encode(d) for d in docs)


def _metadata(name: str, indexes: list[dict[str, Any]], options: dict[str, Any]) -> str:
    """mongodump's Metadata struct (options omitempty, indexes, uuid, collectionName, type) as
    canonical extended JSON."""
    meta: SON[str, Any] = SON()
    if options:
        meta["options"] = options
    meta["indexes"] = indexes
    meta["uuid"] = f"{abs(hash(name)):032x}"[:32]
    meta["collectionName"] = name
    meta["type"] = "collection"
    return json_util.dumps(meta, json_options=CANONICAL)


def _write_out_folder(root: Path, gz: bool) -> Path:
    """`mongodump --db safepsy --out root [--gzip]`: root/safepsy/<c>.bson[.gz] and
    <c>.metadata.json[.gz], and root/prelude.json[.gz]."""
    folder = root / DB
    folder.mkdir(parents=True)

    def put(path: Path, data: bytes) -> None:
        if gz:
            path = path.with_name(path.name + ".gz")
            data = gzip.compress(data)
        path.write_bytes(data)

    for name, (docs, indexes, options) in COLLECTIONS.items():
        put(folder / f"{name}.bson", _bson(docs))
        put(folder / f"{name}.metadata.json", _metadata(name, indexes, options).encode())
    put(root / "prelude.json", b'{"ServerVersion":"7.0.14","ToolVersion":"100.10.0"}')
    return root


# -- the archive format (common/archive/spec.md) --------------------------------------------------
MAGIC = (0x8199E26D).to_bytes(4, "little")
TERMINATOR = b"\xff\xff\xff\xff"


def _crc64_ecma(data: bytes) -> int:
    """CRC-64-ECMA as Go's hash/crc64 (reflected 0xC96C5795D7870F42, inverted in and out),
    bit by bit: written apart from the tool's table-driven one."""
    crc = 0xFFFFFFFFFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xC96C5795D7870F42 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFFFFFFFFFF


def _int64(crc: int) -> Int64:
    return Int64(crc - (1 << 64) if crc >= 1 << 63 else crc)


def _archive_bytes(magic: bytes = MAGIC, crc_of: str | None = None) -> bytes:
    """A `mongodump --archive` stream of COLLECTIONS: magic, header, one metadata document per
    collection, terminator; then each collection's documents in two segments, the
    collections interleaved as parallel dumps write them; then each EOF header with the CRC
    of all its documents. `crc_of`: a collection whose EOF CRC is written wrong."""
    out = io.BytesIO()
    out.write(magic)
    out.write(
        bson.encode(
            SON(
                [
                    ("concurrent_collections", 4),
                    ("version", "0.1"),
                    ("server_version", "7.0.14"),
                    ("tool_version", "100.10.0"),
                ]
            )
        )
    )
    for name, (docs, indexes, options) in COLLECTIONS.items():
        out.write(
            bson.encode(
                SON(
                    [
                        ("db", DB),
                        ("collection", name),
                        ("metadata", _metadata(name, indexes, options)),
                        ("size", len(_bson(docs))),
                        ("type", ""),
                    ]
                )
            )
        )
    out.write(TERMINATOR)
    halves = {
        n: (docs[: len(docs) // 2], docs[len(docs) // 2 :])
        for n, (docs, _, _) in COLLECTIONS.items()
    }
    for part in (0, 1):
        for name, split in halves.items():
            if split[part]:
                out.write(
                    bson.encode(
                        SON([("db", DB), ("collection", name), ("EOF", False), ("CRC", Int64(0))])
                    )
                )
                out.write(_bson(split[part]))
                out.write(TERMINATOR)
    for name, (docs, _, _) in COLLECTIONS.items():
        crc = _crc64_ecma(_bson(docs)) ^ (1 if name == crc_of else 0)
        out.write(
            bson.encode(
                SON([("db", DB), ("collection", name), ("EOF", True), ("CRC", _int64(crc))])
            )
        )
        out.write(TERMINATOR)
    return out.getvalue()  # fmt: skip


def _write_archive(path: Path, gz: bool, **kwargs: Any) -> Path:
    data = _archive_bytes(**kwargs)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def _tarball(path: Path, folder: Path, prefix: str = "backup_20261206_120000/dump") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for item in sorted(folder.rglob("*")):
            tar.add(item, arcname=f"{prefix}/{item.relative_to(folder)}", recursive=False)
    return path


def _live(uri: str) -> dict[str, tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Each collection's options and indexes, as the layout check takes them."""
    with mongo.client(uri) as conn:
        db = conn[DB]
        options = collection_options(db, list(COLLECTIONS))
        return {n: (options[n], index_specs(db[n])) for n in COLLECTIONS}


def _damage(uri: str) -> None:
    """What a bad migration leaves: documents lost and altered, an index dropped, a collection
    added."""
    conn: MongoClient[dict[str, Any]]
    with MongoClient(uri) as conn:
        db: Database[dict[str, Any]] = conn[DB]
        db.users.delete_many({"n": {"$lt": 100}})
        if "email_1" in db.users.index_information():
            db.users.drop_index("email_1")
        db.users.update_many({"n": {"$gte": 1400}}, {"$set": {"email": "merged"}})
        db.scratch.replace_one({"_id": 1}, {"left": "by the migration"}, upsert=True)


def _assert_equal_to_the_files(uri: str) -> None:
    """The live database holds exactly what the files hold: every document, byte for byte
    as decoded, and the indexes and options."""
    conn: MongoClient[RawBSONDocument]
    with MongoClient(uri, document_class=RawBSONDocument) as conn:
        db = conn[DB]
        assert sorted(db.list_collection_names()) == sorted(COLLECTIONS)
        for name, (docs, indexes, _) in COLLECTIONS.items():
            live = {bytes(doc.raw) for doc in db[name].find()}
            assert live == {bson.encode(d) for d in docs}, name
            have = {i["name"] for i in db[name].list_indexes()}
            assert have == {i["name"] for i in indexes}, name
        options = bson.decode(bson.encode(db.sessions.options()))
        assert options["validator"] == {"user": {"$exists": True}}


# -- the tests ------------------------------------------------------------------------------------
def test_crc64_is_gos_ecma_crc() -> None:
    """The check value of CRC-64/XZ (Go's crc64.ECMA) for "123456789", and the tool's table
    agreeing with the bitwise one on a real collection's bytes."""
    assert _crc64_ecma(b"123456789") == 0x995DC9BBDF1939FA
    assert dumparchive.crc64(b"123456789") == 0x995DC9BBDF1939FA
    data = _bson(COLLECTIONS["users"][0][:50])
    assert dumparchive.crc64(data[100:], dumparchive.crc64(data[:100])) == _crc64_ecma(data)


FORMATS = ["out-folder", "out-folder-gzip", "archive", "archive-gzip", "tarball-of-gzip-folder",
           "tarball-of-archive"]  # fmt: skip


def _make(kind: str, root: Path) -> Path:
    if kind in ("out-folder", "out-folder-gzip"):
        return _write_out_folder(root / "dump", gz=kind.endswith("gzip"))
    if kind in ("archive", "archive-gzip"):
        return _write_archive(root / "safepsy.archive", gz=kind.endswith("gzip"))
    inner = root / "inner"
    inner.mkdir()
    if kind == "tarball-of-archive":
        _write_archive(inner / "safepsy.archive.gz", gz=True)
    else:
        _write_out_folder(inner, gz=True)
    return _tarball(root / "safepsy_backup_20261206_120000.tar.gz", inner)


@pytest.mark.parametrize("kind", FORMATS)
def test_each_mongodump_format_restores_equal_with_its_check_green(
    server: str, tmp_path: Path, kind: str
) -> None:
    backup = _make(kind, tmp_path)
    _damage(server)
    report = mongo.restore(server, DB, backup)
    assert report.equal, report.to_json()
    assert "no tool checksums" in report.backup_checked
    assert report.counts() == {"users": 1500, "sessions": 400, "audit": 0}
    assert {c.name: c.how for c in report.collections}["scratch"] == "dropped"
    _assert_equal_to_the_files(server)
    if "archive" in kind:
        assert "CRC-64" in report.backup_checked
    again = mongo.restore(server, DB, backup)  # nothing left to do: it says so
    assert again.equal and again.atomic == "nothing to restore", again.to_json()
    assert not list(tmp_path.rglob("*restore-journal.json")), "no journal left beside it"


def test_the_tools_own_backup_is_in_mongodumps_layout(server: str, tmp_path: Path) -> None:
    """The tool's backup: `<db>/<c>.bson` + `<c>.metadata.json` with the live collection's
    indexes and options, its own manifest outside `<db>/`; read without the manifest (as
    mongorestore would read it) it restores equal too."""
    _write_archive(tmp_path / "a.archive", gz=False)
    assert mongo.restore(server, DB, tmp_path / "a.archive").equal
    ours = tmp_path / "ours"
    mongo.backup(server, DB, ours)
    assert sorted(p.name for p in (ours / DB).iterdir()) == sorted(
        f"{n}{s}" for n in COLLECTIONS for s in (".bson", ".metadata.json")
    )
    assert (ours / mongo.MANIFEST).is_file() and not (ours / DB / mongo.MANIFEST).exists()
    assert dumpfolder.layout_problems(ours / DB, _live(server)) == []
    meta = json.loads((ours / DB / "sessions.metadata.json").read_text())
    assert list(meta) == ["options", "indexes", "uuid", "collectionName", "type"]
    assert meta["indexes"][0]["v"] == {"$numberInt": "2"}, "canonical extended JSON"
    bare = tmp_path / "bare"
    shutil.copytree(ours / DB, bare / DB)  # mongodump's files alone, no tool manifest
    _damage(server)
    report = mongo.restore(server, DB, bare)
    assert report.equal and "mongodump folder" in report.backup_checked, report.to_json()
    _assert_equal_to_the_files(server)


def test_a_metadata_file_naming_an_index_the_database_lacks_is_named(
    server: str, tmp_path: Path
) -> None:
    root = _write_out_folder(tmp_path / "dump", gz=False)
    assert mongo.restore(server, DB, root).equal
    conn: MongoClient[dict[str, Any]]
    with MongoClient(server) as conn:
        conn[DB].users.drop_index("created_-1_n_1")  # the restore's index, gone again
    problems = dumpfolder.layout_problems(root / DB, _live(server))
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{root / DB / 'users.metadata.json'}: index created_-1_n_1")


def _untouched(uri: str) -> dict[str, int]:
    conn: MongoClient[dict[str, Any]]
    with MongoClient(uri) as conn:
        return {n: conn[DB][n].count_documents({}) for n in conn[DB].list_collection_names()}


@pytest.mark.parametrize("broken", ["truncated-bson", "bad-magic", "wrong-crc", "bad-metadata"])
def test_a_broken_backup_is_refused_naming_its_file_before_anything_changes(
    server: str, tmp_path: Path, broken: str
) -> None:
    _damage(server)
    before = _untouched(server)
    if broken == "truncated-bson":
        root = _write_out_folder(tmp_path / "dump", gz=False)
        bad = root / DB / "users.bson"
        bad.write_bytes(bad.read_bytes()[:-7])
        expected = rf"{bad}: not BSON as mongodump writes it: truncated BSON document at byte"
    elif broken == "bad-magic":
        root = bad = _write_archive(tmp_path / "x.archive", gz=True, magic=b"\x00\x01\x02\x03")
        expected = rf"{bad}: not a MongoDB backup: magic number: expected 0x8199e26d .* 0x03020100"
    elif broken == "wrong-crc":
        root = bad = _write_archive(tmp_path / "x.archive", gz=False, crc_of="sessions")
        expected = rf"{bad}: collection sessions: CRC-64 .* the archive's EOF header says"
    else:
        root = _write_out_folder(tmp_path / "dump", gz=False)
        bad = root / DB / "users.metadata.json"
        bad.write_text('{"indexes": [{"name": "email_1"}], "collectionName": "users"}')
        expected = rf"{bad}: indexes\[0\]: expected an object with name and key"
    with pytest.raises(mongo.ArchiveError, match=expected):
        mongo.restore(server, DB, root)
    assert _untouched(server) == before


def test_the_teams_backup_file_opens_and_one_without_mongodb_is_refused(tmp_path: Path) -> None:
    inner = _write_out_folder(tmp_path / "inner", gz=True)
    good = _tarball(tmp_path / "safepsy_backup_20261206_120000.tar.gz", inner)
    with backupfile.opened(good) as folder, dump.opened(folder, DB) as archive:
        assert archive.collections["users"].count == 1500
    for p in (inner / DB).iterdir():
        p.unlink()
    (inner / "notes.txt").write_text("no database here")
    bad = _tarball(tmp_path / "safepsy_backup_20261206_130000.tar.gz", inner)
    refused = pytest.raises(backupfile.BackupFileError, match=rf"{bad}: not a store backup")
    with refused, backupfile.opened(bad):
        pass
    nightly = _write_archive(tmp_path / "nightly.archive", gz=True)
    with backupfile.opened(nightly) as folder, dump.opened(folder, DB) as archive:
        assert archive.collections["sessions"].count == 400
    not_one = pytest.raises(backupfile.BackupFileError, match=rf"{inner}: not a store backup")
    with not_one, backupfile.opened(inner):
        pass


def test_assess_finds_the_newest_backup_of_every_kind(tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    backups.mkdir()
    assert newest_backup_in(backups) is None
    _tarball(backups / "safepsy_backup_20261206_120000.tar.gz",
             _write_out_folder(tmp_path / "inner", gz=True))  # fmt: skip
    named = datetime.fromtimestamp(time.mktime((2026, 12, 6, 12, 0, 0, 0, 0, -1)), UTC)
    assert newest_backup_in(backups) == named
    archive = _write_archive(backups / "nightly.archive", gz=True)
    assert newest_backup_in(backups) == datetime.fromtimestamp(archive.stat().st_mtime, UTC)
    later = archive.stat().st_mtime + 3600
    (backups / "ours" / "mongodb").mkdir(parents=True)
    manifest = {"format": "rollback-drill-mongo-archive/3", "database": DB, "created": later,
                "finished": later, "collections": {}}  # fmt: skip
    (backups / "ours" / "mongodb" / mongo.MANIFEST).write_text(json.dumps(manifest))
    assert newest_backup_in(backups) == datetime.fromtimestamp(later, UTC)
