"""Choosing a backend: `auto` is docker when a daemon answers, local otherwise; `all` runs
every drill on each backend available (what CI certifies)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rollback_drill.files.spec import LoadedStack
    from rollback_drill.stack.common import StackBase

CHOICES = ("auto", "local", "docker", "all")


def docker_available() -> bool:
    """One answer for the whole harness: the daemon the images are built with answers."""
    from rollback_drill.stack.images.dockercli import docker_available as answers

    return answers()


def backends_for(choice: str) -> list[str]:
    """The concrete backends a `--stack-backend` choice means on this machine."""
    if choice == "local" or choice == "docker":
        return [choice]
    if choice == "all":
        return ["local", "docker"] if docker_available() else ["local"]
    if choice == "auto":
        return ["docker"] if docker_available() else ["local"]
    raise ValueError(f"--stack-backend: expected one of {CHOICES}, got {choice!r}")


def make_stack(
    backend: str, loaded: LoadedStack, workdir: Path | None = None, seed_users: int | None = None
) -> StackBase:
    if backend == "docker":
        from rollback_drill.stack.docker import DockerStack

        return DockerStack(loaded, workdir=workdir, seed_users=seed_users)
    if backend == "local":
        from rollback_drill.stack.local import LocalStack

        return LocalStack(loaded, workdir=workdir, seed_users=seed_users)
    raise ValueError(f"unknown backend {backend!r}; expected local or docker")
