"""The runbook's backup file (`safepsy_backup_YYYYMMDD_HHMMSS.tar.gz`, what
`./docker-manage.sh backup production` leaves and `auto-rollback.sh <backup_file>` restores):
a stack's store backup (`Stack.backup_stores`, MongoDB and Redis with their checksums) packed
into one file. Opening also takes the team's own files: a tarball of `mongodump` output (a
`--out` folder, plain or `--gzip`, or an `--archive` file) with or without a Redis `dump.rdb`;
stores.dump reads and verifies the MongoDB part before the restore touches anything.

It holds every user's data: written owner-only from its first byte, and opened into a private
temporary folder that is removed afterwards. Opening refuses anything that is not such a
backup before a byte of it reaches a database.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rollback_drill.files.configbackup import private_dir
from rollback_drill.process.errors import BackupFileError
from rollback_drill.stack.base import Stack
from rollback_drill.stores import dumparchive

PREFIX = "safepsy_backup"
MANIFEST = "mongodb/manifest.json"
#: Member names that make a tarball a MongoDB backup: the tool's manifest, mongodump's files.
MONGO_MEMBERS = ("manifest.json", ".bson", ".bson.gz", ".metadata.json", ".metadata.json.gz")


def name_for(when: float | None = None) -> str:
    return f"{PREFIX}_{time.strftime('%Y%m%d_%H%M%S', time.localtime(when))}.tar.gz"


def take(stack: Stack, dest_dir: Path) -> Path:
    """`./docker-manage.sh backup`: back the stack's stores up and pack them into one file in
    `dest_dir` (owner-only). Returns the file."""
    private_dir(dest_dir)
    path = dest_dir / name_for()
    n = 1
    while path.exists():
        path = dest_dir / name_for().replace(".tar.gz", f"-{n}.tar.gz")
        n += 1
    with tempfile.TemporaryDirectory(prefix="backup-", dir=dest_dir) as work:
        folder = stack.backup_stores(Path(work) / "backup")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out, tarfile.open(fileobj=out, mode="w:gz") as tar:
            for item in sorted(folder.rglob("*")):
                tar.add(item, arcname=str(item.relative_to(folder)), recursive=False)
    return path


def _holds_a_backup(path: Path, folder: Path) -> Path:
    """`folder`, when it holds a MongoDB backup in a form stores.dump reads (by file names,
    and the archive magic); refused naming `path` otherwise."""
    files = [p for p in folder.rglob("*") if p.is_file()]
    if not any(p.name.endswith(MONGO_MEMBERS) for p in files) and not any(
        dumparchive.is_mongodump_archive(p) for p in files
    ):
        raise BackupFileError(
            f"{path}: not a store backup (it has neither {MANIFEST} nor mongodump's "
            "<db>/<collection>.bson files nor a mongodump --archive file; "
            "`rollback-drill backup` makes one)"
        )
    return folder


@contextmanager
def opened(path: Path) -> Iterator[Path]:
    """The backup as a folder for `Stack.restore_stores`: a folder as it is; a file unpacked
    (a tarball) or copied (a mongodump archive) into a private temporary folder that is
    removed when the block ends."""
    if path.is_dir():  # a `mongodump --out` folder (or the tool's): read where it is
        yield _holds_a_backup(path, path)
        return
    if not path.is_file():
        raise BackupFileError(f"{path}: no such backup file")
    work = Path(tempfile.mkdtemp(prefix="restore-"))
    try:
        if dumparchive.is_mongodump_archive(path):  # a `mongodump --archive` file, gzip'd or not
            shutil.copyfile(path, work / path.name)
            yield work
            return
        try:
            with tarfile.open(path, "r:*") as archive:
                archive.extractall(work, filter="data")  # no links out, no absolute paths
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise BackupFileError(f"{path}: not a readable backup archive: {exc}") from None
        yield _holds_a_backup(path, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


__all__ = ["BackupFileError", "name_for", "opened", "take"]
