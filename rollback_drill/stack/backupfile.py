"""The runbook's backup file (`safepsy_backup_YYYYMMDD_HHMMSS.tar.gz`, what
`./docker-manage.sh backup production` leaves and `auto-rollback.sh <backup_file>` restores):
a stack's store backup (`Stack.backup_stores`, MongoDB and Redis with their checksums) packed
into one file.

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

PREFIX = "safepsy_backup"
MANIFEST = "mongodb/manifest.json"


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


@contextmanager
def opened(path: Path) -> Iterator[Path]:
    """The backup file unpacked into a private temporary folder, for `Stack.restore_stores`;
    removed when the block ends."""
    if not path.is_file():
        raise BackupFileError(f"{path}: no such backup file")
    work = Path(tempfile.mkdtemp(prefix="restore-"))
    try:
        try:
            with tarfile.open(path, "r:*") as archive:
                if MANIFEST not in archive.getnames():
                    raise BackupFileError(
                        f"{path}: not a store backup (it has no {MANIFEST}; `rollback-drill "
                        "backup` makes one)"
                    )
                archive.extractall(work, filter="data")  # no links out, no absolute paths
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise BackupFileError(f"{path}: not a readable backup archive: {exc}") from None
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


__all__ = ["BackupFileError", "name_for", "opened", "take"]
