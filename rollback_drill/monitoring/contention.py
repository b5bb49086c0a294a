"""How much of the machine other work took during a drill's windows: the control that keeps
a busy machine from reading as a slower release in the runbook's "> 50 % response time
increase" alert and in the settle window's judgement.

A drill measures its steady state, changes the release, and compares: when another job on
the same machine starts in between (CI's other worker, a neighbour's build), every service
slows with no change in its code. Measured in CI, a backend release whose defect is a wrong
registry address (medium) read as login "+188 %" and was classified critical. The model is
verify's (`checks.machine`): the foreign share of the machine's capacity in each window -
all its CPU time minus what this process and its descendants spent (the harness, the load
generator, and on the embedded stack the services themselves) - and their damped ratio is
the stretch contention alone explains, taken out of the rise before it counts, at most
`MAX_FACTOR`. On the docker backend the containers are not descendants: their work is read
from their cgroups (`outside`, the stack's `outside_cpu_seconds`) and counted as the drill's.

An alert cannot say "not verified" as verify can: it fires or it does not. Too little taken
out pages for a busy machine; too much misses a slower release, which a drill shows as a
missed matrix row (red), never as a green live environment - so the whole damped factor
is taken out here.

One reading costs a walk of this process's descendants (psutil, a few milliseconds); the
alert engine takes one every half second.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil

from rollback_drill.checks import machine
from rollback_drill.checks.machine import MAX_FACTOR, contention_factor

READING_EVERY_S = 0.5
KEEP_S = 120.0  # the longest window judged (settle, a slow procedure's latency window)


@dataclass(frozen=True)
class Reading:
    at_s: float  # on the drill's timeline
    busy_s: float  # the machine's CPU time, every core
    own_s: dict[str, float]  # what ran it (a pid, a container) -> CPU time, the drill's own


def _own_cpu() -> dict[str, float]:
    me = psutil.Process(os.getpid())
    found: dict[str, float] = {}
    for process in (me, *me.children(recursive=True)):
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue  # ended between the walk and the read
        found[f"pid {process.pid}"] = times.user + times.system
    return found


@dataclass
class MachineLoad:
    """Readings of the machine's and the drill's own CPU, kept for `KEEP_S`."""

    # the stack's own work outside this process's descendants (containers), read each time
    outside: Callable[[], dict[str, float]] | None = None
    readings: deque[Reading] = field(default_factory=lambda: deque(maxlen=int(KEEP_S * 4)))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def sample(self, at_s: float) -> None:
        """Take a reading, unless one was taken less than `READING_EVERY_S` ago."""
        with self._lock:
            if self.readings and at_s - self.readings[-1].at_s < READING_EVERY_S:
                return
        own = _own_cpu()
        if self.outside is not None:
            own.update(self.outside())
        reading = Reading(at_s, machine.busy_seconds(), own)
        with self._lock:
            self.readings.append(reading)

    def share(self, start_s: float, end_s: float) -> float | None:
        """Other work's share of the machine's capacity between two timeline instants (the
        readings nearest inside them); None for fewer than two readings a second apart."""
        with self._lock:
            inside = [r for r in self.readings if start_s <= r.at_s <= end_s]
        if len(inside) < 2 or inside[-1].at_s - inside[0].at_s < 1.0:
            return None
        first, last = inside[0], inside[-1]
        own = sum(cpu - first.own_s.get(pid, 0.0) for pid, cpu in last.own_s.items())
        return machine.share_of_capacity(last.at_s - first.at_s, last.busy_s - first.busy_s, own)

    def factor(self, steady: float | None, now: float | None) -> float:
        """The stretch contention alone explains between the steady state and now: 1 when
        either share is unknown or the machine is quieter now."""
        if steady is None or now is None:
            return 1.0
        return min(max(contention_factor(steady, now), 1.0), MAX_FACTOR)
