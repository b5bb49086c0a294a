"""Lazy imports from check threads, one at a time.

Checks import their heavy clients (pymongo, redis, docker) on first use so that a verify
run does not pay for them before it starts working. But two threads importing parts of one
package with internal cycles (pymongo has them) can each hold half of it: Python then hands
one of them a partially initialised module (ImportError, KeyError). Heavy imports in a check
therefore go through `imports()`, which lets one thread import at a time.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.RLock()


@contextmanager
def imports() -> Iterator[None]:
    with _lock:
        yield
