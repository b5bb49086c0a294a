"""Each release's build of a service (the base sources with its patches), kept on disk.

The app and frontend images are made from these folders. Each is named by a hash of what it
is made of, so a changed source or patch is a new folder (and new image inputs), an unchanged
one is reused, and a cache directory shared by checkouts never hands one another's build.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
from pathlib import Path

from rollback_drill.files.spec import LoadedStack
from rollback_drill.process.errors import BuildError, ImageBuildError
from rollback_drill.stack import releases
from rollback_drill.stack.images.filehash import FileHasher, tree_digest
from rollback_drill.stack.images.layout import SCHEMA, Layout


def release_build(
    loaded: LoadedStack, service: str, release: str, layout: Layout, hasher: FileHasher
) -> Path:
    """The release's build of a service (base sources + its patches, `patch -p1`), in a
    folder named by what it is made of: the base sources' contents and the patches' bytes.
    A changed source or patch is a new folder, so the image's inputs change with it; an
    unchanged one is reused (built once into a temporary folder, then renamed into place)."""
    h = hashlib.sha256(f"{SCHEMA}\0{service}\0{release}".encode())
    for rel in releases.sources(loaded, service):
        h.update(rel.encode() + b"\0" + tree_digest(loaded.resolve(rel), hasher).encode())
    for patch in releases.patches(loaded, service, release):
        h.update(hasher.digest(patch))
    dest = layout.builds_dir / f"{service}-{release}-{h.hexdigest()[:16]}"
    if (dest / releases.STAMP).is_file():
        return dest
    layout.builds_dir.mkdir(parents=True, exist_ok=True)
    part = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=layout.builds_dir))
    try:
        releases.build(loaded, service, release, part)
    except BuildError as exc:
        raise ImageBuildError(str(exc)) from None
    finally:
        if not (part / releases.STAMP).is_file():
            shutil.rmtree(part, ignore_errors=True)
    try:
        part.rename(dest)
    except OSError:  # another run made the same build meanwhile: the same content
        shutil.rmtree(part, ignore_errors=True)
    return dest


def prune_builds(layout: Layout, keep: set[Path]) -> None:
    """Remove release builds no current image is made from (under the build lock), and
    unfinished ones older than ten minutes (a build being made right now is left alone)."""
    if not layout.builds_dir.is_dir():
        return
    for child in layout.builds_dir.iterdir():
        unfinished = child.name.startswith(".")
        if unfinished and time.time() - child.stat().st_mtime < 600:
            continue
        if child not in keep:
            shutil.rmtree(child, ignore_errors=True)
