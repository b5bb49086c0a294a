"""Which files a build reads, and their content hashes.

An image is current when a hash of everything it is made from matches the label it carries,
so every input file is named (`walk_files`, caches skipped) and hashed by content, never by
path or time: the same inputs give the same hash on every machine, which is what lets a
bundle made on one machine count as current on another.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

from rollback_drill.process.errors import ImageBuildError

#: Files never copied into a build context nor hashed.
IGNORED_NAMES = frozenset({"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"})
IGNORED_SUFFIXES = (".pyc", ".pyo")


def walk_files(src: Path, dest: str) -> Iterator[tuple[Path, str]]:
    """(file, relative destination) pairs under ``src``, sorted, skipping caches.

    A symlink to a file counts as that file; symlinks to directories and dangling ones
    (``.bin`` folders of npm packages, for instance) are skipped.
    """
    if not src.exists():
        raise ImageBuildError(f"build input missing: {src}")
    if src.is_file():
        yield src, dest
        return
    for child in sorted(src.iterdir(), key=lambda p: p.name):
        if child.name in IGNORED_NAMES or child.name.endswith(IGNORED_SUFFIXES):
            continue
        if child.is_symlink() and (child.is_dir() or not child.exists()):
            continue
        yield from walk_files(child, f"{dest}/{child.name}")


def tree_digest(root: Path, hasher: FileHasher) -> str:
    """Names and contents of every file under ``root`` (caches skipped)."""
    h = hashlib.sha256()
    for src, rel in walk_files(root, "."):
        h.update(rel.encode() + b"\0" + hasher.digest(src))
    return h.hexdigest()


class FileHasher:
    """SHA-256 of files, remembered by (size, mtime, inode) in a JSON file between runs.

    Content hashes keep the inputs of an image equal across machines (so a bundle made on
    one machine is current on another); the memo keeps a run with nothing to do fast even
    with the node binary and mongosh's 15k files among the inputs.
    """

    def __init__(self, memo: Path | None = None) -> None:
        self.memo = memo
        self.known: dict[str, list[object]] = {}
        self.used: set[str] = set()
        self.dirty = False
        if memo is not None:
            with contextlib.suppress(OSError, ValueError):
                data = json.loads(memo.read_text(encoding="utf-8"))
                if isinstance(data, dict):
                    self.known = data

    def digest(self, path: Path) -> bytes:
        st = path.stat()
        key = os.path.abspath(path)
        stamp: list[object] = [st.st_size, st.st_mtime_ns, st.st_ino]
        entry = self.known.get(key)
        self.used.add(key)
        if entry is not None and entry[:3] == stamp:
            return bytes.fromhex(str(entry[3]))
        h = hashlib.sha256()
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        self.known[key] = [*stamp, h.hexdigest()]
        self.dirty = True
        return h.digest()

    def save(self) -> None:
        """Write the memo: the files hashed in this run only, so it never outgrows the inputs."""
        if self.memo is None or not (self.dirty or self.used != set(self.known)):
            return
        part = self.memo.with_name(self.memo.name + ".part")
        kept = {k: v for k, v in self.known.items() if k in self.used}
        part.write_text(json.dumps(kept), encoding="utf-8")
        part.replace(self.memo)
        self.dirty = False
