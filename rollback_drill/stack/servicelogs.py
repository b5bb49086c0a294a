"""Preserved service logs: one file with every service's log under a `===== name =====` header
(the runbook's `docker-compose logs > rollback-logs-*.log`). The emergency procedure writes one
while the fault is live; every drill writes one more at its end (`service-logs.log`), so the
incident document has logs to read whichever procedure ran. This module is the format's one
home: it writes the file and reads it back."""

from __future__ import annotations

import re
from pathlib import Path

from rollback_drill.stack.base import Stack

END_OF_DRILL = "service-logs.log"
_HEADER = re.compile(r"^===== (?P<service>.+) =====$")


def write(stack: Stack, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as out:
        for service in stack.all_services():
            try:
                text = stack.logs(service)
            except Exception as exc:  # one unreadable log must not cost the others
                text = f"(log not readable: {type(exc).__name__}: {exc})"
            out.write(f"===== {service} =====\n{text}\n")
    return path


def read(path: Path) -> dict[str, list[str]]:
    """Service -> its log lines, in the order the file has them."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in path.read_text(errors="replace").splitlines():
        header = _HEADER.match(line)
        if header:
            current = sections.setdefault(header.group("service"), [])
        elif current is not None:
            current.append(line)
    return sections
