"""Configuration backups hold secrets (the TLS key, the services' .env): archives and the
files a rollback restores are owner-only from their first byte, a restore writes in place
(the docker backend mounts nginx.conf itself) and never wider than saved, and a backup file
that is not one is refused before anything reads it."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from rollback_drill.files import configbackup
from rollback_drill.process.errors import BackupFileError
from rollback_drill.process.secrets import write_private
from rollback_drill.stack import backupfile


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _config(root: Path) -> Path:
    config = root / "config"
    (config / "nginx" / "ssl").mkdir(parents=True)
    (config / "nginx" / "nginx.conf").write_text("events {}\n")
    write_private(config / "nginx" / "ssl" / "private.key", b"-----BEGIN PRIVATE KEY-----\n")
    write_private(config / "backend.env", b"MONGODB_URI=mongodb://app:s3cret@db/\n")
    return config


def test_archives_are_owner_only_in_an_owner_only_folder(tmp_path: Path) -> None:
    config = _config(tmp_path)
    archive = configbackup.backup(config, tmp_path / "config-backups")
    assert _mode(archive) == 0o600
    assert _mode(archive.parent) == 0o700
    with tarfile.open(archive) as tar:
        modes = {m.name: m.mode for m in tar.getmembers() if m.isfile()}
    assert modes["config/nginx/ssl/private.key"] == 0o600


def test_an_existing_folder_keeps_its_mode_and_the_archive_is_still_private(
    tmp_path: Path,
) -> None:
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir(mode=0o755)
    artifacts.chmod(0o755)
    archive = configbackup.backup(_config(tmp_path), artifacts, label="rollback-state")
    assert _mode(artifacts) == 0o755 and _mode(archive) == 0o600


def test_a_restore_writes_in_place_and_never_wider_than_saved(tmp_path: Path) -> None:
    config = _config(tmp_path)
    archive = configbackup.backup(config, tmp_path / "backups")
    conf = config / "nginx" / "nginx.conf"
    key = config / "nginx" / "ssl" / "private.key"
    inode = conf.stat().st_ino
    conf.write_text("broken")
    key.write_bytes(b"another key")
    key.chmod(0o644)  # someone widened it
    configbackup.restore(archive, config)
    assert conf.read_text() == "events {}\n" and conf.stat().st_ino == inode
    assert _mode(key) == 0o600 and key.read_bytes().startswith(b"-----BEGIN")


def test_write_private_narrows_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "private.key.backup"
    path.write_text("old")
    path.chmod(0o644)
    write_private(path, b"secret")
    assert _mode(path) == 0o600 and path.read_bytes() == b"secret"


def _tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize(
    ("members", "expected"),
    [
        (None, "not a readable backup archive"),
        ({"redis.json": b"{}"}, "not a store backup"),
        ({"mongodb/manifest.json": b"{}", "../../escape": b"x"}, "not a readable backup"),
    ],
    ids=["not_a_tar", "no_manifest", "path_out_of_the_folder"],
)
def test_a_file_that_is_not_a_backup_is_refused(
    tmp_path: Path, members: dict[str, bytes] | None, expected: str
) -> None:
    path = tmp_path / "safepsy_backup_x.tar.gz"
    if members is None:
        path.write_bytes(b"this is not a tar archive at all")
    else:
        _tar(path, members)
    with pytest.raises(BackupFileError, match=expected), backupfile.opened(path):
        pass
    assert not (tmp_path.parent / "escape").exists()


def test_an_opened_backup_is_private_and_removed_afterwards(tmp_path: Path) -> None:
    path = _tar(tmp_path / "b.tar.gz", {"mongodb/manifest.json": b"{}", "redis.json": b"{}"})
    with backupfile.opened(path) as folder:
        assert (folder / "mongodb" / "manifest.json").exists()
        assert _mode(folder) == 0o700
        kept = folder
    assert not kept.exists()
    assert os.path.exists(path)
