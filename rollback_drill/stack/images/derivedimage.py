"""A derived image (every image but the base): its build context, its input hash, its build.

The context is a list of files plus generated ones (the Dockerfile with the release's env, the
release.env, the rendered frontend pages), so it can be hashed without copying anything; only
an image whose hash differs from its label is materialized (hard links) and built.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import string
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rollback_drill.stack.images.dockercli import (
    DOCKER,
    LABEL_INPUTS,
    LABEL_RELEASE,
    LABEL_SERVICE,
    LABEL_TITLE,
    LABEL_VERSION,
    image_id_of,
    run_logged,
)
from rollback_drill.stack.images.filehash import FileHasher, walk_files
from rollback_drill.stack.images.layout import SCHEMA, Layout
from rollback_drill.stack.images.specs import ImageSpec

#: Lines of a Dockerfile that are replaced by the release's service env as ``ENV`` lines.
RELEASE_ENV_MARKER = "# @release-env"


def _quote_env(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'


def render_dockerfile(spec: ImageSpec) -> str:
    """The Dockerfile with each ``# @release-env`` line replaced by the release's env."""
    if spec.env:
        env_lines = "\n".join(f"ENV {k}={_quote_env(v)}" for k, v in spec.env)
    else:
        env_lines = "# (this release sets no env for this service)"
    text = spec.dockerfile.read_text(encoding="utf-8")
    out = [env_lines if line.strip() == RELEASE_ENV_MARKER else line for line in text.splitlines()]
    return "\n".join(out) + "\n"


def render_release_env(spec: ImageSpec) -> str:
    lines = [f"# {spec.tag}: env of {spec.service} in release {spec.release}"]
    if spec.release is not None:
        lines.append(f"RELEASE={spec.release}")
    lines += [f"{k}={v}" for k, v in spec.env]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Context:
    """A build context as a list of files plus generated files, hashable without copying."""

    files: tuple[tuple[Path, str], ...]
    generated: tuple[tuple[str, bytes], ...]

    def digest(self, hasher: FileHasher, *extra: str) -> str:
        h = hashlib.sha256()
        for item in (SCHEMA, *extra):
            h.update(item.encode() + b"\0")
        entries = [(rel, hashlib.sha256(data).digest(), False) for rel, data in self.generated]
        entries += [(rel, hasher.digest(src), os.access(src, os.X_OK)) for src, rel in self.files]
        for rel, digest, executable in sorted(entries):
            h.update(rel.encode() + b"\0" + (b"x" if executable else b"-") + b"\0" + digest)
        return h.hexdigest()

    def materialize(self, directory: Path) -> None:
        for src, rel in self.files:
            target = directory / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            try:  # a hard link is instant (node_modules trees hold thousands of files)
                os.link(src, target)
            except OSError:
                shutil.copy2(src, target)
        for rel, data in self.generated:
            target = directory / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)


def _ca_files(ca_dir: Path) -> list[tuple[Path, str]]:
    """The host's local CA certificates (what update-ca-certificates reads), if any."""
    if not ca_dir.is_dir():
        return []
    return list(walk_files(ca_dir, "ca-certificates"))


def build_context(spec: ImageSpec, layout: Layout) -> Context:
    files: list[tuple[Path, str]] = []
    generated: list[tuple[str, bytes]] = []
    for entry in spec.entries:
        for src, rel in walk_files(entry.src, entry.dest):
            if entry.exclude_suffixes and src.name.endswith(entry.exclude_suffixes):
                continue
            if entry.render_release and src.suffix == ".html" and spec.release is not None:
                page = string.Template(src.read_text(encoding="utf-8"))
                generated.append((rel, page.safe_substitute(release=spec.release).encode()))
            else:
                files.append((src, rel))
    if spec.uses_ca:
        files.extend(_ca_files(layout.ca_dir))
    generated.append(("Dockerfile", render_dockerfile(spec).encode()))
    if spec.service is not None and spec.release is not None:
        generated.append(("release.env", render_release_env(spec).encode()))
    if spec.uses_ca:
        # An empty directory still needs to exist for the Dockerfile's COPY.
        generated.append(("ca-certificates/.keep", b""))
    return Context(files=tuple(files), generated=tuple(generated))


def spec_inputs(
    spec: ImageSpec, layout: Layout, base_id: str, hasher: FileHasher | None = None
) -> str:
    """The input hash of a derived image: its context, build settings and the base image id."""
    ctx = build_context(spec, layout)
    settings = json.dumps(
        {
            "tag": spec.tag,
            "title": spec.title,
            "target": spec.target,
            "release": spec.release,
            "service": spec.service,
        },
        sort_keys=True,
    )
    return ctx.digest(hasher or FileHasher(), settings, f"base={base_id}")


def build_derived(
    spec: ImageSpec, layout: Layout, inputs: str, cache_from: Sequence[str] = ()
) -> str:
    """Assemble the context in a temporary directory and build it with BuildKit.

    Images carry BuildKit's inline cache metadata, and ``cache_from`` (local tags) lets a
    machine that loaded the bundle reuse their layers, as if it had built them itself
    (tags in ``cache_from`` that do not exist are skipped).
    """
    slug = spec.tag.replace("/", "_").replace(":", "_")
    with tempfile.TemporaryDirectory(prefix=f"ctx-{slug}-", dir=layout.cache_dir) as tmp:
        ctx_dir = Path(tmp)
        build_context(spec, layout).materialize(ctx_dir)
        args = [DOCKER, "build", "--progress=plain", "-f", str(ctx_dir / "Dockerfile")]
        args += ["-t", spec.tag, "--build-arg", "BUILDKIT_INLINE_CACHE=1"]
        for ref in cache_from:
            if image_id_of(ref) is not None:
                args += ["--cache-from", ref]
        labels = {LABEL_TITLE: spec.title, LABEL_INPUTS: inputs}
        if spec.release is not None:
            labels[LABEL_VERSION] = spec.release
            labels[LABEL_RELEASE] = spec.release
            args += ["--build-arg", f"RELEASE={spec.release}"]
        if spec.service is not None:
            labels[LABEL_SERVICE] = spec.service
        for key, value in labels.items():
            args += ["--label", f"{key}={value}"]
        if spec.target is not None:
            args += ["--target", spec.target]
        args.append(str(ctx_dir))
        run_logged(
            args, what=f"docker build {spec.tag}", log=layout.cache_dir / "logs" / f"{slug}.log"
        )
    return ""
