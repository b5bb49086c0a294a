"""MongoDB backups the team's own tools wrote, read as an `Archive` the restore can take:

- a `mongodump --out` folder: `<db>/<collection>.bson` and `<db>/<collection>.metadata.json`,
  plain or `--gzip`'d (`.bson.gz`, `.metadata.json.gz`); the database folder is found at
  any depth (a tarball often holds `backup_.../dump/<db>/`);
- a `mongodump --archive` file, plain or gzip'd (mongo-tools common/archive/spec.md: the
  magic number 0x8199e26d, a header and one metadata document per collection, then
  namespace segments, each closed by a terminator, and an EOF header per collection carrying
  the CRC-64-ECMA of all its documents);
- a `.tar.gz` of either (the team's `safepsy_backup_YYYYMMDD_HHMMSS.tar.gz`), or of the
  tool's own backup;
- the tool's own backup folder (`stores.archive`), with its manifest and checksums.

A backup without the tool's checksums is verified by what it holds before a byte reaches the
database: every document parses as BSON, every metadata file as mongodump's metadata (its
indexes each with a name and a key), and, for an archive, each collection's documents against
the CRC in its EOF header and the size in its prelude. gzip checks its own CRC-32. Compressed
and archived dumps are unpacked into a private temporary folder (they hold every user's data)
that is removed when the block ends. The restore's read-back check applies to them as to the
tool's own backups.

`stores.dumpfolder.layout_problems` is the other direction: a dump folder against a live
database - each `.bson` parses, each `.metadata.json` names the indexes and options the live
collection has.

This module chooses the shape and owns the temporary folder; the shapes are read by
`stores.dumpfolder` (a folder, plain or gzip'd) and `stores.dumparchive` (an archive file),
both through `stores.dumpread` (documents and metadata).
"""

from __future__ import annotations

import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rollback_drill.files.storebackup import BackupManifestError, load_mongo
from rollback_drill.stores.archive import JOURNAL, MANIFEST, Archive, ArchiveError, verify_archive
from rollback_drill.stores.dumparchive import MAGIC, from_archive, head, is_mongodump_archive
from rollback_drill.stores.dumpfolder import database_folder, database_folders, from_folder


def _unpack_tar(path: Path, work: Path) -> None:
    try:
        with tarfile.open(path, "r:*") as tar:
            tar.extractall(work, filter="data")  # no links out, no absolute paths
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ArchiveError(f"{path}: not a readable backup archive: {exc}") from None


def _tool_manifest(root: Path) -> Path | None:
    direct = root / MANIFEST
    if direct.is_file():
        return direct
    found = sorted(root.rglob(MANIFEST), key=lambda p: len(p.parts))
    return found[0] if found else None


def _load(path: Path, database: str | None, work: Path) -> Archive:
    if path.is_dir():
        manifest = _tool_manifest(path)
        if manifest is not None:
            return verify_archive(manifest.parent)
        if not database_folders(path):
            found = [p for p in sorted(path.rglob("*")) if p.is_file() and is_mongodump_archive(p)]
            if len(found) == 1:
                return _with_source(from_archive(found[0], database, work), path)
        return from_folder(database_folder(path, database), work, path)
    if not path.is_file():
        raise ArchiveError(f"{path}: no such backup (folder or file)")
    if is_mongodump_archive(path):
        return from_archive(path, database, work)
    if tarfile.is_tarfile(path):
        unpacked = work / "unpacked"
        unpacked.mkdir()
        _unpack_tar(path, unpacked)
        inner = _load(unpacked, database, work)
        return _with_source(inner, path)
    raise ArchiveError(
        f"{path}: not a MongoDB backup: magic number: expected 0x{MAGIC:08x} (a mongodump "
        f"--archive file, gzip'd or not), got 0x{head(path):08x}; nor is it a tar file"
    )


def _with_source(archive: Archive, source: Path) -> Archive:
    journal = source / JOURNAL if source.is_dir() else source.with_name(f"{source.name}.{JOURNAL}")
    return Archive(
        archive.path, archive.database, archive.started, archive.finished,
        archive.collections, source, archive.checked, journal,
    )  # fmt: skip


@contextmanager
def opened(path: Path, database: str | None = None) -> Iterator[Archive]:
    """Any accepted MongoDB backup (see the module docstring), verified, as an Archive; what
    had to be unpacked lives in a private temporary folder until the block ends.
    `database`: the database to restore (a dump holding several is read for that one)."""
    work = Path(tempfile.mkdtemp(prefix="mongo-backup-"))  # 0700: it holds users' data
    try:
        yield _load(path, database, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def newest_time(directory: Path) -> float | None:
    """When the newest MongoDB backup under `directory` began, as far as it says: the tool's
    manifest's `created`; a mongodump folder's or archive's oldest file time (mongodump
    records no start time; its files are written as it goes)."""
    times: list[float] = []
    for manifest in directory.rglob(MANIFEST):
        try:
            times.append(load_mongo(manifest).created)
        except BackupManifestError:
            continue  # another file of that name: not a backup of ours
    tool_folders = {m.parent for m in directory.rglob(MANIFEST)}
    for folder in database_folders(directory):
        if not any(t in folder.parents for t in tool_folders):
            times.append(min(p.stat().st_mtime for p in folder.iterdir()))
    skip = (".json", ".bson", ".records", ".tar.gz", ".bson.gz", ".json.gz")
    for path in directory.rglob("*"):
        if path.is_file() and not path.name.endswith(skip) and is_mongodump_archive(path):
            times.append(path.stat().st_mtime)
    return max(times, default=None)


__all__ = ["newest_time", "opened"]
