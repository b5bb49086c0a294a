"""A `mongodump --out` folder, plain or `--gzip`'d: `<db>/<collection>.bson` and
`<db>/<collection>.metadata.json` (or `.bson.gz`, `.metadata.json.gz`), the database folder
found at any depth (a tarball often holds `backup_.../dump/<db>/`), read into plain `.bson`
files with their metadata; and `layout_problems`, the other direction: such a folder against
a live database.

Separate from `stores.dumparchive` because a folder is found by its file names, one file a
collection, where an archive is one multiplexed stream with its own framing; both read
documents and metadata through `stores.dumpread`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote_plus

from rollback_drill.stores.archive import MANIFEST, Archive, ArchivedCollection, ArchiveError
from rollback_drill.stores.dumpread import (
    SYSTEM_DATABASES,
    parse_all,
    parse_metadata,
    read,
    unpacked,
)
from rollback_drill.stores.fingerprint import canonical, index_print

BSON_SUFFIXES = (".bson", ".bson.gz")
META_SUFFIXES = (".metadata.json", ".metadata.json.gz")


def _stem(name: str, suffixes: tuple[str, ...]) -> str:
    for suffix in suffixes:
        if name.endswith(suffix):
            return unquote_plus(name[: -len(suffix)])  # mongodump: Go's url.QueryEscape
    raise ValueError(name)


def database_folders(root: Path) -> list[Path]:
    """Every folder under `root` holding mongodump's collection files, shallowest first."""
    return sorted(
        {p.parent for s in BSON_SUFFIXES + META_SUFFIXES for p in root.rglob(f"*{s}")},
        key=lambda p: (len(p.parts), str(p)),
    )


def database_folder(root: Path, database: str | None) -> Path:
    """The folder of `database` in a dump (at any depth), or the only non-system database
    folder when `database` is None or absent."""
    found = database_folders(root)
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


def from_folder(folder: Path, work: Path, source: Path) -> Archive:
    """A mongodump database folder -> plain `.bson` files in `work`, each parsed, with its
    metadata; an Archive over `work` without the tool's checksums."""
    collections = {}
    for name, (docs, meta) in _collections_in(folder).items():
        if meta is None:
            raise ArchiveError(f"{docs}: no {name}.metadata.json beside it (mongodump writes one)")
        metadata = parse_metadata(read(meta), str(meta))
        data = read(docs) if docs is not None else b""
        count = parse_all(data, str(docs))
        file = f"{quote(name, safe='')}.bson"
        (work / file).write_bytes(data)
        collections[name] = ArchivedCollection(
            name, file, count, None, metadata.options, metadata.indexes,
            metadata=str(meta),
        )  # fmt: skip
    return unpacked(work, folder.name, source, collections, "mongodump folder")


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
            parse_all(read(docs), str(docs))
            metadata = parse_metadata(read(meta), str(meta))
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


__all__ = ["database_folder", "database_folders", "from_folder", "layout_problems"]
