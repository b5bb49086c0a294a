"""Two kinds of place, kept apart: where the package keeps what it ships, and where the user
works.

Shipped (read-only, wherever pip put the package): the reference stack (`safepsy`), the
drills, the verify suite and the locustfile, as subpackages of `rollback_drill.shipped`. In
this repository they stay where the design card puts them (fixtures/safepsy/, drills/,
verifications/, load/) and pyproject's `package-dir` maps them into the package, so an
editable install finds the repository's folders and a wheel carries copies: one source, and
pytest collects each test once. They are located through the import system, never through
`__file__` arithmetic, which would only be right in one of those two layouts.

Work (written): reports/, .rollback-drill/ and the user's own node_modules/ are relative to
the folder the command runs in - never site-packages.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

from rollback_drill.process.errors import ProcessError

SHIPPED = "rollback_drill.shipped"


class ShippedMissing(ProcessError, RuntimeError):
    """A part of the package is not installed (a broken or partial install)."""


@cache
def shipped(part: str) -> Path:
    """The folder of a shipped part: `safepsy`, `drills`, `verifications` or `load`."""
    name = f"{SHIPPED}.{part}"
    found = importlib.util.find_spec(name)
    locations = list(found.submodule_search_locations or []) if found else []
    if not locations:
        raise ShippedMissing(f"{name} is not installed: reinstall rollback-drill")
    return Path(locations[0])


def reference_stack() -> Path:
    """The SafePsy reference stack's stack file: the default of every `--stack` option."""
    return shipped("safepsy") / "stack.yaml"


def locustfile() -> Path:
    """The runbook's user journeys for locust (run as a subprocess, never imported)."""
    return shipped("load") / "locustfile.py"


def work_dir() -> Path:
    """Where the user works: the folder the command was started in."""
    return Path.cwd()


RECORDS = Path("reports") / "records"
"""Where the drill records go by default, relative to the working folder."""


def reports_dir() -> Path:
    """The default root of allure-results/, html/, history/, records/, artifacts/."""
    return work_dir() / "reports"


def shown(path: Path) -> str:
    """A path as records keep it: relative to the working folder when inside it (records
    then compare across checkouts and machines), else absolute."""
    try:
        return str(path.resolve().relative_to(work_dir().resolve()))
    except ValueError:
        return str(path.resolve())


def from_shown(text: str) -> Path:
    """A path a record keeps (`shown`), back as a path: absolute ones stay absolute."""
    return work_dir() / text


__all__ = [
    "ShippedMissing",
    "from_shown",
    "locustfile",
    "reference_stack",
    "reports_dir",
    "shipped",
    "shown",
    "work_dir",
]
