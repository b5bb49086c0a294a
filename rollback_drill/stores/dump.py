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

`layout_problems` is the other direction: a dump folder against a live database - each
`.bson` parses, each `.metadata.json` names the indexes and options the live collection has.

Over 400 lines: mongodump's three shapes (folder, gzip folder, archive) share one reader of
BSON streams and metadata; the archive's framing alone is a third of it.
"""

from __future__ import annotations

import gzip
import io
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote_plus

import bson
from bson import json_util
from bson.errors import BSONError
from fastcrc import crc64 as fastcrc_crc64

from rollback_drill.files.storebackup import BackupManifestError, load_mongo
from rollback_drill.stores import bsonscan
from rollback_drill.stores.archive import (
    JOURNAL,
    MANIFEST,
    Archive,
    ArchivedCollection,
    ArchiveError,
    verify_archive,
)
from rollback_drill.stores.fingerprint import canonical, index_print
from rollback_drill.stores.mongoconn import INDEX_NOISE

MAGIC = 0x8199E26D
TERMINATOR = 0xFFFFFFFF
MAX_BSON = 16 * 1024 * 1024 + 16 * 1024  # mongo-tools' db.MaxBSONSize
BSON_SUFFIXES = (".bson", ".bson.gz")
META_SUFFIXES = (".metadata.json", ".metadata.json.gz")
SYSTEM_DATABASES = ("admin", "config", "local")


def crc64(data: bytes | memoryview, crc: int = 0) -> int:
    """Go's `crc64.Update(crc, crc64.MakeTable(crc64.ECMA), data)` - CRC-64/XZ - what mongodump
    writes into each collection's EOF header. fastcrc (Rust, MIT) computes it at about
    3 GB/s; the table-driven pure-Python loop measured 0.5 MB/s here (a minute for a 30 MB
    archive)."""
    return int(fastcrc_crc64.xz(data, crc if crc else None))


@dataclass(frozen=True)
class Metadata:
    """A collection's `.metadata.json` as the restore needs it."""

    options: dict[str, Any]
    indexes: tuple[dict[str, Any], ...]  # createIndexes specs, `_id_` and bookkeeping left out


