"""Configuration backups: the runbook's `config-backup-*.tar.gz` and `rollback-state-*.tar.gz`
(.env files, nginx.conf, certificates), with a manifest of checksums so a restore can prove
it put back exactly what was saved."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import time
from pathlib import Path


def _digest_tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def backup(config_dir: Path, dest_dir: Path, label: str = "config-backup") -> Path:
    dest_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d_%H%M%S")
    archive = dest_dir / f"{label}-{stamp}.tar.gz"
    n = 1
    while archive.exists():
        archive = dest_dir / f"{label}-{stamp}-{n}.tar.gz"
        n += 1
    manifest = json.dumps(_digest_tree(config_dir), indent=2).encode()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(config_dir, arcname="config")
        info = tarfile.TarInfo("MANIFEST.json")
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
    return archive


def restore(archive: Path, config_dir: Path) -> dict[str, str]:
    """Extract over `config_dir` and check every file against the manifest; return it."""
    with tarfile.open(archive, "r:gz") as tar:
        member = tar.extractfile("MANIFEST.json")
        if member is None:
            raise ValueError(f"{archive}: no MANIFEST.json")
        manifest: dict[str, str] = json.loads(member.read())
        for entry in tar.getmembers():
            if entry.name.startswith("config/") and entry.isfile():
                data = tar.extractfile(entry)
                assert data is not None
                path = config_dir / entry.name.removeprefix("config/")
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data.read())
                path.chmod(entry.mode)
    actual = _digest_tree(config_dir)
    wrong = [name for name, digest in manifest.items() if actual.get(name) != digest]
    if wrong:
        raise ValueError(f"{archive}: restored files differ from the manifest: {wrong}")
    return manifest
