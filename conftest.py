"""Root conftest: stays thin. The harness is the `rollback_drill` pytest plugin (entry point
pytest11); nothing here but what is specific to this repository's own test run."""

from __future__ import annotations

import signal
import warnings
from collections.abc import Iterator

import pytest

_INTERRUPTS = (signal.SIGINT, signal.SIGTERM)


@pytest.fixture(autouse=True)
def _interrupts_as_found(request: pytest.FixtureRequest) -> Iterator[None]:
    """Puts SIGINT and SIGTERM back as each test found them. Tests share a process (an xdist
    worker runs many files), and a child process inherits an ignored or blocked signal: a test
    that left SIGINT ignored would leave every later test's children deaf to Ctrl-C. What a
    test changed is said as a warning naming it."""
    found = {sig: signal.getsignal(sig) for sig in _INTERRUPTS}
    yield
    changed = [sig for sig in _INTERRUPTS if signal.getsignal(sig) is not found[sig]]
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, []) & set(_INTERRUPTS)
    for sig in changed:
        signal.signal(sig, found[sig])
    if blocked:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, blocked)
    if changed or blocked:
        names = ", ".join(s.name for s in [*changed, *blocked])
        warnings.warn(
            f"{request.node.nodeid} left {names} changed (handler or mask); put back",
            pytest.PytestWarning,
            stacklevel=1,
        )


# Seconds a test is expected to take, by what it runs: a whole drill (or drill runs, a wheel
# install, containers: the `slow` tests) against a unit test. Rough on purpose: only the order
# of files matters below.
_EXPECTED_S = {"drill": 30.0, "slow": 30.0}
_QUICK_S = 0.5


def _expected_s(item: pytest.Item) -> float:
    marks = {m.name for m in item.iter_markers()}
    return max((s for name, s in _EXPECTED_S.items() if name in marks), default=_QUICK_S)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist's `--dist loadfile`, the files in the order of their expected time, longest
    first (`scripts/run-tests.sh` passes --no-loadscope-reorder, which keeps this order).
    xdist's own order is by number of tests: tests/test_wheel.py (two tests, three minutes)
    was handed out among the last, and one worker ran it while the other had nothing left.
    Longest first leaves the short files for the end, where they even the workers out."""
    if not hasattr(config, "workerinput"):
        return  # one process runs everything: the order changes nothing
    by_file: dict[str, float] = {}
    for item in items:
        by_file[item.path.as_posix()] = by_file.get(item.path.as_posix(), 0.0) + _expected_s(item)
    items.sort(key=lambda item: -by_file[item.path.as_posix()])  # stable within a file
