"""The CPU time a container has used, read from its cgroup: how a drill on the docker backend
counts its own services' work apart from other work on the machine (monitoring.contention).

A container's processes are children of containerd's shim, not of the harness, so the walk
of the harness's descendants does not find them, and without this their work would count as
"other work" in both windows: a busy container then reads as a busy machine. `docker stats`
says the same but costs a second or more per container (it waits for two samples); the
cgroup's counter is one small file read, cheap enough for a reading every half second.

The counter lives where the daemon's cgroup driver and the kernel's cgroup version put it;
the places docker uses are tried in order. A container found in none of them is left out
(None), and its work counts as other work, as before.
"""

from __future__ import annotations

from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _places(container_id: str) -> list[tuple[Path, str]]:
    """(file, format) where the container's CPU counter may be."""
    return [
        # cgroup v1, cgroupfs driver: nanoseconds
        (CGROUP_ROOT / "cpuacct" / "docker" / container_id / "cpuacct.usage", "ns"),
        (CGROUP_ROOT / "cpu,cpuacct" / "docker" / container_id / "cpuacct.usage", "ns"),
        # cgroup v1, systemd driver
        (
            CGROUP_ROOT / "cpuacct" / "system.slice" / f"docker-{container_id}.scope"
            / "cpuacct.usage",
            "ns",
        ),
        # cgroup v2: cpu.stat's usage_usec, cgroupfs then systemd driver
        (CGROUP_ROOT / "docker" / container_id / "cpu.stat", "stat"),
        (CGROUP_ROOT / "system.slice" / f"docker-{container_id}.scope" / "cpu.stat", "stat"),
    ]  # fmt: skip


def cpu_seconds(container_id: str) -> float | None:
    """The CPU seconds the container's processes have used since it started; None where no
    counter of it can be read."""
    for path, form in _places(container_id):
        try:
            text = path.read_text()
        except OSError:
            continue
        if form == "ns":
            return int(text.strip()) / 1e9
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "usage_usec":
                return int(value) / 1e6
    return None
