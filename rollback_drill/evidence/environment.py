"""Where a drill ran: the machine and the versions of every tool the stack is made of.

A time-to-recover only means something next to the machine and the tool versions that
produced it (a redis or nginx upgrade can move it), so the report, the drill record and the
certificate all carry this. Probing spawns a few `--version` processes, so it runs once per
process, in parallel, and is cached.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import re
import socket
import subprocess
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path
from typing import Any

from rollback_drill.process import procfs
from rollback_drill.process.tools import PROJECT_ROOT, ToolMissing, find_tool

PROBE_TIMEOUT_S = 10.0

# tool -> (argv after the binary, regex whose first group is the version)
_COMMANDS: dict[str, tuple[list[str], str]] = {
    "redis-server": (["--version"], r"v=(\S+)"),
    "nginx": (["-v"], r"nginx/(\S+)"),
    "anvil": (["--version"], r"anvil(?: Version:)? (\S+)"),
    "node": (["--version"], r"v?(\S+)"),
}
_PACKAGES = {"pytest": "pytest", "secantusdb": "secantusdb", "allure-pytest": "allure-pytest"}


def _run_version(tool: str) -> str | None:
    args, pattern = _COMMANDS[tool]
    try:
        exe = find_tool(tool)
    except ToolMissing:
        return None
    try:
        done = subprocess.run(
            [exe, *args],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(pattern, done.stdout + done.stderr)
    return match.group(1) if match else None


def _package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _allure_cli_version() -> str | None:
    """Allure 3's version from its package.json: no node start-up just to print it."""
    manifest = PROJECT_ROOT / "node_modules" / "allure" / "package.json"
    try:
        return str(json.loads(manifest.read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


@cache
def tool_versions() -> dict[str, str | None]:
    """name -> version (None when the tool is missing or its version unreadable)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    versions.update({name: _package_version(pkg) for name, pkg in _PACKAGES.items()})
    with ThreadPoolExecutor(max_workers=len(_COMMANDS)) as pool:
        found = dict(zip(_COMMANDS, pool.map(_run_version, _COMMANDS), strict=True))
    versions.update(found)
    versions["allure"] = _allure_cli_version()
    return dict(sorted(versions.items()))


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.system()


@cache
def machine() -> dict[str, Any]:
    memory = procfs.memory_total()
    return {
        "hostname": socket.gethostname(),
        "cpu_count": os.cpu_count(),
        "memory_bytes": memory,
        "memory_gib": round(memory / 2**30, 1) if memory else None,
        "kernel": platform.release(),
        "os": _os_name(),
        "arch": platform.machine(),
    }


def describe(*, backend: str, bad_release: str, good_release: str) -> dict[str, Any]:
    """The environment block of one drill: the same shape in report, record and certificate."""
    return {
        "backend": backend,
        "releases": {"from": bad_release, "to": good_release},
        "machine": machine(),
        "tools": tool_versions(),
    }


__all__ = ["describe", "machine", "tool_versions"]
