"""The cache directory: zstd-compressed ``docker save`` bundles of the images, and its lock.

A machine that has ``.cache/images/`` but not the images loads the newest bundle holding an
image at its current inputs instead of building it; each bundle has an index (tag -> inputs)
beside it, so choosing one needs no decompression. The lock keeps two builds (tests and the
CLI may overlap) from writing the same cache at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

from rollback_drill.stack.images.dockercli import DOCKER, run_pipe

BUNDLE_PREFIX = "images-"
BUNDLE_SUFFIX = ".tar.zst"


def list_bundles(cache_dir: Path) -> list[tuple[Path, dict[str, str]]]:
    """Complete bundles in the cache (bundle, {tag: inputs}), newest first."""
    found: list[tuple[float, Path, dict[str, str]]] = []
    for path in cache_dir.glob(f"{BUNDLE_PREFIX}*{BUNDLE_SUFFIX}"):
        index_path = path.with_name(path.name[: -len(BUNDLE_SUFFIX)] + ".json")
        try:
            index = json.loads(index_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        images = index.get("images") if isinstance(index, dict) else None
        if isinstance(images, dict):
            found.append((path.stat().st_mtime, path, {str(k): str(v) for k, v in images.items()}))
    found.sort(key=lambda item: item[0], reverse=True)
    return [(path, images) for _, path, images in found]


def load_bundle(path: Path) -> None:
    """``zstd -dc BUNDLE | docker load``."""
    run_pipe(["zstd", "-dc", "-q", str(path)], [DOCKER, "load", "-q"], what=f"loading {path.name}")


def save_bundle(cache_dir: Path, images: dict[str, str]) -> Path:
    """``docker save TAGS | zstd`` into a new bundle with its index; drop older bundles."""
    key = hashlib.sha256(json.dumps(images, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir / f"{BUNDLE_PREFIX}{key}{BUNDLE_SUFFIX}"
    index_path = cache_dir / f"{BUNDLE_PREFIX}{key}.json"
    part = path.with_name(path.name + ".part")
    run_pipe(
        [DOCKER, "save", *sorted(images)],
        ["zstd", "-q", "-T0", "-3", "-f", "-o", str(part)],
        what="saving the image bundle",
    )
    index_path.write_text(
        json.dumps({"images": images, "created": time.time()}, indent=2, sort_keys=True) + "\n",
        encoding="utf-8",
    )
    part.replace(path)
    for old, _ in list_bundles(cache_dir):
        if old != path:
            old.unlink(missing_ok=True)
            old.with_name(old.name[: -len(BUNDLE_SUFFIX)] + ".json").unlink(missing_ok=True)
    return path


@contextlib.contextmanager
def cache_lock(cache_dir: Path) -> Iterator[None]:
    """One build at a time per cache directory (tests and the CLI may overlap)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    with (cache_dir / ".lock").open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
