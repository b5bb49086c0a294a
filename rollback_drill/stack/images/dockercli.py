"""The commands a build step runs, and what Docker knows about local images.

One way to run a step (``DOCKER_BUILDKIT=1``, output kept in a log, a failure raised with the
tail of its output), one to pipe two commands (``docker save | zstd``), and one
``docker image inspect`` for many images at once: the labels an image carries are how the
build tells a current image from a stale one.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rollback_drill.process.errors import ImageBuildError

#: Debian's docker client: the other client on PATH lacks buildx, which BuildKit builds need.
DOCKER = "/usr/bin/docker"


LABEL_INPUTS = "rollback-drill.inputs"
LABEL_TITLE = "org.opencontainers.image.title"
LABEL_VERSION = "org.opencontainers.image.version"
LABEL_RELEASE = "rollback-drill.release"
LABEL_SERVICE = "rollback-drill.service"


def _docker_env() -> dict[str, str]:
    env = dict(os.environ)
    env["DOCKER_BUILDKIT"] = "1"
    return env


def run_logged(args: Sequence[str], *, what: str, log: Path | None = None) -> str:
    """Run a command; return stdout. On failure raise with the tail of its output."""
    result = subprocess.run(
        list(args), capture_output=True, text=True, env=_docker_env(), check=False
    )
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(result.stdout + result.stderr, encoding="utf-8")
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-25:])
        where = f" (full log: {log})" if log is not None else ""
        raise ImageBuildError(f"{what} failed with exit status {result.returncode}{where}:\n{tail}")
    return result.stdout


def docker_available() -> bool:
    """True when a Docker daemon answers ``docker info``."""
    if not Path(DOCKER).exists():
        return False
    try:
        result = subprocess.run(
            [DOCKER, "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0 and bool(result.stdout.strip())


@dataclass(frozen=True)
class ImageInfo:
    """A local image: its id, its size and the labels it carries (its inputs among them)."""

    image_id: str
    size_bytes: int
    labels: dict[str, str]


def inspect_images(refs: Sequence[str]) -> dict[str, ImageInfo]:
    """The local images among ``refs`` (tags or ids), in one ``docker image inspect`` call."""
    if not refs:
        return {}
    result = subprocess.run(
        [DOCKER, "image", "inspect", "--format", "{{json .}}", *refs],
        capture_output=True,
        text=True,
        check=False,
    )
    # With some refs missing, docker still prints the others (one JSON line each, in order of
    # the refs found) and exits 1; match them back by tag or id.
    found: dict[str, ImageInfo] = {}
    for line in result.stdout.splitlines():
        if not line.strip():
            continue
        data = json.loads(line)
        labels = (data.get("Config") or {}).get("Labels") or {}
        info = ImageInfo(
            image_id=str(data["Id"]),
            size_bytes=int(data.get("Size") or 0),
            labels={str(k): str(v) for k, v in labels.items()},
        )
        names = {info.image_id, *(str(t) for t in data.get("RepoTags") or [])}
        for ref in refs:
            if ref in names:
                found[ref] = info
    return found


def inspect_image(ref: str) -> ImageInfo | None:
    """The local image ``ref`` (tag or id), or None when there is none."""
    return inspect_images([ref]).get(ref)


def current_inputs(tag: str) -> str | None:
    """The ``rollback-drill.inputs`` label of the local image ``tag``, if it exists."""
    info = inspect_image(tag)
    return None if info is None else info.labels.get(LABEL_INPUTS)


def image_id_of(tag: str) -> str | None:
    """The id of the local image ``tag``, or None when there is none."""
    info = inspect_image(tag)
    return None if info is None else info.image_id


def run_pipe(first: list[str], second: list[str], *, what: str) -> str:
    """``first | second``; fail when either side fails. Returns second's stdout."""
    with subprocess.Popen(first, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as p1:
        assert p1.stdout is not None
        p2 = subprocess.run(second, stdin=p1.stdout, capture_output=True, check=False)
        p1.stdout.close()
        err1 = p1.stderr.read() if p1.stderr is not None else b""
        p1.wait()
    if p1.returncode != 0 or p2.returncode != 0:
        detail = (err1 + p2.stderr).decode(errors="replace").strip()
        raise ImageBuildError(
            f"{what} failed ({first[0]} exit {p1.returncode}, {second[0]} exit "
            f"{p2.returncode}): {detail}"
        )
    return p2.stdout.decode(errors="replace")