def parse_metadata(text: str | bytes, where: str) -> Metadata:
    """mongodump's metadata JSON (canonical or relaxed extended JSON) -> options and index
    specs; anything else is refused naming `where`."""
    try:
        meta = json_util.loads(text)
    except (ValueError, TypeError, BSONError) as exc:
        raise ArchiveError(f"{where}: not mongodump metadata JSON: {exc}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("indexes", []), list):
        raise ArchiveError(f"{where}: expected an object with an `indexes` list")
    options = meta.get("options") or {}
    if not isinstance(options, dict):
        raise ArchiveError(f"{where}: options: expected an object, got {options!r}")
    specs = []
    for i, index in enumerate(meta.get("indexes", [])):
        if (
            not isinstance(index, dict)
            or not isinstance(index.get("key"), dict)
            or not index.get("name")
        ):
            raise ArchiveError(f"{where}: indexes[{i}]: expected an object with name and key")
        if index["name"] == "_id_":
            continue
        specs.append({k: v for k, v in index.items() if k not in INDEX_NOISE})
    return Metadata(dict(options), tuple(sorted(specs, key=lambda s: str(s["name"]))))


def _read(path: Path) -> bytes:
    """A file's bytes, gunzipped when its name ends in `.gz` (gzip checks its own CRC)."""
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as handle:
                return handle.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise ArchiveError(f"{path}: unreadable: {exc}") from None


def _parse_all(data: bytes | memoryview, where: str) -> int:
    """Every document of concatenated BSON decoded (not just framed); their number."""
    count = 0
    try:
        for doc in bsonscan.documents(data, where):
            bson.decode(doc)
            count += 1
    except ValueError as exc:  # BSONError is a ValueError, and so is a truncated document
        raise ArchiveError(f"{where}: not BSON as mongodump writes it: {exc}") from None
    return count


def _stem(name: str, suffixes: tuple[str, ...]) -> str:
    for suffix in suffixes:
        if name.endswith(suffix):
            return unquote_plus(name[: -len(suffix)])  # mongodump: Go's url.QueryEscape
    raise ValueError(name)


def _database_folders(root: Path) -> list[Path]:
    return sorted(
        {p.parent for s in BSON_SUFFIXES + META_SUFFIXES for p in root.rglob(f"*{s}")},
        key=lambda p: (len(p.parts), str(p)),
    )


def _database_folder(root: Path, database: str | None) -> Path:
    """The folder of `database` in a dump (at any depth), or the only non-system database
    folder when `database` is None or absent."""
    found = _database_folders(root)
    named = [p for p in found if p.name == database]
    if named:
        return named[0]
    users = [p for p in found if p.name not in SYSTEM_DATABASES]
    if database is None and len(users) == 1:
        return users[0]
    if not found:
        raise ArchiveError(
            f"{root}: no MongoDB backup in it (neither the tool's {MANIFEST} nor mongodump's "
            "<db>/<collection>.bson files)"
        )
    raise ArchiveError(
        f"{root}: database {database!r}: expected a folder of that name holding .bson files; "
        f"found {[str(p.relative_to(root)) for p in found]}"
    )


def _collections_in(folder: Path) -> dict[str, tuple[Path | None, Path | None]]:
    """name -> (documents file, metadata file) of each collection in a database folder."""
    found: dict[str, tuple[Path | None, Path | None]] = {}
    for path in sorted(folder.iterdir()):
        if path.name.endswith(BSON_SUFFIXES):
            name = _stem(path.name, BSON_SUFFIXES)
            found[name] = (path, found.get(name, (None, None))[1])
        elif path.name.endswith(META_SUFFIXES):
            name = _stem(path.name, META_SUFFIXES)
            found[name] = (found.get(name, (None, None))[0], path)
    return {n: files for n, files in found.items() if not n.startswith("system.")}


def _from_folder(folder: Path, work: Path, source: Path) -> Archive:
    """A mongodump database folder -> plain `.bson` files in `work`, each parsed, with its
    metadata; an Archive over `work` without the tool's checksums."""
    collections = {}
    for name, (docs, meta) in _collections_in(folder).items():
        if meta is None:
            raise ArchiveError(f"{docs}: no {name}.metadata.json beside it (mongodump writes one)")
        metadata = parse_metadata(_read(meta), str(meta))
        data = _read(docs) if docs is not None else b""
        count = _parse_all(data, str(docs))
        file = f"{quote(name, safe='')}.bson"
        (work / file).write_bytes(data)
        collections[name] = ArchivedCollection(
            name, file, count, None, metadata.options, metadata.indexes,
            metadata=str(meta),
        )  # fmt: skip
    return _archive(work, folder.name, source, collections, "mongodump folder")


def _archive(
    work: Path, database: str, source: Path, collections: dict[str, ArchivedCollection], kind: str
) -> Archive:
    started = min((p.stat().st_mtime for p in source.rglob("*")), default=0.0)
    if source.is_file():
        started = source.stat().st_mtime
    checked = (
        f"a {kind} (no tool checksums): every document parsed as BSON, every metadata file "
        "as mongodump's" + (", each collection against its CRC-64 and size" if "archive" in kind
                            else "")
    )  # fmt: skip
    journal = source / JOURNAL if source.is_dir() else source.with_name(source.name + f".{JOURNAL}")
    return Archive(work, database, started, None, collections, source, checked, journal)


class _ArchiveStream:
    """mongo-tools' archive parser (common/archive/parser.go) over one file."""

    def __init__(self, handle: Reader, where: str) -> None:
        self.handle, self.where, self.offset = handle, where, 0

    def next(self) -> bytes | None:
        """The next BSON document, or None at a terminator; EOF raises."""
        head = self.handle.read(4)
        if len(head) < 4:
            raise ArchiveError(f"{self.where}: ends at byte {self.offset} inside a block")
        size = int.from_bytes(head, "little")
        self.offset += 4
        if size == TERMINATOR:
            return None
        if size < 5 or size > MAX_BSON:
            raise ArchiveError(
                f"{self.where}: byte {self.offset - 4}: {size} is neither a BSON length nor "
                "a terminator"
            )
        body = self.handle.read(size - 4)
        if len(body) < size - 4 or body[-1:] != b"\x00":
            raise ArchiveError(f"{self.where}: truncated BSON document at byte {self.offset - 4}")
        self.offset += size - 4
        return head + body

    def at_end(self) -> bool:
        return not self.handle.peek(1)


Reader = gzip.GzipFile | io.BufferedReader


def _open_maybe_gzip(path: Path) -> Reader:
    """The file, read through gzip when it starts with gzip's magic (gzip checks its CRC-32
    when the stream is read to its end)."""
    with path.open("rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else path.open("rb")


def _head(path: Path) -> int:
    """The first four bytes (after gzip, when gzip'd) as a little-endian number; -1 when
    unreadable."""
    try:
        with _open_maybe_gzip(path) as handle:
            return int.from_bytes(handle.read(4), "little")
    except (OSError, EOFError, zlib.error):
        return -1


def is_mongodump_archive(path: Path) -> bool:
    """Whether a file starts with mongodump's archive magic number (gzip'd or not)."""
    return _head(path) == MAGIC


def _decode(doc: bytes, where: str) -> dict[str, Any]:
    try:
        return bson.decode(doc)
    except (BSONError, ValueError) as exc:
        raise ArchiveError(f"{where}: not BSON: {exc}") from None


def _from_archive(path: Path, database: str | None, work: Path) -> Archive:
    """A `mongodump --archive` file -> plain `.bson` files in `work`, each collection checked
    against its EOF header's CRC-64 and the prelude's size."""
    try:
        return _demultiplex(path, database, work)
    except (OSError, EOFError, zlib.error) as exc:  # a gzip stream cut or corrupt
        raise ArchiveError(f"{path}: unreadable: {exc}") from None


def _demultiplex(path: Path, database: str | None, work: Path) -> Archive:
    where = str(path)
    with _open_maybe_gzip(path) as handle:
        magic = int.from_bytes(handle.read(4), "little")
        if magic != MAGIC:
            raise ArchiveError(
                f"{where}: magic number: expected 0x{MAGIC:08x} (a mongodump archive), "
                f"got 0x{magic:08x}"
            )
        stream = _ArchiveStream(handle, where)
        stream.offset = 4
        header = stream.next()
        if header is None:
            raise ArchiveError(f"{where}: no archive header after the magic number")
        prelude: dict[tuple[str, str], dict[str, Any]] = {}
        while (doc := stream.next()) is not None:
            meta = _decode(doc, f"{where}: prelude")
            prelude[(str(meta.get("db")), str(meta.get("collection")))] = meta
        dbs = sorted({db for db, _ in prelude if db not in SYSTEM_DATABASES})
        if database is None or database not in {db for db, _ in prelude}:
            if len(dbs) != 1:
                raise ArchiveError(
                    f"{where}: database {database!r}: the archive holds {dbs or 'none'}"
                )
            database = dbs[0]
        chosen = {c: m for (db, c), m in prelude.items() if db == database}
        outs = {c: (work / f"{quote(c, safe='')}.bson").open("wb") for c in chosen}
        crcs: dict[str, int] = dict.fromkeys(chosen, 0)
        sizes: dict[str, int] = dict.fromkeys(chosen, 0)
        done: set[str] = set()
        try:
            while not stream.at_end():
                ns = stream.next()
                if ns is None:
                    raise ArchiveError(f"{where}: two terminators in a row at {stream.offset}")
                head = _decode(ns, f"{where}: namespace header")
                coll = str(head.get("collection"))
                ours = head.get("db") == database and coll in chosen
                if head.get("EOF"):
                    if stream.next() is not None:
                        raise ArchiveError(f"{where}: {coll}: EOF header without terminator")
                    crc = int(head.get("CRC", 0)) & 0xFFFFFFFFFFFFFFFF
                    if ours and crc != crcs[coll]:
                        raise ArchiveError(
                            f"{where}: collection {coll}: CRC-64 {crcs[coll]:#x} of its "
                            f"documents, the archive's EOF header says {crc:#x} (corrupt)"
                        )
                    done.add(coll) if ours else None
                    continue
                while (body := stream.next()) is not None:
                    if ours:
                        outs[coll].write(body)
                        crcs[coll] = crc64(body, crcs[coll])
                        sizes[coll] += len(body)
        finally:
            for out in outs.values():
                out.close()
    collections = {}
    for coll, meta in chosen.items():
        if meta.get("type") in ("view", "timeseries") or coll.startswith("system."):
            continue
        if coll not in done:
            raise ArchiveError(f"{where}: collection {coll}: no EOF block (the archive is cut)")
        size = int(meta.get("size", 0) or 0)
        if size and size != sizes[coll]:
            raise ArchiveError(
                f"{where}: collection {coll}: {sizes[coll]} bytes of documents, the prelude "
                f"says {size}"
            )
        metadata = parse_metadata(str(meta.get("metadata") or '{"indexes": []}'), f"{where}: "
                                  f"prelude metadata of {coll}")  # fmt: skip
        file = f"{quote(coll, safe='')}.bson"
        count = _parse_all(memoryview((work / file).read_bytes()), f"{where}: collection {coll}")
        collections[coll] = ArchivedCollection(
            coll, file, count, None, metadata.options, metadata.indexes
        )
    return _archive(work, database, path, collections, "mongodump archive")


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
        if not _database_folders(path):
            found = [p for p in sorted(path.rglob("*")) if p.is_file() and is_mongodump_archive(p)]
            if len(found) == 1:
                return _with_source(_from_archive(found[0], database, work), path)
        return _from_folder(_database_folder(path, database), work, path)
    if not path.is_file():
        raise ArchiveError(f"{path}: no such backup (folder or file)")
    if is_mongodump_archive(path):
        return _from_archive(path, database, work)
    if tarfile.is_tarfile(path):
        unpacked = work / "unpacked"
        unpacked.mkdir()
        _unpack_tar(path, unpacked)
        inner = _load(unpacked, database, work)
        return _with_source(inner, path)
    raise ArchiveError(
        f"{path}: not a MongoDB backup: magic number: expected 0x{MAGIC:08x} (a mongodump "
        f"--archive file, gzip'd or not), got 0x{_head(path):08x}; nor is it a tar file"
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
    for folder in _database_folders(directory):
        if not any(t in folder.parents for t in tool_folders):
            times.append(min(p.stat().st_mtime for p in folder.iterdir()))
    skip = (".json", ".bson", ".records", ".tar.gz", ".bson.gz", ".json.gz")
    for path in directory.rglob("*"):
        if path.is_file() and not path.name.endswith(skip) and is_mongodump_archive(path):
            times.append(path.stat().st_mtime)
    return max(times, default=None)


def layout_problems(
    root: Path, live: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]]
) -> list[str]:
    """A mongodump-layout folder (`<db>/` inside `root`) against live collections
    (name -> (options, index specs)): each `.bson` parses, each `.metadata.json` names the
    indexes and options the live collection has. Problems name the file."""
    problems = []
    names = _collections_in(root)
    for name in sorted(set(names) | set(live)):
        docs, meta = names.get(name, (None, None))
        if docs is None or meta is None:
            problems.append(f"{root}: collection {name}: no {name}.bson and .metadata.json pair")
            continue
        try:
            _parse_all(_read(docs), str(docs))
            metadata = parse_metadata(_read(meta), str(meta))
        except ArchiveError as exc:
            problems.append(str(exc))
            continue
        if name not in live:
            problems.append(f"{meta}: collection {name} is not in the live database")
            continue
        options, indexes = live[name]
        want = {str(s["name"]): index_print(s) for s in metadata.indexes}
        have = {str(s["name"]): index_print(s) for s in indexes}
        for index in sorted(set(want) | set(have)):
            if want.get(index) != have.get(index):
                problems.append(
                    f"{meta}: index {index}: the file has {want.get(index)}, the live "
                    f"collection {have.get(index)}"
                )
        if canonical(metadata.options) != canonical(options):
            problems.append(
                f"{meta}: options: the file has {canonical(metadata.options)}, the live "
                f"collection {canonical(options)}"
            )
    return problems


__all__ = [
    "MAGIC",
    "Metadata",
    "crc64",
    "is_mongodump_archive",
    "layout_problems",
    "newest_time",
    "opened",
    "parse_metadata",
]
