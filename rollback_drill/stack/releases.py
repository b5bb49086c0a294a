"""A release's code: the stack's base sources with the release's patches applied.

The runbook rolls back with `git checkout HEAD~1 -- backend/ && npm run build`: a release is
code, and a defect is a line of it. Here the base sources (the stack file's `pythonpath`,
`static_root` and `config_template` of each service) are release N's tree, and each later
release lists, per service, the unified diffs that make its code from them. Building a
release copies the service's sources into a build folder and applies those diffs with
`patch -p1`; the local backend runs the build, the docker backend copies it into the image.
Rolling back is deploying the previous release's build, and the frontend's "clear the build
cache, rebuild" is removing a build folder and making it again.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from rollback_drill.files.spec import LoadedStack
from rollback_drill.process.errors import BuildError, SpecError
from rollback_drill.process.tools import find_tool

STAMP = ".release-build"
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache", ".pytest_cache")


def sources(loaded: LoadedStack, service: str) -> list[str]:
    """The paths (as the stack file gives them) that make up a service's code and config."""
    svc = loaded.spec.services[service]
    paths = [p for p in (svc.pythonpath, svc.static_root, svc.config_template) if p]
    if not paths:
        raise SpecError(f"{loaded.path}: services.{service}: no sources to build a release from")
    return paths


def in_build(loaded: LoadedStack, service: str, source: str) -> Path:
    """Where a source lands inside a build: its path relative to the stack file, so the
    patches' `a/app/...` paths apply. A stack file may name sources by absolute path (a copy
    of the stack file elsewhere): they keep their layout relative to their common folder."""
    path = Path(source)
    if not path.is_absolute():
        return path
    resolved = loaded.resolve(source).resolve()
    try:
        return resolved.relative_to(loaded.root)
    except ValueError:
        absolute = [Path(p).resolve() for p in sources(loaded, service) if Path(p).is_absolute()]
        common = Path(os.path.commonpath([p.parent for p in absolute]))
        return resolved.relative_to(common)


def patches(loaded: LoadedStack, service: str, release: str) -> list[Path]:
    spec = loaded.release(release).services.get(service)
    here = loaded.release_files[release].parent
    return [here / p for p in spec.patches] if spec else []


def build_key(loaded: LoadedStack, service: str, release: str) -> str:
    """What a build is made from: the patches' bytes (the base sources are the checkout's)."""
    digest = hashlib.sha256(f"{service}\0{release}".encode())
    for patch in patches(loaded, service, release):
        digest.update(patch.read_bytes())
    return digest.hexdigest()[:16]


def build(loaded: LoadedStack, service: str, release: str, dest: Path) -> Path:
    """Make `dest` hold the service's sources at `release`; reuse a build of the same key."""
    key = build_key(loaded, service, release)
    stamp = dest / STAMP
    if stamp.exists() and stamp.read_text() == key:
        return dest
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for rel in sources(loaded, service):
        src = loaded.resolve(rel)
        into = dest / in_build(loaded, service, rel)
        if src.is_dir():
            shutil.copytree(src, into, ignore=_IGNORED)
        else:
            into.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, into)
    for patch in patches(loaded, service, release):
        done = subprocess.run(
            [find_tool("patch"), "--batch", "--forward", "--silent", "-p1", "-d", str(dest),
             "-i", str(patch)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )  # fmt: skip
        if done.returncode != 0:
            shutil.rmtree(dest, ignore_errors=True)
            raise BuildError(
                f"release {release}, service {service}: {patch.name} does not apply to the "
                f"base sources:\n{(done.stdout + done.stderr).strip()[-1500:]}"
            )
    stamp.write_text(key)
    return dest


def clear(dest: Path) -> bool:
    """The runbook's `rm -rf build/ node_modules/`: True when there was a build to remove."""
    if dest.exists():
        shutil.rmtree(dest)
        return True
    return False
