"""Several requests of one check at once, in threads: a check that waits on a few services in
turn puts the sum of their latencies on verify's critical path, and on a busy machine (where
each answer queues behind the other checks' requests) that sum is most of a second.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def each(calls: list[Callable[[], T]]) -> list[T | Exception]:
    """Every call's result (or the exception it raised), in order, all run at once."""
    results: list[T | Exception] = [RuntimeError("no result")] * len(calls)

    def run(i: int, call: Callable[[], T]) -> None:
        try:
            results[i] = call()
        except Exception as exc:  # the caller judges it: a failure, never a silent gap
            results[i] = exc

    threads = [
        threading.Thread(target=run, args=(i, c), daemon=True, name="check request")
        for i, c in enumerate(calls)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results
