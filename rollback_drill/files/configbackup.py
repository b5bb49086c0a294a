"""Configuration backups: the runbook's `config-backup-*.tar.gz` and `rollback-state-*.tar.gz`
(.env files, nginx.conf, certificates), with a manifest of checksums so a restore can prove
it put back exactly what was saved.

They hold secrets (the TLS private key, the services' .env): an archive is owner-only from its
first byte, in a folder only its owner can list, and a drill lists it in the report without
attaching it (`Artifact(..., sensitive=True)`).
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import time
from pathlib import Path
from typing import Annotated

from pydantic import Field, RootModel, ValidationError

from rollback_drill.files.specmodel import describe_errors
from rollback_drill.process.errors import BackupFileError

MANIFEST = "MANIFEST.json"


class ConfigManifest(RootModel[dict[str, Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]]]):
    """`MANIFEST.json` inside the archive: each saved file (relative to the config folder)
    and its SHA-256."""


def _digest_tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def private_dir(path: Path) -> Path:
    """A folder made for backups: only its owner can list and enter it. One that exists (a
    drill's artifact folder) keeps its mode; the archives in it are owner-only anyway."""
    if not path.exists():
        path.mkdir(parents=True, mode=0o700)
        path.chmod(0o700)  # mkdir's mode passes through the umask
    return path


def backup(config_dir: Path, dest_dir: Path, label: str = "config-backup") -> Path:
    private_dir(dest_dir)
    stamp = time.strftime("%Y%m%d_%H%M%S")
    archive = dest_dir / f"{label}-{stamp}.tar.gz"
    n = 1
    while archive.exists():
        archive = dest_dir / f"{label}-{stamp}-{n}.tar.gz"
        n += 1
    manifest = ConfigManifest(_digest_tree(config_dir)).model_dump_json(indent=2).encode()
    fd = os.open(archive, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out, tarfile.open(fileobj=out, mode="w:gz") as tar:
        tar.add(config_dir, arcname="config")
        info = tarfile.TarInfo(MANIFEST)
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
    return archive


def restore(archive: Path, config_dir: Path) -> dict[str, str]:
    """Extract over `config_dir` and check every file against the manifest; return it."""
    with tarfile.open(archive, "r:gz") as tar:
        member = tar.extractfile(MANIFEST)
        if member is None:
            raise BackupFileError(f"{archive}: no {MANIFEST}")
        try:
            manifest = ConfigManifest.model_validate_json(member.read()).root
        except ValidationError as exc:
            raise BackupFileError(describe_errors(exc, archive / MANIFEST)) from None
        for entry in tar.getmembers():
            if entry.name.startswith("config/") and entry.isfile():
                data = tar.extractfile(entry)
                assert data is not None
                path = config_dir / entry.name.removeprefix("config/")
                path.parent.mkdir(parents=True, exist_ok=True)
                # In place (a bind-mounted nginx.conf keeps its inode), and never readable
                # more widely than when it was saved, not even while it is written.
                mode = entry.mode & 0o777
                if path.exists():
                    path.chmod(mode)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
                with os.fdopen(fd, "wb") as out:
                    out.write(data.read())
    actual = _digest_tree(config_dir)
    wrong = [name for name, digest in manifest.items() if actual.get(name) != digest]
    if wrong:
        raise BackupFileError(f"{archive}: restored files differ from the manifest: {wrong}")
    return manifest
