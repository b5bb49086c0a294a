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
