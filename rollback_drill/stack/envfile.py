"""A service's `.env` file, as docker-compose reads it: `KEY=value` lines, `#` comments.
The stack writes one per app service (its release, peers and stores) and an operator's edit
changes it in place; both backends read it back to start the service."""

from __future__ import annotations

from pathlib import Path

from rollback_drill.process.errors import StackError
from rollback_drill.process.secrets import write_private


def read_env_file(path: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            raise StackError(f"{path}:{number}: expected KEY=value, got {line!r}")
        key, value = line.split("=", 1)
        env[key.strip()] = value.strip()
    return env


def write_env_file(path: Path, env: dict[str, str], header: str) -> None:
    """Owner-only from the first byte: a service's `.env` holds its database and cache URIs
    with their passwords. The harness reads it and hands the variables over; nothing else
    needs to."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"# {header}"] + [f"{k}={v}" for k, v in sorted(env.items())]
    write_private(path, ("\n".join(lines) + "\n").encode())
