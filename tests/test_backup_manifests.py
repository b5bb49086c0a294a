"""The store backups' manifests through their models, from files written here (no server):
the format-1 and format-2 MongoDB manifests migrated to format 3 on read, anything else refused
naming file, field and what was expected, the Redis archive's checksum the same as the one
older archives carry, the restore journal, and a config backup's manifest."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import bson
import pytest

from rollback_drill.files import configbackup, storebackup
from rollback_drill.process.errors import BackupFileError
from rollback_drill.stores import archive


def _archive(folder: Path, manifest: dict[str, Any]) -> Path:
    folder.mkdir()
    data = bson.encode({"_id": 1, "email": "a@example.test"})
    (folder / "users.bson").write_bytes(data)
    entry = {"file": "users.bson", "count": 1, "sha256": hashlib.sha256(data).hexdigest()}
    manifest["collections"] = {"users": {**entry, **manifest.get("collections", {})}}
    (folder / archive.MANIFEST).write_text(json.dumps(manifest))
    return folder


def test_a_format_1_manifest_is_read_with_its_indexes_as_specs(tmp_path: Path) -> None:
    index = {"name": "email_1", "key": [["email", 1]], "unique": True}
    found = archive.verify_archive(
        _archive(
            tmp_path / "v1",
            {
                "format": "rollback-drill-mongo-archive/1",
                "database": "safepsy",
                "created": 1.5,
                "collections": {"indexes": [index]},
            },
        )
    )
    assert found.finished is None and found.started == 1.5
    users = found.collections["users"]
    (spec,) = users.indexes
    assert spec["name"] == "email_1" and list(spec["key"].items()) == [("email", 1)]
    assert spec["unique"] is True
    assert users.options == {} and users.metadata is None and users.records is None


def test_a_format_2_manifest_is_read_without_metadata_files(tmp_path: Path) -> None:
    index = {"name": "email_1", "key": {"email": 1}, "unique": True}
    found = archive.verify_archive(
        _archive(
            tmp_path / "v2",
            {
                "format": "rollback-drill-mongo-archive/2",
                "database": "safepsy",
                "created": 1.5,
                "finished": 2.5,
                "collections": {"indexes": [index], "options": {"validationLevel": "strict"}},
            },
        )
    )
    users = found.collections["users"]
    assert (found.started, found.finished) == (1.5, 2.5)
    assert users.file == "users.bson" and users.metadata is None and users.metadata_sha256 is None
    assert users.options == {"validationLevel": "strict"}
    assert [i["name"] for i in users.indexes] == ["email_1"]


def test_a_manifest_of_another_format_or_with_a_bad_field_is_refused(tmp_path: Path) -> None:
    other = _archive(tmp_path / "v9", {"format": "rollback-drill-mongo-archive/9"})
    with pytest.raises(archive.ArchiveError) as caught:
        archive.verify_archive(other)
    message = str(caught.value)
    assert str(other / archive.MANIFEST) in message
    assert "found 'rollback-drill-mongo-archive/9'" in message
    assert (
        "expected 'rollback-drill-mongo-archive/3' or 'rollback-drill-mongo-archive/1' or "
        "'rollback-drill-mongo-archive/2'" in message
    )
    bad = _archive(
        tmp_path / "bad",
        {
            "format": storebackup.MONGO_FORMAT,
            "database": "safepsy",
            "created": 1.0,
            "finished": 1.0,
            "collections": {"count": "many", "indexes": [], "options": {}},
        },
    )
    with pytest.raises(archive.ArchiveError, match=r"collections\.users\.count: .*integer"):
        archive.verify_archive(bad)


def test_the_redis_checksum_is_the_one_older_archives_carry(tmp_path: Path) -> None:
    entries = [{"key": base64.b64encode(b"k").decode(), "ttl_ms": 0, "dump": "AAAA"}]
    written_before = hashlib.sha256(json.dumps(entries, sort_keys=True).encode()).hexdigest()
    models = [storebackup.RedisEntry.model_validate(e) for e in entries]
    assert storebackup.entries_sha256(models) == written_before
    path = tmp_path / "redis.json"
    path.write_text(json.dumps({"format": "rollback-drill-redis-archive/0", "entries": []}))
    with pytest.raises(storebackup.BackupManifestError, match="found 'rollback-drill-redis"):
        storebackup.load_redis(path)


def test_a_restore_journal_is_read_through_its_model_and_a_bad_one_is_refused(
    tmp_path: Path,
) -> None:
    from rollback_drill.process.errors import RestoreError
    from rollback_drill.stores.restore import JOURNAL, _Journal

    journal = _Journal(tmp_path / JOURNAL)
    assert journal.read() is None
    journal.save(started=1.5, state="transaction", session="ab" * 8)
    found = journal.read()
    assert found is not None and (found.started, found.state, found.session) == (
        1.5, "transaction", "ab" * 8
    )  # fmt: skip
    (tmp_path / JOURNAL).write_text(json.dumps({"process": "1:2", "started": "soon"}))
    with pytest.raises(RestoreError, match=r"(?s)restore-journal\.json: .*\n  started: .*number"):
        journal.read()


def test_a_config_backup_whose_manifest_is_not_checksums_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "nginx.conf").write_text("events {}\n")
    made = configbackup.backup(config, tmp_path / "backups")
    assert configbackup.restore(made, config) == {
        "nginx.conf": hashlib.sha256(b"events {}\n").hexdigest()
    }
    forged = tmp_path / "forged.tar.gz"
    with tarfile.open(made) as source, tarfile.open(forged, "w:gz") as out:
        for member in source.getmembers():
            data = source.extractfile(member) if member.isfile() else None
            if member.name == configbackup.MANIFEST:
                body = json.dumps({"nginx.conf": "not a checksum"}).encode()
                member.size = len(body)
                data = io.BytesIO(body)
            out.addfile(member, data)
    with pytest.raises(
        BackupFileError, match=r"MANIFEST\.json: 1 problem.*\n  nginx\.conf: String"
    ):
        configbackup.restore(forged, config)
