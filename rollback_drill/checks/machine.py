"""How much of this machine other work took while a flow was sampled: the control that tells a
busy machine from a slow release.

Kayenta judges a canary against a baseline running at the same time, so both see the same
hour. A verify run compares against a baseline taken earlier, perhaps on a quieter machine,
and when the verifier shares the machine with the services (every URL on a loopback
address, as on the embedded stack or a single-host deployment) a busy machine slows the
services themselves: their response times rise with no change in their code.

So the window of each flow's sampling is accounted: the CPU the whole machine spent
(/proc/stat), minus what the target's own processes (found by the loopback ports the target
names) and the verifier spent - what is left is foreign work. Its share of the machine's
capacity, now against the baseline's, gives the factor by which contention alone stretches
the services' time: (1 - foreign share then) / (1 - foreign share now), damped (`DAMPING`).
A release that does more work per request raises its own processes' CPU, not the foreign
share, so the factor does not hide it. For a remote target the share is shown, never
applied: the verifier's machine says nothing about the servers'.

psutil reads /proc (its per-process times include threads that already ended, which the
per-thread scheduler statistics lose); finding the processes behind the ports costs tens of
milliseconds, once per run and port set.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import psutil

LOOPBACK = ("127.", "localhost", "::1")
MAX_FACTOR = 3.0
"""The most a busy machine is ever taken to explain: a ratio whose interval stays over the
limit with this much taken out is a regression however busy the machine was, and the alert
engine never takes out more."""


def shares_machine(urls: list[str]) -> bool:
    """True when every URL is on a loopback address: the verifier and the services share this
    machine, and its contention is theirs."""
    hosts = [urlsplit(url).hostname or "" for url in urls if url]
    return bool(hosts) and all(host.startswith(LOOPBACK) for host in hosts)


def _serving(ports: frozenset[int]) -> tuple[psutil.Process, ...]:
    """The processes behind the ports, found again once one of them has ended: a redeployed
    service listens on the same port from a new process, whose work is not foreign."""
    found = _find_serving(ports)
    if all(process.is_running() for process in found):
        return found
    _find_serving.cache_clear()
    return _find_serving(ports)


@lru_cache(maxsize=4)
def _find_serving(ports: frozenset[int]) -> tuple[psutil.Process, ...]:
    import psutil

    from rollback_drill.stack.access import listening_pids

    found: list[psutil.Process] = []
    for pid in sorted({pid for pids in listening_pids(ports).values() for pid in pids}):
        try:
            found.append(psutil.Process(pid))
        except psutil.Error:
            continue
    return tuple(found)


def serving_processes(urls: list[str]) -> tuple[psutil.Process, ...]:
    """The processes listening on the loopback ports these URLs name (and this one)."""
    import psutil

    ports = frozenset(
        port for url in urls if url and (port := urlsplit(url).port) and shares_machine([url])
    )
    return (*_serving(ports), psutil.Process(os.getpid()))


def busy_seconds() -> float:
    """The CPU time the whole machine has spent, every core, idle and I/O wait left out."""
    import psutil

    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


def _own_seconds(processes: tuple[psutil.Process, ...]) -> float:
    import psutil

    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


@dataclass(frozen=True)
class Reading:
    at: float
    busy_s: float
    own_s: float


def read(processes: tuple[psutil.Process, ...]) -> Reading:
    return Reading(time.monotonic(), busy_seconds(), _own_seconds(processes))


def foreign_share(start: Reading, end: Reading) -> float | None:
    """The share of the machine's capacity that other work used between two readings; None
    for a window too short to say (under 50 ms: a few clock ticks of /proc)."""
    window = end.at - start.at
    if window < 0.05:
        return None
    return share_of_capacity(window, end.busy_s - start.busy_s, end.own_s - start.own_s)


def share_of_capacity(window_s: float, busy_s: float, own_s: float) -> float:
    """What of the machine's capacity over `window_s` the busy time less our own work took:
    other work's share, between 0 and 0.99 (never a machine with nothing left)."""
    capacity = window_s * (os.cpu_count() or 1)
    return min(max((busy_s - own_s) / capacity, 0.0), 0.99)


DAMPING = 0.5
"""The share ratio is taken out to this power, not whole. Measured on these 2-core machines
(benchmarks/bench_false_alarms.py), contention stretched the services' time by about the
share ratio to the power 0.7-0.85, and taking the whole ratio out hid a +60 % regression on
a machine three-quarters busy; the square root leaves the judge on the side of a red verdict
while still excusing most of a busy machine."""


def contention_factor(baseline_share: float, current_share: float) -> float:
    """How much longer a unit of the services' work takes now for the foreign work alone."""
    return float(((1 - baseline_share) / (1 - current_share)) ** DAMPING)
